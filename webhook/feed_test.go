package webhook

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/webhook/signing"
	"github.com/presence-cluster/presence/wire"
)

// specSecret is the Standard Webhooks test vector's secret.
const specSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// request is what the test receiver saw of one request.
type request struct {
	id     string
	body   string
	events []int64 // user ids
	at     time.Time
}

// testReceiver answers each request with the next status of statuses (204
// once they run out), after verifying its signature.
func testReceiver(t *testing.T, statuses ...int) (*httptest.Server, func() []request) {
	t.Helper()
	signer, _ := signing.NewSigner(specSecret)
	var mu sync.Mutex
	var seen []request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id := r.Header.Get(signing.HeaderID)
		if err := signer.Verify(id, r.Header.Get(signing.HeaderTimestamp), r.Header.Get(signing.HeaderSignature), body, time.Now(), time.Minute); err != nil {
			t.Errorf("request %s: %v", id, err)
		}
		var b wire.WebhookBatch
		if err := json.Unmarshal(body, &b); err != nil {
			t.Errorf("request %s: body %s: %v", id, body, err)
		}
		req := request{id: id, body: string(body), at: time.Now()}
		for _, ev := range b.Events {
			req.events = append(req.events, ev.Data.UserID)
		}
		mu.Lock()
		seen = append(seen, req)
		code := http.StatusNoContent
		if len(seen) <= len(statuses) {
			code = statuses[len(seen)-1]
		}
		mu.Unlock()
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []request {
		mu.Lock()
		defer mu.Unlock()
		return append([]request(nil), seen...)
	}
}

func testFeed(t *testing.T, url string, batch int, flush time.Duration, led Ledger) *Feed {
	t.Helper()
	f, err := New(Config{URLs: []string{url}, Secret: specSecret, Batch: batch, Flush: flush,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 40 * time.Millisecond}, Deps{Ledger: led})
	if err != nil {
		t.Fatal(err)
	}
	f.Start()
	t.Cleanup(f.Kill)
	return f
}

func waitRequests(t *testing.T, seen func() []request, n int) []request {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if got := seen(); len(got) >= n {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%d requests, want %d", len(seen()), n)
	return nil
}

func TestFeedBatchesByCountThenFlush(t *testing.T) {
	srv, seen := testReceiver(t)
	const flush = 150 * time.Millisecond
	f := testFeed(t, srv.URL, 3, flush, nil)
	start := time.Now()
	for i := range 7 {
		f.Changed(&messages.UserState{UserId: int64(i + 1), Version: 1, UpdatedAt: time.Now().UnixMicro()})
	}
	got := waitRequests(t, seen, 3)
	sizes := []int{len(got[0].events), len(got[1].events), len(got[2].events)}
	if sizes[0] != 3 || sizes[1] != 3 || sizes[2] != 1 {
		t.Fatalf("batch sizes %v, want [3 3 1]", sizes)
	}
	if d := got[0].at.Sub(start); d >= flush {
		t.Errorf("a full batch waited %v (the flush is %v)", d, flush)
	}
	if d := got[2].at.Sub(start); d < flush {
		t.Errorf("the partial batch left after %v, before the flush of %v", d, flush)
	}
}

func TestFeedRetryKeepsIDAndBody(t *testing.T) {
	srv, seen := testReceiver(t, 500, 503, 500)
	f := testFeed(t, srv.URL, 10, 5*time.Millisecond, nil)
	f.Changed(&messages.UserState{UserId: 1, Version: 1})
	got := waitRequests(t, seen, 4)
	for _, r := range got[1:] {
		if r.id != got[0].id || r.body != got[0].body {
			t.Fatalf("retry %+v differs from the first attempt %+v", r, got[0])
		}
	}
	// The receiver saw the last attempt before the feed read its answer.
	for deadline := time.Now().Add(5 * time.Second); f.Depth() != 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("depth %d 5s after delivery", f.Depth())
		}
	}
}

// fakeLedger is a Ledger in memory.
type fakeLedger struct {
	mu        sync.Mutex
	delivered map[int64]uint64
	confirmed chan map[int64]uint64
}

func (l *fakeLedger) WebhookDelivered(_ context.Context, _ string, ids []int64) (map[int64]uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[int64]uint64{}
	for _, id := range ids {
		if v, ok := l.delivered[id]; ok {
			out[id] = v
		}
	}
	return out, nil
}

func (l *fakeLedger) ConfirmWebhook(_ context.Context, _ string, v map[int64]uint64) error {
	l.confirmed <- maps.Clone(v)
	return nil
}

// TestFeedActivatedDeliversOnlyUndelivered: an activated user whose stored
// version the ledger shows delivered is not sent again; one it does not
// (or does not know) is; a change is always sent; the accepted batch is
// confirmed with the highest version per user.
func TestFeedActivatedDeliversOnlyUndelivered(t *testing.T) {
	srv, seen := testReceiver(t)
	led := &fakeLedger{delivered: map[int64]uint64{1: 5, 2: 2}, confirmed: make(chan map[int64]uint64, 4)}
	f := testFeed(t, srv.URL, 10, 30*time.Millisecond, led)
	f.Activated(&messages.UserState{UserId: 1, Version: 5}) // delivered: skipped
	f.Activated(&messages.UserState{UserId: 2, Version: 3}) // ledger has 2: sent
	f.Activated(&messages.UserState{UserId: 3, Version: 9}) // unknown: sent
	f.Changed(&messages.UserState{UserId: 1, Version: 6})
	got := waitRequests(t, seen, 1)
	if want := []int64{2, 3, 1}; len(got[0].events) != 3 || got[0].events[0] != want[0] || got[0].events[1] != want[1] || got[0].events[2] != want[2] {
		t.Fatalf("events of users %v, want %v", got[0].events, want)
	}
	select {
	case c := <-led.confirmed:
		if want := map[int64]uint64{1: 6, 2: 3, 3: 9}; !maps.Equal(c, want) {
			t.Fatalf("confirmed %v, want %v", c, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("nothing confirmed")
	}
}

// TestFeedWithoutLedgerIgnoresActivations: memory and bolt keep no ledger;
// an activation then sends nothing.
func TestFeedWithoutLedgerIgnoresActivations(t *testing.T) {
	srv, seen := testReceiver(t)
	f := testFeed(t, srv.URL, 10, 5*time.Millisecond, nil)
	f.Activated(&messages.UserState{UserId: 1, Version: 5})
	if f.Depth() != 0 {
		t.Fatalf("depth %d", f.Depth())
	}
	time.Sleep(50 * time.Millisecond)
	if n := len(seen()); n != 0 {
		t.Fatalf("%d requests", n)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr bool
	}{
		{"off", Config{}, false},
		{"ok", Config{URLs: []string{"http://127.0.0.1:9/hook"}, Secret: specSecret}, false},
		{"no secret", Config{URLs: []string{"http://127.0.0.1:9/hook"}}, true},
		{"bad scheme", Config{URLs: []string{"ftp://x/hook"}, Secret: specSecret}, true},
		{"relative", Config{URLs: []string{"/hook"}, Secret: specSecret}, true},
		{"short secret", Config{URLs: []string{"http://x/hook"}, Secret: "short"}, true},
	}
	for _, tc := range tests {
		if err := tc.cfg.Validate(); (err != nil) != tc.wantErr {
			t.Errorf("%s: Validate() = %v, want error %v", tc.name, err, tc.wantErr)
		}
	}
}

// TestReceiverNameHidesPassword: a password in a receiver URL stays out of
// the metrics label, the logs and the ledger key.
func TestReceiverNameHidesPassword(t *testing.T) {
	f, err := New(Config{URLs: []string{"https://hook:s3cret@backend.internal/p"}, Secret: specSecret}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if got := f.senders[0].name; got != "https://hook:xxxxx@backend.internal/p" {
		t.Fatalf("name %q", got)
	}
}

// TestFeedCloseDrains: a graceful stop sends what is queued at once (no
// flush wait); with the receiver failing it gives up after Drain and
// reports what it left.
func TestFeedCloseDrains(t *testing.T) {
	srv, seen := testReceiver(t)
	f := testFeed(t, srv.URL, 10, time.Hour, nil)
	f.Changed(&messages.UserState{UserId: 1, Version: 1})
	f.Changed(&messages.UserState{UserId: 2, Version: 1})
	start := time.Now()
	if left := f.Close(context.Background()); left != 0 {
		t.Fatalf("%d events left", left)
	}
	if got := seen(); len(got) != 1 || len(got[0].events) != 2 {
		t.Fatalf("requests %+v, want one with both events", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Close took %v", d)
	}

	failing, _ := testReceiver(t, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500, 500)
	g, err := New(Config{URLs: []string{failing.URL}, Secret: specSecret, Flush: time.Millisecond,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Drain: 200 * time.Millisecond}, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	g.Start()
	g.Changed(&messages.UserState{UserId: 1, Version: 1})
	time.Sleep(20 * time.Millisecond) // taken into a batch, failing
	g.Changed(&messages.UserState{UserId: 1, Version: 2})
	start = time.Now()
	left := g.Close(context.Background())
	if d := time.Since(start); left != 2 || d < 150*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Close with a failing receiver: %d left after %v, want 2 (in flight and queued) after about 200ms", left, d)
	}
}
