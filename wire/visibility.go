package wire

import (
	"strconv"

	"github.com/presence-cluster/presence/messages"
)

// The visibility modes as the API spells them.
const (
	VisibilityEveryone  = "everyone"
	VisibilityNobody    = "nobody"
	VisibilityAllowlist = "allowlist"
)

// MaxVisibilityAllow is the most user ids a visibility allowlist holds.
const MaxVisibilityAllow = 1000

// Visibility is a user's visibility setting: the answer of GET and PUT
// /users/me/visibility and PUT /admin/users/{id}/visibility. Presence says
// who sees the user's online, busy, busy_until and last_seen; LastSeen who
// sees last_seen; each is VisibilityEveryone, VisibilityNobody or
// VisibilityAllowlist (exactly the ids in Allow, sorted ascending). The
// user themself and admins always see the true record.
type Visibility struct {
	UserID   int64   `json:"user_id"`
	Presence string  `json:"presence"`
	LastSeen string  `json:"last_seen"`
	Allow    []int64 `json:"allow"`
	// Version is the user's record version; a change of the setting
	// raises it.
	Version uint64 `json:"version"`
}

// VisibilityUpdate is the body of PUT /users/me/visibility (and of the
// admin's PUT): empty or nil fields are left out and keep their value; at
// least one must be set. Allow replaces the whole allowlist; point it at an
// empty slice to clear it.
type VisibilityUpdate struct {
	Presence string   `json:"presence,omitempty"`
	LastSeen string   `json:"last_seen,omitempty"`
	Allow    *[]int64 `json:"allow,omitempty"`
}

// ModeName is the API's name of mode ("" for a mode this version does not
// know).
func ModeName(mode messages.VisibilityMode) string {
	switch mode {
	case messages.VisibilityMode_VISIBILITY_MODE_EVERYONE:
		return VisibilityEveryone
	case messages.VisibilityMode_VISIBILITY_MODE_NOBODY:
		return VisibilityNobody
	case messages.VisibilityMode_VISIBILITY_MODE_ALLOWLIST:
		return VisibilityAllowlist
	}
	return ""
}

// ParseMode is the mode the API's name stands for; ok is false for any
// other name.
func ParseMode(name string) (mode messages.VisibilityMode, ok bool) {
	switch name {
	case VisibilityEveryone:
		return messages.VisibilityMode_VISIBILITY_MODE_EVERYONE, true
	case VisibilityNobody:
		return messages.VisibilityMode_VISIBILITY_MODE_NOBODY, true
	case VisibilityAllowlist:
		return messages.VisibilityMode_VISIBILITY_MODE_ALLOWLIST, true
	}
	return 0, false
}

// VisibilitySetting is a visibility setting alone, as GET
// /admin/users/{id} shows it ("visibility").
type VisibilitySetting struct {
	Presence string  `json:"presence"`
	LastSeen string  `json:"last_seen"`
	Allow    []int64 `json:"allow"`
}

// AppendVisibility appends the visibility setting of st (the shape of
// Visibility). A state without a setting has the default: everyone,
// everyone, no ids. A mode this version does not know is written as
// "nobody", which is how it is applied.
func AppendVisibility(b []byte, st *messages.UserState) []byte {
	b = append(b, `{"user_id":`...)
	b = strconv.AppendInt(b, st.GetUserId(), 10)
	b = append(b, ',')
	b = appendVisibilityFields(b, st.GetVisibility())
	return appendVersion(b, st)
}

// AppendVisibilitySetting appends vis in the shape of VisibilitySetting.
func AppendVisibilitySetting(b []byte, vis *messages.Visibility) []byte {
	b = append(b, '{')
	b = appendVisibilityFields(b, vis)
	return append(b, '}')
}

// appendVisibilityFields appends "presence", "last_seen" and "allow".
func appendVisibilityFields(b []byte, vis *messages.Visibility) []byte {
	b = append(b, `"presence":"`...)
	b = appendModeName(b, vis.GetPresence())
	b = append(b, `","last_seen":"`...)
	b = appendModeName(b, vis.GetLastSeen())
	b = append(b, `","allow":[`...)
	for i, id := range vis.GetAllow() {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, id, 10)
	}
	return append(b, ']')
}

func appendModeName(b []byte, mode messages.VisibilityMode) []byte {
	if name := ModeName(mode); name != "" {
		return append(b, name...)
	}
	return append(b, VisibilityNobody...)
}
