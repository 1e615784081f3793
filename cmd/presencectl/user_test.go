package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/wire"
)

// TestUserCommand drives `presencectl user` against a real node: showing,
// setting the visibility, closing sessions, and refusing bad input.
func TestUserCommand(t *testing.T) {
	const secret = "user-cmd-secret-0123456789abcdef"
	n := testkit.StartStandalone(t, node.Config{}, secret)
	url := "http://" + n.HTTPAddr()
	tok := testkit.NewTokens([]byte(secret))
	testkit.NewREST(n.HTTPAddr(), tok).Must(t).Heartbeat(42)
	rest := testkit.NewREST(n.HTTPAddr(), tok)
	ws := testkit.MustDialUser(t, n.HTTPAddr(), tok, 42, nil)
	defer ws.Close()
	// The handshake completes before the node registers the session.
	if _, err := testkit.Poll(5*time.Second, 10*time.Millisecond, func() error {
		if in, err := rest.InspectUser(42); err != nil || in.Sessions != 1 {
			return fmt.Errorf("sessions %d, %v", in.Sessions, err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		args    []string
		code    int
		out     []string // in stdout
		errText string   // in stderr
	}{
		{"show", []string{"42"}, 0, []string{"user", "42 (user42)", "online", "true", "visibility", "presence everyone, last_seen everyone, allow []"}, ""},
		{"set visibility", []string{"--presence", "allowlist", "--allow", "7, 3,7", "42"}, 0, []string{"presence allowlist, last_seen everyone, allow [3 7]"}, ""},
		{"fields left out keep their value", []string{"--last-seen", "nobody", "42"}, 0, []string{"presence allowlist, last_seen nobody, allow [3 7]"}, ""},
		{"clear the allowlist", []string{"--allow", "", "42"}, 0, []string{"allow []"}, ""},
		{"disconnect", []string{"--disconnect", "42"}, 0, []string{"closed 1 session(s) of user 42"}, ""},
		{"unknown user", []string{"999999"}, 1, nil, "404"},
		{"unknown mode", []string{"--presence", "friends", "42"}, 1, nil, "422"},
		{"bad id", []string{"abc"}, 2, nil, "not a positive integer"},
		{"no id", nil, 2, nil, "exactly one USER_ID"},
		{"bad allowlist", []string{"--allow", "1,x", "42"}, 2, nil, `"x" is not a positive user id`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"user", "--url", url, "--secret", secret}, tc.args...)
			if code := run(args, &out, &errOut); code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %s; stderr %s", code, tc.code, out.String(), errOut.String())
			}
			for _, want := range tc.out {
				if !strings.Contains(out.String(), want) {
					t.Errorf("stdout lacks %q:\n%s", want, out.String())
				}
			}
			if !strings.Contains(errOut.String(), tc.errText) {
				t.Errorf("stderr lacks %q:\n%s", tc.errText, errOut.String())
			}
		})
	}
	if _, _, ended := ws.WaitEnd(5 * time.Second); !ended || ws.CloseCode() != 4003 {
		t.Errorf("the session was closed with %d, want 4003", ws.CloseCode())
	}

	// --json prints the node's answer as it came.
	var out, errOut bytes.Buffer
	if code := run([]string{"user", "--url", url, "--secret", secret, "--json", "42"}, &out, &errOut); code != 0 {
		t.Fatalf("--json: exit %d: %s", code, errOut.String())
	}
	var in wire.UserInspection
	if err := json.Unmarshal(out.Bytes(), &in); err != nil || in.UserID != 42 || in.Visibility.LastSeen != "nobody" {
		t.Fatalf("--json printed %s (%v)", out.String(), err)
	}
}
