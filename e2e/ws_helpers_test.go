package e2e

// WebSocket client helpers for ws_test.go. Every name here starts with ws so
// nothing collides with the REST harness beside it.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/golang-jwt/jwt/v5"
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
type wsMsg struct {
	kind int // websocket.TextMessage or BinaryMessage
	raw  []byte

	Type      string          `json:"type"`
	Data      json.RawMessage `json:"data"`
	UserIDs   []int64         `json:"user_ids"`
	Detail    string          `json:"detail"`
	Timestamp string          `json:"timestamp"`
	parseErr  error
}

func (m *wsMsg) String() string {
	if m == nil {
		return "<nil>"
	}
	s := string(m.raw)
	if len(s) > 400 {
		s = s[:400] + fmt.Sprintf("...(%d bytes)", len(m.raw))
	}
	return s
}

// presence decodes the data of a presence_update frame.
func (m *wsMsg) presence() (Presence, error) {
	var p Presence
	if m.Type != "presence_update" {
		return p, fmt.Errorf("want a presence_update frame, got %s", m)
	}
	if err := json.Unmarshal(m.Data, &p); err != nil {
		return p, fmt.Errorf("presence_update data: %v: %s", err, m)
	}
	return p, nil
}

// wsClient is a WebSocket client with one reader goroutine that hands every
// frame to the test through a channel.
type wsClient struct {
	t    *testing.T
	name string
	conn *websocket.Conn

	frames chan *wsMsg
	done   chan struct{} // closed when the reader ends; err is set before
	err    error
	stop   chan struct{}
	once   sync.Once

	// last is the newest version seen per user, to check that versions rise.
	last map[int64]uint64
}

// wsURL is the WebSocket URL of n with rawQuery (may be empty).
func wsURL(n *testNode, rawQuery string) string {
	u := "ws://" + n.HTTPAddr() + "/ws/presence"
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	return u
}

// wsQuery builds the query string of a connection with token and, when
// given, user_ids.
func wsQuery(token, userIDs string) string {
	q := url.Values{}
	if token != "" {
		q.Set("token", token)
	}
	if userIDs != "" {
		q.Set("user_ids", userIDs)
	}
	return q.Encode()
}

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

// wsDial connects with rawQuery and header and starts the reader; the
// connection is closed when the test ends.
func wsDial(t *testing.T, n *testNode, name, rawQuery string, header http.Header) *wsClient {
	t.Helper()
	c, err := wsDialE(n, name, rawQuery, header)
	if err != nil {
		t.Fatalf("%v", err)
	}
	c.t = t
	t.Cleanup(c.close)
	return c
}

// wsDialE is wsDial for any goroutine: it returns errors and leaves closing
// to the caller.
func wsDialE(n *testNode, name, rawQuery string, header http.Header) (*wsClient, error) {
	conn, res, err := wsTryDial(n, rawQuery, header)
	if err != nil {
		if res != nil {
			body, _ := io.ReadAll(res.Body)
			return nil, fmt.Errorf("dial %s: %v: HTTP %d %s", name, err, res.StatusCode, body)
		}
		return nil, fmt.Errorf("dial %s: %v", name, err)
	}
	return wsStart(name, conn), nil
}

// wsStart wraps an open connection and starts its reader.
func wsStart(name string, conn *websocket.Conn) *wsClient {
	c := &wsClient{
		name:   name,
		conn:   conn,
		frames: make(chan *wsMsg, 256),
		done:   make(chan struct{}),
		stop:   make(chan struct{}),
		last:   make(map[int64]uint64),
	}
	go c.readLoop()
	return c
}

func (c *wsClient) readLoop() {
	defer close(c.done)
	for {
		kind, data, err := c.conn.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		m := &wsMsg{kind: kind, raw: data}
		if kind == websocket.TextMessage {
			m.parseErr = json.Unmarshal(data, m)
		} else {
			m.parseErr = fmt.Errorf("frame of message type %d", kind)
		}
		select {
		case c.frames <- m:
		case <-c.stop:
			return
		}
	}
}

// close sends a normal close frame and drops the connection; safe to call
// many times.
func (c *wsClient) close() {
	c.once.Do(func() {
		close(c.stop)
		_ = c.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = c.conn.Close()
		<-c.done
	})
}

// endErr is the reader's final error once the connection has ended, and
// nil while it is open.
func (c *wsClient) endErr() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// recv returns the next frame, or an error when none comes within timeout
// or the connection ended. Frames received before the end are returned
// first.
func (c *wsClient) recv(timeout time.Duration) (*wsMsg, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case m := <-c.frames:
		return m, nil
	case <-c.done:
		select {
		case m := <-c.frames:
			return m, nil
		default:
		}
		return nil, fmt.Errorf("%s: connection ended: %v", c.name, c.err)
	case <-timer.C:
		return nil, fmt.Errorf("%s: no frame within %v", c.name, timeout)
	}
}

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
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(s)); err != nil {
		c.t.Fatalf("%s: send %s: %v", c.name, s, err)
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

func wsIDsFrame(typ string, ids []int64) string {
	b, _ := json.Marshal(map[string]any{"type": typ, "user_ids": ids})
	return string(b)
}

// wsCheckKeys asserts the frame is a JSON object with exactly keys.
func wsCheckKeys(m *wsMsg, keys ...string) error {
	if m.kind != websocket.TextMessage {
		return fmt.Errorf("want a text frame, got message type %d", m.kind)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(m.raw, &obj); err != nil {
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
	if m.parseErr != nil || m.Type != typ {
		c.t.Fatalf("%s: want a %q frame, got %s (parse error %v)", c.name, typ, m, m.parseErr)
	}
	return m
}

// expectError asserts that the next frame is {"type":"error","detail":...}
// with a non-empty detail, and returns the detail.
func (c *wsClient) expectError() string {
	c.t.Helper()
	m := c.expectType("error")
	if err := wsCheckKeys(m, "type", "detail"); err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	if m.Detail == "" {
		c.t.Fatalf("%s: error frame without detail: %s", c.name, m)
	}
	return m.Detail
}

// expectIDs asserts that the next frame is {"type":typ,"user_ids":ids}.
func (c *wsClient) expectIDs(typ string, ids ...int64) {
	c.t.Helper()
	m := c.expectType(typ)
	if err := wsCheckKeys(m, "type", "user_ids"); err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
	if m.UserIDs == nil || fmt.Sprint(m.UserIDs) != fmt.Sprint(ids) {
		c.t.Fatalf("%s: %s user_ids %v, want %v: %s", c.name, typ, m.UserIDs, ids, m)
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
	if m.parseErr != nil {
		return Presence{}, fmt.Errorf("unparsable frame %s: %v", m, m.parseErr)
	}
	if err := wsCheckKeys(m, "type", "data", "timestamp"); err != nil {
		return Presence{}, err
	}
	p, err := m.presence()
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
		c.t.Fatalf("%s: %v", c.name, err)
	}
	checkShape(c.t, m.Data, presenceShape)
	if last := c.last[id]; p.Version <= last {
		c.t.Fatalf("%s: version of user %d went from %d to %d: %s", c.name, id, last, p.Version, m)
	}
	c.last[id] = p.Version
	return p
}

// expectVersion is expectUpdate that also pins the version.
func (c *wsClient) expectVersion(id int64, online, busy bool, version uint64) Presence {
	c.t.Helper()
	p := c.expectUpdate(id, online, busy)
	if p.Version != version {
		c.t.Fatalf("%s: update of user %d has version %d, want %d", c.name, id, p.Version, version)
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
		c.t.Fatalf("%s: unexpected frame before the marker's answer: %s", c.name, m)
	}
}

// expectQuiet asserts that no frame arrives within d.
func (c *wsClient) expectQuiet(d time.Duration) {
	c.t.Helper()
	select {
	case m := <-c.frames:
		c.t.Fatalf("%s: unexpected frame: %s", c.name, m)
	case <-time.After(d):
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
		select {
		case m := <-c.frames:
			t.Fatalf("%s: unexpected frame: %s", c.name, m)
		default:
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
func (c *wsClient) waitEnd(timeout time.Duration) ([]*wsMsg, error, bool) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var got []*wsMsg
	for {
		select {
		case m := <-c.frames:
			got = append(got, m)
		case <-c.done:
			for {
				select {
				case m := <-c.frames:
					got = append(got, m)
				default:
					return got, c.err, true
				}
			}
		case <-deadline.C:
			return got, nil, false
		}
	}
}

// expectClose asserts that the server ends the connection with a close
// frame of code, with no frame before it.
func (c *wsClient) expectClose(code int) {
	c.t.Helper()
	got, err, ended := c.waitEnd(wsWait)
	if !ended {
		c.t.Fatalf("%s: connection still open after %v (frames %v)", c.name, wsWait, got)
	}
	if len(got) > 0 {
		c.t.Fatalf("%s: frames before the close: %v", c.name, got)
	}
	if wsCloseCode(err) != code {
		c.t.Fatalf("%s: connection ended with %v, want close code %d", c.name, err, code)
	}
}

// wsCloseCode is the close code of a reader error, or -1.
func wsCloseCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

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
	r := &response{code: res.StatusCode, header: res.Header, body: body}
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
