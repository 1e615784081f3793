package testkit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/presence-cluster/presence/wire"
)

// The visibility scenarios, shared by the single-node and the cluster
// suites: the same checks whether the viewers sit on the user's owner node
// or on another one.

// VisibilityParties are the users of the visibility scenarios and the
// nodes they use. Every viewer reads and connects through ViewerAPI and
// ViewerAddr; the user writes through UserAPI (in a cluster, another node:
// then the hub masking the pushes is not on the user's owner).
type VisibilityParties struct {
	Tokens             *Tokens
	UserAPI, ViewerAPI *REST
	ViewerAddr         string
	// User sets the visibility; Allowed is on its allowlist, Refused is
	// not; Offline is a second user who stays offline.
	User, Allowed, Refused, Offline int64
}

// visRole is one kind of viewer.
type visRole struct {
	name string
	id   func(p *VisibilityParties) int64
	// view is what the role sees when field is set to mode (the other
	// field everyone, the allowlist holding Allowed).
	view func(field, mode string) wire.View
}

func hiddenView(field string) wire.View {
	if field == "presence" {
		return wire.ViewPresenceHidden
	}
	return wire.ViewLastSeenHidden
}

var visRoles = []visRole{
	{"allowed", func(p *VisibilityParties) int64 { return p.Allowed }, func(field, mode string) wire.View {
		if mode == wire.VisibilityNobody {
			return hiddenView(field)
		}
		return wire.ViewTrue
	}},
	{"refused", func(p *VisibilityParties) int64 { return p.Refused }, func(field, mode string) wire.View {
		if mode == wire.VisibilityEveryone {
			return wire.ViewTrue
		}
		return hiddenView(field)
	}},
	{"self", func(p *VisibilityParties) int64 { return p.User }, func(string, string) wire.View { return wire.ViewTrue }},
	{"admin", func(*VisibilityParties) int64 { return AdminID }, func(string, string) wire.View { return wire.ViewTrue }},
}

const visWait = 10 * time.Second

// RunVisibilityMatrix sets each field to each mode in turn and checks what
// every role sees of the user from a single read, the batch, a new
// WebSocket subscription's snapshot, and the pushes of a long-lived
// subscription: the push of the setting change itself (exactly to the
// sessions whose view changed) and of a status change (to every session
// that sees the presence). Versions rise with every change of the setting.
func RunVisibilityMatrix(t *testing.T, p VisibilityParties) {
	u := p.User
	api := p.UserAPI.Must(t)
	api.Heartbeat(u)
	api.PutStatus(u, `{"busy_until":"`+RFC3339(time.Now().Add(time.Hour))+`"}`)
	if _, err := p.ViewerAPI.GetStatus(p.Offline); err != nil {
		t.Fatal(err)
	}
	subs := map[string]*WSConn{}
	for _, r := range visRoles {
		c := MustDialUser(t, p.ViewerAddr, p.Tokens, r.id(&p), []int64{u})
		if _, err := UpdatesUntilMarker(c, u, visWait); err != nil { // the subscribe answer
			t.Fatal(err)
		}
		subs[r.name] = c
	}
	prevView := map[string]wire.View{}
	prevVersion := p.truth(t).Version
	busy := true
	for _, field := range []string{"presence", "last_seen"} {
		for _, mode := range []string{wire.VisibilityEveryone, wire.VisibilityNobody, wire.VisibilityAllowlist} {
			name := field + "=" + mode
			other := map[string]string{"presence": "last_seen", "last_seen": "presence"}[field]
			body := fmt.Sprintf(`{%q:%q,%q:"everyone","allow":[%d]}`, field, mode, other, p.Allowed)
			vis, err := p.UserAPI.PutVisibility(u, body)
			if err != nil {
				t.Fatalf("%s: PUT: %v", name, err)
			}
			if got := map[string]string{"presence": vis.Presence, "last_seen": vis.LastSeen}; got[field] != mode || got[other] != "everyone" ||
				!reflect.DeepEqual(vis.Allow, []int64{p.Allowed}) || vis.UserID != u {
				t.Fatalf("%s: PUT answered %+v", name, vis)
			}
			changed := false
			for _, r := range visRoles {
				changed = changed || r.view(field, mode) != prevView[r.name]
			}
			if changed && vis.Version <= prevVersion || !changed && vis.Version < prevVersion {
				t.Errorf("%s: version %d after %d (setting changed: %v)", name, vis.Version, prevVersion, changed)
			}
			atChange := p.truth(t)
			// A status change every viewer of the presence sees; once the
			// admin has it, the viewer node's hub has fanned out both.
			busy = !busy
			api.PutStatus(u, fmt.Sprintf(`{"is_busy":%v}`, busy))
			final := p.truth(t)
			if err := WaitUpdate(subs["admin"], u, final.Version, visWait); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, r := range visRoles {
				view := r.view(field, mode)
				var want []Presence
				if view != prevView[r.name] {
					want = append(want, Masked(atChange, view))
				}
				if view != wire.ViewPresenceHidden {
					want = append(want, Masked(final, view))
				}
				got, err := UpdatesUntilMarker(subs[r.name], u, visWait)
				if err != nil {
					t.Fatalf("%s: %s: %v", name, r.name, err)
				}
				if !sameViews(got, want) {
					t.Errorf("%s: %s was pushed %+v, want %+v", name, r.name, got, want)
				}
				p.checkReads(t, name, r, final, view)
				prevView[r.name] = view
			}
			prevVersion = final.Version
		}
	}
}

// truth is the user's record as an admin sees it.
func (p *VisibilityParties) truth(t *testing.T) Presence {
	t.Helper()
	pr, err := p.ViewerAPI.Presence(AdminID, p.User)
	if err != nil {
		t.Fatal(err)
	}
	return pr
}

// checkReads checks that role r sees truth with view from a single read,
// the batch and a new subscription's snapshot.
func (p *VisibilityParties) checkReads(t *testing.T, step string, r visRole, truth Presence, view wire.View) {
	t.Helper()
	want, viewer := Masked(truth, view), r.id(p)
	if got, err := p.ViewerAPI.Presence(viewer, p.User); err != nil || !SameView(got, want) {
		t.Errorf("%s: %s reads %+v (%v), want %+v", step, r.name, got, err, want)
	}
	batch, err := p.ViewerAPI.Batch(viewer, []int64{p.Offline, p.User})
	if err != nil || len(batch) != 2 || !SameView(batch[1], want) {
		t.Errorf("%s: %s batch %+v (%v), want [offline user, %+v]", step, r.name, batch, err, want)
	}
	c := MustDialUser(t, p.ViewerAddr, p.Tokens, viewer, []int64{p.User})
	defer c.Close()
	if got, _, err := NextUpdate(c, p.User, visWait); err != nil || !SameView(got, want) {
		t.Errorf("%s: %s snapshot %+v (%v), want %+v", step, r.name, got, err, want)
	}
}

func sameViews(a, b []Presence) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !SameView(a[i], b[i]) {
			return false
		}
	}
	return true
}

// RunHiddenLooksOffline checks that a viewer refused a user's presence
// cannot tell them from a user who is offline (and hides last_seen): the
// same fields from every read, and the same frames (none) while the hidden
// user goes busy, free, offline and online.
func RunHiddenLooksOffline(t *testing.T, p VisibilityParties) {
	u, o, r := p.User, p.Offline, p.Refused
	api := p.UserAPI.Must(t)
	api.Heartbeat(u)
	api.PutStatus(u, `{"busy_until":"`+RFC3339(time.Now().Add(time.Hour))+`"}`)
	if _, err := p.UserAPI.PutVisibility(u, `{"presence":"nobody"}`); err != nil {
		t.Fatal(err)
	}
	if _, err := p.ViewerAPI.PutVisibility(o, `{"last_seen":"nobody"}`); err != nil {
		t.Fatal(err)
	}
	// Reads: field by field, the same document but for who it is about.
	hidden, offline := p.rawReads(t, r, u), p.rawReads(t, r, o)
	for i := range hidden {
		if !reflect.DeepEqual(hidden[i], offline[i]) {
			t.Errorf("read %d: hidden user %v, offline user %v", i, hidden[i], offline[i])
		}
	}
	// Pushes: none for either while the hidden user's state changes.
	refused := MustDialUser(t, p.ViewerAddr, p.Tokens, r, []int64{u, o})
	admin := MustDialUser(t, p.ViewerAddr, p.Tokens, AdminID, []int64{u, o})
	for _, c := range []*WSConn{refused, admin} {
		if _, err := UpdatesUntilMarker(c, u, visWait); err != nil {
			t.Fatal(err)
		}
	}
	var last Status
	for _, body := range []string{`{"is_busy":false}`, `{"is_busy":true}`, `{"is_online":false}`, `{"is_online":true}`} {
		last = api.PutStatus(u, body)
	}
	if err := WaitUpdate(admin, u, last.Version, visWait); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{u, o} {
		if got, err := UpdatesUntilMarker(refused, id, visWait); err != nil || len(got) != 0 {
			t.Errorf("the refused viewer got %d pushes of user %d (%v): %+v", len(got), id, err, got)
		}
	}
}

// rawReads returns what viewer reads of id from a single read, the batch
// and a subscription's snapshot, as JSON objects without the fields that
// say who the record is about (user_id, username, version).
func (p *VisibilityParties) rawReads(t *testing.T, viewer, id int64) []map[string]any {
	t.Helper()
	var single map[string]any
	if err := p.ViewerAPI.Call(viewer, "GET", fmt.Sprintf("/users/%d/presence", id), "", &single); err != nil {
		t.Fatal(err)
	}
	var batch []map[string]any
	if err := p.ViewerAPI.Call(viewer, "GET", fmt.Sprintf("/users/presence?user_ids=%d", id), "", &batch); err != nil || len(batch) != 1 {
		t.Fatalf("batch of %d: %v %v", id, batch, err)
	}
	c := MustDialUser(t, p.ViewerAddr, p.Tokens, viewer, []int64{id})
	defer c.Close()
	_, f, err := NextUpdate(c, id, visWait)
	if err != nil {
		t.Fatal(err)
	}
	var snap map[string]any
	if err := json.NewDecoder(bytes.NewReader(f.Data)).Decode(&snap); err != nil {
		t.Fatal(err)
	}
	out := []map[string]any{single, batch[0], snap}
	for _, m := range out {
		delete(m, "user_id")
		delete(m, "username")
		delete(m, "version")
	}
	return out
}
