package loadgen

// Topology is who subscribes to whom. Users are numbered 0..Users-1 (user
// id = UserBase + index); users 0..Sessions-1 hold one WebSocket session
// each. A session subscribes to the Hot users (0..Hot-1) and to its next
// Contacts users on a ring, so every user has exactly Contacts ring
// subscribers and a hot user has every session as subscriber. Nothing is
// stored per session: both sides derive it from the indices.
type Topology struct {
	Users    int   `json:"users"`
	UserBase int64 `json:"user_base"`
	Sessions int   `json:"sessions"`
	Contacts int   `json:"contacts"`
	Hot      int   `json:"hot"`
	// HiddenHot: the hot users hide their presence from everyone
	// (visibility presence "nobody"), and every odd session's token has
	// admin rights (admins see the true record): the even sessions are
	// refused and expect no frame of a hot user's change (--hot-hidden).
	HiddenHot bool `json:"hidden_hot,omitempty"`
}

// sees reports whether session s subscribes to user u and may see its
// changes.
func (t Topology) sees(s, u int) bool {
	return t.subscribes(s, u) && !t.refused(s, u)
}

// refused reports whether session s is refused user u's presence.
func (t Topology) refused(s, u int) bool { return t.HiddenHot && u < t.Hot && s%2 == 0 }

// admin reports whether session s's token has admin rights.
func (t Topology) admin(s int) bool { return t.HiddenHot && s%2 == 1 }

// userID is the id of user index i.
func (t Topology) userID(i int) int64 { return t.UserBase + int64(i) }

// resolved fills the automatic session count: Sessions < 0 is every user.
func (t Topology) resolved() Topology {
	if t.Sessions < 0 {
		t.Sessions = t.Users
	}
	return t
}

// contactsOf lists the users session s subscribes to (without itself: a
// session receives its own user's updates anyway, and they are not counted).
func (t Topology) contactsOf(s int) []int {
	out := make([]int, 0, t.Hot+t.Contacts)
	for u := 0; u < t.Hot && u < t.Users; u++ {
		if u != s {
			out = append(out, u)
		}
	}
	for j := 1; j <= t.Contacts && j < t.Users; j++ {
		u := (s + j) % t.Users
		if u < t.Hot || u == s {
			continue
		}
		out = append(out, u)
	}
	return out
}

// subscribes reports whether session s subscribes to user u.
func (t Topology) subscribes(s, u int) bool {
	if s == u || s < 0 || s >= t.Sessions || u < 0 || u >= t.Users {
		return false
	}
	if u < t.Hot {
		return true
	}
	d := ((u-s)%t.Users + t.Users) % t.Users
	return d >= 1 && d <= t.Contacts
}

// forSubscribers calls f for each session in [first, first+count) that
// subscribes to u and may see it.
func (t Topology) forSubscribers(u, first, count int, f func(s int)) {
	if u < t.Hot {
		for s := first; s < first+count; s++ {
			if s != u && !t.refused(s, u) {
				f(s)
			}
		}
		return
	}
	for j := 1; j <= t.Contacts && j < t.Users; j++ {
		s := ((u-j)%t.Users + t.Users) % t.Users
		if s >= first && s < first+count && t.subscribes(s, u) {
			f(s)
		}
	}
}
