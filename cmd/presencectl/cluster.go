package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/node"
)

// runCluster prints the membership as one node sees it.
func runCluster(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("cluster", "[--url http://localhost:8000] [--token T | --data-dir DIR | --secret S] [--json]", stderr)
	var (
		url     = flags.String("url", envOr("PRESENCE_URL", "http://localhost:8000"), "node to ask (env PRESENCE_URL)")
		token   = flags.String("token", envOr("PRESENCE_TOKEN", ""), "admin bearer token (env PRESENCE_TOKEN); default: mint one with the secret")
		dataDir = flags.String("data-dir", envOr(envDataDir, "./data"), "daemon data `DIR` holding the generated secret")
		secret  = flags.String("secret", "", "HS256 secret to mint an admin token with")
		asJSON  = flags.Bool("json", false, "print the raw JSON")
		timeout = flags.Duration("timeout", 10*time.Second, "request timeout")
	)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if *token == "" {
		key, err := tokenSecret(*secret, *dataDir)
		if err != nil {
			return fmt.Errorf("%w\n(or pass --token)", err)
		}
		if *token, err = auth.Mint(key, auth.MintClaims{UserID: 1, Username: "presencectl", Admin: true, TTL: time.Minute,
			Issuer: envOr(envIssuer, ""), Audience: envOr(envAudience, "")}); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(*url, "/")+"/admin/cluster", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("ask %s: %w", *url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s: %s", *url, resp.Status, strings.TrimSpace(string(body)))
	}
	if *asJSON {
		_, err = fmt.Fprintln(stdout, string(body))
		return err
	}
	var cr node.ClusterStatus
	if err := json.Unmarshal(body, &cr); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	return printCluster(stdout, &cr)
}

func printCluster(w io.Writer, cr *node.ClusterStatus) error {
	mode := fmt.Sprintf("view epoch %d", cr.Epoch)
	if cr.Standalone {
		mode = "standalone"
	}
	fmt.Fprintf(w, "asked %s (%s), %d member(s)\n", cr.Node, mode, len(cr.Members))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MEMBER\tNODE\tSTATUS\tOWNS\tACTORS\tHTTP\tGOSSIP\tREMOTE")
	for _, m := range cr.Members {
		name := m.Name
		if m.Self {
			name += " *"
		}
		status := m.Status
		if m.Draining {
			status += ",draining"
		}
		actors := "?"
		if m.ActorsHosted != nil {
			actors = fmt.Sprint(*m.ActorsHosted)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%v\t%s\t%s\t%s\t%s\n", name, m.NodeName, status, m.Owner, actors, m.HTTPAddr, m.GossipAddr, m.RemoteAddr)
	}
	return tw.Flush()
}
