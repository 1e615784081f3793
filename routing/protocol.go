package routing

import (
	"fmt"

	"github.com/presence-cluster/presence/cluster"
	"github.com/presence-cluster/presence/messages"
)

// OlderMember refuses a request whose user's owner runs a release that
// does not know the request's kind (a rolling upgrade is under way): the
// owner would ignore it and the caller would wait for the request timeout.
// It wraps ErrUnavailable.
type OlderMember struct {
	UserID int64
	// Member is the owner's memberlist name; Proto is the protocol
	// version it advertises, Needs the version the request needs.
	Member       string
	Proto, Needs int
}

func (e *OlderMember) Error() string {
	return fmt.Sprintf("user %d: owner %s speaks protocol %d, the request needs %d (upgrade in progress): %v",
		e.UserID, e.Member, e.Proto, e.Needs, ErrUnavailable)
}

// Unwrap returns ErrUnavailable.
func (e *OlderMember) Unwrap() error { return ErrUnavailable }

// protoNeeded is the protocol version a member must advertise to answer
// env (see cluster.ProtoVersion).
func protoNeeded(env *messages.Envelope) int {
	switch env.GetBody().(type) {
	case *messages.Envelope_GetPresenceBatch:
		return cluster.ProtoBatchReads
	case *messages.Envelope_Inspect, *messages.Envelope_DisconnectUser,
		*messages.Envelope_GetVisibility, *messages.Envelope_SetVisibility:
		return cluster.ProtoV3
	}
	return 0 // every release knows it
}

// knows reports whether member m can answer env.
func knows(m cluster.Member, env *messages.Envelope) bool {
	return m.Proto >= protoNeeded(env)
}
