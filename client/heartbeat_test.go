package client_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/client"
	"github.com/presence-cluster/presence/node"
)

// TestHeartbeatAdviceAndLoop: the answer carries the advice (a third of
// offline_after, and offline_after), HeartbeatLoop sends at once and then
// waits for the advised interval, and the dry-run cleanup answers.
func TestHeartbeatAdviceAndLoop(t *testing.T) {
	n := startNodeT(t, "advice", func(c *node.Config) { c.Actors = actors.Config{OfflineAfter: 6 * time.Second} })
	alice, err := client.New(client.Config{BaseURL: n.URL, Token: mint(t, 321, "alice", false)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := alice.HeartbeatAdvice(ctx)
	if err != nil || h.HeartbeatIntervalSeconds != 2 || h.OfflineAfterSeconds != 6 {
		t.Fatalf("HeartbeatAdvice = %+v, %v; want interval 2, offline after 6", h, err)
	}

	loopCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	start := time.Now()
	before, err := alice.GetMyStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.HeartbeatLoop(loopCtx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("HeartbeatLoop = %v, want the context's error", err)
	}
	after, err := alice.GetMyStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Two heartbeats in 3 s (at 0 and 2 s): last_seen moved past the start
	// by at least the advised interval.
	if after.LastSeen == nil || after.LastSeen.Sub(start) < 2*time.Second-100*time.Millisecond || !after.LastSeen.After(*before.LastSeen) {
		t.Fatalf("last_seen %v after a 3 s loop started at %v: want the second heartbeat, 2 s in", after.LastSeen, start)
	}

	admin, err := client.New(client.Config{BaseURL: n.URL, Token: mint(t, 9_000_000, "root", true)})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := admin.CleanupDryRun(ctx); err != nil || !c.DryRun || c.Users == nil {
		t.Fatalf("CleanupDryRun = %+v, %v; want a dry run with a users list", c, err)
	}
}
