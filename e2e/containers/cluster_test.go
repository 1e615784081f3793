//go:build containers

package containers

import (
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// TestCluster runs the scenarios one after another on one compose project
// (starting the cluster is the slow part). Each scenario first restores
// three healthy members, so one failure does not cascade.
func TestCluster(t *testing.T) {
	c := startCluster(t)
	var summary []string
	note := func(format string, args ...any) {
		line := fmt.Sprintf(format, args...)
		summary = append(summary, line)
		t.Log(line)
	}
	defer func() {
		t.Logf("measured (also in deploy/README.md):\n  %s", strings.Join(summary, "\n  "))
	}()

	t.Run("HealthCheck", func(t *testing.T) { testHealthCheck(t, c.on(t), note) })
	t.Run("Propagation", func(t *testing.T) { testPropagation(t, c.on(t), note) })
	t.Run("KillFailover", func(t *testing.T) { testKillFailover(t, c.on(t), note) })
	t.Run("Partition", func(t *testing.T) { testPartition(t, c.on(t), note) })
	t.Run("RollingRestart", func(t *testing.T) { testRollingRestart(t, c.on(t), note) })
}

// on returns the cluster bound to a subtest (its Fatal stops that subtest),
// after making sure all three nodes run, are connected and see each other.
func (c *cluster) on(t *testing.T) *cluster {
	cc := *c
	cc.t = t
	for _, n := range nodes {
		id := cc.container(n)
		if cc.docker("inspect", "-f", "{{.State.Running}}", id) != "true" {
			t.Logf("restoring: starting %s", n)
			cc.docker("start", id)
		}
		nets := cc.docker("inspect", "-f", "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}", id)
		if !strings.Contains(nets, cc.gossipNet()) {
			t.Logf("restoring: reconnecting %s to %s", n, cc.gossipNet())
			cc.docker("network", "connect", "--ip", cc.gossipIP(n), cc.gossipNet(), id)
		}
	}
	cc.waitSettled(90*time.Second, nodes)
	return &cc
}

type noteFunc func(format string, args ...any)

// testHealthCheck: the compose health check (presencectl health inside the
// FROM-scratch container) reports every node healthy.
func testHealthCheck(t *testing.T, c *cluster, note noteFunc) {
	image := envOr("PRESENCE_CT_IMAGE", "presence:dev")
	if err := exec.Command("docker", "run", "--rm", "--entrypoint", "/usr/local/bin/presencectl", image, "health", "-h").Run(); err != nil {
		t.Fatalf("the image's presencectl has no health subcommand, which the compose health checks run: %v", err)
	}
	d, err := testkit.Poll(60*time.Second, time.Second, func() error {
		for _, n := range nodes {
			if h := c.health(n); h != "healthy" {
				return fmt.Errorf("%s is %s", n, h)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("docker health: %v", err)
	}
	note("health: all three containers healthy %s after the cluster was ready", secs(d))
}

// testPropagation: a client on each node sees the changes made through the
// others, over WebSocket and REST.
func testPropagation(t *testing.T, c *cluster, note noteFunc) {
	ids := []int64{1001, 1002, 1003}
	watchers := make([]*watcher, len(nodes))
	for i, n := range nodes {
		watchers[i] = newWatcher()
		ws, err := c.dialWS(n, ids[i], ids, watchers[i].add)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.close()
	}
	// Every session makes its user online; every watcher sees all three.
	waitWatchers(t, watchers, ids, 15*time.Second, func(id int64, p Presence) bool { return p.IsOnline })

	var maxPush time.Duration
	for round, body := range []string{
		`{"is_busy": true, "busy_until": "` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `"}`,
		`{"is_busy": false}`,
	} {
		want := map[int64]Presence{}
		for i, id := range ids {
			via := nodes[(i+1+round)%len(nodes)] // never the user's own node
			s := c.mustPut(via, id, body)
			want[id] = testkit.StatusPresence(s)
		}
		start := time.Now()
		waitWatchers(t, watchers, ids, 10*time.Second, func(id int64, p Presence) bool { return sameState(p, want[id]) })
		maxPush = max(maxPush, time.Since(start))
		for _, n := range nodes {
			for _, id := range ids {
				p, err := c.presence(n, ids[0], id)
				if err != nil || !sameState(p, want[id]) {
					t.Errorf("round %d: GET presence of %d via %s = %v, %v; want %v", round, id, n, p, err, want[id])
				}
			}
		}
	}
	note("propagation: changes made through one node reached WebSocket watchers on all three within %s (REST reads agree)", maxPush.Round(time.Millisecond))
}

// waitWatchers waits until every watcher's newest state of every id
// satisfies ok.
func waitWatchers(t *testing.T, ws []*watcher, ids []int64, timeout time.Duration, ok func(int64, Presence) bool) {
	t.Helper()
	if _, err := testkit.Poll(timeout, 20*time.Millisecond, func() error {
		for i, w := range ws {
			for _, id := range ids {
				p, seen := w.last(id)
				if !seen || !ok(id, p) {
					return fmt.Errorf("watcher %d: user %d is %v (seen %v)", i, id, p, seen)
				}
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// testKillFailover: SIGKILL one node; every user is answered again by the
// survivors with the state it had (PostgreSQL), and the time from the kill
// until the last user is answered is the failover time.
func testKillFailover(t *testing.T, c *cluster, note noteFunc) {
	const n = 30
	ids := make([]int64, n)
	want := map[int64]Presence{}
	until := time.Now().Add(time.Hour).UTC().Truncate(time.Second).Format(time.RFC3339)
	for i := range ids {
		id := int64(2001 + i)
		ids[i] = id
		via := nodes[i%len(nodes)]
		if err := c.heartbeat(via, id); err != nil {
			t.Fatalf("heartbeat %d via %s: %v", id, via, err)
		}
		body := `{"is_busy": false}`
		if i%2 == 0 {
			body = `{"is_busy": true, "busy_until": "` + until + `"}`
		}
		want[id] = testkit.StatusPresence(c.mustPut(via, id, body))
	}
	for _, node := range nodes {
		for _, id := range ids {
			if p, err := c.presence(node, adminID, id); err != nil || !sameState(p, want[id]) {
				t.Fatalf("before the kill: %d via %s = %v, %v; want %v", id, node, p, err, want[id])
			}
		}
	}

	victim, survivors := "node2", []string{"node1", "node3"}
	vid := c.container(victim)
	start := time.Now()
	c.docker("kill", vid)
	// When the survivors' membership drops the victim.
	detected := make(chan time.Duration, 1)
	go func() {
		d := c.waitViewNoFatal(90*time.Second, survivors, survivors)
		if d >= 0 {
			d = time.Since(start)
		}
		detected <- d
	}()

	// Every user is asked through a survivor every 250 ms (at most 8 requests
	// in flight per user) until one answer shows the state it had.
	answered := make([]time.Duration, n)
	errs := &counts{}
	var wg sync.WaitGroup
	for i, id := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan time.Duration, 1)
			sem := make(chan struct{}, 8)
			var inflight sync.WaitGroup
			defer inflight.Wait() // no answer may arrive after the next step's writes
			tick := time.NewTicker(250 * time.Millisecond)
			defer tick.Stop()
			deadline := time.After(90 * time.Second)
			for k := 0; ; k++ {
				select {
				case d := <-done:
					answered[i] = d
					return
				case <-deadline:
					answered[i] = -1
					return
				case sem <- struct{}{}:
					via := survivors[k%len(survivors)]
					inflight.Add(1)
					go func() {
						defer inflight.Done()
						defer func() { <-sem }()
						p, err := c.presenceTimeout(via, adminID, id, 6*time.Second)
						if err != nil {
							errs.add(errKind(err))
							return
						}
						if sameState(p, want[id]) {
							select {
							case done <- time.Since(start):
							default:
							}
						} else {
							errs.add("wrong_state")
							t.Logf("user %d via %s during failover: %v, want %v", id, via, p, want[id])
						}
					}()
					<-tick.C
				}
			}
		}()
	}
	wg.Wait()
	var affected []time.Duration
	var worst time.Duration
	for i, d := range answered {
		if d < 0 {
			t.Errorf("user %d not answered with its state by the survivors within 90s", ids[i])
			continue
		}
		worst = max(worst, d)
		if d > time.Second {
			affected = append(affected, d)
		}
	}
	det := <-detected
	if det < 0 {
		t.Errorf("the survivors still list %s 90s after the kill", victim)
	}
	if t.Failed() {
		return
	}
	note("kill failover: docker kill %s; all %d users answered by the survivors with their stored state after %s (users that waited: %d, median %s; failed requests meanwhile: %s); the survivors' membership dropped %s after %s",
		victim, n, secs(worst), len(affected), secs(pct(affected, 50)), errs, victim, secs(det))

	// Survivors accept writes for every user, continuing the versions.
	for i, id := range ids {
		s := c.mustPut(survivors[i%2], id, `{"is_busy": false}`)
		if s.Version < want[id].Version {
			t.Errorf("user %d: version went back from %d to %d", id, want[id].Version, s.Version)
		}
	}

	start = time.Now()
	c.docker("start", vid)
	c.waitSettled(90*time.Second, nodes)
	note("kill recovery: the killed node was started again and all three saw each other %s later", secs(time.Since(start)))
}

// testPartition cuts node3 off the gossip network (its clients and the
// database still reach it), writes through both sides, heals, and checks
// that every answered write survives and every node and watcher converges.
func testPartition(t *testing.T, c *cluster, note noteFunc) {
	const n = 24
	ids := make([]int64, n)
	last := map[int64]Presence{}     // the newest answered write per user
	versions := map[int64][]uint64{} // every answered version per user
	record := func(id int64, s Status) {
		versions[id] = append(versions[id], s.Version)
		last[id] = testkit.StatusPresence(s)
	}
	for i := range ids {
		id := int64(3001 + i)
		ids[i] = id
		if err := c.heartbeat(nodes[i%3], id); err != nil {
			t.Fatalf("before the split: heartbeat %d via %s: %v", id, nodes[i%3], err)
		}
		record(id, c.mustPut(nodes[i%3], id, `{"is_busy": false}`))
	}
	w1, w3 := newWatcher(), newWatcher()
	ws1, err := c.dialWS("node1", 3901, ids, w1.add)
	if err != nil {
		t.Fatalf("before the split: %v", err)
	}
	defer ws1.close()
	ws3, err := c.dialWS("node3", 3903, ids, w3.add)
	if err != nil {
		t.Fatalf("before the split: %v", err)
	}
	defer ws3.close()
	waitWatchers(t, []*watcher{w1, w3}, ids, 15*time.Second, func(id int64, p Presence) bool { return sameState(p, last[id]) })

	// Split.
	iso := c.container("node3")
	c.docker("network", "disconnect", c.gossipNet(), iso)
	var majority, minority time.Duration
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		majority = c.waitViewNoFatal(120*time.Second, []string{"node1", "node2"}, []string{"node1", "node2"})
	}()
	go func() {
		defer wg.Done()
		minority = c.waitViewNoFatal(120*time.Second, []string{"node3"}, []string{"node3"})
	}()
	wg.Wait()
	if majority < 0 || minority < 0 {
		t.Fatalf("the split was not seen within 120s (majority %v, minority %v)", majority, minority)
	}
	note("partition: node3 cut off the gossip network; node1+node2 dropped it after %s, node3 dropped them after %s", secs(majority), secs(minority))

	// Writes through both sides: users 0-7 through node1, 8-15 through
	// node3, 16-23 alternately through both (4 writes each).
	writeErrs := &counts{}
	put := func(via string, id int64, body string) {
		for attempt := 0; attempt < 20; attempt++ {
			s, err := c.putStatus(via, id, body)
			if err == nil {
				record(id, s)
				return
			}
			writeErrs.add(via + "_" + errKind(err))
			time.Sleep(250 * time.Millisecond)
		}
		t.Errorf("user %d: no PUT through %s answered during the split", id, via)
	}
	until := func(m int) string {
		return time.Now().Add(time.Duration(60+m) * time.Minute).UTC().Truncate(time.Second).Format(time.RFC3339)
	}
	for i, id := range ids {
		switch {
		case i < 8:
			put("node1", id, `{"is_busy": true, "busy_until": "`+until(i)+`"}`)
		case i < 16:
			put("node3", id, `{"is_busy": true}`)
		default:
			for r := 0; r < 4; r++ {
				via := []string{"node1", "node3"}[r%2]
				body := `{"is_busy": false}`
				if r%2 == 0 {
					body = `{"is_busy": true, "busy_until": "` + until(r) + `"}`
				}
				put(via, id, body)
			}
		}
	}
	time.Sleep(2 * time.Second) // let pushes arrive

	// What each side answers and pushes during the split.
	served := map[string]int{}
	current := map[string]int{}
	for _, node := range []string{"node1", "node3"} {
		for _, id := range ids {
			p, err := c.presenceTimeout(node, adminID, id, 6*time.Second)
			if err == nil {
				served[node]++
				if sameState(p, last[id]) {
					current[node]++
				}
			}
		}
	}
	pushed1, pushed3 := 0, 0
	for _, id := range ids {
		if p, ok := w1.last(id); ok && sameState(p, last[id]) {
			pushed1++
		}
		if p, ok := w3.last(id); ok && sameState(p, last[id]) {
			pushed3++
		}
	}
	note("partition: during the split node1 answered %d/%d users (%d with the newest write), node3 answered %d/%d (%d newest); watcher on node1 had the newest state of %d/%d, watcher on node3 %d/%d; write retries: %s",
		served["node1"], n, current["node1"], served["node3"], n, current["node3"], pushed1, n, pushed3, n, writeErrs)

	// Heal.
	c.docker("network", "connect", "--ip", c.gossipIP("node3"), c.gossipNet(), iso)
	heal := c.waitView(120*time.Second, nodes, nodes)
	var firstStale error
	conv, err := testkit.Poll(60*time.Second, 100*time.Millisecond, func() (err error) {
		defer func() {
			if firstStale == nil {
				firstStale = err
			}
		}()
		for _, node := range nodes {
			for _, id := range ids {
				p, err := c.presenceTimeout(node, adminID, id, 6*time.Second)
				if err != nil {
					return fmt.Errorf("%d via %s: %w", id, node, err)
				}
				if !sameState(p, last[id]) {
					return fmt.Errorf("%d via %s is %v, want the last answered write %v", id, node, p, last[id])
				}
			}
		}
		for name, w := range map[string]*watcher{"node1": w1, "node3": w3} {
			for _, id := range ids {
				if p, _ := w.last(id); !sameState(p, last[id]) {
					return fmt.Errorf("watcher on %s: %d is %v, want %v", name, id, p, last[id])
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Errorf("after the heal: %v", err)
	}
	// No answered write was lost or overwritten: per user the answered
	// versions rise strictly (the CAS serialized both sides).
	dup := 0
	for _, id := range ids {
		v := versions[id]
		for k := 1; k < len(v); k++ {
			if v[k] <= v[k-1] {
				dup++
				t.Errorf("user %d: answered versions %v do not rise", id, v)
				break
			}
		}
	}
	stale := "nothing"
	if firstStale != nil {
		stale = firstStale.Error()
	}
	note("partition heal: reconnected; all three saw each other after %s, and every node and both watchers showed every user's last answered write %s later (users with non-rising answered versions: %d; first stale answer after the merge: %s)",
		secs(heal), secs(conv), dup, stale)
}
