package clustere2e

import (
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// TestPGStopAllAtOnceFlushesAndExitsZero: every node of a cluster on
// PostgreSQL gets SIGTERM at the same moment (a deploy that stops the whole
// service, a node pool drained at once). Each must flush the last_seen
// values it holds behind (heartbeats change nothing else, so they are
// written in batches, here every 30s: only the shutdown flush writes
// them) and exit 0, since nothing was lost.
func TestPGStopAllAtOnceFlushesAndExitsZero(t *testing.T) {
	pc := startPGCluster(t, map[string]string{
		"PRESENCE_LAST_SEEN_FLUSH": "30s",
	}, false)
	c, conn := pc.c, pc.conn

	users := testkit.UserIDs(7601, 30)
	for i, u := range users {
		c.Proc(i % 3).API.Must(t).Heartbeat(u) // creates the user: a synchronous write
	}
	time.Sleep(200 * time.Millisecond)
	beat := map[int64]time.Time{}
	for i, u := range users {
		beat[u] = time.Now()
		c.Proc((i + 1) % 3).API.Must(t).Heartbeat(u) // last_seen only: written behind
	}
	before := pgRows(t, conn, users)

	var wg sync.WaitGroup
	codes := make([]int, 3)
	took := make([]time.Duration, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			took[i], codes[i] = c.Term(i, 30*time.Second)
		}()
	}
	wg.Wait()
	t.Logf("SIGTERM to exit: %v, exit codes %v", took, codes)
	for i, code := range codes {
		if code != 0 {
			t.Errorf("%s exited with code %d after SIGTERM (a whole-cluster stop):\n    %s", c.Name(i), code, c.Proc(i).Tail(4))
		}
	}

	after := pgRows(t, conn, users)
	stale := 0
	for _, u := range users {
		// The stored value is the node's clock at the heartbeat, a little
		// after the client sent it.
		if got := time.UnixMicro(after[u].LastSeen); got.Before(beat[u].Add(-time.Millisecond)) {
			stale++
			t.Errorf("user %d: stored last_seen %s (was %s before the stop), last heartbeat answered at %s: not flushed at shutdown",
				u, got.Format("15:04:05.000000"), time.UnixMicro(before[u].LastSeen).Format("15:04:05.000000"), beat[u].Format("15:04:05.000000"))
		}
	}
	if stale == 0 {
		t.Logf("every node flushed its pending last_seen at shutdown (%d users)", len(users))
	}
}
