package e2e

// WebSocket client helpers for ws_test.go. Every name here starts with ws so
// nothing collides with the REST harness beside it.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"

	"github.com/presence-cluster/presence/internal/testkit"
)

// Timeouts of the WebSocket tests: wsWait bounds waiting for something that
// must happen; wsQuiet is how long "nothing arrives" is watched after a
// marker has shown that everything sent before it was delivered.
const (
	wsWait  = 10 * time.Second
	wsQuiet = 250 * time.Millisecond
)

// wsMarker is a frame of an unknown type: the server answers it with one
// error frame and changes nothing, so its answer marks a point in the
// session's outbound stream.
const wsMarker = `{"type":"ws-test-marker"}`

// wsMsg is one frame a client received.
type wsMsg = testkit.Frame

// wsClient is a WebSocket test connection (testkit.WSConn) with the
// assertions of the single-node tests.
type wsClient struct {
	*testkit.WSConn
	t *testing.T

	// last is the newest version seen per user, to check that versions rise.
	last map[int64]uint64
}

// wsURL is the WebSocket URL of n with rawQuery (may be empty).
func wsURL(n *testNode, rawQuery string) string { return testkit.WSURL(n.HTTPAddr(), rawQuery) }

// wsQuery builds the query string of a connection with token and, when
// given, user_ids.
func wsQuery(token, userIDs string) string { return testkit.WSQuery(token, userIDs) }

var wsDialer = &websocket.Dialer{HandshakeTimeout: wsWait}

// wsTryDial performs one handshake. On a refused handshake the response
// carries the status and (up to 1 KiB of) the body.
func wsTryDial(n *testNode, rawQuery string, header http.Header) (*websocket.Conn, *http.Response, error) {
	return wsDialer.Dial(wsURL(n, rawQuery), header)
}

// wsDialUser connects as user id with display name name, subscribing to
// userIDs (comma separated; "" for none) at connect.
func wsDialUser(t *testing.T, n *testNode, id int64, name, userIDs string) *wsClient {
	t.Helper()
	return wsDial(t, n, fmt.Sprintf("%s#%d", name, id), wsQuery(mint(t, id, name, false), userIDs), nil)
}

// wsWatchedConnect dials a watcher (watcherID) subscribed to user uID,
// then uID's first session as name: the watcher sees uID come online at
// version 1, and the session has read its own state.
func wsWatchedConnect(t *testing.T, n *testNode, watcherID, uID int64, name string) (watcher, session *wsClient) {
	t.Helper()
	watcher = wsDialUser(t, n, watcherID, "watcher", strconv.FormatInt(uID, 10))
	watcher.expectSubscribed(uID)
	session = wsDialUser(t, n, uID, name, "")
	watcher.expectVersion(uID, true, false, 1)
	session.sync()
	return watcher, session
}

// wsDial connects with rawQuery and header and starts the reader; the
// connection is closed when the test ends.
func wsDial(t *testing.T, n *testNode, name, rawQuery string, header http.Header) *wsClient {
	t.Helper()
	c, err := wsDialE(n, name, rawQuery, header)
	if err != nil {
		t.Fatalf("%v", err)
	}
	c.t = t
	t.Cleanup(c.Close)
	return c
}

// wsDialE is wsDial for any goroutine: it returns errors and leaves closing
// to the caller.
func wsDialE(n *testNode, name, rawQuery string, header http.Header) (*wsClient, error) {
	conn, err := testkit.DialWS(n.HTTPAddr(), rawQuery, testkit.WSOptions{Name: name, Header: header, Dialer: wsDialer})
	if err != nil {
		return nil, err
	}
	return &wsClient{WSConn: conn, last: make(map[int64]uint64)}, nil
}

// wsStart wraps an open connection and starts its reader.
func wsStart(name string, conn *websocket.Conn) *wsClient {
	return &wsClient{WSConn: testkit.WrapWS(name, conn, nil), last: make(map[int64]uint64)}
}

// recv returns the next frame, or an error when none comes within timeout
// or the connection ended.
func (c *wsClient) recv(timeout time.Duration) (*wsMsg, error) { return c.Next(timeout) }

func (c *wsClient) next() *wsMsg {
	c.t.Helper()
	m, err := c.recv(wsWait)
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	return m
}

func (c *wsClient) sendText(s string) {
	c.t.Helper()
	if err := c.SendText(s); err != nil {
		c.t.Fatalf("%s: send %s: %v", c.Name, s, err)
	}
}

func (c *wsClient) subscribe(ids ...int64) {
	c.t.Helper()
	c.sendText(wsIDsFrame("subscribe", ids))
}

func (c *wsClient) unsubscribe(ids ...int64) {
	c.t.Helper()
	c.sendText(wsIDsFrame("unsubscribe", ids))
}

func wsIDsFrame(typ string, ids []int64) string { return testkit.IDsFrame(typ, ids) }

// wsCheckKeys asserts the frame is a JSON object with exactly keys.
func wsCheckKeys(m *wsMsg, keys ...string) error {
	if m.Kind != websocket.TextMessage {
		return fmt.Errorf("want a text frame, got message type %d", m.Kind)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(m.Raw, &obj); err != nil {
		return fmt.Errorf("frame is not a JSON object: %v: %s", err, m)
	}
	got := make([]string, 0, len(obj))
	for k := range obj {
		got = append(got, k)
	}
	sort.Strings(got)
	want := append([]string(nil), keys...)
	sort.Strings(want)
	if strings.Join(got, ",") != strings.Join(want, ",") {
		return fmt.Errorf("frame keys %v, want %v: %s", got, want, m)
	}
	return nil
}

// expectType asserts that the next frame has type typ and returns it.
func (c *wsClient) expectType(typ string) *wsMsg {
	c.t.Helper()
	m := c.next()
	if m.ParseErr != nil || m.Type != typ {
		c.t.Fatalf("%s: want a %q frame, got %s (parse error %v)", c.Name, typ, m, m.ParseErr)
	}
	return m
}

// expectError asserts that the next frame is {"type":"error","detail":...}
// with a non-empty detail, and returns the detail.
func (c *wsClient) expectError() string {
	c.t.Helper()
	m := c.expectType("error")
	if err := wsCheckKeys(m, "type", "detail"); err != nil {
		c.t.Fatalf("%s: %v", c.Name, err)
	}
	if m.Detail == "" {
		c.t.Fatalf("%s: error frame without detail: %s", c.Name, m)
	}
	return m.Detail
}

// expectIDs asserts that the next frame is {"type":typ,"user_ids":ids}.
func (c *wsClient) expectIDs(typ string, ids ...int64) {
	c.t.Helper()
	m := c.expectType(typ)
	if err := wsCheckKeys(m, "type", "user_ids"); err != nil {
		c.t.Fatalf("%s: %v", c.Name, err)
	}
	if m.UserIDs == nil || fmt.Sprint(m.UserIDs) != fmt.Sprint(ids) {
		c.t.Fatalf("%s: %s user_ids %v, want %v: %s", c.Name, typ, m.UserIDs, ids, m)
	}
}

func (c *wsClient) expectSubscribed(ids ...int64) {
	c.t.Helper()
	c.expectIDs("subscribed", ids...)
}

func (c *wsClient) expectUnsubscribed(ids ...int64) {
	c.t.Helper()
	c.expectIDs("unsubscribed", ids...)
}

// wsCheckUpdate checks that m is a well-formed presence_update of user id
// with the given flags, and returns its presence.
func wsCheckUpdate(m *wsMsg, id int64, online, busy bool) (Presence, error) {
	if m.ParseErr != nil {
		return Presence{}, fmt.Errorf("unparsable frame %s: %v", m, m.ParseErr)
	}
	if err := wsCheckKeys(m, "type", "data", "timestamp"); err != nil {
		return Presence{}, err
	}
	p, err := m.Presence()
	if err != nil {
		return p, err
	}
	if err := checkUTC(m.Timestamp); err != nil {
		return p, fmt.Errorf("timestamp: %v: %s", err, m)
	}
	if p.UserID != id || p.IsOnline != online || p.IsBusy != busy {
		return p, fmt.Errorf("want update of user %d online=%v busy=%v, got %s", id, online, busy, m)
	}
	if !busy && p.BusyUntil != nil {
		return p, fmt.Errorf("not busy but busy_until is set: %s", m)
	}
	if p.Version == 0 {
		return p, fmt.Errorf("update without a version: %s", m)
	}
	return p, nil
}

// expectUpdate asserts that the next frame is a presence_update of user id
// with the given flags and a version above every earlier one of that user
// this client saw.
func (c *wsClient) expectUpdate(id int64, online, busy bool) Presence {
	c.t.Helper()
	m := c.next()
	p, err := wsCheckUpdate(m, id, online, busy)
	if err != nil {
		c.t.Fatalf("%s: %v", c.Name, err)
	}
	checkShape(c.t, m.Data, presenceShape)
	if last := c.last[id]; p.Version <= last {
		c.t.Fatalf("%s: version of user %d went from %d to %d: %s", c.Name, id, last, p.Version, m)
	}
	c.last[id] = p.Version
	return p
}

// expectVersion is expectUpdate that also pins the version.
func (c *wsClient) expectVersion(id int64, online, busy bool, version uint64) Presence {
	c.t.Helper()
	p := c.expectUpdate(id, online, busy)
	if !isNth(c.t, id, p.Version, version) {
		c.t.Fatalf("%s: update of user %d has version %d, want %d", c.Name, id, p.Version, version)
	}
	return p
}

// sync sends the marker and asserts that its error answer is the next
// frame: nothing else was queued for the client before it. After sync the
// session is fully set up (the server reads frames only after attaching).
func (c *wsClient) sync() {
	c.t.Helper()
	c.sendText(wsMarker)
	m := c.next()
	if m.Type != "error" {
		c.t.Fatalf("%s: unexpected frame before the marker's answer: %s", c.Name, m)
	}
}

// expectQuiet asserts that no frame arrives within d.
func (c *wsClient) expectQuiet(d time.Duration) {
	c.t.Helper()
	if m, err := c.Next(d); err == nil {
		c.t.Fatalf("%s: unexpected frame: %s", c.Name, m)
	}
}

// expectNothing asserts that the client got nothing up to now (sync) and
// nothing in a short window after.
func (c *wsClient) expectNothing() {
	c.t.Helper()
	c.sync()
	c.expectQuiet(wsQuiet)
}

// wsExpectNothing syncs every client and then watches them all for one
// quiet window: none may have received anything.
func wsExpectNothing(t *testing.T, cs ...*wsClient) {
	t.Helper()
	for _, c := range cs {
		c.sync()
	}
	time.Sleep(wsQuiet)
	for _, c := range cs {
		if m, ok := c.Pending(); ok {
			t.Fatalf("%s: unexpected frame: %s", c.Name, m)
		}
	}
}

// wsWaitSessions waits until the node holds want sessions of user id, so a
// close the client sent has been processed by the server.
func wsWaitSessions(t *testing.T, n *testNode, id int64, want int) {
	t.Helper()
	eventually(t, wsWait, func() bool { return n.API().Hub().SessionCount(id) == want },
		"node holding %d sessions of user %d", want, id)
}

// waitEnd waits for the connection to end, collecting the frames received
// before, and returns them with the reader's final error.
func (c *wsClient) waitEnd(timeout time.Duration) ([]*wsMsg, error, bool) { return c.WaitEnd(timeout) }

// expectClose asserts that the server ends the connection with a close
// frame of code, with no frame before it.
func (c *wsClient) expectClose(code int) {
	c.t.Helper()
	got, err, ended := c.waitEnd(wsWait)
	if !ended {
		c.t.Fatalf("%s: connection still open after %v (frames %v)", c.Name, wsWait, got)
	}
	if len(got) > 0 {
		c.t.Fatalf("%s: frames before the close: %v", c.Name, got)
	}
	if wsCloseCode(err) != code {
		c.t.Fatalf("%s: connection ended with %v, want close code %d", c.Name, err, code)
	}
}

// wsCloseCode is the close code of a reader error, or -1.
func wsCloseCode(err error) int { return testkit.CloseCode(err) }

// wsExpectRefused asserts that a handshake is refused with HTTP status code
// and the REST error body {"detail": detail}.
func wsExpectRefused(t *testing.T, n *testNode, rawQuery string, header http.Header, code int, detail string) *http.Response {
	t.Helper()
	conn, res, err := wsTryDial(n, rawQuery, header)
	if err == nil {
		conn.Close()
		t.Fatalf("handshake %q accepted, want HTTP %d", rawQuery, code)
	}
	if res == nil {
		t.Fatalf("handshake %q failed without an HTTP answer: %v", rawQuery, err)
	}
	body, _ := io.ReadAll(res.Body)
	r := &response{Code: res.StatusCode, Header: res.Header, Body: body}
	expectDetail(t, r, code, detail)
	return res
}

// wsSignHS signs claims with the node secret (HS256), for tokens
// auth.Mint refuses to make (expired ones).
func wsSignHS(t *testing.T, secret string, claims jwt.MapClaims) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return tok
}

// wsSmallBufferDialer dials with a small TCP receive buffer, so a client
// that does not read backs the server up quickly.
func wsSmallBufferDialer(size int) *websocket.Dialer {
	return &websocket.Dialer{
		HandshakeTimeout: wsWait,
		NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetReadBuffer(size)
			}
			return conn, nil
		},
	}
}

// wsPad returns frame padded with trailing spaces to exactly size bytes.
func wsPad(frame string, size int) string {
	if len(frame) > size {
		panic("frame longer than the pad size")
	}
	return frame + string(bytes.Repeat([]byte(" "), size-len(frame)))
}
