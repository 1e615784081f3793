package e2e

// End-to-end tests of the WebSocket push endpoint /ws/presence: real
// WebSocket clients against a real in-process node (node.Start), no
// mocks. Frame sequences are asserted exactly: after each trigger a client
// is synced with a marker frame (an unknown type, answered with one error
// frame), so anything queued for it before the marker shows up as an
// unexpected frame, and a short quiet window catches late stragglers.

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/presence-cluster/presence/actors"
	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/api/ws"
	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/node"
	"github.com/presence-cluster/presence/store"
)

// TestWSTriggersPushToSubscribersOnly walks one user through every trigger
// of a change and checks, per trigger, the exact frames of two subscribers
// (one by frame, one by URL) and that a non-subscriber gets nothing.
func TestWSTriggersPushToSubscribersOnly(t *testing.T) {
	t.Parallel()
	const grace = 400 * time.Millisecond
	n := startNode(t, node.Config{Actors: actors.Config{DisconnectGrace: grace}})
	const xID, sID, s2ID, nID = 10, 20, 21, 30
	x := n.user(t, xID, "xavier")

	// X does not exist yet: the subscription is acknowledged, with no
	// presence frame.
	s := wsDialUser(t, n, sID, "sub", "")
	s.sync()
	s.subscribe(xID)
	s.expectSubscribed(xID)
	s2 := wsDialUser(t, n, s2ID, "sub2", strconv.Itoa(xID))
	s2.expectSubscribed(xID)
	other := wsDialUser(t, n, nID, "other", "31")
	other.expectSubscribed(31)
	subs := []*wsClient{s, s2}
	all := []*wsClient{s, s2, other}
	wsExpectNothing(t, all...)

	expect := func(what string, online, busy bool, version uint64) Presence {
		t.Helper()
		t.Logf("trigger: %s", what)
		var p Presence
		for _, c := range subs {
			p = c.expectVersion(xID, online, busy, version)
			if p.Username != "xavier" {
				t.Fatalf("%s: username %q, want xavier", what, p.Username)
			}
		}
		wsExpectNothing(t, all...)
		return p
	}

	// REST heartbeat: X appears, online.
	x.heartbeat()
	expect("REST heartbeat brings X online", true, false, 1)

	// A heartbeat that changes nothing visible pushes nothing.
	x.heartbeat()
	t.Log("trigger: second heartbeat (no visible change)")
	wsExpectNothing(t, all...)

	// Busy, then available.
	st := x.putStatus(`{"is_busy": true}`)
	p := expect("PUT is_busy true", true, true, st.Version)
	if p.BusyUntil != nil {
		t.Fatalf("busy without expiry has busy_until %s", fmtTime(p.BusyUntil))
	}
	st = x.putStatus(`{"is_busy": false}`)
	expect("PUT is_busy false", true, false, st.Version)

	// Busy until a moment from now: pushed busy with the expiry, then
	// pushed available when the actor's timer clears it.
	until := micro(time.Now().Add(700 * time.Millisecond))
	st = x.putStatus(`{"busy_until": "` + rfc3339(until) + `"}`)
	for _, c := range subs {
		p := c.expectVersion(xID, true, true, st.Version)
		if !sameTime(p.BusyUntil, until) {
			t.Fatalf("%s: busy_until %s, want %s", c.Name, fmtTime(p.BusyUntil), rfc3339(until))
		}
	}
	for _, c := range subs {
		c.expectVersion(xID, true, false, st.Version+1)
		if now := time.Now(); now.Before(until) {
			t.Fatalf("%s: busy cleared at %s, before busy_until %s", c.Name, rfc3339(now), rfc3339(until))
		}
	}
	wsExpectNothing(t, all...)

	// Manual offline.
	st = x.putStatus(`{"is_online": false}`)
	expect("PUT is_online false", false, false, st.Version)

	// X opens a WebSocket: online. Its own session gets nothing for the
	// change its own connection made.
	a := wsDialUser(t, n, xID, "xavier", "")
	p = expect("X connects", true, false, st.Version+1)
	a.sync()
	v := p.Version

	// A second session of X changes nothing visible, nor does closing it.
	b := wsDialUser(t, n, xID, "xavier", "")
	b.sync()
	t.Log("trigger: second session opens (no change)")
	wsExpectNothing(t, append(all, a)...)
	b.Close()
	wsWaitSessions(t, n, xID, 1)
	t.Log("trigger: second session closes (no change)")
	wsExpectNothing(t, append(all, a)...)

	// The last session closes: offline once the grace period is over.
	closed := time.Now()
	a.Close()
	for _, c := range subs {
		c.expectVersion(xID, false, false, v+1)
	}
	if d := time.Since(closed); d < grace {
		t.Fatalf("offline %v after the last session closed, before the %v grace", d, grace)
	}
	wsExpectNothing(t, all...)
}

// TestWSInactivityOffline: with no WebSocket, heartbeats keep a user online
// and their absence for OfflineAfter takes it offline, pushed once.
func TestWSInactivityOffline(t *testing.T) {
	t.Parallel()
	const offlineAfter = time.Second
	n := startNode(t, node.Config{Actors: actors.Config{OfflineAfter: offlineAfter}})
	const xID = 40
	x := n.user(t, xID, "ivy")
	s := wsDialUser(t, n, 41, "sub", strconv.Itoa(xID))
	s.expectSubscribed(xID)
	other := wsDialUser(t, n, 42, "other", "")
	other.sync()

	// Heartbeats well inside OfflineAfter for longer than OfflineAfter:
	// one online push, then nothing.
	x.heartbeat()
	s.expectVersion(xID, true, false, 1)
	var last time.Time
	for end := time.Now().Add(offlineAfter * 3 / 2); time.Now().Before(end); {
		time.Sleep(100 * time.Millisecond)
		last = time.Now()
		x.heartbeat()
	}
	wsExpectNothing(t, s, other)

	// Silence: offline, by the actor's timer.
	s.expectVersion(xID, false, false, 2)
	if d := time.Since(last); d < offlineAfter {
		t.Fatalf("offline %v after the last heartbeat, want at least %v", d, offlineAfter)
	}
	wsExpectNothing(t, s, other)
}

// TestWSSubscribeAckAndSnapshot: a subscribe is answered with "subscribed"
// and then one presence frame per known user, in order; unknown users get
// none until they appear. The same holds for ?user_ids= at connect.
func TestWSSubscribeAckAndSnapshot(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{})
	const aID, bID, uID = 100, 101, 102
	n.user(t, aID, "alice").heartbeat()
	until := micro(time.Now().Add(time.Hour))
	n.user(t, bID, "bob").putStatus(`{"is_busy": true, "busy_until": "` + rfc3339(until) + `"}`)
	viewer := n.user(t, 1, "viewer")

	s := wsDialUser(t, n, 110, "sub", "")
	s.sync()
	s.subscribe(aID, uID, bID)
	s.expectSubscribed(aID, uID, bID)
	pa := s.expectUpdate(aID, true, false)
	pb := s.expectUpdate(bID, false, true)
	wsExpectNothing(t, s)

	// The snapshot is the presence record the REST API answers.
	for _, pair := range [][2]Presence{{pa, viewer.presence(aID)}, {pb, viewer.presence(bID)}} {
		ws, rest := pair[0], pair[1]
		if ws.UserID != rest.UserID || ws.Username != rest.Username || ws.IsOnline != rest.IsOnline ||
			ws.IsBusy != rest.IsBusy || ws.Version != rest.Version || fmtTime(ws.BusyUntil) != fmtTime(rest.BusyUntil) ||
			fmtTime(ws.LastSeen) != fmtTime(rest.LastSeen) {
			t.Errorf("snapshot %+v differs from GET presence %+v", ws, rest)
		}
	}
	if !sameTime(pb.BusyUntil, until) {
		t.Errorf("snapshot busy_until %s, want %s", fmtTime(pb.BusyUntil), rfc3339(until))
	}

	// The unknown user appears: its first state is pushed.
	n.user(t, uID, "ursula").heartbeat()
	pu := s.expectVersion(uID, true, false, 1)
	if pu.Username != "ursula" {
		t.Errorf("username %q, want ursula", pu.Username)
	}
	wsExpectNothing(t, s)

	// ?user_ids= at connect: the same answer, in the URL's order.
	s2 := wsDialUser(t, n, 111, "sub2", fmt.Sprintf("%d,%d,%d", bID, uID, aID))
	s2.expectSubscribed(bID, uID, aID)
	s2.expectVersion(bID, false, true, pb.Version)
	s2.expectVersion(uID, true, false, 1)
	s2.expectVersion(aID, true, false, pa.Version)
	wsExpectNothing(t, s2)

	// Both then get every change.
	st := n.user(t, aID, "alice").putStatus(`{"is_busy": true}`)
	s.expectVersion(aID, true, true, st.Version)
	s2.expectVersion(aID, true, true, st.Version)
	wsExpectNothing(t, s, s2)

	// A malformed ?user_ids= is refused at the handshake like the batch
	// endpoint's.
	for _, bad := range []string{"abc", "1,x", "0", "-4", "1.5", "1,,2"} {
		_, res, err := wsTryDial(n, wsQuery(mint(t, 112, "bad", false), bad), nil)
		if err == nil || res == nil || res.StatusCode != http.StatusUnprocessableEntity {
			code := 0
			if res != nil {
				code = res.StatusCode
			}
			t.Errorf("?user_ids=%s: err %v, status %d, want HTTP 422", bad, err, code)
		}
	}
}

// TestWSResubscribeSendsSnapshot: subscribing to a user the session
// already receives (its own user, or a user subscribed before) must still
// be answered with that user's current presence, as every subscribe is.
func TestWSResubscribeSendsSnapshot(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{})
	const meID, friendID = 120, 121
	n.user(t, friendID, "friend").heartbeat()

	t.Run("own user", func(t *testing.T) {
		c := wsDialUser(t, n, meID, "me", "")
		c.sync()
		me := n.user(t, meID, "me").presence(meID)
		c.subscribe(meID)
		c.expectSubscribed(meID)
		c.expectVersion(meID, true, false, me.Version)
		wsExpectNothing(t, c)
	})
	t.Run("user subscribed before", func(t *testing.T) {
		c := wsDialUser(t, n, meID+10, "me2", strconv.Itoa(friendID))
		c.expectSubscribed(friendID)
		p := c.expectUpdate(friendID, true, false)
		c.subscribe(friendID)
		c.expectSubscribed(friendID)
		m := c.next()
		if _, err := wsCheckUpdate(m, friendID, true, false); err != nil {
			t.Fatalf("second subscribe to %d: want its presence (version %d) after the ack, got %s", friendID, p.Version, m)
		}
	})
}

// TestWSUnsubscribe: "unsubscribed" is acknowledged and no update of that
// user arrives after it; a session's own user cannot be unsubscribed.
func TestWSUnsubscribe(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{})
	const xID, yID, sID = 200, 201, 210
	x, y := n.user(t, xID, "x"), n.user(t, yID, "y")
	x.heartbeat()
	y.heartbeat()

	s := wsDialUser(t, n, sID, "sub", fmt.Sprintf("%d,%d", xID, yID))
	s.expectSubscribed(xID, yID)
	s.expectVersion(xID, true, false, 1)
	s.expectVersion(yID, true, false, 1)
	marker := wsDialUser(t, n, 211, "marker", strconv.Itoa(xID))
	marker.expectSubscribed(xID)
	marker.expectVersion(xID, true, false, 1)

	s.unsubscribe(xID)
	s.expectUnsubscribed(xID)
	wsExpectNothing(t, s)

	// X changes: the other subscriber gets it, s does not.
	st := x.putStatus(`{"is_busy": true}`)
	marker.expectVersion(xID, true, true, st.Version)
	wsExpectNothing(t, s, marker)

	// Y is still subscribed.
	st = y.putStatus(`{"is_busy": true}`)
	s.expectVersion(yID, true, true, st.Version)
	wsExpectNothing(t, s)

	// Unsubscribing its own user is acknowledged but changes nothing: own
	// updates keep coming.
	s.unsubscribe(sID)
	s.expectUnsubscribed(sID)
	st = n.user(t, sID, "sub").putStatus(`{"is_busy": true}`)
	s.expectVersion(sID, true, true, st.Version)
	wsExpectNothing(t, s)

	// Subscribing again brings the current state, then changes again.
	s.subscribe(xID)
	s.expectSubscribed(xID)
	s.expectVersion(xID, true, true, 2)
	st = x.putStatus(`{"is_busy": false}`)
	s.expectVersion(xID, true, false, st.Version)
	marker.expectVersion(xID, true, false, st.Version)
	wsExpectNothing(t, s, marker)
}

// TestWSOwnUpdatesOnTwoDevices: every session receives its own user's
// changes without subscribing, whichever device or API made them.
func TestWSOwnUpdatesOnTwoDevices(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{})
	const uID = 300
	u := n.user(t, uID, "dual")
	obs, a := wsWatchedConnect(t, n, 301, uID, "dual")
	b := wsDialUser(t, n, uID, "dual", "")
	b.sync()
	wsExpectNothing(t, a, b, obs)
	all := []*wsClient{a, b, obs}

	st := u.putStatus(`{"is_busy": true}`)
	for _, c := range all {
		c.expectVersion(uID, true, true, st.Version)
	}
	wsExpectNothing(t, all...)

	// A heartbeat frame gets no reply, and changes nothing visible here.
	a.sendText(`{"type": "heartbeat"}`)
	wsExpectNothing(t, all...)

	st = u.putStatus(`{"is_online": false}`)
	for _, c := range all {
		c.expectVersion(uID, false, true, st.Version)
	}
	wsExpectNothing(t, all...)

	// A heartbeat frame from device B brings the user back online: both
	// devices see it.
	b.sendText(`{"type": "heartbeat"}`)
	for _, c := range all {
		c.expectVersion(uID, true, true, st.Version+1)
	}
	wsExpectNothing(t, all...)

	st = u.putStatus(`{"is_busy": false}`)
	for _, c := range all {
		c.expectVersion(uID, true, false, st.Version)
	}
	// B leaves; A (still open) keeps the user online.
	b.Close()
	wsWaitSessions(t, n, uID, 1)
	wsExpectNothing(t, a, obs)
}

// TestWSNewSessionAfterManualOffline: "is_online: false appears offline at
// once, until the next heartbeat or connection" also when another session
// of the user is open.
func TestWSNewSessionAfterManualOffline(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{})
	const uID = 310
	obs, a := wsWatchedConnect(t, n, 311, uID, "u")

	st := n.user(t, uID, "u").putStatus(`{"is_online": false}`)
	obs.expectVersion(uID, false, false, st.Version)
	a.expectVersion(uID, false, false, st.Version)

	b := wsDialUser(t, n, uID, "u", "")
	b.sync()
	obs.expectVersion(uID, true, false, st.Version+1)
	a.expectVersion(uID, true, false, st.Version+1)
}

// TestWSDisconnectGrace: the last session closing makes the user offline
// after DisconnectGrace; a reconnect inside the grace causes no frame.
func TestWSDisconnectGrace(t *testing.T) {
	t.Parallel()
	const grace = 1500 * time.Millisecond
	n := startNode(t, node.Config{Actors: actors.Config{DisconnectGrace: grace}})
	const xID = 400
	s, x := wsWatchedConnect(t, n, 401, xID, "x")

	// Close the only session: offline, not before the grace is over.
	closed := time.Now()
	x.Close()
	s.expectVersion(xID, false, false, 2)
	if d := time.Since(closed); d < grace {
		t.Fatalf("offline %v after the close, before the %v grace", d, grace)
	}
	wsExpectNothing(t, s)

	x = wsDialUser(t, n, xID, "x", "")
	s.expectVersion(xID, true, false, 3)
	x.sync()

	// Close and reconnect inside the grace: no frame at all, neither then
	// nor when the grace would have ended.
	x.Close()
	wsWaitSessions(t, n, xID, 0)
	time.Sleep(100 * time.Millisecond) // let the count reach the actor
	x = wsDialUser(t, n, xID, "x", "")
	x.sync()
	s.sync()
	s.expectQuiet(grace + 300*time.Millisecond)
	if p := n.user(t, 402, "viewer").presence(xID); !p.IsOnline || !isNth(t, xID, p.Version, 3) {
		t.Fatalf("after reconnecting inside the grace: %+v, want online at version 3", p)
	}
}

// TestWSHandshakeAuth: a missing or bad token is refused at the handshake
// with 401 and the REST error body; the Authorization header works too.
func TestWSHandshakeAuth(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{})
	const detail = "Invalid or expired token"
	now := time.Now()
	cases := map[string]struct {
		query  string
		header http.Header
	}{
		"missing":               {query: ""},
		"empty":                 {query: "token="},
		"garbage":               {query: "token=not-a-jwt"},
		"other secret":          {query: wsQuery(wsSignHS(t, "another-secret-0123456789abcdef", jwt.MapClaims{"sub": "5", "exp": now.Add(time.Hour).Unix()}), "")},
		"expired":               {query: wsQuery(wsSignHS(t, testSecret, jwt.MapClaims{"sub": "5", "exp": now.Add(-time.Hour).Unix()}), "")},
		"no user":               {query: wsQuery(wsSignHS(t, testSecret, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}), "")},
		"bad header":            {header: http.Header{"Authorization": {"Bearer not-a-jwt"}}},
		"header without scheme": {header: http.Header{"Authorization": {mint(t, 5, "five", false)}}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			res := wsExpectRefused(t, n, tc.query, tc.header, http.StatusUnauthorized, detail)
			if got := res.Header.Get("WWW-Authenticate"); got != "Bearer" {
				t.Errorf("WWW-Authenticate %q, want Bearer", got)
			}
		})
	}

	t.Run("Authorization header", func(t *testing.T) {
		hdr := http.Header{"Authorization": {"Bearer " + mint(t, 500, "hdr", false)}}
		c := wsDial(t, n, "hdr", "", hdr)
		c.sync()
		st := n.user(t, 500, "hdr").putStatus(`{"is_busy": true}`)
		c.expectVersion(500, true, true, st.Version)
	})
}

// TestWSMalformedFrames: each bad client frame gets exactly one error frame
// and the connection stays usable.
func TestWSMalformedFrames(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{})
	c := wsDialUser(t, n, 600, "fuzz", "")
	c.sync()
	parent := c.t

	cases := []struct {
		name  string
		frame string
	}{
		{"not JSON", `hello`},
		{"truncated JSON", `{"type":"subscribe","user_ids":[1]`},
		{"empty frame", ``},
		{"JSON array", `[{"type":"subscribe","user_ids":[1]}]`},
		{"JSON string", `"subscribe"`},
		{"JSON number", `42`},
		{"JSON null", `null`},
		{"unknown type", `{"type":"subcribe","user_ids":[1]}`},
		{"missing type", `{"user_ids":[1]}`},
		{"empty type", `{"type":"","user_ids":[1]}`},
		{"type not a string", `{"type":1}`},
		{"subscribe without user_ids", `{"type":"subscribe"}`},
		{"user_ids of strings", `{"type":"subscribe","user_ids":["abc"]}`},
		{"user_ids of numeric strings", `{"type":"subscribe","user_ids":["7"]}`},
		{"negative id", `{"type":"subscribe","user_ids":[-3]}`},
		{"zero id", `{"type":"subscribe","user_ids":[0]}`},
		{"float id", `{"type":"subscribe","user_ids":[1.5]}`},
		{"float id with zero fraction", `{"type":"subscribe","user_ids":[2.0]}`},
		{"exponent id", `{"type":"subscribe","user_ids":[1e3]}`},
		{"id beyond int64", `{"type":"subscribe","user_ids":[9223372036854775808]}`},
		{"bool id", `{"type":"subscribe","user_ids":[true]}`},
		{"null id", `{"type":"subscribe","user_ids":[null]}`},
		{"nested array", `{"type":"subscribe","user_ids":[[5]]}`},
		{"one bad id among good", `{"type":"subscribe","user_ids":[5,-1]}`},
		{"user_ids a number", `{"type":"subscribe","user_ids":5}`},
		{"user_ids a string", `{"type":"subscribe","user_ids":"5,6"}`},
		{"user_ids an object", `{"type":"subscribe","user_ids":{"id":5}}`},
		{"user_ids null", `{"type":"subscribe","user_ids":null}`},
		{"unsubscribe with bad ids", `{"type":"unsubscribe","user_ids":[-1]}`},
	}
	next := int64(10_000)
	usable := func(t *testing.T) {
		t.Helper()
		next++
		c.subscribe(next)
		c.expectSubscribed(next)
		c.sync()
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			defer func() { c.t = parent }()
			c.sendText(tc.frame)
			c.expectError()
			usable(t)
		})
	}
	t.Run("binary frame", func(t *testing.T) {
		c.t = t
		defer func() { c.t = parent }()
		if err := c.Conn.WriteMessage(websocket.BinaryMessage, []byte(wsIDsFrame("subscribe", []int64{5}))); err != nil {
			t.Fatalf("send binary: %v", err)
		}
		c.expectError()
		usable(t)
	})
}

// TestWSFrameTooLarge: a frame of exactly WSMaxFrame bytes is read; one
// byte more closes the connection with 1009, and the user may connect
// again (SECURITY.md).
func TestWSFrameTooLarge(t *testing.T) {
	t.Parallel()
	const maxFrame = 1024
	n := startNode(t, node.Config{API: api.Config{WS: ws.Config{MaxFrame: maxFrame}}})
	c := wsDialUser(t, n, 650, "big", "")
	c.sync()
	c.sendText(wsPad(wsIDsFrame("subscribe", []int64{651}), maxFrame))
	c.expectSubscribed(651)
	c.sync()
	c.sendText(wsPad(wsIDsFrame("subscribe", []int64{652}), maxFrame+1))
	c.expectClose(websocket.CloseMessageTooBig)

	// The session is gone from the node, and the user may come back.
	wsWaitSessions(t, n, 650, 0)
	wsDialUser(t, n, 650, "big", "").sync()
	d := wsDialUser(t, n, 653, "huge", "")
	d.sync()
	// The server may stop reading mid-frame; a failed write is expected.
	_ = d.Conn.WriteMessage(websocket.TextMessage, []byte(strings.Repeat("x", 100*maxFrame)))
	d.expectClose(websocket.CloseMessageTooBig)
}

// TestWSSubscriptionLimit: a subscribe beyond WSMaxSubscriptions is refused
// with an error frame, subscribes nothing, and the connection stays usable;
// the session's own user does not count.
func TestWSSubscriptionLimit(t *testing.T) {
	t.Parallel()
	const limit = 3
	n := startNode(t, node.Config{API: api.Config{WS: ws.Config{MaxSubscriptions: limit}}})
	ids := []int64{701, 702, 703, 704}
	for _, id := range ids {
		n.user(t, id, "u"+strconv.FormatInt(id, 10)).heartbeat()
	}
	const meID = 700
	c := wsDialUser(t, n, meID, "me", "")
	c.sync()
	c.subscribe(701, 702)
	c.expectSubscribed(701, 702)
	c.expectVersion(701, true, false, 1)
	c.expectVersion(702, true, false, 1)

	c.subscribe(703, 704)
	c.expectError()
	wsExpectNothing(t, c)
	c.subscribe(703)
	c.expectSubscribed(703)
	c.expectVersion(703, true, false, 1)
	c.subscribe(704)
	c.expectError()
	wsExpectNothing(t, c)

	// The refused user's changes do not arrive; the others' and our own do.
	n.user(t, 704, "u704").putStatus(`{"is_busy": true}`)
	st := n.user(t, 703, "u703").putStatus(`{"is_busy": true}`)
	c.expectVersion(703, true, true, st.Version)
	st = n.user(t, meID, "me").putStatus(`{"is_busy": true}`)
	c.expectVersion(meID, true, true, st.Version)
	wsExpectNothing(t, c)

	// Unsubscribing frees a slot.
	c.unsubscribe(701)
	c.expectUnsubscribed(701)
	c.subscribe(704)
	c.expectSubscribed(704)
	c.expectVersion(704, true, true, 2)
	wsExpectNothing(t, c)

	// The URL is held to the same limit.
	tok := mint(t, 710, "url", false)
	_, res, err := wsTryDial(n, wsQuery(tok, "701,702,703,704"), nil)
	if err == nil || res == nil || res.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("?user_ids= beyond the limit: err %v, response %v, want HTTP 422", err, res)
	}
	u := wsDial(t, n, "url", wsQuery(tok, "701,702,703"), nil)
	u.expectSubscribed(701, 702, 703)
}

// TestWSSessionsPerUserLimit: a session beyond WSMaxSessionsPerUser is
// refused at the handshake with HTTP 429 and the REST error body.
func TestWSSessionsPerUserLimit(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{API: api.Config{WS: ws.Config{MaxSessionsPerUser: 2}}})
	const uID = 800
	a := wsDialUser(t, n, uID, "u", "")
	b := wsDialUser(t, n, uID, "u", "")
	a.sync()
	b.sync()
	tok := wsQuery(mint(t, uID, "u", false), "")
	wsExpectRefused(t, n, tok, nil, http.StatusTooManyRequests, "Too many sessions for this user")
	// Another user is not affected, and the open sessions still work.
	wsDialUser(t, n, uID+1, "v", "").sync()
	st := n.user(t, uID, "u").putStatus(`{"is_busy": true}`)
	a.expectVersion(uID, true, true, st.Version)
	b.expectVersion(uID, true, true, st.Version)

	// A closed session frees its slot.
	a.Close()
	wsWaitSessions(t, n, uID, 1)
	c := wsDial(t, n, "third", tok, nil)
	c.sync()
}

// TestWSSlowConsumer: a client that stops reading is disconnected once its
// bounded queue fills, without holding server memory, while a client that
// reads keeps getting every change of the same user.
func TestWSSlowConsumer(t *testing.T) {
	wsSlowConsumer(t, true)
}

// wsSlowConsumer runs the slow-consumer scenario; without the stuck client
// it is the control run (what the normal client gets on its own).
func wsSlowConsumer(t *testing.T, withStuck bool) {
	// A queue of 64 frames: with 8, even a client that reads all along is
	// sometimes dropped by a free-running burst of changes under -race.
	n := startNode(t, node.Config{API: api.Config{WS: ws.Config{SendQueue: 64}}})
	const fID, normalID, stuckID = 900, 901, 902
	// A long display name makes each frame about 3 KiB, so the stuck
	// client's socket buffers fill after a few hundred changes.
	f := n.user(t, fID, strings.Repeat("f", 3000))
	f.heartbeat()
	fq := strconv.Itoa(fID)

	normal := wsDialUser(t, n, normalID, "normal", fq)
	normal.expectSubscribed(fID)
	base := normal.expectVersion(fID, true, false, 1).Version // the creating change

	var stuck *websocket.Conn
	if withStuck {
		var err error
		stuck, _, err = wsSmallBufferDialer(4096).Dial(wsURL(n, wsQuery(mint(t, stuckID, "stuck", false), fq)), nil)
		if err != nil {
			t.Fatalf("dial stuck client: %v", err)
		}
		defer stuck.Close()
		// Read the subscribe answer, then never read again.
		for _, want := range []string{`"subscribed"`, `"presence_update"`} {
			_ = stuck.SetReadDeadline(time.Now().Add(wsWait))
			_, data, err := stuck.ReadMessage()
			if err != nil || !strings.Contains(string(data), want) {
				t.Fatalf("stuck client setup: %v %.100s, want %s", err, data, want)
			}
		}
	}

	// The normal client's frames are collected concurrently.
	type got struct {
		version uint64
		at      time.Time
	}
	var (
		mu       sync.Mutex
		versions []got
		bad      []string
	)
	stopCollect := make(chan struct{})
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for {
			m, err := normal.Next(10 * time.Millisecond)
			if err == nil {
				p, err := m.Presence()
				mu.Lock()
				if err != nil || p.UserID != fID {
					bad = append(bad, m.String())
				} else {
					versions = append(versions, got{p.Version, m.At})
				}
				mu.Unlock()
				continue
			}
			select {
			case <-stopCollect:
				return
			default:
			}
			if ended, endErr := normal.Closed(); ended {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("connection ended: %v", endErr))
				mu.Unlock()
				return
			}
		}
	}()
	defer func() {
		close(stopCollect)
		<-collected
	}()

	hub := n.API().Hub().Stats()
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)

	const flips = 1500
	var lastVersion uint64
	var slowest time.Duration
	began := time.Now()
	for i := range flips {
		start := time.Now()
		st := f.putStatus(fmt.Sprintf(`{"is_busy": %v}`, i%2 == 0))
		slowest = max(slowest, time.Since(start))
		lastVersion = st.Version
	}
	t.Logf("%d changes in %v, slowest PUT %v", flips, time.Since(began), slowest)

	if withStuck {
		eventually(t, wsWait, func() bool { return hub.SlowDisconnects.Load() > 0 }, "a slow-consumer disconnect")
	}

	// The normal client got every change, in order, once.
	deadline := time.Now().Add(wsWait)
	for {
		mu.Lock()
		done := len(bad) > 0 || (len(versions) > 0 && versions[len(versions)-1].version >= lastVersion)
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	var gap time.Duration
	for i := 1; i < len(versions); i++ {
		gap = max(gap, versions[i].at.Sub(versions[i-1].at))
	}
	t.Logf("normal client: %d updates, longest gap between two %v", len(versions), gap)
	if len(bad) > 0 {
		t.Errorf("normal client (reading all along): %s, after %d of %d updates", bad[0], len(versions), lastVersion-base)
	}
	for i, g := range versions {
		if g.version != base+uint64(i)+1 {
			t.Errorf("normal client: update #%d has version %d, want %d (every change, in order)", i, g.version, base+uint64(i)+1)
			break
		}
	}
	if len(versions) != int(lastVersion-base) {
		t.Errorf("normal client got %d updates, want %d", len(versions), lastVersion-base)
	}
	mu.Unlock()
	if !withStuck {
		return
	}

	// Server memory stays bounded while changes are pushed at the stuck
	// client (its queue holds 8 frames; nothing else may pile up).
	runtime.GC()
	var m1 runtime.MemStats
	runtime.ReadMemStats(&m1)
	growth := int64(m1.HeapInuse) - int64(m0.HeapInuse)
	t.Logf("heap in use: %d -> %d KiB", m0.HeapInuse>>10, m1.HeapInuse>>10)
	if growth > 64<<20 {
		t.Errorf("heap grew by %d MiB while pushing at a stuck client", growth>>20)
	}

	// The stuck session is gone from the node: it no longer counts as a
	// session of its user.
	const within = 5 * time.Second
	gone := false
	for end := time.Now().Add(within); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if n.API().Hub().SessionCount(stuckID) == 0 {
			gone = true
			break
		}
	}
	if !gone {
		t.Errorf("slow consumer disconnected (SlowDisconnects=%d) but its session is still attached %v later "+
			"(the server did not close its TCP connection)", hub.SlowDisconnects.Load(), within)
	}

	// The stuck client, reading now, finds a bounded backlog and then the
	// end of the connection.
	_ = stuck.SetReadDeadline(time.Now().Add(within))
	backlog := 0
	var endErr error
	for {
		if _, _, err := stuck.ReadMessage(); err != nil {
			endErr = err
			break
		}
		backlog++
	}
	t.Logf("stuck client: %d frames buffered, then %v", backlog, endErr)
	if ne, ok := endErr.(interface{ Timeout() bool }); ok && ne.Timeout() {
		t.Errorf("stuck client's connection still open %v after it started reading (%d buffered frames, no close frame)", within, backlog)
	} else if code := wsCloseCode(endErr); code != -1 && code != websocket.ClosePolicyViolation {
		t.Errorf("stuck client closed with %d, want 1008 (or a dropped connection)", code)
	}
	// Its queue holds 64 frames and the socket buffers about as many: an
	// unbounded queue would hand it every change once it reads.
	if backlog > flips/2 {
		t.Errorf("stuck client got %d of %d changes: the server did not bound its backlog", backlog, flips)
	}
}

// TestWSFastClientKeepsUp is the control of TestWSSlowConsumer: the same
// changes at the same rate and queue, with no stuck client, all reach a
// client that reads.
func TestWSFastClientKeepsUp(t *testing.T) {
	wsSlowConsumer(t, false)
}

// TestWSDrainCloses1012: a node that shuts down closes every session with
// 1012 (service restart) so clients reconnect elsewhere.
func TestWSDrainCloses1012(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{})
	cs := []*wsClient{
		wsDialUser(t, n, 1000, "a", "1001"),
		wsDialUser(t, n, 1000, "a", ""),
		wsDialUser(t, n, 1001, "b", "1000"),
	}
	cs[0].expectSubscribed(1001)
	cs[2].expectSubscribed(1000)
	cs[2].expectUpdate(1000, true, false)
	cs[0].expectUpdate(1001, true, false)
	for _, c := range cs {
		c.sync()
	}
	n.Stop(t)
	for _, c := range cs {
		c.expectClose(websocket.CloseServiceRestart)
	}
	if conn, _, err := wsTryDial(n, wsQuery(mint(t, 1002, "late", false), ""), nil); err == nil {
		conn.Close()
		t.Fatalf("a stopped node accepted a WebSocket")
	}
}

// TestWSThousandSessions: one change of a user reaches each of 1,000
// concurrent sessions subscribed to it exactly once.
func TestWSThousandSessions(t *testing.T) {
	const sessions = 1000
	n := startNode(t, node.Config{})
	const xID = 1
	x := n.user(t, xID, "popular")
	x.heartbeat()
	secret := []byte(testSecret)

	clients := make([]*wsClient, sessions)
	t.Cleanup(func() {
		// Close gently (32 at a time) and let the node detach them all
		// before it is stopped.
		var wg sync.WaitGroup
		sem := make(chan struct{}, 32)
		for _, c := range clients {
			if c != nil {
				wg.Add(1)
				sem <- struct{}{}
				go func() {
					defer wg.Done()
					defer func() { <-sem }()
					c.Close()
				}()
			}
		}
		wg.Wait()
		hub := n.API().Hub().Stats()
		for end := time.Now().Add(30 * time.Second); hub.SessionsOpen.Load() > 0 && time.Now().Before(end); {
			time.Sleep(10 * time.Millisecond)
		}
		if open := hub.SessionsOpen.Load(); open > 0 {
			t.Errorf("%d sessions still attached 30s after their clients closed", open)
		}
	})
	forAll := func(what string, f func(i int) error) {
		t.Helper()
		var wg sync.WaitGroup
		var failed atomic.Int64
		errs := make(chan error, sessions)
		sem := make(chan struct{}, 32)
		for i := range sessions {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				if err := f(i); err != nil {
					failed.Add(1)
					errs <- err
				}
			}()
		}
		wg.Wait()
		close(errs)
		if k := failed.Load(); k > 0 {
			t.Fatalf("%s: %d of %d sessions failed, first: %v", what, k, sessions, <-errs)
		}
	}

	start := time.Now()
	forAll("connect", func(i int) error {
		id := int64(100_000 + i)
		tok, err := auth.Mint(secret, auth.MintClaims{UserID: id, Username: "fan", TTL: time.Hour})
		if err != nil {
			return err
		}
		c, err := wsDialE(n, fmt.Sprintf("fan#%d", id), wsQuery(tok, strconv.Itoa(xID)), nil)
		if err != nil {
			return err
		}
		clients[i] = c
		m, err := c.recv(wsWait)
		if err != nil {
			return err
		}
		if m.Type != "subscribed" || fmt.Sprint(m.UserIDs) != "[1]" {
			return fmt.Errorf("%s: want subscribed [1], got %s", c.Name, m)
		}
		if m, err = c.recv(wsWait); err != nil {
			return err
		}
		if p, err := wsCheckUpdate(m, xID, true, false); err != nil || !isNth(t, xID, p.Version, 1) {
			return fmt.Errorf("%s: snapshot: %v (%s)", c.Name, err, m)
		}
		return nil
	})
	t.Logf("%d sessions connected and subscribed in %v", sessions, time.Since(start))
	if got := n.API().Hub().Stats().SessionsOpen.Load(); got != sessions {
		t.Fatalf("hub holds %d sessions, want %d", got, sessions)
	}

	start = time.Now()
	st := x.putStatus(`{"is_busy": true}`)
	forAll("fan-out", func(i int) error {
		c := clients[i]
		m, err := c.recv(wsWait)
		if err != nil {
			return err
		}
		if p, err := wsCheckUpdate(m, xID, true, true); err != nil || p.Version != st.Version {
			return fmt.Errorf("%s: want version %d busy: %v (%s)", c.Name, st.Version, err, m)
		}
		return nil
	})
	t.Logf("one change reached %d sessions in %v", sessions, time.Since(start))

	// Exactly once: nothing more within a quiet window.
	time.Sleep(wsQuiet)
	for _, c := range clients {
		if m, ok := c.Pending(); ok {
			t.Fatalf("%s: extra frame after the change: %s", c.Name, m)
		}
		if ended, err := c.Closed(); ended {
			t.Fatalf("%s: connection ended: %v", c.Name, err)
		}
	}
}

// TestWSSessionsPerUserLimitConcurrent: handshakes racing for the last
// slots never leave more than WSMaxSessionsPerUser sessions open; the extra
// ones are refused with 429 at the handshake or closed with 1008.
func TestWSSessionsPerUserLimitConcurrent(t *testing.T) {
	t.Parallel()
	const limit, tries = 2, 12
	n := startNode(t, node.Config{API: api.Config{WS: ws.Config{MaxSessionsPerUser: limit}}})
	const uID = 820
	q := wsQuery(mint(t, uID, "u", false), "")
	var (
		mu                    sync.Mutex
		open                  []*wsClient
		refused, closed, errs []string
		wg                    sync.WaitGroup
	)
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := wsDialE(n, fmt.Sprintf("u#%d", i), q, nil)
			if err != nil {
				mu.Lock()
				if strings.Contains(err.Error(), "HTTP 429") {
					refused = append(refused, err.Error())
				} else {
					errs = append(errs, err.Error())
				}
				mu.Unlock()
				return
			}
			// A refused session may be closed before the marker is
			// written; what it then reads tells.
			_ = c.Conn.WriteMessage(websocket.TextMessage, []byte(wsMarker))
			m, err := c.recv(wsWait)
			end := c.Err()
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && m.Type == "error":
				open = append(open, c)
			case err != nil && wsCloseCode(end) == websocket.ClosePolicyViolation:
				closed = append(closed, c.Name)
				c.Close()
			default:
				errs = append(errs, fmt.Sprintf("%s: %v %s (end %v)", c.Name, err, m, end))
				c.Close()
			}
		}()
	}
	wg.Wait()
	for _, c := range open {
		t.Cleanup(c.Close)
	}
	t.Logf("%d open, %d refused with 429, %d closed with 1008", len(open), len(refused), len(closed))
	if len(errs) > 0 {
		t.Fatalf("unexpected outcomes: %v", errs)
	}
	if len(open) != limit || len(refused)+len(closed) != tries-limit {
		t.Fatalf("%d sessions open, want %d", len(open), limit)
	}
	if got := n.API().Hub().SessionCount(uID); got != limit {
		t.Fatalf("node holds %d sessions of the user, want %d", got, limit)
	}
}

// TestWSSubscribeSnapshotComplete: a subscribe to more known users than
// the send queue holds must still answer every snapshot, or drop the
// client as a slow consumer; it must never leave frames out silently.
func TestWSSubscribeSnapshotComplete(t *testing.T) {
	t.Parallel()
	const queue, users = 8, 40
	n := startNode(t, node.Config{API: api.Config{WS: ws.Config{SendQueue: queue}}})
	ids := make([]int64, users)
	for i := range ids {
		ids[i] = int64(1100 + i)
		n.user(t, ids[i], "u").heartbeat()
	}
	c := wsDialUser(t, n, 1099, "many", "")
	c.sync()
	c.subscribe(ids...)

	var frames []*wsMsg
	var end error
	for len(frames) < users+1 {
		m, err := c.recv(time.Second)
		if err != nil {
			end = err
			break
		}
		frames = append(frames, m)
	}
	if end != nil && wsCloseCode(c.Err()) == websocket.ClosePolicyViolation {
		t.Logf("dropped as a slow consumer after %d frames", len(frames))
		return
	}
	acks, seen := 0, map[int64]bool{}
	for _, m := range frames {
		switch m.Type {
		case "subscribed":
			acks++
		case "presence_update":
			if p, err := m.Presence(); err == nil {
				seen[p.UserID] = true
			}
		}
	}
	var missing []int64
	for _, id := range ids {
		if !seen[id] {
			missing = append(missing, id)
		}
	}
	if acks != 1 || len(missing) > 0 {
		t.Fatalf("subscribe to %d known users with a queue of %d: %d acks and %d of %d snapshots (missing %v), "+
			"connection still open: frames were dropped silently", users, queue, acks, len(seen), users, missing)
	}
	if frames[0].Type != "subscribed" {
		t.Fatalf("first frame %s, want the subscribed ack", frames[0])
	}
}

// TestWSDrainUnresponsiveClient: draining closes a session whose client
// does not answer (a dead network path) instead of waiting for it.
func TestWSDrainUnresponsiveClient(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{ShutdownTimeout: 3 * time.Second})
	conn, _, err := wsTryDial(n, wsQuery(mint(t, 1200, "mute", false), ""), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	wsWaitSessions(t, n, 1200, 1)

	// The client reads nothing from now on, so it never answers the close.
	start := time.Now()
	err = n.Shutdown(t.Context())
	took := time.Since(start)
	n.MarkStopped() // stopped here; the harness must not stop it again
	if err != nil || took > 2*time.Second {
		t.Errorf("shutdown with one unresponsive client took %v: %v", took, err)
	}

	// The client finds the 1012 close and then the end of the connection.
	_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _, err = conn.ReadMessage()
	if wsCloseCode(err) != websocket.CloseServiceRestart {
		t.Errorf("client read %v, want close 1012", err)
	}
	_ = conn.NetConn().SetReadDeadline(time.Now().Add(2 * time.Second))
	k, err := conn.NetConn().Read(make([]byte, 64))
	if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
		t.Errorf("after the close frame the server kept the TCP connection open")
	} else if err == nil {
		t.Errorf("after the close frame the server sent %d more bytes", k)
	}
}

// TestWSPings: the node's pinger pings every session once per interval
// (one scheduler for all sessions, no ticker per session), a client that
// answers stays connected across many intervals, and a client that never
// answers is dropped after twice the interval.
func TestWSPings(t *testing.T) {
	const every = 150 * time.Millisecond
	n := startNode(t, node.Config{API: api.Config{WS: ws.Config{PingInterval: every}}})

	var pings atomic.Int64
	live, _, err := wsTryDial(n, wsQuery(mint(t, 9101, "live", false), ""), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = live.Close() })
	live.SetPingHandler(func(data string) error {
		pings.Add(1)
		return live.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	liveDone := make(chan error, 1)
	go func() {
		for {
			if _, _, err := live.ReadMessage(); err != nil {
				liveDone <- err
				return
			}
		}
	}()

	// The silent client completes the handshake and then never reads, so
	// it never answers a ping.
	silent, _, err := wsTryDial(n, wsQuery(mint(t, 9102, "silent", false), ""), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	wsWaitSessions(t, n, 9101, 1)
	wsWaitSessions(t, n, 9102, 1)

	// 10 intervals: the silent session is gone after 2, the live one
	// got a ping in (nearly) every interval and is still open.
	time.Sleep(10 * every)
	if got := n.API().Hub().SessionCount(9102); got != 0 {
		t.Fatalf("silent client still has %d session(s) after 10 ping intervals", got)
	}
	if got := pings.Load(); got < 5 {
		t.Fatalf("live client got %d pings in 10 intervals, want at least 5", got)
	}
	select {
	case err := <-liveDone:
		t.Fatalf("live client was disconnected: %v", err)
	default:
	}
	if got := n.API().Hub().SessionCount(9101); got != 1 {
		t.Fatalf("live client has %d sessions, want 1", got)
	}
}

// outageStore fails the loads of one user while set, as a database that is
// down for that user's row would.
type outageStore struct {
	store.Store
	failID atomic.Int64
}

func (s *outageStore) Load(ctx context.Context, id int64) (*messages.UserState, error) {
	if id == s.failID.Load() {
		return nil, store.ErrUnavailable
	}
	return s.Store.Load(ctx, id)
}

// TestWSWatchRetriedAfterStoreOutage: a subscribe whose Watch the user's
// actor could not take (its record could not be loaded) is sent again once
// the store answers, so the subscriber does get the user's changes.
func TestWSWatchRetriedAfterStoreOutage(t *testing.T) {
	st := &outageStore{Store: store.NewMemory()}
	st.failID.Store(9202)
	n := startNode(t, node.Config{SharedStore: st})

	w := wsDialUser(t, n, 9201, "watcher", "9202")
	w.expectSubscribed(9202)
	w.sync() // no snapshot of 9202: its actor refused the Watch

	st.failID.Store(0)
	n.user(t, 9202, "late").heartbeat()
	// The hub sends the Watch again within its resync period (5 s); the
	// answer carries 9202 online.
	w.expectUpdate(9202, true, false)
}
