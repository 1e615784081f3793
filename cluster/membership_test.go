package cluster

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// fastGossip shortens memberlist's timers so a test sees joins, leaves and
// failures in well under a second.
func fastGossip(c *memberlist.Config) {
	c.ProbeInterval = 200 * time.Millisecond
	c.ProbeTimeout = 100 * time.Millisecond
	c.GossipInterval = 20 * time.Millisecond
	c.PushPullInterval = 500 * time.Millisecond
	c.SuspicionMult = 2
	c.SuspicionMaxTimeoutMult = 1
}

func joinTest(t *testing.T, name string, cfg Config) *Gossip {
	t.Helper()
	cfg.BindAddr = "127.0.0.1:0"
	cfg.Tune = fastGossip
	g, err := Join(cfg, name, Meta{NodeName: name, RemoteAddr: "127.0.0.1:1" + name[len(name)-1:], Proto: ProtoVersion},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("join %s: %v", name, err)
	}
	t.Cleanup(func() { _ = g.Kill() })
	return g
}

// waitView polls g's view until cond holds.
func waitView(t *testing.T, g *Gossip, what string, cond func(*View) bool) *View {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		v := g.View()
		if cond(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not reached; view %+v", g.LocalName(), what, v.All)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func memberNamed(v *View, name string) (Member, bool) {
	for _, m := range v.All {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

func owners(n int) func(*View) bool { return func(v *View) bool { return len(v.Owners) == n } }

func TestGossipJoinDrainLeave(t *testing.T) {
	a := joinTest(t, "node-a", Config{})
	b := joinTest(t, "node-b", Config{Seeds: []string{a.GossipAddr()}})

	var changes atomic.Int64
	a.OnView(func(old, cur *View) {
		if cur.Epoch <= old.Epoch {
			t.Errorf("view epoch went from %d to %d", old.Epoch, cur.Epoch)
		}
		changes.Add(1)
	})
	for _, g := range []*Gossip{a, b} {
		v := waitView(t, g, "two owners", owners(2))
		// Both see the same placement: rendezvous hashing over the same members.
		for id := int64(1); id <= 50; id++ {
			oa, _ := a.View().Owner(id)
			ob, _ := v.Owner(id)
			if oa.Name != ob.Name {
				t.Fatalf("user %d: a places it on %s, b on %s", id, oa.Name, ob.Name)
			}
		}
	}
	if m, ok := a.View().OwnerNamed(b.LocalName()); !ok || m.NodeName != "node-b" || m.RemoteAddr == "" || m.Proto != ProtoVersion {
		t.Fatalf("a does not see b's metadata: %+v (found %v)", m, ok)
	}

	// A draining member stays a member but owns no users.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Drain(ctx, 0); err != nil {
		t.Fatalf("drain: %v", err)
	}
	v := waitView(t, a, "b draining", func(v *View) bool {
		m, ok := memberNamed(v, b.LocalName())
		return len(v.Owners) == 1 && ok && m.Draining
	})
	if len(v.All) != 2 || v.Owners[0].Name != a.LocalName() {
		t.Fatalf("after b drains: owners %+v, all %+v", v.Owners, v.All)
	}
	for id := int64(1); id <= 50; id++ {
		if o, _ := v.Owner(id); o.Name != a.LocalName() {
			t.Fatalf("user %d still placed on %s", id, o.Name)
		}
	}

	if err := b.Leave(2 * time.Second); err != nil {
		t.Fatalf("leave: %v", err)
	}
	waitView(t, a, "b gone", func(v *View) bool {
		_, ok := memberNamed(v, b.LocalName())
		return len(v.Owners) == 1 && !ok
	})
	if changes.Load() == 0 {
		t.Error("OnView was never called")
	}
}

// A member that dies without leaving is declared dead and loses its users.
func TestGossipFailureDetection(t *testing.T) {
	a := joinTest(t, "node-a", Config{})
	b := joinTest(t, "node-b", Config{Seeds: []string{a.GossipAddr()}})
	waitView(t, a, "two owners", owners(2))
	if err := b.Kill(); err != nil {
		t.Fatal(err)
	}
	waitView(t, a, "b declared dead", owners(1))
}

// Members with different keys never see each other; a key that is not a
// valid AES key is refused before anything listens.
func TestGossipSecretKey(t *testing.T) {
	key := func(b byte) string {
		k := make([]byte, 32)
		for i := range k {
			k[i] = b
		}
		return base64.StdEncoding.EncodeToString(k)
	}
	a := joinTest(t, "node-a", Config{SecretKey: key(1)})
	b := joinTest(t, "node-b", Config{SecretKey: key(1), Seeds: []string{a.GossipAddr()}})
	c := joinTest(t, "node-c", Config{SecretKey: key(2), Seeds: []string{a.GossipAddr()}})
	waitView(t, b, "a and b", owners(2))
	time.Sleep(300 * time.Millisecond)
	if n := len(c.View().Owners); n != 1 {
		t.Errorf("a member with another key sees %d owners", n)
	}
	if n := len(a.View().Owners); n != 2 {
		t.Errorf("a sees %d owners, want 2 (c must be refused)", n)
	}

	for _, bad := range []string{"not base64!", base64.StdEncoding.EncodeToString([]byte("short"))} {
		_, err := Join(Config{BindAddr: "127.0.0.1:0", SecretKey: bad}, "bad", Meta{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		if !errors.Is(err, ErrSecretKey) {
			t.Errorf("key %q: err %v, want ErrSecretKey", bad, err)
		}
	}
}

func TestStaticViewOwnsEverything(t *testing.T) {
	s := NewStatic(Member{Name: "solo", State: "alive"})
	if s.LocalName() != "solo" {
		t.Fatalf("LocalName %q", s.LocalName())
	}
	select {
	case <-s.Settled():
	default:
		t.Fatal("a standalone membership is not settled from the start")
	}
	for id := int64(1); id < 100; id++ {
		if m, ok := s.View().Owner(id); !ok || m.Name != "solo" {
			t.Fatalf("user %d: owner %+v %v", id, m, ok)
		}
	}
}

// TestGossipSettled: a joining member's view holds the cluster as soon as
// Settled is closed (before it, the member sees itself alone and the
// owner of every user); a member with no seeds is settled at once, and a
// seed that never answers settles the member only when the attempt ends.
func TestGossipSettled(t *testing.T) {
	settled := func(g *Gossip, within time.Duration) bool {
		select {
		case <-g.Settled():
			return true
		case <-time.After(within):
			return false
		}
	}
	a := joinTest(t, "node-a", Config{})
	if !settled(a, 5*time.Second) {
		t.Fatal("a member without seeds never settled")
	}
	// The view a member settles with is what its seed knew: complete,
	// every time, once the seed has heard of the earlier joins (a seed
	// merges a joiner's state after answering it, so back-to-back joins
	// may lag by a gossip round).
	for i := range 5 {
		b := joinTest(t, "node-b"+string(rune('0'+i)), Config{Seeds: []string{a.GossipAddr()}})
		if !settled(b, 5*time.Second) {
			t.Fatal("the joining member never settled")
		}
		if v := b.View(); len(v.Owners) != 2+i {
			t.Fatalf("join %d: settled with %d owners in view, want %d", i, len(v.Owners), 2+i)
		}
		waitView(t, a, "the seed knows the new member", owners(2+i))
	}

	// A seed that accepts connections and never answers: the attempt
	// lasts until memberlist's TCP timeout.
	mute, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	go func() {
		for {
			c, err := mute.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cfg := Config{Seeds: []string{mute.Addr().String()}, BindAddr: "127.0.0.1:0"}
	cfg.Tune = func(c *memberlist.Config) { fastGossip(c); c.TCPTimeout = time.Second }
	c, err := Join(cfg, "node-c", Meta{NodeName: "node-c", RemoteAddr: "127.0.0.1:19", Proto: ProtoVersion},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Kill()
	if settled(c, 300*time.Millisecond) {
		t.Fatal("settled while the seed had not answered")
	}
	if !settled(c, 5*time.Second) {
		t.Fatal("never settled after the seed's attempt timed out")
	}
	if v := c.View(); len(v.Owners) != 1 {
		t.Fatalf("alone after a failed join, view has %d owners", len(v.Owners))
	}
}
