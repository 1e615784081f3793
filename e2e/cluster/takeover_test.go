package clustere2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// takeoverLimit is the longest a crashed member's users may stay without
// an owner with the default (LAN) failure detection settings.
const takeoverLimit = 6 * time.Second

// slowestRequest is the longest a request for a user of a crashed member
// may wait while the member is not yet declared dead.
const slowestRequest = 2 * time.Second

// TestTakeoverAfterKill9: three presenced processes with the default
// failure detection; a node is SIGKILLed (a different one each run) while
// a client writes one of its users every 100ms through the two others and
// a WebSocket client on a survivor watches that user. Each run checks:
//
//   - takeover (the first write answered 200 after the kill) within 6s;
//   - no request waits longer than 2s meanwhile (the router fails fast
//     with 503 once the owner stopped answering);
//   - the watcher gets the new state with a higher version within 1s of
//     the takeover, also with the memory store, where the record dies with
//     its node and is created again (its versions start from the clock,
//     so they are above what the watcher had: the stale-subscriber case);
//   - the watcher ends on the last acknowledged write.
//
// Then the node is restarted and the next run kills another. Runs:
// PRESENCE_TAKEOVER_RUNS (default 2 per store).
func TestTakeoverAfterKill9(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		if testing.Short() {
			t.Skip("builds and runs cmd/presenced")
		}
		takeoverRuns(t, "memory")
	})
	t.Run("postgres", func(t *testing.T) {
		conn, _ := testkit.PgSchema(t, pgBase(t))
		takeoverRuns(t, conn)
	})
}

// takeoverRun is what one kill showed.
type takeoverRun struct {
	victim             string
	takeover, longest  time.Duration
	unavailable, other int
	watcher            time.Duration // takeover -> watcher saw a higher version
}

func takeoverRuns(t *testing.T, storeURL string) {
	runs := 2
	if s := os.Getenv("PRESENCE_TAKEOVER_RUNS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n > 0 {
			runs = n
		}
	}
	bin := testkit.BuildPresenced(t)
	tok := newTokens()
	c := testkit.NewProcCluster(t, bin, tok, 3, map[string]string{
		"PRESENCE_STORE":            storeURL,
		"PRESENCE_OFFLINE_AFTER":    "1m",
		"PRESENCE_DISCONNECT_GRACE": "2s",
		"PRESENCE_WRITE_RATE":       "-1",
	})
	c.StartAll()
	c.WaitFormed(45*time.Second, "three processes form a cluster")
	var results []takeoverRun
	for k := range runs {
		r := takeoverOnce(t, c, tok, k)
		results = append(results, r)
		t.Logf("run %d: killed %s: takeover %v, watcher saw the new state %v after it, longest request %v, %d×503, %d other failures",
			k+1, r.victim, r.takeover.Round(time.Millisecond), r.watcher.Round(time.Millisecond), r.longest.Round(time.Millisecond), r.unavailable, r.other)
		if t.Failed() {
			return
		}
		c.Start(k % 3)
		c.WaitFormed(45*time.Second, "the killed node is back")
	}
	var take, watch, longest []time.Duration
	for _, r := range results {
		take, watch, longest = append(take, r.takeover), append(watch, r.watcher), append(longest, r.longest)
	}
	t.Logf("%d runs: takeover %s; watcher after takeover %s; longest request %s", runs, spread(take), spread(watch), spread(longest))
	c.CheckLogs()
}

// spread formats min/median/max.
func spread(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return "none"
	}
	r := func(d time.Duration) time.Duration { return d.Round(time.Millisecond) }
	return fmt.Sprintf("min %v / median %v / max %v", r(s[0]), r(s[len(s)/2]), r(s[len(s)-1]))
}

// ownedBy returns a user from start up that node name owns in node via's view.
func ownedBy(t *testing.T, via *testkit.REST, name string, start int64) int64 {
	t.Helper()
	st, err := via.Cluster()
	if err != nil {
		t.Fatal(err)
	}
	for u := start; u < start+10_000; u++ {
		if testkit.OwnerOf(st, u) == name {
			return u
		}
	}
	t.Fatalf("no user owned by %s in %s", name, st)
	return 0
}

func takeoverOnce(t *testing.T, c *testkit.ProcCluster, tok *testkit.Tokens, k int) takeoverRun {
	victim := k % 3
	s1, s2 := (victim+1)%3, (victim+2)%3
	via := []*testkit.REST{c.Rests[s1], c.Rests[s2]}
	u := ownedBy(t, via[0], c.Name(victim), int64(5000+1000*k))
	busy := false
	put := func(r *testkit.REST) (Status, error) {
		busy = !busy
		return r.PutStatus(u, fmt.Sprintf(`{"is_busy": %v, "is_online": true}`, busy))
	}
	// (A node just restarted may answer 503 for a moment: its peers'
	// connections to its address are re-established.)
	var first Status
	testkit.Eventually(t, 10*time.Second, "a first write", func() error {
		var err error
		if first, err = put(via[1]); err != nil {
			busy = !busy
		}
		return err
	})
	w := testkit.MustDialUser(t, c.HTTPAddr(s1), tok, int64(9000+k), []int64{u})
	if !w.WaitFor(10*time.Second, func() bool { p, ok := w.Last(u); return ok && p.Version >= first.Version }) {
		t.Fatalf("watcher: no snapshot of user %d:\n%s", u, w.Dump(10))
	}

	var (
		mu      sync.Mutex
		last    Status // last acknowledged write
		run     = takeoverRun{victim: c.Name(victim)}
		killed  time.Time
		takenAt time.Time
	)
	last = first
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			start := time.Now()
			st, err := put(via[i%2])
			end := time.Now()
			mu.Lock()
			if !killed.IsZero() && start.After(killed) {
				run.longest = max(run.longest, end.Sub(start))
				if code, _ := testkit.ErrorCode(err); err != nil && code == 503 {
					run.unavailable++
				} else if err != nil {
					run.other++
					t.Errorf("PUT of user %d after the kill: %v", u, err)
				}
				if err == nil && takenAt.IsZero() {
					takenAt = end
				}
			}
			if err == nil {
				last = st
			} else {
				busy = !busy // not applied (a 503 is refused before any change)
			}
			mu.Unlock()
		}
	}()
	time.Sleep(500 * time.Millisecond) // writes before the kill (not an assertion)
	mu.Lock()
	before, _ := w.Last(u)
	killed = time.Now()
	mu.Unlock()
	c.Kill9(victim)
	retryAfter := make(chan string, 1)
	go func() { retryAfter <- retryAfterOf503(c.HTTPAddr(s1), tok.Of(u)) }()
	testkit.Eventually(t, 20*time.Second, "a write answered after the kill", func() error {
		mu.Lock()
		defer mu.Unlock()
		if takenAt.IsZero() {
			return errNotYet
		}
		return nil
	})
	time.Sleep(1500 * time.Millisecond) // writes after the takeover (not an assertion)
	close(stop)
	<-done
	mu.Lock()
	run.takeover = takenAt.Sub(killed)
	want := last
	mu.Unlock()

	if ra := <-retryAfter; ra != "1" {
		t.Errorf("run %d: a 503 for a user of the dead %s: Retry-After %q, want \"1\"", k+1, run.victim, ra)
	}
	if run.takeover > takeoverLimit {
		t.Errorf("run %d: takeover of %s's users took %v, want at most %v", k+1, run.victim, run.takeover, takeoverLimit)
	}
	if run.longest > slowestRequest {
		t.Errorf("run %d: a request for a user of the dead %s waited %v, want at most %v", k+1, run.victim, run.longest, slowestRequest)
	}
	var seen time.Time
	for _, up := range w.Updates(u) {
		if up.Version > before.Version && up.At.After(killed) {
			seen = up.At
			break
		}
	}
	if seen.IsZero() {
		t.Errorf("run %d: the watcher never got a version above %d after the kill:\n%s", k+1, before.Version, w.Dump(20))
	} else if run.watcher = max(0, seen.Sub(takenAt)); run.watcher > time.Second {
		t.Errorf("run %d: the watcher got the new state %v after the takeover, want within 1s:\n%s", k+1, run.watcher, w.Dump(20))
	}
	if !w.WaitFor(time.Second, func() bool { p, ok := w.Last(u); return ok && testkit.SamePresence(p, testkit.StatusPresence(want)) }) {
		p, _ := w.Last(u)
		t.Errorf("run %d: the watcher ends on %s, last acknowledged write %s", k+1, p, want)
	}
	for i, r := range via {
		if p, err := r.Presence(testkit.AdminID, u); err != nil || !testkit.SamePresence(p, testkit.StatusPresence(want)) {
			t.Errorf("run %d: user %d through %s: %s %v, last acknowledged write %s", k+1, u, c.Name([]int{s1, s2}[i]), p, err, want)
		}
	}
	var prev uint64
	for _, up := range w.Updates(u) {
		if up.Version < prev {
			t.Errorf("run %d: the watcher received version %d after %d (regression)", k+1, up.Version, prev)
		}
		prev = max(prev, up.Version)
	}
	w.Close()
	return run
}

// retryAfterOf503 reads users/me/status as the holder of token through
// addr until an answer is 503 (within 10s), and returns its Retry-After
// header ("none" when no 503 came).
func retryAfterOf503(addr, token string) string {
	for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/users/me/status", nil)
		if err != nil {
			return err.Error()
		}
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusServiceUnavailable {
			return res.Header.Get("Retry-After")
		}
	}
	return "none"
}
