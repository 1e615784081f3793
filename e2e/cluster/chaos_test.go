package clustere2e

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// TestChaos: three presenced processes on PostgreSQL (through a proxy the
// test can cut) under continuous load, through, in turn: SIGKILL of a node
// and its restart, a second SIGKILL and restart, an 8s database outage, a
// rolling restart (SIGTERM, start) of every node, and a partition of one
// node and its heal.
//
// The partition is a frozen process (SIGSTOP for longer than failure
// detection, then SIGCONT): for the two others its gossip, remoting and
// HTTP go silent as they would behind a cut link, they declare it dead and
// take its users over; when it runs again it still believes it owns them
// until it learns it was declared dead, refutes and merges its view with
// theirs. (Cutting gossip between processes would need a UDP proxy per
// node; the in-process TestPartitionHeals cuts real gossip links.)
//
// The load: writers (one per user) PUT through random live nodes and keep
// a ledger of every acknowledged write; one WebSocket watcher per node
// watches every writer's user and records every version it receives,
// reconnecting (to its node, or another meanwhile) as clients do.
//
// At the end: each user's state, through every node, is its last
// acknowledged write and its acknowledged versions rose write after write
// (no acknowledged write lost); no connection received a lower version
// after a higher one; every watcher converged to the final versions; every
// answer was 200 or 503 (no other 5xx); and once the writes stop, every
// user goes offline after offline_after (no ghost).
func TestChaos(t *testing.T) {
	const (
		reqTimeout   = 2 * time.Second
		offlineAfter = 8 * time.Second
		users        = 12
	)
	base := pgBase(t)
	conn, _ := testkit.PgSchema(t, base)
	proxy := pgStartProxy(t, testkit.URLHostPort(t, base))
	bin := testkit.BuildPresenced(t)
	tok := newTokens()
	c := testkit.NewProcCluster(t, bin, tok, 3, map[string]string{
		"PRESENCE_STORE":            testkit.SetURLHost(t, conn, proxy.addr()),
		"PRESENCE_REQUEST_TIMEOUT":  reqTimeout.String(),
		"PRESENCE_OFFLINE_AFTER":    offlineAfter.String(),
		"PRESENCE_DISCONNECT_GRACE": "2s",
		"PRESENCE_WRITE_RATE":       "-1",
		"PRESENCE_DRAIN_WAIT":       "1s",
	})
	c.StartAll()
	c.WaitFormed(45*time.Second, "three processes on PostgreSQL form a cluster")
	ids := testkit.UserIDs(30001, users)
	l := newChaosLedger(c, tok, ids)
	l.startWriters()
	l.startWatchers()
	time.Sleep(3 * time.Second) // load before the first fault (not an assertion)

	kill := func(i int) {
		st, err := c.Rests[(i+1)%3].Cluster()
		if err != nil {
			t.Fatalf("GET /admin/cluster: %v", err)
		}
		var owned []int64
		for _, u := range ids {
			if testkit.OwnerOf(st, u) == c.Name(i) {
				owned = append(owned, u)
			}
		}
		at := time.Now()
		c.Kill9(i)
		l.phase("SIGKILL " + c.Name(i))
		testkit.Eventually(t, 20*time.Second, "every user of the killed node written again", func() error {
			if d, ok := l.takeover(owned, at); ok {
				l.addTakeover(d)
				return nil
			}
			return errNotYet
		})
		time.Sleep(2 * time.Second)
		c.Start(i)
		c.WaitFormed(45*time.Second, c.Name(i)+" restarted and back in the cluster")
	}
	kill(2)
	kill(0)

	l.phase("database outage")
	proxy.cut(pgReset)
	time.Sleep(8 * time.Second)
	proxy.restore()
	testkit.Eventually(t, 30*time.Second, "writes through every node after the outage", func() error {
		for i := range 3 {
			if _, err := c.Rests[i].PutStatus(ids[i], `{"is_online": true}`); err != nil {
				return err
			}
		}
		return nil
	})

	l.phase("rolling restart")
	for i := range 3 {
		c.Term(i, 30*time.Second)
		c.Start(i)
		c.WaitFormed(45*time.Second, c.Name(i)+" back after its restart")
	}

	l.phase("partition of p2")
	l.freeze(1, true)
	c.SetUp(1, false)
	if err := c.Proc(1).Pause(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(6 * time.Second)
	if err := c.Proc(1).Resume(); err != nil {
		t.Fatal(err)
	}
	l.freeze(1, false)
	c.SetUp(1, true)
	merged := c.WaitFormed(45*time.Second, "views merged after the partition")
	l.phase("healed")
	heal := l.healCheck(t)
	t.Logf("partition: views merged %v after SIGCONT; a write after the merge shown by every node and watcher within %v",
		merged.Round(time.Millisecond), heal.Round(time.Millisecond))
	if heal > 2*time.Second {
		t.Errorf("after the heal, a write took %v to show on every node and watcher, want at most 2s", heal)
	}
	time.Sleep(2 * time.Second)
	l.stop(t)
	l.check(t, offlineAfter)
	c.CheckLogs()
}

// chaosLedger is the load of TestChaos and what it observed.
type chaosLedger struct {
	c    *testkit.ProcCluster
	tok  *testkit.Tokens
	ids  []int64
	quit chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	acked    map[int64][]Status // every acknowledged write, in order
	acks     int
	n503     int
	other5xx []string
	noAnswer int
	longest  time.Duration
	// frozen is the node paused (-1: none) and when; requests to it that
	// overlap the pause are counted apart.
	frozen               int
	frozenFrom, frozenTo time.Time
	longestFroze         time.Duration
	takeovers            []time.Duration
	phases               []string
	conns                []*chaosConn
}

// chaosConn is one WebSocket connection of a watcher.
type chaosConn struct {
	watcher int
	node    string
	ws      *testkit.WSConn
}

func newChaosLedger(c *testkit.ProcCluster, tok *testkit.Tokens, ids []int64) *chaosLedger {
	return &chaosLedger{c: c, tok: tok, ids: ids, quit: make(chan struct{}), acked: map[int64][]Status{}, frozen: -1}
}

// freeze marks node i paused (on) or running again.
func (l *chaosLedger) freeze(i int, on bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if on {
		l.frozen, l.frozenFrom, l.frozenTo = i, time.Now(), time.Time{}
	} else {
		l.frozenTo = time.Now()
	}
}

func (l *chaosLedger) phase(name string) {
	l.mu.Lock()
	l.phases = append(l.phases, time.Now().Format("15:04:05.000")+" "+name)
	l.mu.Unlock()
}

func (l *chaosLedger) addTakeover(d time.Duration) {
	l.mu.Lock()
	l.takeovers = append(l.takeovers, d)
	l.mu.Unlock()
}

// takeover returns how long after at the last of owned got its first
// acknowledged write, once each has one.
func (l *chaosLedger) takeover(owned []int64, at time.Time) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var worst time.Duration
	for _, u := range owned {
		i := slices.IndexFunc(l.acked[u], func(s Status) bool { return s.UpdatedAt != nil && s.UpdatedAt.After(at) })
		if i < 0 {
			return 0, false
		}
		worst = max(worst, l.acked[u][i].UpdatedAt.Sub(at))
	}
	return worst, true
}

// write PUTs body as u through a random live node and records the outcome.
func (l *chaosLedger) write(u int64, body string, rng *rand.Rand) error {
	up := l.c.UpIndexes(rng.IntN(3))
	if len(up) == 0 {
		return errNotYet
	}
	r := l.c.Rests[up[0]]
	start := time.Now()
	st, err := r.PutStatus(u, body)
	d := time.Since(start)
	code, b := testkit.ErrorCode(err)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case err == nil:
		l.acks++
		l.acked[u] = append(l.acked[u], st)
	case code == 503:
		l.n503++
	case code >= 500:
		l.other5xx = append(l.other5xx, fmt.Sprintf("%s PUT %d via %s: %d %s", start.Format("15:04:05.000"), u, r.Base, code, b))
	default:
		l.noAnswer++ // a node killed or stopping under the request
	}
	toFrozen := up[0] == l.frozen && start.Add(d).After(l.frozenFrom) && (l.frozenTo.IsZero() || start.Before(l.frozenTo))
	switch {
	case toFrozen:
		l.longestFroze = max(l.longestFroze, d)
	case err == nil || code >= 500:
		l.longest = max(l.longest, d)
	}
	return err
}

func (l *chaosLedger) startWriters() {
	for k, u := range l.ids {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			rng := rand.New(rand.NewPCG(uint64(u), 13))
			busy := false
			for {
				select {
				case <-l.quit:
					return
				case <-time.After(time.Duration(80+rng.IntN(60)) * time.Millisecond):
				}
				if k%2 == 0 {
					_ = l.write(u, `{"is_online": true}`, rng)
				}
				busy = !busy
				if l.write(u, fmt.Sprintf(`{"is_busy": %v, "is_online": true}`, busy), rng) != nil {
					busy = !busy
				}
			}
		}()
	}
}

// startWatchers runs one watcher per node: a WebSocket client subscribed
// to every user, reconnecting to its node (or another live one) whenever
// its connection ends.
func (l *chaosLedger) startWatchers() {
	for w := range 3 {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for attempt := 0; ; attempt++ {
				select {
				case <-l.quit:
					return
				default:
				}
				up := l.c.UpIndexes(w)
				if len(up) == 0 {
					time.Sleep(200 * time.Millisecond)
					continue
				}
				ws, err := testkit.DialUser(l.c.HTTPAddr(up[0]), l.tok, int64(39001+w), l.ids)
				if err != nil {
					time.Sleep(200 * time.Millisecond)
					continue
				}
				l.mu.Lock()
				l.conns = append(l.conns, &chaosConn{watcher: w, node: l.c.Name(up[0]), ws: ws})
				l.mu.Unlock()
				select {
				case <-ws.Done():
					time.Sleep(100 * time.Millisecond)
				case <-l.quit:
					return
				}
			}
		}()
	}
}

// current returns the latest connection of each watcher.
func (l *chaosLedger) current() []*chaosConn {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*chaosConn, 3)
	for _, cc := range l.conns {
		out[cc.watcher] = cc
	}
	return out
}

// healCheck writes one user through the first node after the heal and
// returns how long until every node answers it and every watcher shows it.
func (l *chaosLedger) healCheck(t *testing.T) time.Duration {
	t.Helper()
	u := l.ids[0]
	var st Status
	var err error
	for range 50 {
		if st, err = l.c.Rests[0].PutStatus(u, `{"is_busy": true, "is_online": true}`); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("write after the heal: %v", err)
	}
	l.mu.Lock()
	l.acked[u] = append(l.acked[u], st)
	l.mu.Unlock()
	want := testkit.StatusPresence(st)
	var waited error // the last thing waited for, for the log
	start := time.Now()
	d, err := testkit.Poll(10*time.Second, 20*time.Millisecond, func() error {
		err := l.shows(u, want)
		if err != nil {
			waited = fmt.Errorf("%v after %v", err, time.Since(start).Round(time.Millisecond))
		}
		return err
	})
	if err != nil {
		t.Errorf("after the heal: %v", err)
	}
	if waited != nil {
		t.Logf("after the heal, the last wait: %v", waited)
	}
	return d
}

// shows reports whether every node answers, and every watcher shows, at
// least want for user u.
func (l *chaosLedger) shows(u int64, want Presence) error {
	for i := range 3 {
		p, err := l.c.Rests[i].Presence(testkit.AdminID, u)
		if err != nil {
			return err
		}
		if p.Version < want.Version {
			return fmt.Errorf("%s answers %s, want %s", l.c.Name(i), p, want)
		}
	}
	for _, cc := range l.current() {
		if cc == nil {
			return errNotYet
		}
		if p, ok := cc.ws.Last(u); !ok || p.Version < want.Version {
			return fmt.Errorf("watcher %d on %s shows %s, want %s", cc.watcher, cc.node, p, want)
		}
	}
	return nil
}

// stop ends the load; each user then gets one last acknowledged write.
func (l *chaosLedger) stop(t *testing.T) {
	close(l.quit)
	l.wg.Wait()
	rng := rand.New(rand.NewPCG(1, 2))
	for _, u := range l.ids {
		ok := false
		for range 100 {
			if l.write(u, `{"is_busy": false}`, rng) == nil {
				ok = true
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !ok {
			t.Fatalf("user %d: no final write acknowledged", u)
		}
	}
}

// check verifies the ledger against the cluster and the watchers.
func (l *chaosLedger) check(t *testing.T, offlineAfter time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	finalAt := time.Now()
	lost := 0
	for _, u := range l.ids {
		acks := l.acked[u]
		for i := 1; i < len(acks); i++ {
			if acks[i].Version <= acks[i-1].Version && !testkit.SameStatus(acks[i], acks[i-1]) {
				lost++
				t.Errorf("user %d: write acknowledged at version %d after one at %d: %s after %s", u, acks[i].Version, acks[i-1].Version, acks[i], acks[i-1])
			}
		}
		want := acks[len(acks)-1]
		for i := range 3 {
			p, err := l.c.Rests[i].Presence(testkit.AdminID, u)
			if err != nil || !testkit.SamePresence(p, testkit.StatusPresence(want)) {
				lost++
				t.Errorf("user %d through %s: %s %v, last acknowledged write %s", u, l.c.Name(i), p, err, want)
			}
		}
	}
	regressions := 0
	for _, cc := range l.conns {
		for _, u := range l.ids {
			var prev uint64
			for _, up := range cc.ws.Updates(u) {
				if up.Version < prev {
					regressions++
					t.Errorf("watcher %d on %s: user %d version %d after %d", cc.watcher, cc.node, u, up.Version, prev)
				}
				prev = max(prev, up.Version)
			}
		}
	}
	// Every watcher's current connection converges to the final versions.
	conv, err := testkit.Poll(5*time.Second, 20*time.Millisecond, func() error {
		for _, cc := range l.currentLocked() {
			if cc == nil {
				return errNotYet
			}
			for _, u := range l.ids {
				want := testkit.StatusPresence(l.acked[u][len(l.acked[u])-1])
				if p, ok := cc.ws.Last(u); !ok || !testkit.SamePresence(p, want) {
					return fmt.Errorf("watcher %d on %s: user %d shows %s, want %s", cc.watcher, cc.node, u, p, want)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("watchers did not converge: %v", err)
	}
	for _, s := range l.other5xx {
		t.Errorf("5xx other than 503: %s", s)
	}
	l.mu.Unlock()
	ghosts := l.ghosts(t, finalAt.Add(offlineAfter+3*time.Second))
	l.mu.Lock()
	for _, cc := range l.conns {
		cc.ws.Close()
	}
	sort.Slice(l.takeovers, func(a, b int) bool { return l.takeovers[a] < l.takeovers[b] })
	t.Logf("chaos figures: %d acknowledged writes, lost %d, 5xx other than 503: %d, 503s: %d, no answer (node killed under the request): %d, longest request %v (%v to the paused node), takeovers %v, watcher convergence after the last write %v, regressions %d over %d connections, ghosts %d\n  phases:\n  %s",
		l.acks, lost, len(l.other5xx), l.n503, l.noAnswer, l.longest.Round(time.Millisecond), l.longestFroze.Round(time.Millisecond), roundAll(l.takeovers), conv.Round(time.Millisecond),
		regressions, len(l.conns), ghosts, strings.Join(l.phases, "\n  "))
}

func (l *chaosLedger) currentLocked() []*chaosConn {
	out := make([]*chaosConn, 3)
	for _, cc := range l.conns {
		out[cc.watcher] = cc
	}
	return out
}

// ghosts waits until after and counts the users still online through
// any node (nobody has written for offline_after).
func (l *chaosLedger) ghosts(t *testing.T, after time.Time) int {
	time.Sleep(time.Until(after))
	n := 0
	for _, u := range l.ids {
		for i := range 3 {
			p, err := l.c.Rests[i].Presence(testkit.AdminID, u)
			if err != nil || p.IsOnline {
				n++
				t.Errorf("user %d through %s %v after its last write: %s %v (a ghost)", u, l.c.Name(i), time.Since(after), p, err)
				break
			}
		}
	}
	return n
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
