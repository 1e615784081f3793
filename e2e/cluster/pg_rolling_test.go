package clustere2e

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// pgClients heartbeats each user every interval through a node marked up
// (the next up node on an error), and every putEvery toggles its busy
// status with a PUT retried through the up nodes until one answers. One
// goroutine per user, so each user's requests are sequential and the last
// answered PUT is the state the user must end in.
type pgClients struct {
	c    *testkit.ProcCluster
	stop chan struct{}
	wg   sync.WaitGroup

	mu          sync.Mutex
	last        map[int64]Status // last answered PUT
	lastOK      map[int64]time.Time
	maxGap      map[int64]time.Duration
	hbOK        int
	hbFailed    []string // attempts that failed (retried elsewhere)
	hbMissed    map[int64]int
	putOK       int
	putFailed   []string
	putGaveUp   []string
	mixups      []string // answers about another user than the caller
	maxPutTries int
}

func pgStartClients(c *testkit.ProcCluster, users []int64, last map[int64]Status, every, putEvery time.Duration) *pgClients {
	l := &pgClients{c: c, stop: make(chan struct{}), last: last, lastOK: map[int64]time.Time{},
		maxGap: map[int64]time.Duration{}, hbMissed: map[int64]int{}}
	busy0 := map[int64]bool{} // read before any client writes last
	for _, u := range users {
		busy0[u] = last[u].IsBusy
	}
	for k, u := range users {
		busy := busy0[u]
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			// Spread the users over the interval and over the nodes.
			time.Sleep(time.Duration(k) * every / time.Duration(len(users)))
			tick := time.NewTicker(every)
			defer tick.Stop()
			nextPut := time.Now().Add(time.Duration(k) * putEvery / time.Duration(len(users)))
			for i := k; ; i++ {
				l.Heartbeat(u, i)
				if time.Now().After(nextPut) {
					busy = !busy
					l.put(u, i, fmt.Sprintf(`{"is_busy": %v}`, busy))
					nextPut = time.Now().Add(putEvery)
				}
				select {
				case <-l.stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	return l
}

func (l *pgClients) Heartbeat(u int64, k int) {
	for _, i := range l.c.UpIndexes(k) {
		r := l.c.Rests[i]
		start := time.Now()
		err := r.Heartbeat(u)
		now := time.Now()
		l.mu.Lock()
		if err == nil {
			if prev, ok := l.lastOK[u]; ok && now.Sub(prev) > l.maxGap[u] {
				l.maxGap[u] = now.Sub(prev)
			}
			l.lastOK[u] = now
			l.hbOK++
			l.mu.Unlock()
			return
		}
		l.hbFailed = append(l.hbFailed, fmt.Sprintf("%s heartbeat %d via %s after %v: %v",
			start.Format("15:04:05.000"), u, l.c.Name(i), now.Sub(start).Round(time.Millisecond), err))
		l.mu.Unlock()
	}
	l.mu.Lock()
	l.hbMissed[u]++
	l.mu.Unlock()
}

// put sends body until a node answers it (for 20s at most).
func (l *pgClients) put(u int64, k int, body string) {
	deadline := time.Now().Add(20 * time.Second)
	for try := 1; time.Now().Before(deadline); try++ {
		for _, i := range l.c.UpIndexes(k + try) {
			start := time.Now()
			st, err := l.c.Rests[i].PutOwn(u, body)
			l.mu.Lock()
			if err == nil {
				l.last[u] = st
				l.putOK++
				l.maxPutTries = max(l.maxPutTries, try)
				l.mu.Unlock()
				return
			}
			if errors.Is(err, testkit.ErrWrongUser) {
				l.mixups = append(l.mixups, err.Error())
			}
			l.putFailed = append(l.putFailed, fmt.Sprintf("%s PUT %s as %d via %s after %v: %v",
				start.Format("15:04:05.000"), body, u, l.c.Name(i), time.Since(start).Round(time.Millisecond), err))
			l.mu.Unlock()
		}
		time.Sleep(100 * time.Millisecond)
	}
	l.mu.Lock()
	l.putGaveUp = append(l.putGaveUp, fmt.Sprintf("PUT %s as %d never answered", body, u))
	l.mu.Unlock()
}

func (l *pgClients) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// pgWatcher is a WebSocket subscriber that reconnects (to the next node
// marked up) whenever its connection closes.
type pgWatcher struct {
	c    *testkit.ProcCluster
	uid  int64
	home int
	ids  []int64
	stop chan struct{}
	done chan struct{}

	mu     sync.Mutex
	subs   []*testkit.WSConn
	nodes  []string
	closes []string
}

func pgStartWatcher(c *testkit.ProcCluster, uid int64, home int, ids []int64) *pgWatcher {
	w := &pgWatcher{c: c, uid: uid, home: home, ids: ids, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *pgWatcher) run() {
	defer close(w.done)
	next := w.home
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		ups := w.c.UpIndexes(next)
		if len(ups) == 0 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		i := ups[0]
		// After a close or a failed dial, the next node is tried first:
		// a draining node closes its sessions before it stops.
		next = i + 1
		s, err := testkit.DialUser(w.c.HTTPAddr(i), w.c.Tok, w.uid, w.ids)
		if err != nil {
			w.mu.Lock()
			w.closes = append(w.closes, fmt.Sprintf("%s dial %s: %v", time.Now().Format("15:04:05.000"), w.c.Name(i), err))
			w.mu.Unlock()
			time.Sleep(200 * time.Millisecond)
			continue
		}
		w.mu.Lock()
		w.subs = append(w.subs, s)
		w.nodes = append(w.nodes, w.c.Name(i))
		w.mu.Unlock()
		select {
		case <-w.stop:
			s.Close()
			return
		case <-s.Done():
			_, err := s.Closed()
			w.mu.Lock()
			w.closes = append(w.closes, fmt.Sprintf("%s %s closed: code %d (%v)", time.Now().Format("15:04:05.000"),
				w.c.Name(i), testkit.CloseCode(err), err))
			w.mu.Unlock()
		}
	}
}

func (w *pgWatcher) halt() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// current is the connection open now (nil between two).
func (w *pgWatcher) current() *testkit.WSConn {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.subs) == 0 {
		return nil
	}
	s := w.subs[len(w.subs)-1]
	if done, _ := s.Closed(); done {
		return nil
	}
	return s
}

// TestPGRollingRestartLosesNothing: three presenced processes on
// PostgreSQL are restarted one at a time (SIGTERM: graceful drain; the next
// only once the restarted one is ready and the cluster has 3 members
// again) while 30 users heartbeat every 250ms through nodes that are up
// (retrying on another node on error) and toggle their busy status every
// 1.5s, and three WebSocket subscribers (reconnecting when their node
// drains) watch them. No answered PUT is lost (the final state of every
// user, through every node and in the database, is its last answered
// PUT), no heartbeating user is ever pushed offline, and every subscriber
// ends with every user's final state.
func TestPGRollingRestartLosesNothing(t *testing.T) {
	const offlineAfter = 5 * time.Second
	pc := startPGCluster(t, map[string]string{
		"PRESENCE_OFFLINE_AFTER":    offlineAfter.String(),
		"PRESENCE_DISCONNECT_GRACE": "3s",
		"PRESENCE_DRAIN_WAIT":       "1s",
	}, false)
	c, conn := pc.c, pc.conn

	users := testkit.UserIDs(6101, 30)
	last := createUsers(t, c, users, `{"is_busy": false}`)

	var watchers []*pgWatcher
	for i := range 3 {
		w := pgStartWatcher(c, int64(8601+i), i, users)
		t.Cleanup(w.halt)
		watchers = append(watchers, w)
	}
	for _, w := range watchers {
		testkit.Eventually(t, 10*time.Second, "every subscriber has a snapshot of every user", func() error {
			s := w.current()
			if s == nil {
				return fmt.Errorf("watcher %d not connected", w.uid)
			}
			for _, u := range users {
				if p, ok := s.Last(u); !ok || !p.IsOnline {
					return fmt.Errorf("watcher %d: user %d: %v %v", w.uid, u, p, ok)
				}
			}
			return nil
		})
	}

	clients := pgStartClients(c, users, last, 250*time.Millisecond, 1500*time.Millisecond)
	t.Cleanup(clients.halt)
	time.Sleep(1500 * time.Millisecond) // traffic runs before the first restart (not an assertion)

	rollStart := time.Now()
	for i := range 3 {
		drain, code := c.Term(i, 30*time.Second)
		if code != 0 {
			t.Errorf("%s exited with code %d after SIGTERM:\n    %s", c.Name(i), code, c.Proc(i).Tail(30))
		}
		down := time.Now()
		// The restarted node takes traffic once it is ready.
		c.Launch(i, false)
		testkit.Eventually(t, 30*time.Second, c.Name(i)+" ready after its restart", func() error {
			return c.Proc(i).API.Call(0, "GET", "/readyz", "", nil)
		})
		c.SetUp(i, true)
		c.WaitFormed(30*time.Second, "3 members again after restarting "+c.Name(i))
		t.Logf("%s: SIGTERM to exit %v (code %d), restart to ready with 3 members %v",
			c.Name(i), drain.Round(time.Millisecond), code, (time.Since(down)).Round(time.Millisecond))
		time.Sleep(time.Second) // traffic on the full cluster between restarts (not an assertion)
	}
	rolled := time.Since(rollStart)

	// Keep heartbeating past offline_after: a user wrongly left without an
	// actor or a timer would show up offline now.
	time.Sleep(offlineAfter + time.Second)
	clients.halt()
	halted := time.Now()
	c.CheckAlive()

	// Final states: the last answered PUT, through every node and in the
	// database; and every user still online.
	final := map[int64]Status{}
	for _, u := range users {
		want := last[u]
		for i := range 3 {
			st, err := c.Proc(i).API.GetOwn(u)
			if err != nil {
				t.Errorf("GET status of %d through %s: %v", u, c.Name(i), err)
				continue
			}
			if !testkit.SameStatus(st, want) {
				t.Errorf("user %d through %s: %s, last answered PUT %s", u, c.Name(i), st, want)
			}
			final[u] = st
		}
	}
	rows := pgRows(t, conn, users)
	for _, u := range users {
		if r, ok := rows[u]; !ok || !pgRowMatches(r, last[u]) {
			t.Errorf("user %d: database row %+v, last answered PUT %s", u, rows[u], last[u])
		}
	}

	// No heartbeating user was pushed offline while the clients ran.
	offline := 0
	for _, w := range watchers {
		w.mu.Lock()
		subs := slices.Clone(w.subs)
		w.mu.Unlock()
		for _, s := range subs {
			for _, u := range users {
				for _, p := range s.Updates(u) {
					if !p.IsOnline && p.At.Before(halted.Add(offlineAfter-time.Second)) {
						offline++
						t.Errorf("%s: heartbeating user %d pushed offline: %s at %s", s.Name, u, p, p.At.Format("15:04:05.000"))
					}
				}
			}
		}
	}
	// Every subscriber ends with every user's final state (pushes resumed
	// after each reconnect and each ownership move).
	for _, w := range watchers {
		if _, err := testkit.Poll(10*time.Second, 25*time.Millisecond, func() error {
			s := w.current()
			if s == nil {
				return fmt.Errorf("watcher %d not connected", w.uid)
			}
			for _, u := range users {
				if p, ok := s.Last(u); !ok || p.Version < final[u].Version {
					return fmt.Errorf("user %d: newest push %v, final version %d", u, p, final[u].Version)
				}
			}
			return nil
		}); err != nil {
			t.Errorf("watcher %d (connections to %v): %v", w.uid, w.nodes, err)
		}
	}

	clients.mu.Lock()
	var gaps []time.Duration
	for _, u := range users {
		gaps = append(gaps, clients.maxGap[u])
		if clients.maxGap[u] >= offlineAfter {
			t.Errorf("user %d: %v between two answered heartbeats (offline_after %v)", u, clients.maxGap[u], offlineAfter)
		}
	}
	slices.Sort(gaps)
	missed := 0
	for _, m := range clients.hbMissed {
		missed += m
	}
	t.Logf("rolling restart of 3 nodes took %v; heartbeats: %d answered, %d attempts failed and retried elsewhere, %d rounds with no node answering; longest gap per user: median %v max %v",
		rolled.Round(time.Millisecond), clients.hbOK, len(clients.hbFailed), missed,
		gaps[len(gaps)/2].Round(time.Millisecond), gaps[len(gaps)-1].Round(time.Millisecond))
	t.Logf("PUTs: %d answered, %d attempts failed (retried), most tries for one PUT %d, %d never answered",
		clients.putOK, len(clients.putFailed), clients.maxPutTries, len(clients.putGaveUp))
	for _, f := range clients.putGaveUp {
		t.Errorf("%s", f)
	}
	for _, f := range clients.mixups {
		t.Errorf("%s", f)
	}
	show := func(what string, lines []string) {
		if len(lines) > 12 {
			lines = append(lines[:12:12], fmt.Sprintf("... %d more", len(lines)-12))
		}
		if len(lines) > 0 {
			t.Logf("%s:\n  %s", what, strings.Join(lines, "\n  "))
		}
	}
	show("failed heartbeat attempts", clients.hbFailed)
	show("failed PUT attempts", clients.putFailed)
	clients.mu.Unlock()
	for _, w := range watchers {
		w.mu.Lock()
		t.Logf("watcher %d: connections to %v; closes: %v", w.uid, w.nodes, w.closes)
		w.mu.Unlock()
	}
	if offline == 0 {
		t.Logf("no subscriber saw a heartbeating user offline")
	}
	c.CheckLogs()
}
