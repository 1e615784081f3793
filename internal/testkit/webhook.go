package testkit

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/presence-cluster/presence/webhook/signing"
	"github.com/presence-cluster/presence/wire"
)

// WebhookSecret is the signing secret the tests configure
// (PRESENCE_WEBHOOK_SECRET).
const WebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

// WebhookReceiver is a change-feed receiver on a loopback port, built as the
// README tells users to build one: it verifies each request's signature,
// dedupes events by (user_id, version) and records, per user, the versions
// in the order they first arrived. It can answer an error status, answer
// slowly, or go down (connections refused) and come back on the same port.
type WebhookReceiver struct {
	URL    string
	addr   string
	signer *signing.Signer

	mu         sync.Mutex
	srv        *http.Server
	status     int
	delay      time.Duration
	attempts   map[string]int      // webhook-id -> requests with it
	bodies     map[string][32]byte // webhook-id -> hash of its first body
	accepted   map[string]bool     // webhook-ids answered 2xx
	idReuse    int                 // requests whose id came with another body
	badSig     int
	requests   int
	seen       map[[2]int64]bool
	versions   map[int64][]uint64 // first arrivals, per user
	outOfOrder []string
}

// NewWebhookReceiver starts a receiver that verifies with WebhookSecret; it
// stops when the test ends.
func NewWebhookReceiver(t testing.TB) *WebhookReceiver {
	t.Helper()
	return NewWebhookReceiverSecret(t, WebhookSecret)
}

// NewWebhookReceiverSecret starts a receiver that verifies with secret.
func NewWebhookReceiverSecret(t testing.TB, secret string) *WebhookReceiver {
	t.Helper()
	signer, err := signing.NewSigner(secret)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &WebhookReceiver{addr: ln.Addr().String(), signer: signer, attempts: map[string]int{},
		bodies: map[string][32]byte{}, accepted: map[string]bool{}, seen: map[[2]int64]bool{}, versions: map[int64][]uint64{}}
	r.URL = "http://" + r.addr + "/hook"
	r.serve(ln)
	t.Cleanup(r.Down)
	return r
}

func (r *WebhookReceiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.srv = srv
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// SetStatus makes the receiver answer code without processing (0: 204).
func (r *WebhookReceiver) SetStatus(code int) { r.mu.Lock(); r.status = code; r.mu.Unlock() }

// SetDelay makes the receiver wait d before answering each request.
func (r *WebhookReceiver) SetDelay(d time.Duration) { r.mu.Lock(); r.delay = d; r.mu.Unlock() }

// Down closes the listener and every connection: requests are refused.
func (r *WebhookReceiver) Down() {
	r.mu.Lock()
	srv := r.srv
	r.srv = nil
	r.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// Up listens again on the same port.
func (r *WebhookReceiver) Up(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		t.Fatalf("receiver up again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

func (r *WebhookReceiver) handle(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return
	}
	id := req.Header.Get(signing.HeaderID)
	r.mu.Lock()
	r.requests++
	r.attempts[id]++
	sum := sha256.Sum256(body)
	if first, ok := r.bodies[id]; !ok {
		r.bodies[id] = sum
	} else if first != sum {
		r.idReuse++
	}
	status, delay := r.status, r.delay
	r.mu.Unlock()
	if delay > 0 {
		time.Sleep(delay)
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	err = r.signer.Verify(id, req.Header.Get(signing.HeaderTimestamp), req.Header.Get(signing.HeaderSignature), body, time.Now(), 5*time.Minute)
	if err != nil {
		r.mu.Lock()
		r.badSig++
		r.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var batch wire.WebhookBatch
	var raw struct{ Events []json.RawMessage }
	if json.Unmarshal(body, &batch) != nil || json.Unmarshal(body, &raw) != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, ev := range raw.Events {
		// Each event is a presence_update frame as the WebSocket sends it:
		// the AsyncAPI document describes both.
		checkFrame(ev)
	}
	r.record(batch)
	r.mu.Lock()
	r.accepted[id] = true
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *WebhookReceiver) record(batch wire.WebhookBatch) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ev := range batch.Events {
		if ev.Type != wire.TypePresenceUpdate || ev.Data == nil {
			r.outOfOrder = append(r.outOfOrder, fmt.Sprintf("bad event %+v", ev))
			continue
		}
		key := [2]int64{ev.Data.UserID, int64(ev.Data.Version)}
		if r.seen[key] {
			continue
		}
		r.seen[key] = true
		vs := r.versions[ev.Data.UserID]
		if n := len(vs); n > 0 && vs[n-1] > ev.Data.Version {
			r.outOfOrder = append(r.outOfOrder, fmt.Sprintf("user %d: version %d after %d", ev.Data.UserID, ev.Data.Version, vs[n-1]))
		}
		r.versions[ev.Data.UserID] = append(vs, ev.Data.Version)
	}
}

// Latest is the highest version received for user (0: none).
func (r *WebhookReceiver) Latest(user int64) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	vs := r.versions[user]
	if len(vs) == 0 {
		return 0
	}
	return vs[len(vs)-1]
}

// Versions are the distinct versions received for user, in arrival order.
func (r *WebhookReceiver) Versions(user int64) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]uint64(nil), r.versions[user]...)
}

// WebhookStats sums up what a receiver saw.
type WebhookStats struct {
	Requests int // every request, whatever it was answered
	BadSig   int // requests whose signature did not verify
	Retried  int // webhook-ids that came more than once
	// RetriedAccepted are retried webhook-ids finally answered 2xx: a
	// batch that failed and was accepted later under its first id.
	RetriedAccepted int
	// IDReuse counts requests whose webhook-id came before with another
	// body (must stay 0: a retry sends the same batch).
	IDReuse    int
	OutOfOrder []string // per-user version order violations
}

// Stats returns what the receiver saw so far.
func (r *WebhookReceiver) Stats() WebhookStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := WebhookStats{Requests: r.requests, BadSig: r.badSig, OutOfOrder: append([]string(nil), r.outOfOrder...)}
	s.IDReuse = r.idReuse
	for id, n := range r.attempts {
		if n > 1 {
			s.Retried++
			if r.accepted[id] {
				s.RetriedAccepted++
			}
		}
	}
	return s
}

// WaitLatest waits until every user in want has reached at least its
// version, and fails the test with what is missing otherwise.
func (r *WebhookReceiver) WaitLatest(t testing.TB, want map[int64]uint64, timeout time.Duration) {
	t.Helper()
	var missing error
	deadline := time.Now().Add(timeout)
	for {
		missing = nil
		for u, v := range want {
			if got := r.Latest(u); got < v {
				missing = errors.Join(missing, fmt.Errorf("user %d: latest %d, want %d", u, got, v))
			}
		}
		if missing == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook receiver after %s: %v", timeout, missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
