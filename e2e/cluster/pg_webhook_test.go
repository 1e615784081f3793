package clustere2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
)

// TestPGWebhookCrashDeliversAnswered: three presenced processes share a
// PostgreSQL schema and post their change feed to one receiver. The
// receiver answers 500 while 30 users become busy through random nodes, so
// every answered change is still undelivered, and writers keep changing
// them through every node while one node is SIGKILLed; then the receiver
// recovers. Every user's answered final
// version reaches the receiver, in order per user, including the users the
// dead node owned: their new owner activates them (a read through a
// survivor) and delivers what the ledger shows undelivered.
func TestPGWebhookCrashDeliversAnswered(t *testing.T) {
	rcv := testkit.NewWebhookReceiver(t)
	pc := startPGCluster(t, map[string]string{
		"PRESENCE_WEBHOOK_URL":         rcv.URL,
		"PRESENCE_WEBHOOK_SECRET":      testkit.WebhookSecret,
		"PRESENCE_WEBHOOK_FLUSH":       "20ms",
		"PRESENCE_WEBHOOK_MAX_BACKOFF": "300ms",
	}, false)
	c := pc.c
	const n, victim = 30, 2
	users := make([]int64, n)
	created := map[int64]uint64{}
	rng := rand.New(rand.NewPCG(15, 1))
	for i := range users {
		users[i] = int64(8101 + i)
		st := c.Proc(rng.IntN(3)).API.Must(t).PutOwn(users[i], `{"is_online": true}`)
		created[users[i]] = st.Version
	}
	// The creations are delivered (and confirmed in the ledger) first.
	rcv.WaitLatest(t, created, 15*time.Second)
	hosted, err := c.Hosted(0)
	if err != nil {
		t.Fatal(err)
	}
	if hosted[c.Name(victim)] == 0 {
		t.Fatalf("%s hosts no user (%v): the test needs some", c.Name(victim), hosted)
	}

	rcv.SetStatus(http.StatusInternalServerError)
	final := map[int64]uint64{}
	for _, u := range users {
		// Through survivors only, so every answer is known.
		st := c.Proc(rng.IntN(2)).API.Must(t).PutOwn(u, `{"is_busy": true}`)
		final[u] = st.Version
	}
	// Writers keep changing every user through every node while p3 is
	// killed; each acknowledged version counts, failures do not.
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			api := c.Proc(w).API.WithTimeout(2 * time.Second)
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				u := users[(k*7+w*11)%n]
				st, err := api.PutOwn(u, fmt.Sprintf(`{"is_busy": %t}`, k%2 == 0))
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				final[u] = max(final[u], st.Version)
				mu.Unlock()
			}
		}()
	}
	time.Sleep(time.Second)
	// The writers stop as the kill lands (requests in flight finish, some
	// answered by the new owners): the dead node's users must then be
	// delivered from the store, by the ledger check, not by new writes.
	c.Kill9(victim)
	close(stop)
	wg.Wait()
	if got := rcv.Latest(users[0]); got > created[users[0]] {
		t.Fatalf("receiver processed version %d while answering 500", got)
	}
	rcv.SetStatus(0)
	start := time.Now()
	// A read through a survivor activates each user on its owner; the dead
	// node's users on their new owners once the survivors see it gone.
	testkit.Eventually(t, 30*time.Second, "every user readable on the survivors", func() error {
		for _, u := range users {
			if _, err := c.Proc(0).API.Presence(u, u); err != nil {
				return fmt.Errorf("user %d: %w", u, err)
			}
		}
		return nil
	})
	rcv.WaitLatest(t, final, 30*time.Second)
	s := rcv.Stats()
	if len(s.OutOfOrder) != 0 || s.BadSig != 0 {
		t.Errorf("receiver stats %+v", s)
	}
	t.Logf("%s hosted %d of %d users; every acknowledged final version delivered %v after the receiver recovered; %d requests, %d ids retried",
		c.Name(victim), hosted[c.Name(victim)], n, time.Since(start).Round(time.Millisecond), s.Requests, s.Retried)
	c.CheckLogs()
}
