package loadgen

import (
	"testing"
	"time"
)

// TestMatcherHiddenHot: with HiddenHot, the even sessions are refused the
// hot user and expect none of its changes; a frame one of them gets
// anyway is counted as unmatched (a leak), not as a delivery.
func TestMatcherHiddenHot(t *testing.T) {
	topo := Topology{Users: 5, UserBase: 1, Sessions: 5, Hot: 1, HiddenHot: true}
	sess := make([]wsSess, 5)
	for i := range sess {
		sess[i].ackAt.Store(1000)
	}
	m := newMatcher(topo, 0, 5, sess)
	m.announce(0, 7, 2000) // expected by the admins 1 and 3 only
	m.receive(1, 0, 7, 2100)
	m.receive(2, 0, 7, 2200) // refused: a leak
	m.receive(3, 0, 7, 2300)
	m.finish()
	exp, rec, miss, unmatched, _ := m.snapshot()
	if exp != 2 || rec != 2 || miss != 0 || unmatched != 1 {
		t.Fatalf("expected/received/missing/unmatched = %d/%d/%d/%d, want 2/2/0/1", exp, rec, miss, unmatched)
	}
	if !topo.admin(1) || topo.admin(2) || !topo.refused(2, 0) || topo.refused(2, 1) {
		t.Fatal("admins are the odd sessions, refused the even ones for hot users only")
	}
}

// TestRunHiddenHot: against a real node, a hidden hot user's changes reach
// exactly the admin half of the subscribers, and none leaks to the other
// half.
func TestRunHiddenHot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	const secret = "bench-smoke-secret-0123456789abcdef"
	n := startTestNode(t, "bench-hidden", secret)
	cfg := testConfig(t, secret, "http://"+n.addr())
	cfg.Topology.Users, cfg.Topology.Contacts, cfg.Topology.Hot, cfg.Topology.HiddenHot = 21, 0, 1, true
	cfg.HeartbeatRate, cfg.ChangeRate = 0, 10
	cfg.Ramp, cfg.Duration, cfg.Grace, cfg.Progress = 500*time.Millisecond, 1500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	sum := runJSON(t, cfg)
	if sum.Delivery.Changes == 0 || sum.Delivery.Missing != 0 || sum.Delivery.Received != sum.Delivery.Expected {
		t.Fatalf("deliveries: %+v", sum.Delivery)
	}
	// Sessions 1..20 subscribe to hot user 0; the odd ten are admins.
	if sum.Delivery.Expected != 10*sum.Delivery.Changes {
		t.Errorf("expected %d deliveries for %d changes, want 10 each", sum.Delivery.Expected, sum.Delivery.Changes)
	}
	if sum.Delivery.Unmatched > 20 { // at most the subscribe snapshots
		t.Errorf("unmatched frames %d: hidden changes leaked", sum.Delivery.Unmatched)
	}
}
