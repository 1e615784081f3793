package clustere2e

// Client helpers shared by the in-process and the multi-process tests: JWT
// minting, a REST client whose calls return errors (so traffic goroutines
// can use them), a WebSocket subscriber that records every frame, and
// polling with deadlines.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/api/auth"
)

// testSecret is the HS256 secret every node of a test cluster shares.
const testSecret = "cluster-e2e-secret-0123456789abcdef"

// adminID is the subject of admin tokens; never a traffic user.
const adminID = 9_000_000

// mint issues a token for userID, valid for an hour.
func mint(t testing.TB, userID int64, admin bool) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), auth.MintClaims{
		UserID: userID, Username: "user" + strconv.FormatInt(userID, 10), Admin: admin, TTL: time.Hour,
	})
	if err != nil {
		t.Fatalf("mint: %v", err)
	}
	return tok
}

// tokens caches one token per user (minting is cheap, but traffic loops
// mint a lot).
type tokens struct {
	t  testing.TB
	mu sync.Mutex
	m  map[int64]string
}

func newTokens(t testing.TB) *tokens { return &tokens{t: t, m: map[int64]string{}} }

func (k *tokens) of(id int64) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	tok, ok := k.m[id]
	if !ok {
		tok = mint(k.t, id, id == adminID)
		k.m[id] = tok
	}
	return tok
}

// ---------------------------------------------------------------- REST

// Status is the record of GET/PUT /users/me/status.
type Status struct {
	UserID    int64      `json:"user_id"`
	IsOnline  bool       `json:"is_online"`
	IsBusy    bool       `json:"is_busy"`
	BusyUntil *time.Time `json:"busy_until"`
	LastSeen  *time.Time `json:"last_seen"`
	CreatedAt *time.Time `json:"created_at"`
	UpdatedAt *time.Time `json:"updated_at"`
	Version   uint64     `json:"version"`
}

// Presence is the record of the presence endpoints and of pushed updates.
type Presence struct {
	UserID    int64      `json:"user_id"`
	Username  string     `json:"username"`
	IsOnline  bool       `json:"is_online"`
	IsBusy    bool       `json:"is_busy"`
	BusyUntil *time.Time `json:"busy_until"`
	LastSeen  *time.Time `json:"last_seen"`
	Version   uint64     `json:"version"`

	at time.Time // when a subscriber received it
}

func (p Presence) String() string {
	bu := "null"
	if p.BusyUntil != nil {
		bu = p.BusyUntil.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("{user %d online=%v busy=%v until=%s v%d}", p.UserID, p.IsOnline, p.IsBusy, bu, p.Version)
}

func (s Status) String() string {
	return Presence{UserID: s.UserID, IsOnline: s.IsOnline, IsBusy: s.IsBusy, BusyUntil: s.BusyUntil, Version: s.Version}.String()
}

// Cleanup is the body of POST /admin/cleanup-presence.
type Cleanup struct {
	Message            string `json:"message"`
	UsersMarkedOffline int64  `json:"users_marked_offline"`
	BusyStatusCleared  int64  `json:"busy_status_cleared"`
}

// ClusterStatus is the body of GET /admin/cluster.
type ClusterStatus struct {
	Node       string         `json:"node"`
	Standalone bool           `json:"standalone"`
	Epoch      uint64         `json:"epoch"`
	Members    []MemberStatus `json:"members"`
}

// MemberStatus is one member of GET /admin/cluster.
type MemberStatus struct {
	Name         string `json:"name"`
	NodeName     string `json:"node_name"`
	Status       string `json:"status"`
	Draining     bool   `json:"draining"`
	Owner        bool   `json:"owns_users"`
	Self         bool   `json:"self"`
	HTTPAddr     string `json:"http_addr"`
	GossipAddr   string `json:"gossip_addr"`
	RemoteAddr   string `json:"remote_addr"`
	ActorsHosted *int64 `json:"actors_hosted"`
	Error        string `json:"error"`
}

// alive counts the members in state alive that own users.
func (c ClusterStatus) alive() int {
	n := 0
	for _, m := range c.Members {
		if m.Status == "alive" && m.Owner {
			n++
		}
	}
	return n
}

// hosted sums actors_hosted; ok is false when a member did not answer.
func (c ClusterStatus) hosted() (sum int64, ok bool) {
	for _, m := range c.Members {
		if m.ActorsHosted == nil {
			return sum, false
		}
		sum += *m.ActorsHosted
	}
	return sum, true
}

func (c ClusterStatus) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "node %s epoch %d:", c.Node, c.Epoch)
	for _, m := range c.Members {
		h := "?"
		if m.ActorsHosted != nil {
			h = strconv.FormatInt(*m.ActorsHosted, 10)
		}
		fmt.Fprintf(&b, " [%s %s owner=%v draining=%v hosted=%s%s]", m.NodeName, m.Status, m.Owner, m.Draining, h, m.Error)
	}
	return b.String()
}

// httpError is a non-2xx answer.
type httpError struct {
	code int
	body string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d %s", e.code, e.body) }

// isHTTP reports whether err is an HTTP answer with the given code.
func isHTTP(err error, code int) bool {
	var he *httpError
	return errors.As(err, &he) && he.code == code
}

// rest calls one node's HTTP API; it is safe for concurrent use.
type rest struct {
	base string // http://host:port
	hc   *http.Client
	tok  *tokens
}

func newREST(addr string, tok *tokens) *rest {
	return &rest{
		base: "http://" + addr,
		hc: &http.Client{Timeout: 15 * time.Second, Transport: &http.Transport{
			MaxIdleConnsPerHost: 32, DialContext: (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
		}},
		tok: tok,
	}
}

// call sends one request as user uid (0: no token) and decodes a 200
// answer into out (when not nil).
func (r *rest) call(uid int64, method, path, body string, out any) error {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, r.base+path, rd)
	if err != nil {
		return err
	}
	if uid != 0 {
		req.Header.Set("Authorization", "Bearer "+r.tok.of(uid))
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if res.StatusCode != http.StatusOK {
		return &httpError{code: res.StatusCode, body: string(bytes.TrimSpace(b))}
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode %s: %w", method, path, b, err)
		}
	}
	return nil
}

func (r *rest) getStatus(uid int64) (Status, error) {
	var s Status
	return s, r.call(uid, http.MethodGet, "/users/me/status", "", &s)
}

func (r *rest) putStatus(uid int64, body string) (Status, error) {
	var s Status
	return s, r.call(uid, http.MethodPut, "/users/me/status", body, &s)
}

func (r *rest) heartbeat(uid int64) error {
	var m map[string]string
	if err := r.call(uid, http.MethodPost, "/users/me/heartbeat", "", &m); err != nil {
		return err
	}
	if m["message"] != "Heartbeat received" || len(m) != 1 {
		return fmt.Errorf("heartbeat answer %v", m)
	}
	return nil
}

// presence is GET /users/{id}/presence as user asker.
func (r *rest) presence(asker, id int64) (Presence, error) {
	var p Presence
	return p, r.call(asker, http.MethodGet, "/users/"+strconv.FormatInt(id, 10)+"/presence", "", &p)
}

func (r *rest) batch(asker int64, ids []int64) ([]Presence, error) {
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = strconv.FormatInt(id, 10)
	}
	var ps []Presence
	return ps, r.call(asker, http.MethodGet, "/users/presence?user_ids="+url.QueryEscape(strings.Join(parts, ",")), "", &ps)
}

func (r *rest) cleanup() (Cleanup, error) {
	var c Cleanup
	return c, r.call(adminID, http.MethodPost, "/admin/cleanup-presence", "", &c)
}

func (r *rest) cluster() (ClusterStatus, error) {
	var c ClusterStatus
	return c, r.call(adminID, http.MethodGet, "/admin/cluster", "", &c)
}

// ---------------------------------------------------------------- WebSocket

// subscriber is a WebSocket client that records every frame; the newest
// pushed state per user is kept by version.
type subscriber struct {
	name string
	conn *websocket.Conn

	mu      sync.Mutex
	frames  []string
	latest  map[int64]Presence
	history map[int64][]Presence
	changed chan struct{} // signalled (non-blocking) on every frame
	done    chan struct{}
	err     error // the reader's final error, set before done closes
	once    sync.Once
}

var wsDialer = &websocket.Dialer{HandshakeTimeout: 10 * time.Second}

// dialWS connects to the node at addr as user uid, subscribing to ids at
// connect.
func dialWS(addr string, tok *tokens, uid int64, ids []int64) (*subscriber, error) {
	q := url.Values{"token": {tok.of(uid)}}
	if len(ids) > 0 {
		parts := make([]string, len(ids))
		for i, id := range ids {
			parts[i] = strconv.FormatInt(id, 10)
		}
		q.Set("user_ids", strings.Join(parts, ","))
	}
	conn, res, err := wsDialer.Dial("ws://"+addr+"/ws/presence?"+q.Encode(), nil)
	if err != nil {
		if res != nil {
			b, _ := io.ReadAll(res.Body)
			return nil, fmt.Errorf("dial ws %s as %d: %v: HTTP %d %s", addr, uid, err, res.StatusCode, b)
		}
		return nil, fmt.Errorf("dial ws %s as %d: %v", addr, uid, err)
	}
	s := &subscriber{
		name:    fmt.Sprintf("ws(%d@%s)", uid, addr),
		conn:    conn,
		latest:  map[int64]Presence{},
		history: map[int64][]Presence{},
		changed: make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	go s.read()
	return s, nil
}

// mustDialWS is dialWS that fails the test, and closes the connection when
// the test ends.
func mustDialWS(t testing.TB, addr string, tok *tokens, uid int64, ids []int64) *subscriber {
	t.Helper()
	s, err := dialWS(addr, tok, uid, ids)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.close)
	return s
}

type wsFrame struct {
	Type    string          `json:"type"`
	Data    json.RawMessage `json:"data"`
	UserIDs []int64         `json:"user_ids"`
	Detail  string          `json:"detail"`
}

func (s *subscriber) read() {
	defer close(s.done)
	for {
		_, data, err := s.conn.ReadMessage()
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			s.signal()
			return
		}
		var f wsFrame
		_ = json.Unmarshal(data, &f)
		s.mu.Lock()
		s.frames = append(s.frames, string(data))
		if f.Type == "presence_update" {
			var p Presence
			if err := json.Unmarshal(f.Data, &p); err == nil {
				p.at = time.Now()
				s.history[p.UserID] = append(s.history[p.UserID], p)
				if p.Version >= s.latest[p.UserID].Version {
					s.latest[p.UserID] = p
				}
			}
		}
		s.mu.Unlock()
		s.signal()
	}
}

func (s *subscriber) signal() {
	select {
	case s.changed <- struct{}{}:
	default:
	}
}

// send writes a text frame.
func (s *subscriber) send(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn.WriteMessage(websocket.TextMessage, b)
}

// close ends the connection; safe to call many times.
func (s *subscriber) close() {
	s.once.Do(func() {
		s.mu.Lock()
		_ = s.conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		s.mu.Unlock()
		_ = s.conn.Close()
		<-s.done
	})
}

// last returns the newest pushed state of user id.
func (s *subscriber) last(id int64) (Presence, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.latest[id]
	return p, ok
}

// updates returns every pushed state of user id, in arrival order.
func (s *subscriber) updates(id int64) []Presence {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Presence(nil), s.history[id]...)
}

// closed reports whether the connection ended, and how.
func (s *subscriber) closed() (bool, error) {
	select {
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		return true, s.err
	default:
		return false, nil
	}
}

// dump returns the frames received so far (the last n), for failure
// messages.
func (s *subscriber) dump(n int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.frames
	if len(f) > n {
		f = f[len(f)-n:]
	}
	return s.name + ":\n  " + strings.Join(f, "\n  ")
}

// waitFor polls cond on every frame (and every 50ms) until it holds or
// timeout passes.
func (s *subscriber) waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if cond() {
			return true
		}
		select {
		case <-s.changed:
		case <-tick.C:
		case <-deadline.C:
			return cond()
		}
	}
}

// closeCode is the close code of a reader error, or -1.
func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

// ---------------------------------------------------------------- polling

// eventually polls cond every 25ms until it returns nil, and fails the test
// with cond's last error after timeout. It returns how long it took.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	d, err := poll(timeout, cond)
	if err != nil {
		t.Fatalf("%s: not reached within %v: %v", what, timeout, err)
	}
	return d
}

// poll is eventually without the test: it returns the last error.
func poll(timeout time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return time.Since(start), err
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// rfc3339 formats tm as the API takes busy_until.
func rfc3339(tm time.Time) string { return tm.UTC().Format(time.RFC3339Nano) }

func samePresence(a, b Presence) bool {
	if a.UserID != b.UserID || a.IsOnline != b.IsOnline || a.IsBusy != b.IsBusy || a.Version != b.Version {
		return false
	}
	if (a.BusyUntil == nil) != (b.BusyUntil == nil) {
		return false
	}
	return a.BusyUntil == nil || a.BusyUntil.Equal(*b.BusyUntil)
}

// freePort returns a port free on 127.0.0.1 for both TCP and UDP (gossip
// uses both).
func freePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return port
	}
	t.Fatal("no free port")
	return 0
}

// mrest is a rest whose calls fail the test on error.
type mrest struct {
	t testing.TB
	r *rest
}

// on returns r's calls failing t.
func (r *rest) on(t testing.TB) mrest { return mrest{t: t, r: r} }

func (m mrest) getStatus(uid int64) Status {
	m.t.Helper()
	s, err := m.r.getStatus(uid)
	if err != nil {
		m.t.Fatalf("GET /users/me/status as %d on %s: %v", uid, m.r.base, err)
	}
	return s
}

func (m mrest) putStatus(uid int64, body string) Status {
	m.t.Helper()
	s, err := m.r.putStatus(uid, body)
	if err != nil {
		m.t.Fatalf("PUT /users/me/status %s as %d on %s: %v", body, uid, m.r.base, err)
	}
	return s
}

func (m mrest) heartbeat(uid int64) {
	m.t.Helper()
	if err := m.r.heartbeat(uid); err != nil {
		m.t.Fatalf("POST /users/me/heartbeat as %d on %s: %v", uid, m.r.base, err)
	}
}

func (m mrest) presence(asker, id int64) Presence {
	m.t.Helper()
	p, err := m.r.presence(asker, id)
	if err != nil {
		m.t.Fatalf("GET /users/%d/presence on %s: %v", id, m.r.base, err)
	}
	return p
}

func (m mrest) batch(asker int64, ids []int64) []Presence {
	m.t.Helper()
	ps, err := m.r.batch(asker, ids)
	if err != nil {
		m.t.Fatalf("GET /users/presence?user_ids=%v on %s: %v", ids, m.r.base, err)
	}
	return ps
}

func (m mrest) cleanup() Cleanup {
	m.t.Helper()
	c, err := m.r.cleanup()
	if err != nil {
		m.t.Fatalf("POST /admin/cleanup-presence on %s: %v", m.r.base, err)
	}
	return c
}

func (m mrest) cluster() ClusterStatus {
	m.t.Helper()
	c, err := m.r.cluster()
	if err != nil {
		m.t.Fatalf("GET /admin/cluster on %s: %v", m.r.base, err)
	}
	return c
}

// count returns how many frames arrived so far.
func (s *subscriber) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

// ---------------------------------------------------------------- heartbeats

// heartbeater heartbeats users every interval through the given nodes (in
// turn), one goroutine per user, and records failures and the longest gap
// between two answered heartbeats of a user.
type heartbeater struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex
	lastOK   map[int64]time.Time
	maxGap   map[int64]time.Duration
	failures map[int64][]string
}

func startHeartbeats(users []int64, via []*rest, every time.Duration) *heartbeater {
	h := &heartbeater{stop: make(chan struct{}), lastOK: map[int64]time.Time{}, maxGap: map[int64]time.Duration{}, failures: map[int64][]string{}}
	for i, u := range users {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			tick := time.NewTicker(every)
			defer tick.Stop()
			for k := i; ; k++ {
				r := via[k%len(via)]
				start := time.Now()
				err := r.heartbeat(u)
				now := time.Now()
				h.mu.Lock()
				if err != nil {
					h.failures[u] = append(h.failures[u], fmt.Sprintf("%s after %v via %s: %v", start.Format("15:04:05.000"), now.Sub(start).Round(time.Millisecond), r.base, err))
				} else {
					if last, ok := h.lastOK[u]; ok && now.Sub(last) > h.maxGap[u] {
						h.maxGap[u] = now.Sub(last)
					}
					h.lastOK[u] = now
				}
				h.mu.Unlock()
				select {
				case <-h.stop:
					return
				case <-tick.C:
				}
			}
		}()
	}
	return h
}

func (h *heartbeater) halt() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	h.wg.Wait()
}
