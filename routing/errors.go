package routing

import (
	"errors"
	"fmt"

	"github.com/presence-cluster/presence/messages"
)

// Domain errors of a routed request. The API maps each to its HTTP status
// in one place; everything else is an internal error.
var (
	// ErrNotFound: the user has no record.
	ErrNotFound = errors.New("routing: user not found")
	// ErrUnavailable: the request could not be served now (no answer in
	// time, no owner, the owner's store down); retrying later may work.
	ErrUnavailable = errors.New("routing: unavailable")
	// ErrConflict: a concurrent update won; retrying at once may work.
	ErrConflict = errors.New("routing: conflict")
)

// errTimeout is a request that got no answer before its deadline.
var errTimeout = fmt.Errorf("%w: no answer in time", ErrUnavailable)

// Refusal is a user actor's refusal of a request: Kind is ErrUnavailable
// or ErrConflict, Detail the actor's explanation, meant for the client.
type Refusal struct {
	UserID int64
	Kind   error
	Detail string
}

func (e *Refusal) Error() string {
	return fmt.Sprintf("user %d: request refused (%v): %s", e.UserID, e.Kind, e.Detail)
}

// Unwrap returns the kind, so errors.Is(err, ErrConflict) works.
func (e *Refusal) Unwrap() error { return e.Kind }

// refusal turns a Failure answer about userID into a *Refusal. A kind this
// version does not know (a newer node's) counts as unavailable.
func refusal(userID int64, f *messages.Failure) *Refusal {
	kind := ErrUnavailable
	if f.GetKind() == messages.FailureKind_FAILURE_KIND_CONFLICT {
		kind = ErrConflict
	}
	return &Refusal{UserID: userID, Kind: kind, Detail: f.GetDetail()}
}
