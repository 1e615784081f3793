package e2e

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/webhook"
)

// webhookNode starts a standalone node whose change feed posts to urls,
// with short batching and backoff so the tests run in seconds.
func webhookNode(t *testing.T, queue int, urls ...string) (*testNode, *testkit.REST) {
	t.Helper()
	cfg := node.Config{}
	cfg.Webhook = webhook.Config{
		URLs: urls, Secret: testkit.WebhookSecret, Batch: 10, Flush: 20 * time.Millisecond, Queue: queue,
		Timeout: 3 * time.Second, MinBackoff: 50 * time.Millisecond, MaxBackoff: 300 * time.Millisecond, Drain: 500 * time.Millisecond,
	}
	n := startNode(t, cfg)
	return n, testkit.NewREST(n.Addr(), testkit.NewTokens([]byte(testSecret)))
}

// toggleBusy makes each user change rounds times (is_busy flips, so every
// write is a visible change), users in parallel, and returns the versions
// the writes were answered with, per user, in order.
func toggleBusy(t *testing.T, api *testkit.REST, users []int64, rounds int) map[int64][]uint64 {
	t.Helper()
	var mu sync.Mutex
	answered := map[int64][]uint64{}
	var wg sync.WaitGroup
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range rounds {
				st, err := api.PutOwn(u, fmt.Sprintf(`{"is_busy": %t}`, r%2 == 0))
				if err != nil {
					t.Errorf("PUT user %d: %v", u, err)
					return
				}
				mu.Lock()
				answered[u] = append(answered[u], st.Version)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return answered
}

func latestOf(answered map[int64][]uint64) map[int64]uint64 {
	want := map[int64]uint64{}
	for u, vs := range answered {
		want[u] = slices.Max(vs)
	}
	return want
}

// TestWebhookEveryChangeInOrderSigned: 12 users change 8 times each in
// parallel while a WebSocket session watches one of them. The receiver gets
// every answered version of every user, in version order (including every
// version the WebSocket pushed), every request signed with the secret; a second
// receiver that verifies with another secret rejects every request (and its
// retries do not hold up the first receiver).
func TestWebhookEveryChangeInOrderSigned(t *testing.T) {
	good := testkit.NewWebhookReceiver(t)
	wrong := testkit.NewWebhookReceiverSecret(t, "whsec_QUJDREVGR0hJSktMTU5PUFFSU1RVVldY")
	n, api := webhookNode(t, 0, good.URL, wrong.URL)
	users := testkit.UserIDs(7001, 12)
	ws, err := testkit.DialWS(n.Addr(), testkit.WSQuery(mint(t, 7100, "watcher", false), strconv.FormatInt(users[0], 10)), testkit.WSOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	api.Must(t).Heartbeat(users[0]) // creates user 0 before the watch snapshot
	time.Sleep(100 * time.Millisecond)
	answered := toggleBusy(t, api, users, 8)
	good.WaitLatest(t, latestOf(answered), 10*time.Second)

	for _, u := range users {
		got := good.Versions(u)
		want := answered[u]
		if u == users[0] {
			want = append([]uint64{got[0]}, want...) // the heartbeat's creation
		}
		if !slices.Equal(got, want) {
			t.Errorf("user %d: receiver got versions %v, writes answered %v", u, got, want)
		}
	}
	// Every version the WebSocket pushed is in the feed, and both end at
	// the same one (the feed has every answered version, checked above).
	fed := good.Versions(users[0])
	var pushed []uint64
	for _, up := range ws.Updates(users[0]) {
		if !slices.Contains(fed, up.Version) {
			t.Errorf("user %d: WebSocket pushed version %d, the feed did not deliver it (feed %v)", users[0], up.Version, fed)
		}
		pushed = append(pushed, up.Version)
	}
	if len(pushed) == 0 || slices.Max(pushed) != slices.Max(fed) {
		t.Errorf("user %d: WebSocket pushed %v, feed delivered %v", users[0], pushed, fed)
	}
	s := good.Stats()
	if s.BadSig != 0 || len(s.OutOfOrder) != 0 || s.IDReuse != 0 {
		t.Errorf("good receiver: %+v", s)
	}
	ws2 := wrong.Stats()
	if ws2.Requests == 0 || ws2.BadSig != ws2.Requests || wrong.Latest(users[0]) != 0 {
		t.Errorf("receiver with another secret: %+v, latest %d (every request must fail verification)", ws2, wrong.Latest(users[0]))
	}
	t.Logf("good receiver: %d requests for %d events; wrong-secret receiver: %d requests, all rejected",
		s.Requests, len(users)*8+1, ws2.Requests)
}

// TestWebhookReceiverFailingThenDownLosesNothing: the receiver answers 500
// for 10s, then refuses connections for 10s, while users keep changing; once
// it is back, every version arrives in order, and the batches that failed
// were accepted later under their first webhook-id.
func TestWebhookReceiverFailingThenDownLosesNothing(t *testing.T) {
	rcv := testkit.NewWebhookReceiver(t)
	n, api := webhookNode(t, 0, rcv.URL)
	users := []int64{7201, 7202, 7203, 7204, 7205}
	rcv.SetStatus(http.StatusInternalServerError)
	all := map[int64][]uint64{}
	merge := func(m map[int64][]uint64) {
		for u, vs := range m {
			all[u] = append(all[u], vs...)
		}
	}
	for range 5 {
		merge(toggleBusy(t, api, users, 2))
		time.Sleep(2 * time.Second)
	}
	rcv.Down()
	for range 5 {
		merge(toggleBusy(t, api, users, 2))
		time.Sleep(2 * time.Second)
	}
	if got := rcv.Latest(users[0]); got != 0 {
		t.Fatalf("receiver processed version %d while failing", got)
	}
	rcv.SetStatus(0)
	rcv.Up(t)
	merge(toggleBusy(t, api, users, 2))
	rcv.WaitLatest(t, latestOf(all), 10*time.Second)
	for _, u := range users {
		if got := rcv.Versions(u); !slices.Equal(got, all[u]) {
			t.Errorf("user %d: receiver got %v, writes answered %v", u, got, all[u])
		}
	}
	s := rcv.Stats()
	if s.RetriedAccepted == 0 || s.IDReuse != 0 || len(s.OutOfOrder) != 0 || s.BadSig != 0 {
		t.Errorf("receiver stats %+v: want failed batches accepted later under their first id, no id reused for another body", s)
	}
	failed, _ := api.Metric(`presence_webhook_failed_total{reason="status",receiver="` + rcv.URL + `"}`)
	refused, _ := api.Metric(`presence_webhook_failed_total{reason="network",receiver="` + rcv.URL + `"}`)
	if failed == 0 || refused == 0 {
		t.Errorf("failed_total: status %v, network %v; want both counted", failed, refused)
	}
	t.Logf("%d requests, %d webhook-ids retried; failures: %v status, %v network; node %s", s.Requests, s.Retried, failed, refused, n.Name())
}

// TestWebhookOverflowDeliversLatest: with a queue of 5 and the receiver
// down, 20 users change 3 times each. The overflow is counted; when the
// receiver comes back, every user's latest version arrives, in order per
// user (intermediate versions may be missing).
func TestWebhookOverflowDeliversLatest(t *testing.T) {
	rcv := testkit.NewWebhookReceiver(t)
	rcv.Down()
	_, api := webhookNode(t, 5, rcv.URL)
	users := testkit.UserIDs(7301, 20)
	answered := toggleBusy(t, api, users, 3)
	dropped, err := api.Metric(`presence_webhook_dropped_total{receiver="` + rcv.URL + `"}`)
	if err != nil || dropped == 0 {
		t.Fatalf("dropped_total %v (%v): want overflow counted", dropped, err)
	}
	depth, _ := api.Metric("presence_webhook_queue_depth")
	rcv.Up(t)
	rcv.WaitLatest(t, latestOf(answered), 10*time.Second)
	s := rcv.Stats()
	if len(s.OutOfOrder) != 0 || s.BadSig != 0 {
		t.Errorf("receiver stats %+v", s)
	}
	got := 0
	for _, u := range users {
		got += len(rcv.Versions(u))
	}
	t.Logf("60 changes, queue 5: %v overflowed, depth %v while down, %d versions delivered after recovery", dropped, depth, got)
}

// TestWebhookSlowReceiverDoesNotSlowWrites: the receiver takes 2s per
// request; PUT latency stays that of a node without a feed.
func TestWebhookSlowReceiverDoesNotSlowWrites(t *testing.T) {
	rcv := testkit.NewWebhookReceiver(t)
	rcv.SetDelay(2 * time.Second)
	_, api := webhookNode(t, 0, rcv.URL)
	plain := startNode(t, node.Config{})
	plainAPI := testkit.NewREST(plain.Addr(), testkit.NewTokens([]byte(testSecret)))
	measure := func(api *testkit.REST, base int64) time.Duration {
		var lat []time.Duration
		for i := range 200 {
			start := time.Now()
			if _, err := api.PutOwn(base+int64(i%10), fmt.Sprintf(`{"is_busy": %t}`, i%2 == 0)); err != nil {
				t.Fatal(err)
			}
			lat = append(lat, time.Since(start))
		}
		sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
		return lat[len(lat)*99/100]
	}
	off := measure(plainAPI, 7401)
	on := measure(api, 7401)
	t.Logf("PUT p99: %v without a feed, %v with a receiver taking 2s per request", off, on)
	if on > 100*time.Millisecond && on > 5*off {
		t.Fatalf("PUT p99 %v with a slow receiver vs %v without a feed", on, off)
	}
	if rcv.Stats().Requests == 0 {
		t.Fatal("the slow receiver got no request")
	}
}
