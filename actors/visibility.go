package actors

import (
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/presence-cluster/presence/messages"
)

// normVisibility returns vis, or nil when it is the default (everyone sees
// everything), so that a record without a setting and one set back to the
// default look alike and readers take the fast path for both.
func normVisibility(vis *messages.Visibility) *messages.Visibility {
	if vis == nil {
		return nil
	}
	if vis.GetPresence() == messages.VisibilityMode_VISIBILITY_MODE_EVERYONE &&
		vis.GetLastSeen() == messages.VisibilityMode_VISIBILITY_MODE_EVERYONE && len(vis.GetAllow()) == 0 {
		return nil
	}
	return vis
}

// sameVisibility reports whether a and b are the same setting.
func sameVisibility(a, b *messages.Visibility) bool {
	if a == b {
		return true
	}
	return a.GetPresence() == b.GetPresence() && a.GetLastSeen() == b.GetLastSeen() &&
		slices.Equal(a.GetAllow(), b.GetAllow())
}

// applyVisibility returns the setting cur becomes with the fields m names
// (a new value; cur is shared and never modified).
func applyVisibility(cur *messages.Visibility, m *messages.SetVisibility) *messages.Visibility {
	next := &messages.Visibility{Presence: cur.GetPresence(), LastSeen: cur.GetLastSeen(), Allow: cur.GetAllow()}
	if m.GetSetPresence() {
		next.Presence = m.GetPresence()
	}
	if m.GetSetLastSeen() {
		next.LastSeen = m.GetLastSeen()
	}
	if m.GetSetAllow() {
		// The API sends it sorted and deduplicated; a peer that did not is
		// not trusted with the readers' binary search.
		allow := slices.Clone(m.GetAllow())
		slices.Sort(allow)
		next.Allow = slices.Compact(allow)
	}
	return normVisibility(next)
}

// answerVisibility answers the visibility requests that need no write: a
// read of an existing record, and any request about a user without a
// record that may not create one. ok is false when the request is a write.
func (a *userActor) answerVisibility(env *messages.Envelope) (reply *messages.Envelope, ok bool) {
	switch b := env.Body.(type) {
	case *messages.Envelope_GetVisibility:
		if a.exists {
			return a.status(), true
		}
		if !b.GetVisibility.GetCreate() {
			return a.notFound(), true
		}
	case *messages.Envelope_SetVisibility:
		if !a.exists && b.SetVisibility.GetByAdmin() {
			return a.notFound(), true
		}
	}
	return nil, false
}

// writeVisibility applies a GetVisibility that creates the record, or a
// SetVisibility. The user's own change is a sign of life (as every PUT of
// theirs is); an admin's on their behalf is not.
func (a *userActor) writeVisibility(ctx actor.Context, now int64, env *messages.Envelope) (known bool, err error) {
	switch b := env.Body.(type) {
	case *messages.Envelope_GetVisibility:
		m := b.GetVisibility
		return true, a.change(ctx, now, func(r *record) { setName(r, m.GetUsername()) })
	case *messages.Envelope_SetVisibility:
		m := b.SetVisibility
		if a.exists && sameVisibility(applyVisibility(a.rec.vis, m), a.rec.vis) {
			// Answered from this actor's copy without a write: it must be
			// current (see UpdateStatus).
			if err := a.refreshIfStale(ctx, now); err != nil {
				return true, err
			}
		}
		if m.GetByAdmin() {
			return true, a.change(ctx, now, func(r *record) { r.vis = applyVisibility(r.vis, m) })
		}
		a.restActivity(now)
		return true, a.change(ctx, now, func(r *record) {
			setName(r, m.GetUsername())
			r.lastSeen = now
			r.vis = applyVisibility(r.vis, m)
		})
	}
	return false, nil
}
