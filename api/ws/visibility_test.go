package ws

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/messages"
)

// openAs attaches a session of identity id; it is detached at cleanup.
func (e *testEnv) openAs(t *testing.T, id auth.Identity) (*session, *fakeConn) {
	t.Helper()
	c := newFakeConn(t)
	s := newSession(c, id, nil, &sessionOptions{queue: e.srv.cfg.SendQueue, writeTimeout: time.Second, stats: e.hub.Stats()})
	if !e.srv.attach(s) {
		t.Fatalf("attach of user %d refused", id.UserID)
	}
	t.Cleanup(s.wait)
	t.Cleanup(func() { s.close(1000, "") })
	return s, c
}

// visible decodes a presence_update frame's version and online flag.
func visible(t *testing.T, f string) (v uint64, online bool) {
	t.Helper()
	var dec struct {
		Data struct {
			Version  uint64 `json:"version"`
			IsOnline bool   `json:"is_online"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(f), &dec); err != nil {
		t.Fatalf("frame %s: %v", f, err)
	}
	return dec.Data.Version, dec.Data.IsOnline
}

// TestHubPushesOnlyChangedViews: a session gets a frame only when what it
// may see of the user changed, masked for it; the user themself and an
// admin see the true record.
func TestHubPushesOnlyChangedViews(t *testing.T) {
	const hot = 42
	e := newTestEnv(t)
	e.router.set(func(r *fakeRouter) { r.states[hot] = state(hot, 3) })
	allowlist := &messages.Visibility{Presence: messages.VisibilityMode_VISIBILITY_MODE_ALLOWLIST, Allow: []int64{1}}
	with := func(st *messages.UserState, vis *messages.Visibility) *messages.UserState {
		st.Visibility = vis
		return st
	}
	conns := map[string]*fakeConn{}
	for name, id := range map[string]auth.Identity{
		"allowed": {UserID: 1}, "refused": {UserID: 2}, "admin": {UserID: 3, Admin: true}, "self": {UserID: hot},
	} {
		s, c := e.openAs(t, id)
		e.srv.subscribe(s, []int64{hot}, true)
		expectSubscribed(t, c, map[int64]uint64{hot: 3}, hot)
		conns[name] = c
	}
	steps := []struct {
		name string
		st   *messages.UserState
		// want: the sessions that get a frame, and whether it shows online.
		want map[string]bool
	}{
		{"hidden from the refused", with(state(hot, 4), allowlist), map[string]bool{"refused": false}},
		{"busy while hidden", with(busyState(hot, 5), allowlist), map[string]bool{"allowed": true, "admin": true, "self": true}},
		{"offline while hidden", with(&messages.UserState{UserId: hot, Username: "x", Version: 6}, allowlist),
			map[string]bool{"allowed": false, "admin": false, "self": false}},
		{"online again", with(busyState(hot, 7), allowlist), map[string]bool{"allowed": true, "admin": true, "self": true}},
		{"shown to everyone", busyState(hot, 8), map[string]bool{"refused": true}},
		{"stale version", busyState(hot, 8), map[string]bool{}},
		// Versions skipped (the hub missed changes): every session gets
		// the newest state, even one whose view looks unchanged.
		{"after a gap", with(busyState(hot, 11), allowlist), map[string]bool{"allowed": true, "refused": false, "admin": true, "self": true}},
		{"consecutive again", with(busyState(hot, 12), allowlist), map[string]bool{}},
	}
	for _, step := range steps {
		e.update(step.st)
		for name, c := range conns {
			online, ok := step.want[name]
			if !ok {
				continue
			}
			v, gotOnline := visible(t, c.next(t))
			if v != step.st.Version || gotOnline != online {
				t.Fatalf("%s: %s got v%d online=%v, want v%d online=%v", step.name, name, v, gotOnline, step.st.Version, online)
			}
		}
		for name, c := range conns {
			if _, ok := step.want[name]; !ok {
				c.none(t)
			}
		}
	}
}
