package clustere2e

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// TestPGColdStartWhileDatabaseDownRearmsTimers: the whole cluster is
// restarted (SIGTERM, then start) while PostgreSQL is unreachable, as when
// the database and the service come up together. The nodes serve at once
// (503s, /readyz 503) and connect when the database is back. Busy statuses
// stored before the restart must still end on time: nothing but the
// timers touches these users, so this is read in the database itself (an
// API read would activate the user and so mask a timer that nobody armed).
func TestPGColdStartWhileDatabaseDownRearmsTimers(t *testing.T) {
	pc := startPGCluster(t, nil, true)
	c, conn, proxy := pc.c, pc.conn, pc.proxy

	users := []int64{7501, 7502, 7503, 7504, 7505, 7506}
	due := time.Now().Add(12 * time.Second).Truncate(time.Microsecond)
	createUsers(t, c, users, `{"is_busy": true, "busy_until": "`+testkit.RFC3339(due)+`"}`)

	// Stop every node gracefully, then cut the database off and start
	// them all again.
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// The exit code of a whole-cluster stop is checked by
			// TestPGStopAllAtOnceFlushesAndExitsZero.
			c.Term(i, 30*time.Second)
		}()
	}
	wg.Wait()
	proxy.cut(pgReset)
	cut := time.Now()
	c.StartAll()
	// Up but not ready: writes 503, /readyz 503.
	testkit.Eventually(t, 30*time.Second, "restarted nodes answer /readyz 503 while the database is down", func() error {
		c.CheckAlive()
		for i := range 3 {
			err := c.Proc(i).API.Call(0, "GET", "/readyz", "", nil)
			if !testkit.IsHTTP(err, 503) {
				return fmt.Errorf("%s /readyz: %v", c.Name(i), err)
			}
		}
		return nil
	})
	_, err := c.Proc(0).API.PutOwn(7599, `{"is_busy": true}`)
	if !testkit.IsHTTP(err, 503) {
		t.Errorf("PUT while the database is down: %v, want 503", err)
	}
	time.Sleep(3*time.Second - time.Since(cut))
	restored := time.Now()
	proxy.restore()
	ready := c.WaitFormed(30*time.Second, "every node ready after the database is back")
	t.Logf("database cut for %v across the restart; every node ready %v after the restore; busy_until %s is %v after the restore",
		restored.Sub(cut).Round(time.Millisecond), ready.Round(time.Millisecond), due.Format("15:04:05.000"),
		due.Sub(restored).Round(time.Millisecond))
	if time.Now().After(due.Add(-time.Second)) {
		t.Fatalf("the cluster came back too late (%s) for the busy_until chosen (%s)", time.Now().Format("15:04:05.000"), due.Format("15:04:05.000"))
	}

	time.Sleep(time.Until(due.Add(1500 * time.Millisecond)))
	rows := pgRows(t, conn, users)
	stuck := 0
	for _, u := range users {
		r := rows[u]
		if r.IsBusy {
			stuck++
			t.Errorf("user %d: still busy in the database 1.5s after busy_until %s (row %+v): no node re-armed its timer after the database came back",
				u, due.Format("15:04:05.000"), r)
		}
	}
	// Where the nodes said so.
	for i := range 3 {
		b, _ := os.ReadFile(c.Proc(i).Log)
		for line := range strings.SplitSeq(string(b), "\n") {
			if strings.Contains(line, "re-arm") || strings.Contains(line, "store connected") {
				t.Logf("%s: %s", c.Name(i), strings.TrimSpace(line))
			}
		}
	}
	if stuck == 0 {
		t.Logf("every busy status ended on time after the cold start")
	} else {
		// A read activates the user, which applies the passed deadline:
		// the records are right again only once something touches them.
		p, err := c.Proc(0).API.Presence(testkit.AdminID, users[0])
		t.Logf("%d of %d users still busy in the database; a GET now activates user %d and answers %s (err %v)",
			stuck, len(users), users[0], p, err)
	}
	c.CheckLogs()
}
