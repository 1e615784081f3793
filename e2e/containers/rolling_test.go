//go:build containers

package containers

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// client is one user of the rolling-restart test: a WebSocket session that
// watches every client user and reconnects to the next node when it is
// closed, and a REST loop that heartbeats every 500 ms and flips busy every
// third tick, moving to the next node on any error. A PUT that got no answer
// is repeated (same body) until one is answered, so the last answered PUT
// is the state the user must end in.
type client struct {
	c     *cluster
	id    int64
	watch []int64
	w     *watcher

	wsNode, restNode int

	mu       sync.Mutex
	answered []Status // answered PUTs, in order
	wsConn   *wsConn
	sessions int // WebSocket sessions opened
}

type rollStats struct {
	wsClosed   counts // sessions ended, by close code
	wsDialErrs counts // failed reconnects, by error kind
	restErrs   counts // failed requests, by operation and error kind
	heartbeats counts
	puts       counts
	wrongUser  counts // answers about another user: never acceptable
}

func (cl *client) runWS(stop <-chan struct{}, st *rollStats, wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case <-stop:
			return
		default:
		}
		ws, err := cl.c.dialWS(nodes[cl.wsNode], cl.id, cl.watch, cl.w.add)
		if err != nil {
			st.wsDialErrs.add(errKind(err))
			cl.wsNode = (cl.wsNode + 1) % len(nodes)
			time.Sleep(200 * time.Millisecond)
			continue
		}
		cl.mu.Lock()
		cl.wsConn = ws
		cl.sessions++
		cl.mu.Unlock()
		select {
		case <-stop:
			return // the session stays open until closeWS
		case <-ws.Done():
		}
		code := ws.closeCode()
		st.wsClosed.add(strconv.Itoa(code))
		cl.wsNode = (cl.wsNode + 1) % len(nodes)
		if code != 1012 { // 1012: the node drains, reconnect at once
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func (cl *client) closeWS() {
	cl.mu.Lock()
	ws := cl.wsConn
	cl.mu.Unlock()
	if ws != nil {
		ws.close()
	}
}

func (cl *client) runREST(stop <-chan struct{}, st *rollStats, wg *sync.WaitGroup) {
	defer wg.Done()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	busy := false
	for k := 0; ; k++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if err := cl.c.heartbeat(nodes[cl.restNode], cl.id); err != nil {
			st.restErrs.add("heartbeat_" + errKind(err))
			cl.restNode = (cl.restNode + 1) % len(nodes)
		} else {
			st.heartbeats.add("ok")
		}
		if k%3 != 2 {
			continue
		}
		busy = !busy
		body := `{"is_busy": ` + strconv.FormatBool(busy) + `}`
		deadline := time.Now().Add(30 * time.Second)
		for {
			s, err := cl.c.putStatus(nodes[cl.restNode], cl.id, body)
			if err == nil {
				cl.mu.Lock()
				cl.answered = append(cl.answered, s)
				cl.mu.Unlock()
				st.puts.add("answered")
				break
			}
			st.restErrs.add("put_" + errKind(err))
			if errors.Is(err, errWrongUser) {
				st.wrongUser.add(err.Error())
			}
			cl.restNode = (cl.restNode + 1) % len(nodes)
			if time.Now().After(deadline) {
				st.puts.add("never_answered")
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// testRollingRestart restarts every node in turn (docker restart: SIGTERM,
// graceful drain, start, wait for /readyz and the membership) while clients
// heartbeat, flip busy and watch each other. No answered change may be lost,
// and sessions move to the other nodes.
func testRollingRestart(t *testing.T, c *cluster, note noteFunc) {
	const n = 12
	ids := testkit.UserIDs(4001, n)
	clients := make([]*client, n)
	for i, id := range ids {
		clients[i] = &client{c: c, id: id, watch: ids, w: newWatcher(), wsNode: i % 3, restNode: (i + 1) % 3}
	}
	st := &rollStats{}
	stopREST, stopWS := make(chan struct{}), make(chan struct{})
	var restWG, wsWG sync.WaitGroup
	for _, cl := range clients {
		wsWG.Add(1)
		go cl.runWS(stopWS, st, &wsWG)
	}
	// Everybody online and seen by everybody before the restarts.
	ws := make([]*watcher, n)
	for i, cl := range clients {
		ws[i] = cl.w
	}
	waitWatchers(t, ws, ids, 20*time.Second, func(id int64, p Presence) bool { return p.IsOnline })
	for _, cl := range clients {
		restWG.Add(1)
		go cl.runREST(stopREST, st, &restWG)
	}
	time.Sleep(3 * time.Second)

	begin := time.Now()
	var steps []string
	for _, node := range nodes {
		id := c.container(node)
		t0 := time.Now()
		c.docker("restart", "-t", "30", id)
		restarted := time.Since(t0)
		if _, err := testkit.Poll(60*time.Second, 100*time.Millisecond, func() error {
			if !c.ready(node) {
				return fmt.Errorf("%s not ready", node)
			}
			return nil
		}); err != nil {
			t.Fatalf("%s did not become ready after its restart", node)
		}
		ready := time.Since(t0)
		c.waitView(60*time.Second, nodes, nodes)
		steps = append(steps, fmt.Sprintf("%s: restart %s, ready %s, members %s", node, secs(restarted), secs(ready), secs(time.Since(t0))))
		time.Sleep(3 * time.Second)
	}
	total := time.Since(begin)
	time.Sleep(2 * time.Second)
	close(stopREST)
	restWG.Wait()

	// Checks, with the sessions still open (the users stay online).
	final := map[int64]Presence{}
	lost := 0
	answeredTotal := 0
	for _, cl := range clients {
		cl.mu.Lock()
		a := append([]Status(nil), cl.answered...)
		cl.mu.Unlock()
		answeredTotal += len(a)
		for k := 1; k < len(a); k++ {
			if a[k].Version <= a[k-1].Version {
				t.Errorf("user %d: answered PUT versions do not rise: %d then %d", cl.id, a[k-1].Version, a[k].Version)
				lost++
			}
		}
		if len(a) == 0 {
			t.Errorf("user %d: no PUT answered at all", cl.id)
			continue
		}
		lastA := a[len(a)-1]
		d, err := testkit.Poll(30*time.Second, 200*time.Millisecond, func() error {
			var first Presence
			for k, node := range nodes {
				p, err := c.presence(node, adminID, cl.id)
				if err != nil {
					return fmt.Errorf("via %s: %w", node, err)
				}
				if k == 0 {
					first = p
				} else if !sameState(p, first) {
					return fmt.Errorf("nodes disagree: %v vs %v", first, p)
				}
			}
			if !first.IsOnline || first.IsBusy != lastA.IsBusy || first.Version < lastA.Version {
				return fmt.Errorf("presence %v; last answered PUT %v, session open", first, testkit.StatusPresence(lastA))
			}
			final[cl.id] = first
			return nil
		})
		if err != nil {
			t.Errorf("user %d after the rolling restart: %v (after %v)", cl.id, err, d)
			lost++
		}
	}
	// Every watcher ends with every user's final state.
	if _, err := testkit.Poll(30*time.Second, 100*time.Millisecond, func() error {
		for _, cl := range clients {
			for _, id := range ids {
				if p, _ := cl.w.last(id); p.Version != final[id].Version {
					return fmt.Errorf("watcher %d: user %d at %v, final %v", cl.id, id, p, final[id])
				}
			}
		}
		return nil
	}); err != nil {
		t.Errorf("watchers: %v", err)
	}
	// Offline flaps: a client user seen offline by anyone, though its
	// session was only ever moved from one node to another.
	flaps := 0
	for _, cl := range clients {
		for _, id := range ids {
			for _, p := range cl.w.updates(id) {
				if !p.IsOnline {
					flaps++
					t.Logf("watcher %d saw user %d offline: %v", cl.id, id, p)
				}
			}
		}
	}
	close(stopWS)
	wsWG.Wait()
	sessions := 0
	for _, cl := range clients {
		sessions += cl.sessions
		cl.closeWS()
	}
	if n := st.wrongUser.total(); n > 0 {
		t.Errorf("%d PUTs were answered with another user's record (identity confusion): %s", n, st.wrongUser.String())
	}
	if flaps > 0 {
		t.Errorf("%d offline updates of users whose sessions only moved between nodes", flaps)
	}
	for _, s := range steps {
		note("rolling restart: %s", s)
	}
	note("rolling restart: %d nodes in %s with %d clients; %d heartbeats and %d PUTs answered, answered changes lost: %d, offline flaps: %d",
		len(nodes), secs(total), n, st.heartbeats.total(), answeredTotal, lost, flaps)
	note("rolling restart: WebSocket sessions ended by close code: %s; reconnects: %d (sessions opened %d for %d clients); failed reconnect dials: %s",
		st.wsClosed.String(), sessions-n, sessions, n, st.wsDialErrs.String())
	note("rolling restart: failed REST requests (each retried on the next node): %s; PUTs never answered: %d",
		st.restErrs.String(), st.puts.m["never_answered"])
}
