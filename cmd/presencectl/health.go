package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"time"

	"github.com/presence-cluster/presence/client"
)

// runHealth asks a node's health endpoint and succeeds only on 200. It is
// the health check of the container image, which is built FROM scratch and
// so has no shell, curl or wget: Docker and Compose health checks run
// `presencectl health` inside the container (exit 0 healthy, 1 not).
func runHealth(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("health", "[--url http://127.0.0.1:8000/readyz] [--timeout 2s] [-q]", stderr)
	var (
		url     = flags.String("url", envOr("PRESENCE_HEALTH_URL", "http://127.0.0.1:8000/readyz"), "endpoint to ask: /readyz (serving, store reachable, not draining) or /healthz (process alive) (env PRESENCE_HEALTH_URL)")
		timeout = flags.Duration("timeout", 2*time.Second, "bound on the whole request")
		quiet   = flags.Bool("q", false, "print nothing on success")
	)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	c, path, err := healthClient(*url)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := c.Probe(ctx, path); err != nil {
		return fmt.Errorf("ask %s: %w", *url, err)
	}
	if !*quiet {
		fmt.Fprintf(stdout, "%s: %d %s\n", *url, http.StatusOK, http.StatusText(http.StatusOK))
	}
	return nil
}

// healthClient is a client of the node of rawURL, and the path (with query)
// to probe there. It uses no proxy and no connection reuse: the check runs
// next to the node.
func healthClient(rawURL string) (*client.Client, string, error) {
	u, err := neturl.Parse(rawURL)
	if err != nil {
		return nil, "", fmt.Errorf("health URL: %w", err)
	}
	cfg := client.DefaultConfig()
	cfg.BaseURL = u.Scheme + "://" + u.Host
	cfg.HTTPClient = &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	c, err := client.New(cfg)
	if err != nil {
		return nil, "", err
	}
	return c, u.RequestURI(), nil
}
