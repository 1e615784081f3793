package routing

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presence-cluster/presence/messages"
)

// The typed client's visibility calls: the user's own read and change
// create the record; an admin's change of a user without a record is
// ErrNotFound.
func TestClientVisibility(t *testing.T) {
	r, _ := newTestRouter(t, nil, "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	nobody := messages.VisibilityMode_VISIBILITY_MODE_NOBODY
	if _, err := r.SetVisibility(ctx, &messages.SetVisibility{UserId: 5, SetPresence: true, Presence: nobody, ByAdmin: true}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("admin SetVisibility of a user without record: %v, want ErrNotFound", err)
	}
	if s, err := r.Visibility(ctx, 5, "five"); err != nil || s.GetUserId() != 5 || s.GetVisibility() != nil {
		t.Fatalf("Visibility of a new user = %v, %v; want it created with the default", s, err)
	}
	s, err := r.SetVisibility(ctx, &messages.SetVisibility{UserId: 5, SetPresence: true, Presence: nobody})
	if err != nil || s.GetVisibility().GetPresence() != nobody {
		t.Fatalf("SetVisibility = %v, %v", s, err)
	}
	if got, err := r.ReadPresence(ctx, []int64{5}); err != nil || got[0].GetVisibility().GetPresence() != nobody {
		t.Fatalf("the read state does not carry the setting: %v, %v", got, err)
	}
}
