package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/client"
	"github.com/presence-cluster/presence/wire"
)

// adminFlags are the flags of the commands that ask a node as an admin.
type adminFlags struct {
	url, token, dataDir, secret *string
	asJSON                      *bool
	timeout                     *time.Duration
}

// adminUsage is the usage text of adminFlags.
const adminUsage = "[--url http://localhost:8000] [--token T | --data-dir DIR | --secret S] [--json]"

func addAdminFlags(flags *flag.FlagSet) adminFlags {
	return adminFlags{
		url:     flags.String("url", envOr("PRESENCE_URL", "http://localhost:8000"), "node to ask (env PRESENCE_URL)"),
		token:   flags.String("token", envOr("PRESENCE_TOKEN", ""), "admin bearer token (env PRESENCE_TOKEN); default: mint one with the secret"),
		dataDir: flags.String("data-dir", envOr(envDataDir, "./data"), "daemon data `DIR` holding the generated secret"),
		secret:  flags.String("secret", "", "HS256 secret to mint an admin token with"),
		asJSON:  flags.Bool("json", false, "print the raw JSON"),
		timeout: flags.Duration("timeout", 10*time.Second, "request timeout"),
	}
}

// client returns a client of the node with the admin token (given, or
// minted with the secret for a minute), and the context of one command.
func (a adminFlags) client() (*client.Client, context.Context, context.CancelFunc, error) {
	token := *a.token
	if token == "" {
		key, err := tokenSecret(*a.secret, *a.dataDir)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w\n(or pass --token)", err)
		}
		if token, err = auth.Mint(key, auth.MintClaims{UserID: 1, Username: "presencectl", Admin: true, TTL: time.Minute,
			Issuer: envOr(envIssuer, ""), Audience: envOr(envAudience, "")}); err != nil {
			return nil, nil, nil, err
		}
	}
	cfg := client.DefaultConfig()
	cfg.BaseURL, cfg.Token = *a.url, token
	c, err := client.New(cfg)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), *a.timeout)
	return c, ctx, cancel, nil
}

// printJSON prints the node's answer at path as it came.
func (a adminFlags) printJSON(ctx context.Context, c *client.Client, path string, stdout io.Writer) error {
	var raw json.RawMessage
	if err := c.GetJSON(ctx, path, &raw); err != nil {
		return fmt.Errorf("ask %s: %w", *a.url, err)
	}
	_, err := fmt.Fprintln(stdout, string(raw))
	return err
}

// runCluster prints the membership as one node sees it.
func runCluster(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("cluster", adminUsage, stderr)
	admin := addAdminFlags(flags)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	c, ctx, cancel, err := admin.client()
	if err != nil {
		return err
	}
	defer cancel()
	if *admin.asJSON {
		return admin.printJSON(ctx, c, "/admin/cluster", stdout)
	}
	cr, err := c.Cluster(ctx)
	if err != nil {
		return fmt.Errorf("ask %s: %w", *admin.url, err)
	}
	return printCluster(stdout, &cr)
}

func printCluster(w io.Writer, cr *wire.ClusterStatus) error {
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
