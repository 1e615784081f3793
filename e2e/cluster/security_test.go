//go:build !race

package clustere2e

// Gossip encryption (issue 8): nodes started in-process with node.Start
// (not standalone), each with its own memberlist on a loopback port.
// Two protoactor-go remotes in one process trip the race detector inside
// the library, hence the build tag.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/routing"

	"github.com/presence-cluster/presence/internal/testkit"
)

// secGossipNode is one node of the gossip-key test.
type secGossipNode struct {
	*node.Node
	label  string
	gossip string
	API    *testkit.REST
	logs   *testkit.LogSink
}

// secGossipKey returns a fresh base64 AES key of size bytes.
func secGossipKey(t *testing.T, size int) string {
	t.Helper()
	b := make([]byte, size)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// secGossipConfig is the configuration of node label gossiping on a free
// loopback port with key, joining seeds.
func secGossipConfig(t *testing.T, label, key string, seeds ...string) (node.Config, *testkit.LogSink) {
	logs := newLogRing()
	return node.Config{Name: label, HTTPAddr: "127.0.0.1:0", Membership: cluster.Config{BindAddr: net.JoinHostPort("127.0.0.1", strconv.Itoa(testkit.FreePort(t))), SecretKey: key, Seeds: seeds, RejoinInterval: time.Second, Tune: func(mc *memberlist.Config) { fastGossip(mc) }}, Routing: routing.Config{BindAddr: "127.0.0.1:0"}, DataDir: t.TempDir(), Store: "memory", Auth: node.AuthConfig{Secret: testkit.ProcSecret}, DrainWait: 100 * time.Millisecond, Logger: logs.Logger().With(slog.String("node", label))}, logs
}

func secStartGossipNode(t *testing.T, tok *testkit.Tokens, label, key string, seeds ...string) *secGossipNode {
	t.Helper()
	cfg, logs := secGossipConfig(t, label, key, seeds...)
	return secStart(t, tok, label, cfg, logs)
}

// secStart starts a node of cfg, killed when the test ends.
func secStart(t *testing.T, tok *testkit.Tokens, label string, cfg node.Config, logs *testkit.LogSink) *secGossipNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	n, err := testkit.Start(ctx, cfg)
	if err != nil {
		t.Fatalf("node %s: node.Start: %v", label, err)
	}
	sn := &secGossipNode{Node: n, label: label, gossip: cfg.Membership.BindAddr, API: testkit.NewREST(n.HTTPAddr(), tok), logs: logs}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last logs of node %s:\n%s", label, logs.Dump())
		}
		n.Kill()
	})
	return sn
}

// secMembers returns the node names of the alive members n sees.
func secMembers(t *testing.T, n *secGossipNode) []string {
	t.Helper()
	st, err := n.API.Cluster()
	if err != nil {
		t.Fatalf("node %s: GET /admin/cluster: %v", n.label, err)
	}
	if st.Standalone {
		t.Fatalf("node %s is standalone", n.label)
	}
	var names []string
	for _, m := range st.Members {
		if m.Status == "alive" {
			names = append(names, m.NodeName)
		}
	}
	sort.Strings(names)
	return names
}

// TestSecurityGossipKey: with PRESENCE_GOSSIP_KEY set, a node with the same
// key joins (both see two members through GET /admin/cluster, admin
// token), while a node with another key and a node with no key, seeded
// with the same address, never do: over several re-join rounds each of
// them sees only itself and the keyed node sees only its peer.
func TestSecurityGossipKey(t *testing.T) {
	tok := newTokens()
	key := secGossipKey(t, 32)
	a := secStartGossipNode(t, tok, "A", key)
	b := secStartGossipNode(t, tok, "B", secGossipKey(t, 16), a.gossip) // another key
	c := secStartGossipNode(t, tok, "C", "", a.gossip)                  // no key
	d := secStartGossipNode(t, tok, "D", key, a.gossip)                 // the same key

	want := func(n *secGossipNode, names ...string) bool {
		return strings.Join(secMembers(t, n), ",") == strings.Join(names, ",")
	}
	deadline := time.Now().Add(15 * time.Second)
	for !(want(a, "A", "D") && want(d, "A", "D")) {
		if time.Now().After(deadline) {
			t.Fatalf("same key: A sees %v, D sees %v after 15s, want [A D]", secMembers(t, a), secMembers(t, d))
		}
		time.Sleep(100 * time.Millisecond)
	}
	joined := time.Now()
	// B and C retry their seed every second: watch several rounds.
	for time.Since(joined) < 4*time.Second {
		for _, n := range []*secGossipNode{b, c} {
			if got := secMembers(t, n); strings.Join(got, ",") != n.label {
				t.Fatalf("node %s (wrong or no gossip key) sees %v, want only itself", n.label, got)
			}
		}
		if got := secMembers(t, a); strings.Join(got, ",") != "A,D" {
			t.Fatalf("node A sees %v, want [A D]", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// A refused them for the right reason.
	for _, why := range []string{"no installed keys could decrypt the message", "encryption is configured but remote state is not encrypted"} {
		if !strings.Contains(a.logs.Dump(), why) {
			t.Errorf("node A never logged %q", why)
		}
	}
	// The others' user requests still work on their own (a one-node
	// cluster each), and nothing of A's cluster is visible to them.
	for _, n := range []*secGossipNode{b, c} {
		n.API.Must(t).Heartbeat(77)
		if got := n.Router().Owner(77); !strings.HasPrefix(got, n.label+"-") {
			t.Fatalf("node %s: user 77 owned by %q", n.label, got)
		}
	}
}

// TestSecurityGossipKeyConfig: a gossip key that is not base64 or not an
// AES size stops the node at start, and the error does not repeat the key.
func TestSecurityGossipKeyConfig(t *testing.T) {
	for name, key := range map[string]string{
		"not base64":    "this is not base64!!",
		"10 bytes":      base64.StdEncoding.EncodeToString([]byte("0123456789")),
		"33 bytes":      base64.StdEncoding.EncodeToString(make([]byte, 33)),
		"URL alphabet":  strings.NewReplacer("+", "-", "/", "_").Replace(secGossipKey(t, 32)) + "-_",
		"raw (no pads)": strings.TrimRight(base64.StdEncoding.EncodeToString(make([]byte, 31)), "="),
	} {
		cfg, _ := secGossipConfig(t, "bad-"+strings.ReplaceAll(name, " ", "-"), key)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		n, err := node.Start(ctx, cfg)
		cancel()
		if err == nil {
			n.Kill()
			t.Errorf("%s: node started with gossip key %q", name, key)
			continue
		}
		// The library names the setting in its terms (presenced adds the
		// PRESENCE_GOSSIP_KEY variable on cluster.ErrSecretKey).
		if !errors.Is(err, cluster.ErrSecretKey) || !strings.Contains(err.Error(), "gossip key") {
			t.Errorf("%s: error does not name the setting: %v", name, err)
		}
		if strings.Contains(err.Error(), key) {
			t.Errorf("%s: error repeats the key: %v", name, err)
		}
	}
}
