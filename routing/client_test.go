package routing

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/store"
)

// refusal maps each failure kind to its domain error, the detail kept; a
// kind this version does not know is unavailable.
func TestRefusal(t *testing.T) {
	for _, tc := range []struct {
		kind messages.FailureKind
		want error
	}{
		{messages.FailureKind_FAILURE_KIND_CONFLICT, ErrConflict},
		{messages.FailureKind_FAILURE_KIND_UNAVAILABLE, ErrUnavailable},
		{messages.FailureKind_FAILURE_KIND_UNSPECIFIED, ErrUnavailable},
		{messages.FailureKind(7), ErrUnavailable},
	} {
		err := refusal(3, &messages.Failure{Kind: tc.kind, Detail: "why"})
		if !errors.Is(err, tc.want) || err.Detail != "why" || err.UserID != 3 {
			t.Errorf("refusal(%v) = %v, want %v with the detail", tc.kind, err, tc.want)
		}
	}
}

// The typed client decodes each answer once: a state, ErrNotFound, or a
// *Refusal.
func TestClient(t *testing.T) {
	r, st := newTestRouter(t, nil, "", nil)
	putUser(t, st, 1, false)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if s, err := r.Status(ctx, 2, "two"); err != nil || s.GetUserId() != 2 || s.GetUsername() != "two" {
		t.Fatalf("Status of a new user = %v, %v; want it created", s, err)
	}
	if s, err := r.Heartbeat(ctx, 1, "u", 0); err != nil || !s.GetIsOnline() {
		t.Fatalf("Heartbeat = %v, %v; want online", s, err)
	}
	if s, err := r.UpdateStatus(ctx, &messages.UpdateStatus{UserId: 1, SetBusy: true, IsBusy: true}); err != nil || !s.GetIsBusy() {
		t.Fatalf("UpdateStatus = %v, %v; want busy", s, err)
	}
	if got, err := r.ReadPresence(ctx, []int64{1, 99}); err != nil || got[0].GetUserId() != 1 || got[1] != nil {
		t.Fatalf("ReadPresence = %v, %v", got, err)
	}
	// GetPresence of a user without a record is NotFound, through state.
	if _, err := r.state(ctx, 99, &messages.Envelope{Body: &messages.Envelope_GetPresence{GetPresence: &messages.GetPresence{UserId: 99}}}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("state of a user without record: %v, want ErrNotFound", err)
	}
}

// failingStore refuses every load: the user actors answer UNAVAILABLE.
type failingStore struct{ store.Store }

func (failingStore) Load(context.Context, int64) (*messages.UserState, error) {
	return nil, store.ErrUnavailable
}

func TestClientRefusal(t *testing.T) {
	r := newRouterOn(t, failingStore{store.NewMemory()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := r.Status(ctx, 1, "u")
	var refused *Refusal
	if !errors.As(err, &refused) || !errors.Is(err, ErrUnavailable) || refused.Detail == "" {
		t.Fatalf("Status with the store down: %v, want a *Refusal wrapping ErrUnavailable", err)
	}
	if _, err := r.ReadPresence(ctx, []int64{1}); !errors.As(err, &refused) || refused.UserID != 1 {
		t.Fatalf("ReadPresence with the store down: %v, want a *Refusal of user 1", err)
	}
}
