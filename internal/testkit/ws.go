package testkit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
)

// Frame is one frame a WSConn received.
type Frame struct {
	WireFrame
	Kind     int    // websocket.TextMessage or BinaryMessage
	Raw      []byte // the frame as received
	ParseErr error  // why Raw is not a JSON frame, if it is not
	At       time.Time
}

func (m *Frame) String() string {
	if m == nil {
		return "<nil>"
	}
	s := string(m.Raw)
	if len(s) > 400 {
		s = s[:400] + fmt.Sprintf("...(%d bytes)", len(m.Raw))
	}
	return s
}

// Presence decodes the data of a presence_update frame.
func (m *Frame) Presence() (Presence, error) {
	var p Presence
	if m.Type != "presence_update" {
		return p, fmt.Errorf("want a presence_update frame, got %s", m)
	}
	if err := json.Unmarshal(m.Data, &p); err != nil {
		return p, fmt.Errorf("presence_update data: %v: %s", err, m)
	}
	return p, nil
}

// Update is a pushed presence and when it arrived.
type Update struct {
	Presence
	At time.Time
}

// WSOptions are the optional settings of DialWS.
type WSOptions struct {
	Name     string      // for failure messages; default the URL
	Header   http.Header // handshake headers
	Dialer   *websocket.Dialer
	OnUpdate func(Presence) // called from the reader for every presence_update
}

// WSConn is a WebSocket test connection: one reader records every frame
// (in order, with a cursor for Next), the newest pushed state and the
// history per user, and the error or close code the connection ended with.
// Writes are serialized, so any goroutine may send.
type WSConn struct {
	Name string
	Conn *websocket.Conn

	onUpdate func(Presence)
	wmu      sync.Mutex

	mu      sync.Mutex
	frames  []*Frame
	cursor  int
	latest  map[int64]Presence
	history map[int64][]Update
	notify  chan struct{} // closed and replaced on every frame and at the end
	done    chan struct{}
	err     error
	once    sync.Once
}

// DefaultWSDialer is the dialer of DialWS when none is given.
var DefaultWSDialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second}

// WSURL is the WebSocket URL of the node at addr with rawQuery (may be
// empty).
func WSURL(addr, rawQuery string) string {
	u := "ws://" + addr + "/ws/presence"
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	return u
}

// WSQuery builds the query string of a connection with token and, when
// given, user_ids (comma separated).
func WSQuery(token, userIDs string) string {
	q := url.Values{}
	if token != "" {
		q.Set("token", token)
	}
	if userIDs != "" {
		q.Set("user_ids", userIDs)
	}
	return q.Encode()
}

// DialWS connects to the node at addr with rawQuery and starts the reader;
// the caller closes the connection. A refused handshake's error carries
// the HTTP status and body.
func DialWS(addr, rawQuery string, o WSOptions) (*WSConn, error) {
	d := o.Dialer
	if d == nil {
		d = DefaultWSDialer
	}
	if o.Name == "" {
		o.Name = "ws(" + addr + ")"
	}
	conn, res, err := d.Dial(WSURL(addr, rawQuery), o.Header)
	if err != nil {
		if res != nil {
			body, _ := io.ReadAll(res.Body)
			return nil, fmt.Errorf("dial %s: %w: HTTP %d %s", o.Name, err, res.StatusCode, body)
		}
		return nil, fmt.Errorf("dial %s: %w", o.Name, err)
	}
	return WrapWS(o.Name, conn, o.OnUpdate), nil
}

// WrapWS wraps an open connection and starts its reader.
func WrapWS(name string, conn *websocket.Conn, onUpdate func(Presence)) *WSConn {
	c := &WSConn{
		Name: name, Conn: conn, onUpdate: onUpdate,
		latest: map[int64]Presence{}, history: map[int64][]Update{},
		notify: make(chan struct{}), done: make(chan struct{}),
	}
	go c.read()
	return c
}

func (c *WSConn) read() {
	defer close(c.done)
	for {
		kind, data, err := c.Conn.ReadMessage()
		if err != nil {
			c.mu.Lock()
			c.err = err
			c.signal()
			c.mu.Unlock()
			return
		}
		m := &Frame{Kind: kind, Raw: data, At: time.Now()}
		if kind == websocket.TextMessage {
			m.ParseErr = json.Unmarshal(data, &m.WireFrame)
			checkFrame(data)
		} else {
			m.ParseErr = fmt.Errorf("frame of message type %d", kind)
		}
		var p Presence
		isUpdate := m.ParseErr == nil && m.Type == "presence_update" && json.Unmarshal(m.Data, &p) == nil
		c.mu.Lock()
		c.frames = append(c.frames, m)
		if isUpdate {
			c.history[p.UserID] = append(c.history[p.UserID], Update{Presence: p, At: m.At})
			if p.Version >= c.latest[p.UserID].Version {
				c.latest[p.UserID] = p
			}
		}
		c.signal()
		c.mu.Unlock()
		if isUpdate && c.onUpdate != nil {
			c.onUpdate(p)
		}
	}
}

// signal wakes every waiter; c.mu is held.
func (c *WSConn) signal() {
	close(c.notify)
	c.notify = make(chan struct{})
}

// Next returns the next frame not returned yet, or an error when none
// comes within timeout or the connection ended. Frames received before the
// end are returned first.
func (c *WSConn) Next(timeout time.Duration) (*Frame, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		c.mu.Lock()
		if c.cursor < len(c.frames) {
			m := c.frames[c.cursor]
			c.cursor++
			c.mu.Unlock()
			return m, nil
		}
		wait := c.notify
		ended := c.isDone()
		err := c.err
		c.mu.Unlock()
		if ended {
			return nil, fmt.Errorf("%s: connection ended: %v", c.Name, err)
		}
		select {
		case <-wait:
		case <-timer.C:
			return nil, fmt.Errorf("%s: no frame within %v", c.Name, timeout)
		}
	}
}

// Pending returns the next frame not returned yet without waiting.
func (c *WSConn) Pending() (*Frame, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cursor < len(c.frames) {
		m := c.frames[c.cursor]
		c.cursor++
		return m, true
	}
	return nil, false
}

func (c *WSConn) isDone() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// WaitEnd waits for the connection to end and returns the frames not
// returned yet with the reader's final error; ended is false when timeout
// passed first.
func (c *WSConn) WaitEnd(timeout time.Duration) (frames []*Frame, err error, ended bool) {
	select {
	case <-c.done:
	case <-time.After(timeout):
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	frames = append(frames, c.frames[c.cursor:]...)
	c.cursor = len(c.frames)
	if !c.isDone() {
		return frames, nil, false
	}
	return frames, c.err, true
}

// WaitFor evaluates cond on every frame (and every 50ms) until it holds or
// timeout passes, and returns its last value.
func (c *WSConn) WaitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		c.mu.Lock()
		wait := c.notify
		c.mu.Unlock()
		if cond() {
			return true
		}
		select {
		case <-wait:
		case <-tick.C:
		case <-deadline.C:
			return cond()
		}
	}
}

// Last returns the newest pushed state of user id (by version).
func (c *WSConn) Last(id int64) (Presence, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.latest[id]
	return p, ok
}

// Updates returns every pushed state of user id, in arrival order.
func (c *WSConn) Updates(id int64) []Update {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Update(nil), c.history[id]...)
}

// Count returns how many frames arrived so far.
func (c *WSConn) Count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.frames)
}

// Done is closed when the reader has ended.
func (c *WSConn) Done() <-chan struct{} { return c.done }

// Closed reports whether the connection ended, and how.
func (c *WSConn) Closed() (bool, error) {
	if !c.isDone() {
		return false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return true, c.err
}

// Err is the reader's final error once the connection has ended, and nil
// while it is open.
func (c *WSConn) Err() error {
	_, err := c.Closed()
	return err
}

// CloseCode is the close code the connection ended with, or -1.
func (c *WSConn) CloseCode() int { return CloseCode(c.Err()) }

// CloseCode is the close code of a reader error, or -1.
func CloseCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// Dump returns the last n frames received so far, for failure messages.
func (c *WSConn) Dump(n int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.frames
	if len(f) > n {
		f = f[len(f)-n:]
	}
	lines := make([]string, len(f))
	for i, m := range f {
		lines[i] = string(m.Raw)
	}
	return c.Name + ":\n  " + strings.Join(lines, "\n  ")
}

// WriteMessage writes one frame of any message type as is.
func (c *WSConn) WriteMessage(kind int, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.Conn.WriteMessage(kind, data)
}

// SendText writes a text frame.
func (c *WSConn) SendText(s string) error { return c.WriteMessage(websocket.TextMessage, []byte(s)) }

// Send writes v as a JSON text frame.
func (c *WSConn) Send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode frame: %w", err)
	}
	return c.WriteMessage(websocket.TextMessage, b)
}

// IDsFrame is a subscribe or unsubscribe frame of ids.
func IDsFrame(typ string, ids []int64) string {
	b, _ := json.Marshal(map[string]any{"type": typ, "user_ids": ids})
	return string(b)
}

// Close sends a normal close frame and drops the connection; safe to call
// many times.
func (c *WSConn) Close() {
	c.once.Do(func() {
		c.wmu.Lock()
		_ = c.Conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.wmu.Unlock()
		_ = c.Conn.Close()
		<-c.done
	})
}

// DialUser connects to the node at addr as user uid, subscribing to ids
// at connect.
func DialUser(addr string, tok *Tokens, uid int64, ids []int64) (*WSConn, error) {
	ids2 := ""
	if len(ids) > 0 {
		ids2 = JoinIDs(ids, false)
	}
	return DialWS(addr, WSQuery(tok.Of(uid), ids2), WSOptions{Name: fmt.Sprintf("ws(%d@%s)", uid, addr)})
}

// MustDialUser is DialUser that fails the test, and closes the connection
// when the test ends.
func MustDialUser(t testing.TB, addr string, tok *Tokens, uid int64, ids []int64) *WSConn {
	t.Helper()
	s, err := DialUser(addr, tok, uid, ids)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}
