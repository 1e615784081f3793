package routing

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/presence-cluster/presence/cluster"
)

// Fail fast: requests for the users of a member that stopped answering do
// not each wait for the request timeout. Once the member is suspected (by
// memberlist, or because a remote request to it just timed out and the
// member then failed a liveness probe, or the request could not be
// delivered), requests for its users are refused at once with
// *OwnerDown (a 503 with Retry-After) until failure detection declares it
// dead and its users move, or until it answers again. A new activation of
// those users elsewhere is not attempted: it would run their timers and
// pushes twice while the member may still be alive, and the version
// compare-and-set would only settle the writes, not the rest.
const (
	// remoteAttempt bounds one attempt at a remote owner. With the
	// liveness probe that follows an attempt that ran out (probe.go),
	// remoteAttempt + probeTimeout is the longest a request waits for a
	// member that has just stopped answering.
	remoteAttempt = time.Second
	// undeliveredFor is how long one request retries a remote owner the
	// transport cannot reach before it suspects the owner.
	undeliveredFor = 500 * time.Millisecond
	// suspectFor is how long a member whose request failed is treated as
	// down; the first request after it tries the member again.
	suspectFor = 2 * time.Second
	// DownRetryAfter is the Retry-After advised with *OwnerDown.
	DownRetryAfter = time.Second
)

// OwnerDown refuses a request whose user's owner is suspected to be down.
// It wraps ErrUnavailable.
type OwnerDown struct {
	UserID int64
	// Member is the suspected owner's memberlist name.
	Member string
	// RetryAfter is when the client may try again.
	RetryAfter time.Duration
}

func (e *OwnerDown) Error() string {
	return fmt.Sprintf("user %d: owner %s is not answering (suspected down): %v", e.UserID, e.Member, ErrUnavailable)
}

// Unwrap returns ErrUnavailable.
func (e *OwnerDown) Unwrap() error { return ErrUnavailable }

// RetryAfter is the wait a client is advised after err: DownRetryAfter for
// an owner suspected down, 0 (no advice) otherwise.
func RetryAfter(err error) time.Duration {
	var d *OwnerDown
	if errors.As(err, &d) {
		return d.RetryAfter
	}
	return 0
}

// health remembers the remote members whose requests failed recently.
// The common case, nobody failing, costs one atomic load.
type health struct {
	n    atomic.Int32 // entries in down
	mu   sync.Mutex
	down map[string]time.Time // remote address -> suspected until
}

// failed notes that a request to the member at addr timed out or could not
// be delivered; it reports whether the member was not failing before.
func (h *health) failed(addr string, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.down == nil {
		h.down = make(map[string]time.Time)
	}
	_, was := h.down[addr]
	if !was {
		h.n.Add(1)
	}
	h.down[addr] = now.Add(suspectFor)
	return !was
}

// answered notes that the member at addr answered.
func (h *health) answered(addr string) {
	if h.n.Load() == 0 {
		return
	}
	h.mu.Lock()
	if _, ok := h.down[addr]; ok {
		delete(h.down, addr)
		h.n.Add(-1)
	}
	h.mu.Unlock()
}

// failing reports whether a request to addr failed in the last suspectFor.
func (h *health) failing(addr string, now time.Time) bool {
	if h.n.Load() == 0 {
		return false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	until, ok := h.down[addr]
	if ok && !now.Before(until) {
		delete(h.down, addr)
		h.n.Add(-1)
		return false
	}
	return ok
}

// suspected reports whether m, a remote owner, is suspected down: by
// memberlist, or by this router's recent requests.
func (r *Router) suspected(m cluster.Member, now time.Time) bool {
	return m.State == "suspect" || r.health.failing(m.RemoteAddr, now)
}

// ownerDown is the refusal of a request for userID, owned by m.
func ownerDown(userID int64, m cluster.Member) *OwnerDown {
	return &OwnerDown{UserID: userID, Member: m.Name, RetryAfter: DownRetryAfter}
}
