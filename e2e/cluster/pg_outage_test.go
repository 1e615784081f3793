package clustere2e

import (
	"errors"
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

// pgOp is one answered (or failed) client request.
type pgOp struct {
	user       int64
	op         string // put, heartbeat, get
	node       string
	start, end time.Time
	code       int    // 200, the HTTP status, 0: no answer, -1: another user's record
	body       string // non-200 body or transport error
	version    uint64 // a PUT answered 200: the version answered
}

// pgReady is one /readyz answer.
type pgReady struct {
	node       int
	start, end time.Time
	code       int
}

// pgWindow is a database cut, from the cut to the restore.
type pgWindow struct {
	name          string
	mode          pgProxyMode
	from, to      time.Time
	recovered     time.Duration // restore to every node ready and writing
	readyRecovery time.Duration // restore to every /readyz 200
}

func (w pgWindow) inside(tm time.Time) bool {
	return tm.After(w.from.Add(300*time.Millisecond)) && tm.Before(w.to)
}

// TestPGOutageServes503AndRecovers: three presenced processes reach
// PostgreSQL through a proxy that the test cuts twice for 4 seconds (first
// as a server that went down: connections reset and refused; then as a
// network that drops everything silently) while 10 clients PUT, heartbeat
// and read continuously through random nodes. Every answer is 200 or 503
// with a JSON detail, none takes longer than the request timeout + 1s, no
// process crashes; /readyz says 503 during each cut and 200 after; the
// nodes recover by themselves within a few seconds of the restore; every
// user ends in its last state answered 200 (through every node and in the
// database); busy timers that fell due during the first cut fire once the
// database is back.
func TestPGOutageServes503AndRecovers(t *testing.T) {
	const (
		// Shorter than the default (5s, which is also the bound of one store
		// call): a silent network cut of 4s then shows as 503s too.
		reqTimeout = 2 * time.Second
		cutFor     = 4 * time.Second
	)
	pc := startPGCluster(t, map[string]string{
		"PRESENCE_REQUEST_TIMEOUT": reqTimeout.String(),
	}, true)
	c, tok, conn, proxy := pc.c, pc.tok, pc.conn, pc.proxy
	// Clients that wait well past the request timeout, so a hang shows as
	// a long answer rather than a client error.
	clients := make([]*testkit.REST, 3)
	for i := range clients {
		clients[i] = testkit.NewREST(c.HTTPAddr(i), tok).WithTimeout(reqTimeout + 5*time.Second)
	}

	users := testkit.UserIDs(7101, 10)
	last := createUsers(t, c, users, `{"is_busy": false}`)
	// Users whose busy status ends during the first cut: their timers
	// fail to write and must retry until the database is back.
	const warm = 2 * time.Second
	cutAt := time.Now().Add(warm + 500*time.Millisecond)
	timerUsers := []int64{7201, 7202, 7203, 7204, 7205}
	due := map[int64]time.Time{}
	for k, u := range timerUsers {
		c.Proc(k % 3).API.Must(t).Heartbeat(u)
		due[u] = cutAt.Add(time.Second + time.Duration(k)*500*time.Millisecond).Truncate(time.Microsecond)
		last[u] = c.Proc((k+1)%3).API.Must(t).PutOwn(u, `{"is_busy": true, "busy_until": "`+testkit.RFC3339(due[u])+`"}`)
	}

	// Probe users (7301..7303, one per node) for the recovery checks.
	for i := range 3 {
		u := int64(7301 + i)
		c.Proc(i).API.Must(t).Heartbeat(u)
		last[u] = c.Proc(i).API.Must(t).PutOwn(u, `{"is_busy": false}`)
	}

	// /readyz of every node, every 100ms.
	var rmu sync.Mutex
	var readies []pgReady
	stopReady := make(chan struct{})
	var rwg sync.WaitGroup
	for i := range 3 {
		rwg.Add(1)
		go func() {
			defer rwg.Done()
			for {
				start := time.Now()
				code, _ := testkit.ErrorCode(clients[i].Call(0, "GET", "/readyz", "", nil))
				rmu.Lock()
				readies = append(readies, pgReady{node: i, start: start, end: time.Now(), code: code})
				rmu.Unlock()
				select {
				case <-stopReady:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}

	// The clients: PUT (toggling busy), heartbeat and GET, each through a
	// random node; after the stop each ends with a PUT answered 200.
	var omu sync.Mutex
	var ops []pgOp
	stop := make(chan struct{})
	var wg sync.WaitGroup
	do := func(u int64, op string, i int, f func(*testkit.REST) (uint64, error)) int {
		start := time.Now()
		v, err := f(clients[i])
		code, body := testkit.ErrorCode(err)
		if errors.Is(err, testkit.ErrWrongUser) {
			code = -1
		}
		omu.Lock()
		ops = append(ops, pgOp{user: u, op: op, node: c.Name(i), start: start, end: time.Now(), code: code, body: body, version: v})
		omu.Unlock()
		return code
	}
	busy0 := map[int64]bool{} // read before any client writes last
	for _, u := range users {
		busy0[u] = last[u].IsBusy
	}
	for k, u := range users {
		busy := busy0[u]
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(u), 7))
			put := func() int {
				busy = !busy
				body := fmt.Sprintf(`{"is_busy": %v}`, busy)
				return do(u, "put", rng.IntN(3), func(r *testkit.REST) (uint64, error) {
					st, err := r.PutOwn(u, body)
					if err == nil {
						omu.Lock()
						last[u] = st
						omu.Unlock()
					}
					return st.Version, err
				})
			}
			time.Sleep(time.Duration(k) * 10 * time.Millisecond)
			for {
				select {
				case <-stop:
					for end := time.Now().Add(20 * time.Second); time.Now().Before(end); {
						if put() == 200 {
							return
						}
						time.Sleep(200 * time.Millisecond)
					}
					return
				default:
				}
				put()
				do(u, "heartbeat", rng.IntN(3), func(r *testkit.REST) (uint64, error) { return 0, r.Heartbeat(u) })
				do(u, "get", rng.IntN(3), func(r *testkit.REST) (uint64, error) { _, err := r.GetOwn(u); return 0, err })
				time.Sleep(50 * time.Millisecond)
			}
		}()
	}

	// recover waits until every node answers /readyz 200 and a PUT 200
	// (probe users 7301..7303, one per node).
	probeBusy := map[int64]bool{}
	recover := func(w *pgWindow) {
		restored := w.to
		var readyAt time.Time
		_, err := testkit.Poll(30*time.Second, 25*time.Millisecond, func() error {
			c.CheckAlive()
			for i := range 3 {
				if err := clients[i].Call(0, "GET", "/readyz", "", nil); err != nil {
					return fmt.Errorf("%s /readyz: %v", c.Name(i), err)
				}
			}
			if readyAt.IsZero() {
				readyAt = time.Now()
			}
			for i := range 3 {
				u := int64(7301 + i)
				st, err := clients[i].PutOwn(u, fmt.Sprintf(`{"is_busy": %v}`, !probeBusy[u]))
				if err != nil {
					return fmt.Errorf("PUT through %s: %v", c.Name(i), err)
				}
				probeBusy[u] = st.IsBusy
				omu.Lock()
				last[u] = st
				omu.Unlock()
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: no recovery within 30s of the restore: %v", w.name, err)
		}
		w.recovered = time.Since(restored)
		w.readyRecovery = readyAt.Sub(restored)
	}
	windows := []*pgWindow{{name: "server down (reset/refused)", mode: pgReset}, {name: "network cut (blackhole)", mode: pgBlackhole}}
	time.Sleep(time.Until(cutAt))
	for k, w := range windows {
		w.from = time.Now()
		proxy.cut(w.mode)
		time.Sleep(cutFor)
		c.CheckAlive()
		w.to = time.Now()
		proxy.restore()
		recover(w)
		t.Logf("%s: cut %s..%s; restore to every /readyz 200: %v; restore to every node answering PUT 200: %v",
			w.name, w.from.Format("15:04:05.000"), w.to.Format("15:04:05.000"),
			w.readyRecovery.Round(time.Millisecond), w.recovered.Round(time.Millisecond))
		if w.recovered > 5*time.Second {
			t.Errorf("%s: recovery took %v after the restore, want at most 5s", w.name, w.recovered)
		}
		if k == len(windows)-1 {
			time.Sleep(time.Second)
		} else {
			time.Sleep(2 * time.Second)
		}
	}
	close(stop)
	wg.Wait()
	close(stopReady)
	rwg.Wait()
	c.CheckAlive()

	// Every answer: 200 or 503 with a JSON detail, within the request
	// timeout + 1s. Answers are counted by when they were given; a request
	// sent during a cut may be answered (503, timed out) up to the request
	// timeout after the restore: that is still "recovering".
	phase := func(tm time.Time) string {
		for _, w := range windows {
			if !tm.Before(w.from) && tm.Before(w.to) {
				return "during " + w.name
			}
			if !tm.Before(w.to) && tm.Before(w.to.Add(max(w.recovered, reqTimeout+200*time.Millisecond))) {
				return "recovering from " + w.name
			}
		}
		return "database up"
	}
	type key struct{ phase, op string }
	counts := map[key]map[int]int{}
	var longest time.Duration
	var bad []string
	ackedInCut := 0
	answered := map[int64]uint64{} // newest version answered 200 so far, per user
	for u := range last {
		answered[u] = 0
	}
	sort.SliceStable(ops, func(a, b int) bool { return ops[a].end.Before(ops[b].end) })
	for _, o := range ops {
		k := key{phase(o.end), o.op}
		if counts[k] == nil {
			counts[k] = map[int]int{}
		}
		counts[k][o.code]++
		d := o.end.Sub(o.start)
		longest = max(longest, d)
		switch {
		case o.code == -1:
			bad = append(bad, fmt.Sprintf("%s %s as %d via %s: %s", o.start.Format("15:04:05.000"), o.op, o.user, o.node, o.body))
		case o.code == 0:
			bad = append(bad, fmt.Sprintf("%s %s as %d via %s: no answer after %v: %s", o.start.Format("15:04:05.000"), o.op, o.user, o.node, d.Round(time.Millisecond), o.body))
		case o.code != 200 && o.code != 503:
			bad = append(bad, fmt.Sprintf("%s %s as %d via %s: HTTP %d %s", o.start.Format("15:04:05.000"), o.op, o.user, o.node, o.code, o.body))
		case o.code == 503:
			if err := pgDetail(o.body); err != nil {
				bad = append(bad, fmt.Sprintf("%s %s as %d via %s: 503 %v", o.start.Format("15:04:05.000"), o.op, o.user, o.node, err))
			}
		}
		if d > reqTimeout+time.Second {
			bad = append(bad, fmt.Sprintf("%s %s as %d via %s: answered %d after %v (request timeout %v)", o.start.Format("15:04:05.000"), o.op, o.user, o.node, o.code, d.Round(time.Millisecond), reqTimeout))
		}
		// A status change (a new version) acknowledged while the database
		// could not be reached would not be durable. (A PUT that changes
		// nothing is answered from memory: 200 with the same version.)
		if o.op == "put" && o.code == 200 {
			for _, w := range windows {
				if w.inside(o.start) && w.inside(o.end) && o.version > answered[o.user] {
					ackedInCut++
					bad = append(bad, fmt.Sprintf("%s PUT as %d via %s answered 200 with new version %d at %s, inside %s",
						o.start.Format("15:04:05.000"), o.user, o.node, o.version, o.end.Format("15:04:05.000"), w.name))
				}
			}
			answered[o.user] = max(answered[o.user], o.version)
		}
	}
	sort.Strings(bad)
	for i, b := range bad {
		if i == 20 {
			t.Errorf("... %d more", len(bad)-20)
			break
		}
		t.Error(b)
	}
	var keys []key
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(a, b int) bool {
		if keys[a].phase != keys[b].phase {
			return keys[a].phase < keys[b].phase
		}
		return keys[a].op < keys[b].op
	})
	var lines []string
	for _, k := range keys {
		var codes []string
		for _, code := range []int{200, 503} {
			codes = append(codes, fmt.Sprintf("%d×%d", counts[k][code], code))
		}
		for code, n := range counts[k] {
			if code != 200 && code != 503 {
				codes = append(codes, fmt.Sprintf("%d×%d", n, code))
			}
		}
		lines = append(lines, fmt.Sprintf("%-45s %-9s %s", k.phase, k.op, strings.Join(codes, " ")))
	}
	t.Logf("%d answers, longest %v (request timeout %v):\n  %s", len(ops), longest.Round(time.Millisecond), reqTimeout, strings.Join(lines, "\n  "))
	for _, w := range windows {
		if n := counts[key{"during " + w.name, "put"}][503]; n == 0 {
			t.Errorf("%s: no PUT answered 503 during the cut", w.name)
		}
	}
	for _, op := range []string{"put", "heartbeat", "get"} {
		if n := counts[key{"database up", op}][503]; n != 0 {
			t.Errorf("%d %s requests answered 503 while the database was up (outside the cuts and their recovery)", n, op)
		}
	}

	// /readyz: 503 during each cut on every node (answers given during
	// the cut: a silent cut answers after the ping's 2s), 200 at the end.
	for _, w := range windows {
		for i := range 3 {
			n503, n := 0, 0
			for _, r := range readies {
				if r.node == i && w.inside(r.end) {
					n++
					if r.code == 503 {
						n503++
					}
				}
			}
			t.Logf("%s: %s /readyz during the cut: %d of %d answers 503", w.name, c.Name(i), n503, n)
			if n503 == 0 {
				t.Errorf("%s: %s /readyz never said 503 during the cut (%d answers)", w.name, c.Name(i), n)
			}
		}
	}
	for i := range 3 {
		if err := clients[i].Call(0, "GET", "/readyz", "", nil); err != nil {
			t.Errorf("%s /readyz after the outages: %v", c.Name(i), err)
		}
	}

	// Every member stayed alive and answering: a slow store is not a member
	// down, so no node refused another's users as a member not answering
	// (routing's liveness probe tells the two apart).
	for i := range 3 {
		if out := c.Proc(i).Output(); strings.Contains(out, "member not answering") {
			t.Errorf("%s treated a live member as down during the outage (fail-fast refusal logged)", c.Name(i))
		}
	}

	// Nothing answered 200 is lost: every user's state is its last 200.
	all := slices.Concat(users, []int64{7301, 7302, 7303})
	for _, u := range all {
		want := last[u]
		for i := range 3 {
			st, err := clients[i].GetOwn(u)
			if err != nil {
				t.Errorf("GET status of %d through %s: %v", u, c.Name(i), err)
				continue
			}
			if !testkit.SameStatus(st, want) {
				t.Errorf("user %d through %s: %s, last answered 200 %s", u, c.Name(i), st, want)
			}
		}
	}
	rows := pgRows(t, conn, slices.Concat(all, timerUsers))
	for _, u := range all {
		if r, ok := rows[u]; !ok || !pgRowMatches(r, last[u]) {
			t.Errorf("user %d: database row %+v, last answered 200 %s", u, rows[u], last[u])
		}
	}
	// Busy timers due during the first cut: applied once, after the
	// restore, within the retry period (1s) and a margin.
	first := windows[0]
	for _, u := range timerUsers {
		st, err := clients[0].GetOwn(u)
		if err != nil {
			t.Errorf("GET status of %d: %v", u, err)
			continue
		}
		want := last[u]
		if st.IsBusy || st.Version != want.Version+1 || st.UpdatedAt == nil {
			t.Errorf("timer user %d (due %s): %s, answered %s", u, due[u].Format("15:04:05.000"), st, want)
			continue
		}
		limit := first.to.Add(first.recovered + 2*time.Second)
		t.Logf("timer user %d: due %s (during the cut), cleared at %s (%v after the restore)", u, due[u].Format("15:04:05.000"),
			st.UpdatedAt.Local().Format("15:04:05.000"), st.UpdatedAt.Sub(first.to).Round(time.Millisecond))
		if st.UpdatedAt.Before(due[u]) || st.UpdatedAt.After(limit) {
			t.Errorf("timer user %d: due %s, cleared at %s; want between due and %s", u, due[u].Format("15:04:05.000"),
				st.UpdatedAt.Local().Format("15:04:05.000"), limit.Format("15:04:05.000"))
		}
		if r := rows[u]; !pgRowMatches(r, st) {
			t.Errorf("timer user %d: database row %+v, nodes answer %s", u, r, st)
		}
	}
	// Heartbeats answered during the cuts were kept by the write-behind
	// writer and flushed once the database was back.
	for i := range 3 {
		errs, err := clients[i].Metric("presence_store_last_seen_flush_errors_total")
		if err != nil {
			t.Errorf("%s: %v", c.Name(i), err)
			continue
		}
		var pending float64
		if _, err := testkit.Poll(5*time.Second, 25*time.Millisecond, func() error {
			pending, err = clients[i].Metric("presence_store_last_seen_pending")
			if err == nil && pending != 0 {
				err = fmt.Errorf("%v users pending", pending)
			}
			return err
		}); err != nil {
			t.Errorf("%s: last_seen not flushed after the outages: %v", c.Name(i), err)
		}
		t.Logf("%s: %v failed last_seen flushes during the cuts, %v pending now", c.Name(i), errs, pending)
	}
	t.Logf("proxy: %d connections accepted, %d refused while cut; %d PUTs acknowledged inside a cut", proxy.accepted.Load(), proxy.refused.Load(), ackedInCut)
	c.CheckLogs()
}
