package loadgen

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A short run against an in-process node: a few users with sessions,
// heartbeats, changes and reads; every change reaches every subscriber.
func TestRunSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	const secret = "bench-smoke-secret-0123456789abcdef"
	n := startTestNode(t, "bench-smoke", secret)

	cfg := testConfig(t, secret, "http://"+n.addr())
	cfg.Topology.Users, cfg.Topology.Contacts = 20, 3
	cfg.HeartbeatRate, cfg.ChangeRate, cfg.ReadRate, cfg.BatchRate, cfg.BatchSize = 50, 20, 20, 5, 10
	cfg.Ramp, cfg.Duration, cfg.Grace, cfg.Progress = 500*time.Millisecond, 1500*time.Millisecond, 500*time.Millisecond, 500*time.Millisecond
	sum := runJSON(t, cfg)
	if sum.Sessions.Acked != 20 || sum.Sessions.Failed != 0 {
		t.Errorf("sessions: %+v", sum.Sessions)
	}
	if sum.Delivery.Changes == 0 || sum.Delivery.Expected == 0 {
		t.Fatalf("no change was delivered: %+v", sum.Delivery)
	}
	if sum.Delivery.Missing != 0 || sum.Delivery.Received != sum.Delivery.Expected {
		t.Errorf("deliveries: %+v", sum.Delivery)
	}
	// Each change of a user reaches its 3 ring subscribers.
	if sum.Delivery.Expected != 3*sum.Delivery.Changes {
		t.Errorf("expected %d deliveries for %d changes, want 3 each", sum.Delivery.Expected, sum.Delivery.Changes)
	}
	for _, op := range []string{"heartbeat", "change", "read", "batch"} {
		if sum.Rates[op].OK == 0 || sum.Rates[op].Errors != 0 {
			t.Errorf("%s: %+v", op, sum.Rates[op])
		}
	}
	if len(sum.Errors) != 0 {
		t.Errorf("errors: %v", sum.Errors)
	}
	switch {
	case len(sum.Memory) != 1:
		t.Errorf("memory: %+v", sum.Memory)
	case sum.Memory[0].Error != "" && sum.Memory[0].MetricsError != "":
		// /metrics can answer 500 once a label value got corrupted (the
		// observe middleware keeps c.Method(), which aliases a reused
		// buffer); the generator reports it and carries on.
		t.Logf("memory not read: %s", sum.Memory[0].MetricsError)
	case sum.Memory[0].SessionsDelta != 20:
		t.Errorf("memory: %+v", sum.Memory)
	}
}

// TestRunReconnects: sessions the server closes with 1012 (a draining
// node) reconnect to the next node, as clients are told to, so the run
// ends with every session open again and the reconnects counted.
func TestRunReconnects(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes")
	}
	const secret = "bench-reconnect-secret-0123456789abcdef"
	a, b := startTestNode(t, "bench-a", secret), startTestNode(t, "bench-b", secret)

	// Half the sessions land on a (round-robin over the URLs); once the
	// ramp is over, a closes them all with 1012 and refuses new ones.
	go func() {
		time.Sleep(1200 * time.Millisecond)
		a.drainAndCloseSessions(1012, "draining")
	}()
	cfg := testConfig(t, secret, "http://"+a.addr(), "http://"+b.addr())
	cfg.Topology.Users, cfg.Topology.Contacts = 20, 0
	cfg.HeartbeatRate, cfg.ChangeRate = 0, 0
	cfg.Ramp, cfg.Duration, cfg.Grace, cfg.Progress = 500*time.Millisecond, 3*time.Second, 200*time.Millisecond, time.Second
	sum := runJSON(t, cfg)
	if sum.Errors["ws_closed_1012"] != 10 || sum.Errors["ws_reconnect"] != 10 {
		t.Errorf("want 10 sessions closed with 1012 and 10 reconnects, got errors %v", sum.Errors)
	}
	if sum.Sessions.OpenAtEnd != 20 || sum.Sessions.Acked != 20 || sum.Sessions.Opened != 30 {
		t.Errorf("want 20 sessions open and subscribed at the end over 30 connections: %+v", sum.Sessions)
	}
	// a refuses handshakes while draining, so a reconnect that went back
	// to a would have failed.
	if sum.Sessions.Failed != 0 {
		t.Errorf("%d handshakes failed: reconnects did not move to the next node", sum.Sessions.Failed)
	}
}

// testConfig is a small in-process run against urls: the workers in this
// process (no binary to exec), two source addresses, progress to the test
// log.
func testConfig(t *testing.T, secret string, urls ...string) Config {
	cfg := DefaultConfig()
	cfg.URLs, cfg.Secret = urls, []byte(secret)
	cfg.Workers, cfg.SourceIPs = 0, 2
	cfg.Log = testLog{t}
	return cfg
}

// runJSON runs cfg, fails the test on an error, and returns the report
// after a round trip through its JSON form (what --json writes).
func runJSON(t *testing.T, cfg Config) Report {
	t.Helper()
	rep, err := Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	WriteSummary(&out, rep)
	t.Logf("summary:\n%s", out.String())
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	return back
}

// testLog writes the generator's progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
