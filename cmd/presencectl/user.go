package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/presence-cluster/presence/wire"
)

// runUser shows one user as an admin sees it (GET /admin/users/{id}), after
// setting the user's visibility or closing their sessions when asked.
func runUser(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("user", adminUsage+" [--presence MODE] [--last-seen MODE] [--allow IDS] [--disconnect] USER_ID", stderr)
	admin := addAdminFlags(flags)
	var (
		presence   = flags.String("presence", "", "set who sees the user's presence: everyone, nobody or allowlist")
		lastSeen   = flags.String("last-seen", "", "set who sees the user's last_seen: everyone, nobody or allowlist")
		allow      = flags.String("allow", "", "set the allowlist: comma-separated user `IDS` (\"\" with the flag given clears it)")
		disconnect = flags.Bool("disconnect", false, "close every WebSocket session of the user (code 4003), on every node")
	)
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if flags.NArg() != 1 {
		return usageErrorf(flags, "want exactly one USER_ID, got %d arguments", flags.NArg())
	}
	id, err := strconv.ParseInt(flags.Arg(0), 10, 64)
	if err != nil || id < 1 {
		return usageErrorf(flags, "USER_ID %q is not a positive integer", flags.Arg(0))
	}
	var update wire.VisibilityUpdate
	setVisibility := false
	flags.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "presence":
			update.Presence, setVisibility = *presence, true
		case "last-seen":
			update.LastSeen, setVisibility = *lastSeen, true
		case "allow":
			ids, perr := parseIDList(*allow)
			if perr != nil {
				err = perr
			}
			update.Allow, setVisibility = &ids, true
		}
	})
	if err != nil {
		return usageErrorf(flags, "--allow: %v", err)
	}

	c, ctx, cancel, err := admin.client()
	if err != nil {
		return err
	}
	defer cancel()
	if setVisibility {
		if _, err := c.AdminSetVisibility(ctx, id, update); err != nil {
			return fmt.Errorf("set the visibility of user %d: %w", id, err)
		}
	}
	if *disconnect {
		n, err := c.AdminDisconnect(ctx, id)
		if err != nil {
			return fmt.Errorf("disconnect user %d: %w", id, err)
		}
		if !*admin.asJSON {
			fmt.Fprintf(stdout, "closed %d session(s) of user %d\n", n, id)
		}
	}
	path := "/admin/users/" + strconv.FormatInt(id, 10)
	if *admin.asJSON {
		return admin.printJSON(ctx, c, path, stdout)
	}
	in, err := c.InspectUser(ctx, id)
	if err != nil {
		return fmt.Errorf("ask %s: %w", *admin.url, err)
	}
	return printUser(stdout, &in)
}

// parseIDList parses comma-separated user ids; "" is none.
func parseIDList(s string) ([]int64, error) {
	ids := []int64{}
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		id, err := strconv.ParseInt(f, 10, 64)
		if err != nil || id < 1 {
			return nil, fmt.Errorf("%q is not a positive user id", f)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func printUser(w io.Writer, in *wire.UserInspection) error {
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339Nano)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "user\t%d (%s)\n", in.UserID, in.Username)
	fmt.Fprintf(tw, "online\t%v\n", in.IsOnline)
	fmt.Fprintf(tw, "busy\t%v (until %s)\n", in.IsBusy, at(in.BusyUntil))
	fmt.Fprintf(tw, "last seen\t%s\n", at(in.LastSeen))
	fmt.Fprintf(tw, "created, updated\t%s, %s\n", at(in.CreatedAt), at(in.UpdatedAt))
	fmt.Fprintf(tw, "version\t%d\n", in.Version)
	fmt.Fprintf(tw, "owner\t%s (watched by %d hub(s), %d session(s) open)\n", in.Owner, in.Watchers, in.Sessions)
	fmt.Fprintf(tw, "visibility\tpresence %s, last_seen %s, allow %v\n", in.Visibility.Presence, in.Visibility.LastSeen, in.Visibility.Allow)
	return tw.Flush()
}
