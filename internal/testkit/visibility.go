package testkit

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/presence-cluster/presence/wire"
)

// Visibility is the answer of the visibility endpoints.
type Visibility = wire.Visibility

// Visibility is GET /users/me/visibility as uid.
func (r *REST) Visibility(uid int64) (Visibility, error) {
	return callAs[Visibility](r, uid, http.MethodGet, "/users/me/visibility", "")
}

// PutVisibility is PUT /users/me/visibility as uid with body.
func (r *REST) PutVisibility(uid int64, body string) (Visibility, error) {
	return callAs[Visibility](r, uid, http.MethodPut, "/users/me/visibility", body)
}

// AdminPutVisibility is PUT /admin/users/{id}/visibility as the admin.
func (r *REST) AdminPutVisibility(id int64, body string) (Visibility, error) {
	return callAs[Visibility](r, AdminID, http.MethodPut, "/admin/users/"+strconv.FormatInt(id, 10)+"/visibility", body)
}

// Masked is truth as a viewer with view v must see it: the record of an
// offline user for ViewPresenceHidden, last_seen null for
// ViewLastSeenHidden; the version is always the true one.
func Masked(truth Presence, v wire.View) Presence {
	switch v {
	case wire.ViewPresenceHidden:
		truth.IsOnline, truth.IsBusy, truth.BusyUntil, truth.LastSeen = false, false, nil, nil
	case wire.ViewLastSeenHidden:
		truth.LastSeen = nil
	}
	return truth
}

// SameView reports whether got shows what want shows: every field equal,
// except that a last_seen shown in both may have moved on in got (signs of
// life, such as the viewer's own connection, move it without a new
// version).
func SameView(got, want Presence) bool {
	lastSeen := SameTime(got.LastSeen, want.LastSeen) ||
		got.LastSeen != nil && want.LastSeen != nil && !got.LastSeen.Before(*want.LastSeen)
	return got.UserID == want.UserID && got.Username == want.Username && got.IsOnline == want.IsOnline &&
		got.IsBusy == want.IsBusy && SameTime(got.BusyUntil, want.BusyUntil) && lastSeen && got.Version == want.Version
}

// markerFrame is a frame of an unknown type: the server answers it with one
// error frame and changes nothing, so its answer marks a point in the
// session's outbound stream.
const markerFrame = `{"type":"testkit-marker"}`

// UpdatesUntilMarker sends a marker frame and returns the presence updates
// of user id that c received before the marker's answer (and after the
// frames read so far): everything the server queued to c before it read
// the marker.
func UpdatesUntilMarker(c *WSConn, id int64, timeout time.Duration) ([]Presence, error) {
	if err := c.SendText(markerFrame); err != nil {
		return nil, fmt.Errorf("%s: send marker: %w", c.Name, err)
	}
	var out []Presence
	for {
		f, err := c.Next(timeout)
		if err != nil {
			return out, err
		}
		switch f.Type {
		case "error":
			return out, nil
		case "presence_update":
			p, err := f.Presence()
			if err != nil {
				return out, err
			}
			if p.UserID == id {
				out = append(out, p)
			}
		}
	}
}

// NextUpdate returns the next presence update of user id c receives,
// skipping other frames.
func NextUpdate(c *WSConn, id int64, timeout time.Duration) (Presence, *Frame, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := c.Next(time.Until(deadline))
		if err != nil {
			return Presence{}, nil, err
		}
		if f.Type != "presence_update" {
			continue
		}
		p, err := f.Presence()
		if err != nil {
			return p, f, err
		}
		if p.UserID == id {
			return p, f, nil
		}
	}
}

// WaitUpdate waits until c has received an update of user id at version
// v or newer.
func WaitUpdate(c *WSConn, id int64, v uint64, timeout time.Duration) error {
	if !c.WaitFor(timeout, func() bool { p, ok := c.Last(id); return ok && p.Version >= v }) {
		p, _ := c.Last(id)
		return fmt.Errorf("%s: no update of user %d at version %d within %v (newest %+v)", c.Name, id, v, timeout, p)
	}
	return nil
}
