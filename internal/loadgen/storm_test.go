package loadgen

import (
	"context"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// TestStormScenario drains one of three presenced processes under 200
// sessions (150 on it, 50 on the others) while statuses change: every
// cut-off session comes back to the other nodes and re-subscribes, every
// session ends with its contacts' current versions, and nobody who came
// back within the grace was seen offline. On PostgreSQL (the shared store
// of a production cluster) every check must pass. With the memory store
// each node keeps its own records, so a moved user starts afresh on its
// new owner and may be pushed offline until the hubs' session counts
// reach it (seen about one run in four): there the flap check is logged,
// not required.
func TestStormScenario(t *testing.T) {
	if testing.Short() {
		t.Skip("starts three node processes")
	}
	for _, store := range []string{"postgres", "memory"} {
		t.Run(store, func(t *testing.T) {
			url := "memory"
			if store == "postgres" {
				url, _ = testkit.PgSchema(t, testkit.PostgresURL(t))
			}
			s, changes := runStorm(t, url)
			for _, ch := range s.Checks {
				if !ch.OK && (store == "postgres" || ch.Name != "no offline flap") {
					t.Errorf("check %s failed: %s", ch.Name, ch.Detail)
				}
			}
			if s.CutOff != 150 || s.Back != 150 || s.SubscribedAtEnd != 200 {
				t.Errorf("storm: cut off %d, back %d, subscribed at end %d; want 150, 150, 200", s.CutOff, s.Back, s.SubscribedAtEnd)
			}
			// 200 sessions x 5 contacts compared, after changes that kept flowing.
			if s.Compared != 1000 || s.Stale != 0 || changes == 0 {
				t.Errorf("versions: %d compared, %d stale, %d changes", s.Compared, s.Stale, changes)
			}
			if s.Handshake.Count < 150 || s.Store.WindowS <= 0 {
				t.Errorf("reconnect handshakes %d (want ≥ 150), store window %.2fs", s.Handshake.Count, s.Store.WindowS)
			}
		})
	}
}

// runStorm starts three node processes on store, runs the storm against
// them (node 1 drains by SIGTERM) and returns the report's storm part and
// the number of changes made.
func runStorm(t *testing.T, store string) (*StormSummary, int64) {
	bin := testkit.BuildPresenced(t)
	tok := testkit.NewTokens([]byte(testkit.ProcSecret))
	c := testkit.NewProcCluster(t, bin, tok, 3, map[string]string{
		"PRESENCE_STORE":            store,
		"PRESENCE_DISCONNECT_GRACE": "5s",
		"PRESENCE_WRITE_RATE":       "-1",
		"PRESENCE_DRAIN_WAIT":       "1s",
	})
	var urls []string
	for i := range 3 {
		c.Start(i)
		urls = append(urls, "http://"+c.HTTPAddr(i))
	}
	c.WaitFormed(45*time.Second, "three processes form a cluster")

	cfg := testConfig(t, testkit.ProcSecret, urls...)
	cfg.Topology.Users, cfg.Topology.UserBase, cfg.Topology.Contacts = 200, 8_000_000, 5
	cfg.HeartbeatRate, cfg.ChangeRate, cfg.ReadRate, cfg.BatchRate = 0, 40, 0, 0
	cfg.Ramp, cfg.Duration, cfg.Grace, cfg.Progress = time.Second, 7*time.Second, time.Second, time.Second
	drained := c.Proc(0)
	cfg.Storm = &StormConfig{DrainURL: urls[0], DrainAfter: time.Second, DrainSessions: 150,
		DisconnectGrace: 5 * time.Second, Target: 10 * time.Second,
		Drain: func(context.Context) error { return drained.Cmd.Process.Signal(syscall.SIGTERM) }}
	sum := runJSON(t, cfg)
	if sum.Storm == nil {
		t.Fatal("no storm in the report")
	}
	select {
	case <-drained.Exited():
	case <-time.After(20 * time.Second):
		t.Error("the drained node did not exit after SIGTERM")
	}
	return sum.Storm, sum.Delivery.Changes
}

// The checks fail on what they guard against: an update a session never
// got, a user seen offline though back within the grace, a session that
// never came back, a slow comeback.
func TestStormChecksFail(t *testing.T) {
	good := StormSummary{DrainURL: "http://127.0.0.1:1", OnDrained: 10, CutOff: 10, Back: 10, AllBackS: 3, TargetS: 10,
		SubscribedAtEnd: 20, Compared: 100, GraceS: 15}
	failed := func(s StormSummary) []string {
		var out []string
		for _, c := range stormChecks(&s, 20) {
			if !c.OK {
				out = append(out, c.Name)
			}
		}
		return out
	}
	if f := failed(good); len(f) != 0 {
		t.Fatalf("a good storm failed %v", f)
	}
	for _, tc := range []struct {
		name string
		mod  func(*StormSummary)
		want []string
	}{
		{"lost update", func(s *StormSummary) { s.Stale = 1 }, []string{"no update lost"}},
		{"versions unread", func(s *StormSummary) { s.VersionReadFailed = 50 }, []string{"no update lost"}},
		{"flap", func(s *StormSummary) { s.Flaps = 1 }, []string{"no offline flap"}},
		{"one not back", func(s *StormSummary) { s.Back, s.NotBack, s.SubscribedAtEnd = 9, 1, 19 },
			[]string{"all back", "within target", "all subscribed at end"}},
		{"slow", func(s *StormSummary) { s.AllBackS = 12 }, []string{"within target"}},
		{"drain failed", func(s *StormSummary) { s.CutOff, s.Back, s.DrainError = 0, 0, "no such process" },
			[]string{"drained", "all back", "within target"}},
	} {
		s := good
		tc.mod(&s)
		if got := failed(s); !slices.Equal(got, tc.want) {
			t.Errorf("%s: failed %v, want %v", tc.name, got, tc.want)
		}
	}
}

// findFlaps counts a user seen offline only if it should have stayed
// online: connected at the drain, and back within the grace or never cut
// off.
func TestFindFlaps(t *testing.T) {
	const drain = int64(1_000_000_000_000)
	sec := int64(time.Second)
	ev := stormEvidence{
		sessions: []stormSession{
			{S: 1, Gone: drain + sec, Back: drain + 2*sec},  // back in 1 s
			{S: 2, Gone: drain + sec, Back: drain + 20*sec}, // back after the grace
			{S: 3, Gone: drain + sec},                       // never back
			{S: 4, Gone: drain + sec, Back: drain + 3*sec},  // back, not seen offline
		},
		offline: map[int]int64{1: drain + 2*sec, 2: drain + 17*sec, 3: drain + 17*sec, 5: drain + 4*sec, 6: drain + sec},
		down:    map[int]bool{6: true}, // not connected when the drain began
	}
	got := findFlaps(ev, Topology{Users: 10, UserBase: 500, Sessions: 10}, drain, 15*time.Second)
	want := []Flap{{UserID: 501, SeenOfflineS: 2, BackS: 2}, {UserID: 505, SeenOfflineS: 4, BackS: -1}}
	if !slices.Equal(got, want) {
		t.Errorf("flaps %+v, want %+v", got, want)
	}
}

// A session's newest version per contact is compared with the current
// one: a missed last update shows as stale; offline frames after the
// drain are recorded, those before it are not.
func TestStormStateVersions(t *testing.T) {
	topo := Topology{Users: 6, UserBase: 100, Sessions: 4, Contacts: 2, Hot: 1}
	sess := make([]wsSess, 2)
	st := newStormState(topo, 2, 2) // sessions 2 and 3
	st.convergeWait = 0
	for i := range sess {
		sess[i].ackAt.Store(1)
	}
	st.update(2, 0, 5, false, 10) // hot user 0, before the drain
	st.update(2, 3, 7, true, 10)
	st.update(2, 3, 6, true, 11) // older, arrives late: kept at 7
	st.update(2, 4, 2, true, 11)
	st.drainAt.Store(20)
	st.update(3, 4, 3, false, 30)
	st.update(3, 5, 10, true, 30) // newer than the read below: not stale
	st.update(3, 0, 5, true, 30)
	st.update(3, 1, 1, false, 31) // session 1's own user, seen offline
	if !st.setCurrent([]string{"v", "0", "5", "1", "1", "7", "3", "9"}) {
		t.Fatal("setCurrent refused a good line")
	}
	res := st.result(sess)
	// Session 2: 0@5, 3@7, 4@2 (current 3: stale). Session 3: 0@5, 4@3, 5@10 (current 9: ahead).
	if res.SubscribedAtEnd != 2 || res.Compared != 6 || res.Stale != 1 || res.Ahead != 1 || res.StaleAtRead != 1 || res.ConvergedNS != -1 {
		t.Fatalf("subscribed %d, compared %d, stale %d (at read %d), ahead %d, converged %d; want 2, 6, 1 (1), 1, -1",
			res.SubscribedAtEnd, res.Compared, res.Stale, res.StaleAtRead, res.Ahead, res.ConvergedNS)
	}
	if e := res.Examples[0]; e != (VersionMismatch{Session: 102, User: 104, Seen: 2, Current: 3}) {
		t.Errorf("example %+v", e)
	}
	// User 0's offline frame came before the drain; user 4 holds no
	// session (offline by design).
	if !slices.Equal(res.Offline, []offlineSeen{{U: 1, At: 31}}) {
		t.Errorf("offline %+v, want user 1 at 31", res.Offline)
	}
	if st.setCurrent([]string{"v", "5", "1", "2"}) {
		t.Error("setCurrent took versions past the last user")
	}
}

// Sessions cut off by 1012 go at once (jittered) to another node; refused
// handshakes move on after a backoff; 1013 backs off on the same node.
func TestPlanStormReconnect(t *testing.T) {
	full := func(n time.Duration) time.Duration { return n - 1 }
	for _, tc := range []struct {
		name     string
		out      connOutcome
		attempt  int
		want     reconnectPlan
		maxDelay time.Duration
	}{
		{"1012", connOutcome{code: 1012, dialed: true, subscribed: true}, 3, reconnectPlan{nextURL: true, delay: clientReconnect.RestartJitter - 1}, 0},
		{"refused", connOutcome{}, 0, reconnectPlan{nextURL: true, delay: 500 * time.Millisecond, attempt: 1}, 0},
		{"refused again", connOutcome{}, 2, reconnectPlan{nextURL: true, delay: 2 * time.Second, attempt: 3}, 0},
		{"1013", connOutcome{code: 1013, dialed: true}, 1, reconnectPlan{delay: time.Second, attempt: 2}, 0},
		{"capped", connOutcome{code: 1013, dialed: true}, 20, reconnectPlan{delay: clientReconnect.MaxBackoff, attempt: 21}, 0},
	} {
		if got := planStormReconnect(tc.out, tc.attempt, full); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

// In a storm the first DrainSessions sessions start on the draining node
// and the rest spread over the others; a session leaving a node never
// steps back onto it.
func TestStormPlacement(t *testing.T) {
	var counts [3]int
	for s := 0; s < 30; s++ {
		counts[initialNode(s, 3, 1, 12)]++
	}
	if counts != [3]int{9, 12, 9} {
		t.Errorf("placement %v, want [9 12 9]", counts)
	}
	for s := 0; s < 10; s++ {
		if st := stormStep(s, 3); st < 1 || st > 2 {
			t.Errorf("step %d of session %d", st, s)
		}
	}
	if initialNode(7, 3, -1, 0) != 1 {
		t.Error("outside a storm, sessions go round-robin")
	}
}

// The store's rates come from the counters' difference over the window.
func TestStoreRates(t *testing.T) {
	t0 := time.Unix(1000, 0)
	r := storeRates([]storeSample{
		{at: t0, saves: 100, touches: 1, loads: 10},
		{at: t0.Add(time.Second), saves: 400, touches: 2, loads: 510},
		{at: t0.Add(2 * time.Second), saves: 500, touches: 3, loads: 610, flapsSuppressed: 7},
	})
	if r.WindowS != 2 || r.WritesPerS != 201 || r.PeakWritesPerS != 301 || r.LoadsPerS != 300 || r.FlapsSuppressed != 7 {
		t.Errorf("rates %+v", r)
	}
}
