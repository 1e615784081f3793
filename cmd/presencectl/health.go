package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
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
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, *url, nil)
	if err != nil {
		return err
	}
	// No proxy and no connection reuse: the check runs next to the node.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("ask %s: %w", *url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", *url, resp.Status, strings.TrimSpace(string(body)))
	}
	if !*quiet {
		fmt.Fprintf(stdout, "%s: %s\n", *url, resp.Status)
	}
	return nil
}
