package actors

import (
	"slices"
	"testing"
	"time"

	"github.com/presence-cluster/presence/messages"
)

func setVisibility(m *messages.SetVisibility) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_SetVisibility{SetVisibility: m}}
}

func getVisibility(id int64, create bool) *messages.Envelope {
	return &messages.Envelope{Body: &messages.Envelope_GetVisibility{GetVisibility: &messages.GetVisibility{UserId: id, Create: create}}}
}

// TestVisibilitySetting: the actor keeps the setting with the record,
// raises the version on a change (not on a PUT that changes nothing),
// leaves unnamed fields alone, stores it, and treats the user's own PUT as
// a sign of life but not an admin's.
func TestVisibilitySetting(t *testing.T) {
	const id = 7
	e := newEnv(t)
	if reply := e.req(getVisibility(id, false)); reply.GetNotFound() == nil {
		t.Fatalf("GetVisibility without create of a user without record = %v", reply)
	}
	if reply := e.req(setVisibility(&messages.SetVisibility{UserId: id, SetPresence: true, ByAdmin: true})); reply.GetNotFound() == nil {
		t.Fatalf("an admin's SetVisibility created a record: %v", reply)
	}
	created := e.first(getVisibility(id, true)).GetStateReply().GetState()
	if created == nil || created.GetVisibility() != nil {
		t.Fatalf("GetVisibility with create = %v, want a record with the default setting", created)
	}
	nobody, allowlist := messages.VisibilityMode_VISIBILITY_MODE_NOBODY, messages.VisibilityMode_VISIBILITY_MODE_ALLOWLIST
	e.clock.Advance(time.Second)
	s1 := e.state(setVisibility(&messages.SetVisibility{UserId: id, SetPresence: true, Presence: allowlist, SetAllow: true, Allow: []int64{9, 3, 3}}))
	if s1.GetVersion() != created.GetVersion()+1 || s1.GetVisibility().GetPresence() != allowlist ||
		!slices.Equal(s1.GetVisibility().GetAllow(), []int64{3, 9}) || s1.GetLastSeen() != at(time.Second) {
		t.Fatalf("after the user's PUT: %v (created %v)", s1, created)
	}
	e.clock.Advance(time.Second)
	s2 := e.state(setVisibility(&messages.SetVisibility{UserId: id, SetLastSeen: true, Presence: nobody, LastSeen: nobody, ByAdmin: true}))
	if s2.GetVersion() != s1.GetVersion()+1 || s2.GetVisibility().GetPresence() != allowlist ||
		s2.GetVisibility().GetLastSeen() != nobody || s2.GetLastSeen() != s1.GetLastSeen() {
		t.Fatalf("after the admin's PUT of last_seen: %v", s2)
	}
	same := e.state(setVisibility(&messages.SetVisibility{UserId: id, SetLastSeen: true, LastSeen: nobody}))
	if same.GetVersion() != s2.GetVersion() {
		t.Fatalf("a PUT that changes nothing raised the version: %d -> %d", s2.GetVersion(), same.GetVersion())
	}
	if st := e.stored(id); st.GetVersion() != s2.GetVersion() || st.GetVisibility().GetLastSeen() != nobody {
		t.Fatalf("stored %v", st)
	}
	// Back to the default: stored and published as no setting.
	def := e.state(setVisibility(&messages.SetVisibility{UserId: id, SetPresence: true, SetLastSeen: true, SetAllow: true}))
	if def.GetVisibility() != nil || def.GetVersion() != s2.GetVersion()+1 {
		t.Fatalf("after the reset to the default: %v", def)
	}
}
