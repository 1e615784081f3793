package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/api/auth"
)

// topology is who subscribes to whom. Users are numbered 0..Users-1 (user
// id = UserBase + index); users 0..Sessions-1 hold one WebSocket session
// each. A session subscribes to the Hot users (0..Hot-1) and to its next
// Contacts users on a ring, so every user has exactly Contacts ring
// subscribers and a hot user has every session as subscriber. Nothing is
// stored per session: both sides derive it from the indices.
type topology struct {
	Users    int   `json:"users"`
	UserBase int64 `json:"user_base"`
	Sessions int   `json:"sessions"`
	Contacts int   `json:"contacts"`
	Hot      int   `json:"hot"`
}

func (t topology) userID(i int) int64 { return t.UserBase + int64(i) }

// contactsOf lists the users session s subscribes to (without itself: a
// session receives its own user's updates anyway, and they are not counted).
func (t topology) contactsOf(s int) []int {
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
func (t topology) subscribes(s, u int) bool {
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
// subscribes to u.
func (t topology) forSubscribers(u, first, count int, f func(s int)) {
	if u < t.Hot {
		for s := first; s < first+count; s++ {
			if s != u {
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

// workerConfig is the first line a worker reads on stdin. The secret
// travels here, not on the command line, so ps does not show it.
type workerConfig struct {
	Index     int      `json:"index"`
	URLs      []string `json:"urls"`
	Secret    string   `json:"secret"`
	Issuer    string   `json:"issuer,omitempty"`
	Audience  string   `json:"audience,omitempty"`
	Topo      topology `json:"topology"`
	First     int      `json:"first"`
	Count     int      `json:"count"`
	SourceIPs []string `json:"source_ips"`
	RampNS    int64    `json:"ramp_ns"`
	// DialConcurrency bounds handshakes in flight.
	DialConcurrency int   `json:"dial_concurrency"`
	ReadBuffer      int   `json:"read_buffer"`
	WriteBuffer     int   `json:"write_buffer"`
	TokenTTLNS      int64 `json:"token_ttl_ns"`
	// MaxLifetimeNS ends the worker even if the coordinator never says so.
	MaxLifetimeNS int64 `json:"max_lifetime_ns"`
	// NoReconnect keeps sessions closed by the server (1012, 1013) closed.
	NoReconnect bool `json:"no_reconnect,omitempty"`
}

// workerReport is what a worker writes on stdout, one JSON object a line:
// progress every second, then one result.
type workerReport struct {
	Kind  string `json:"kind"` // "progress" or "result"
	Index int    `json:"index"`

	Open       int64            `json:"open"`
	Acked      int64            `json:"acked"`
	Failed     int64            `json:"failed"`
	Closed     int64            `json:"closed"`
	Frames     int64            `json:"frames"`
	Expected   int64            `json:"expected"`
	Received   int64            `json:"received"`
	Missing    int64            `json:"missing"`
	Unmatched  int64            `json:"unmatched"`
	Errors     map[string]int64 `json:"errors,omitempty"`
	Delivery   *histogram       `json:"delivery,omitempty"`
	Handshake  *histogram       `json:"handshake,omitempty"`
	RSSBytes   int64            `json:"rss_bytes,omitempty"`
	HeapBytes  int64            `json:"heap_inuse_bytes,omitempty"`
	StackBytes int64            `json:"stack_inuse_bytes,omitempty"`
	HeapDelta  int64            `json:"heap_stack_delta_bytes,omitempty"`
	CPUSeconds float64          `json:"cpu_s,omitempty"`
	Goroutines int              `json:"goroutines,omitempty"`
}

// wsSess is one simulated session; kept small (the connection itself is
// held by its reader goroutine).
type wsSess struct {
	ackAt    atomic.Int64 // unix ns the "subscribed" answer arrived
	closedAt atomic.Int64 // unix ns the session ended; 0 while open
	conn     atomic.Pointer[websocket.Conn]
}

type changeKey struct {
	user    int32
	version uint64
}

type receipt struct {
	sess int32
	at   int64
}

// pendingChange is one announced or received change: receipts wait here
// until the coordinator tells when the change was sent.
type pendingChange struct {
	sendAt   int64 // 0 until announced
	seenAt   int64 // first receipt or announcement, for expiry
	expected int32
	received int32
	recvs    []receipt
}

// matcher pairs changes the coordinator made (user, version, send time)
// with frames the sessions received.
type matcher struct {
	topo        topology
	first, cnt  int
	sess        []wsSess
	mu          sync.Mutex
	pend        map[changeKey]*pendingChange
	lat         histogram
	expected    int64
	received    int64
	missing     int64
	unmatched   int64
	lastExpired time.Time
}

func newMatcher(t topology, first, count int, sess []wsSess) *matcher {
	return &matcher{topo: t, first: first, cnt: count, sess: sess, pend: make(map[changeKey]*pendingChange)}
}

// expects reports whether session s (global index) had subscribed before
// the change was sent and was still open.
func (m *matcher) expects(s int, sendAt int64) bool {
	ws := &m.sess[s-m.first]
	ack := ws.ackAt.Load()
	if ack == 0 || ack >= sendAt {
		return false
	}
	c := ws.closedAt.Load()
	return c == 0 || c > sendAt
}

// receive records that session s got user u at version v at time at.
func (m *matcher) receive(s, u int, v uint64, at int64) {
	if !m.topo.subscribes(s, u) {
		return // its own user, or a frame it did not ask for
	}
	k := changeKey{int32(u), v}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pend[k]
	if p == nil {
		p = &pendingChange{seenAt: at}
		m.pend[k] = p
	}
	if p.sendAt == 0 {
		p.recvs = append(p.recvs, receipt{int32(s), at})
		return
	}
	m.count(p, k, s, at)
}

func (m *matcher) count(p *pendingChange, k changeKey, s int, at int64) {
	if !m.expects(s, p.sendAt) {
		return
	}
	p.received++
	m.received++
	m.lat.Record(at - p.sendAt)
	if p.received >= p.expected {
		delete(m.pend, k)
	}
}

// announce records a change the coordinator made.
func (m *matcher) announce(u int, v uint64, sendAt int64) {
	k := changeKey{int32(u), v}
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.pend[k]
	if p == nil {
		p = &pendingChange{seenAt: time.Now().UnixNano()}
		m.pend[k] = p
	}
	if p.sendAt != 0 {
		return // announced twice: ignore
	}
	p.sendAt = sendAt
	m.topo.forSubscribers(u, m.first, m.cnt, func(s int) {
		if m.expects(s, sendAt) {
			p.expected++
		}
	})
	m.expected += int64(p.expected)
	recvs := p.recvs
	p.recvs = nil
	if p.expected == 0 {
		delete(m.pend, k)
		return
	}
	for _, r := range recvs {
		m.count(p, k, int(r.sess), r.at)
	}
}

// expire drops receipts of changes nobody announced (connect and
// disconnect updates) once they are older than maxAge.
func (m *matcher) expire(now time.Time, maxAge time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Sub(m.lastExpired) < time.Second {
		return
	}
	m.lastExpired = now
	cut := now.Add(-maxAge).UnixNano()
	for k, p := range m.pend {
		if p.sendAt == 0 && p.seenAt < cut {
			m.unmatched += int64(len(p.recvs))
			delete(m.pend, k)
		}
	}
}

// finish counts what never arrived.
func (m *matcher) finish() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for k, p := range m.pend {
		if p.sendAt != 0 {
			m.missing += int64(p.expected - p.received)
		} else {
			m.unmatched += int64(len(p.recvs))
		}
		delete(m.pend, k)
	}
}

func (m *matcher) snapshot() (expected, received, missing, unmatched int64, lat *histogram) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.lat
	c.Counts = append([]uint64(nil), m.lat.Counts...)
	return m.expected, m.received, m.missing, m.unmatched, &c
}

// wsWorker holds the sessions of one worker.
type wsWorker struct {
	cfg    workerConfig
	sess   []wsSess
	match  *matcher
	dialer []*websocket.Dialer // one per source address
	errs   counters
	hs     syncHist

	open, acked, failed, closed, frames atomic.Int64
	ending                              atomic.Bool
	wg                                  sync.WaitGroup
}

// runWorker is the hidden worker mode: it reads its configuration and the
// coordinator's change announcements from in, and writes reports to out.
func runWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	if !sc.Scan() {
		return errors.New("worker: no configuration on stdin")
	}
	var cfg workerConfig
	if err := json.Unmarshal(sc.Bytes(), &cfg); err != nil {
		return fmt.Errorf("worker: configuration: %w", err)
	}
	if cfg.Count < 0 || cfg.First < 0 || cfg.First+cfg.Count > cfg.Topo.Sessions || len(cfg.URLs) == 0 {
		return errors.New("worker: configuration out of range")
	}
	if cfg.MaxLifetimeNS <= 0 {
		cfg.MaxLifetimeNS = int64(15 * time.Minute)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.MaxLifetimeNS))
	defer cancel()

	w := &wsWorker{cfg: cfg, sess: make([]wsSess, cfg.Count)}
	runtime.GC()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	w.match = newMatcher(cfg.Topo, cfg.First, cfg.Count, w.sess)
	ips := cfg.SourceIPs
	if len(ips) == 0 {
		ips = []string{""}
	}
	// One write buffer pool for all sessions: a session writes only pongs
	// and its close frame, so it holds no write buffer between writes.
	pool := &sync.Pool{}
	for _, ip := range ips {
		d := &websocket.Dialer{
			HandshakeTimeout: 15 * time.Second,
			ReadBufferSize:   max(cfg.ReadBuffer, 256),
			WriteBufferSize:  max(cfg.WriteBuffer, 256),
			WriteBufferPool:  pool,
		}
		if ip != "" {
			local := &net.TCPAddr{IP: net.ParseIP(ip)}
			nd := &net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
			d.NetDialContext = nd.DialContext
		}
		w.dialer = append(w.dialer, d)
	}

	var outMu sync.Mutex
	enc := json.NewEncoder(out)
	emit := func(r *workerReport) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = enc.Encode(r)
	}

	dialCtx, stopDialing := context.WithCancel(ctx)
	defer stopDialing()
	dialDone := make(chan struct{})
	go func() {
		defer close(dialDone)
		w.dialAll(dialCtx)
	}()

	progressDone := make(chan struct{})
	progressStop := make(chan struct{})
	go func() {
		defer close(progressDone)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-progressStop:
				return
			case <-ctx.Done():
				return
			case now := <-t.C:
				w.match.expire(now, 30*time.Second)
				emit(w.report("progress"))
			}
		}
	}()

	// Announcements: "c <user index> <version> <send unix ns>"; "end".
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
read:
	for {
		select {
		case <-ctx.Done():
			break read
		case line, ok := <-lines:
			if !ok || line == "end" {
				break read
			}
			w.handleLine(line)
		}
	}

	w.ending.Store(true)
	stopDialing()
	<-dialDone
	close(progressStop)
	<-progressDone
	w.match.finish()
	res := w.report("result")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HeapDelta = int64(ms.HeapInuse+ms.StackInuse) - int64(ms0.HeapInuse+ms0.StackInuse)
	res.RSSBytes = selfRSS()
	res.HeapBytes = int64(ms.HeapInuse)
	res.StackBytes = int64(ms.StackInuse)
	res.Goroutines = runtime.NumGoroutine()
	res.CPUSeconds = pidCPU(os.Getpid())
	w.closeAll()
	emit(res)
	return nil
}

func (w *wsWorker) handleLine(line string) {
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "c" {
		w.errs.Add("worker_bad_line", 1)
		return
	}
	u, err1 := strconv.Atoi(f[1])
	v, err2 := strconv.ParseUint(f[2], 10, 64)
	at, err3 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || u < 0 || u >= w.cfg.Topo.Users {
		w.errs.Add("worker_bad_line", 1)
		return
	}
	w.match.announce(u, v, at)
}

func (w *wsWorker) report(kind string) *workerReport {
	exp, rec, miss, unm, lat := w.match.snapshot()
	return &workerReport{
		Kind: kind, Index: w.cfg.Index,
		Open: w.open.Load(), Acked: w.acked.Load(), Failed: w.failed.Load(), Closed: w.closed.Load(),
		Frames: w.frames.Load(), Expected: exp, Received: rec, Missing: miss, Unmatched: unm,
		Errors: w.errs.Snapshot(), Delivery: lat, Handshake: w.hs.Snapshot(),
	}
}

// dialAll opens the sessions evenly over the ramp, with a bounded number
// of handshakes in flight.
func (w *wsWorker) dialAll(ctx context.Context) {
	conc := max(w.cfg.DialConcurrency, 1)
	sem := make(chan struct{}, conc)
	start := time.Now()
	ramp := time.Duration(w.cfg.RampNS)
	for i := 0; i < w.cfg.Count; i++ {
		if ramp > 0 && w.cfg.Count > 1 {
			at := start.Add(time.Duration(int64(ramp) * int64(i) / int64(w.cfg.Count)))
			if d := time.Until(at); d > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(d):
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case sem <- struct{}{}:
		}
		w.wg.Add(1)
		go func(i int) {
			defer w.wg.Done()
			w.session(ctx, i, sem)
		}(i)
	}
}

// session dials session i (local index) and reads its frames until the
// connection ends. sem is released once the first handshake is over. A
// session the server closes with 1012 (draining) or 1013 (try again later)
// reconnects after a short random pause, as the protocol asks of clients:
// to the next node for 1012, to the same one for 1013.
func (w *wsWorker) session(ctx context.Context, i int, sem chan struct{}) {
	s := w.cfg.First + i
	released := false
	release := func() {
		if !released {
			released = true
			<-sem
		}
	}
	defer release()
	t := w.cfg.Topo
	tok, err := auth.Mint([]byte(w.cfg.Secret), auth.MintClaims{
		UserID: t.userID(s), Username: "bench" + strconv.Itoa(s),
		TTL: time.Duration(max(w.cfg.TokenTTLNS, int64(time.Hour))), Issuer: w.cfg.Issuer, Audience: w.cfg.Audience,
	})
	if err != nil {
		w.fail("ws_mint")
		return
	}
	node := s % len(w.cfg.URLs)
	for {
		code := w.connect(ctx, i, tok, node, release)
		if w.cfg.NoReconnect || w.ending.Load() || ctx.Err() != nil {
			return
		}
		switch code {
		case websocket.CloseServiceRestart:
			node = (node + 1) % len(w.cfg.URLs)
		case websocket.CloseTryAgainLater:
		default:
			return
		}
		w.errs.Add("ws_reconnect", 1)
		if w.sess[i].ackAt.Load() != 0 {
			w.acked.Add(-1) // "subscribed" counts sessions, not connections
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(reconnectPause()):
		}
	}
}

// reconnectPause spreads the reconnects of sessions closed together.
func reconnectPause() time.Duration {
	return 250*time.Millisecond + time.Duration(rand.Int64N(int64(time.Second)))
}

// connect runs one connection of session i to the node at index node and
// returns the close code the server ended it with (0 for anything else).
func (w *wsWorker) connect(ctx context.Context, i int, tok string, node int, release func()) int {
	s := w.cfg.First + i
	ws := &w.sess[i]
	t := w.cfg.Topo
	u := wsURL(w.cfg.URLs[node], tok, t, s)
	d := w.dialer[s%len(w.dialer)]
	begin := time.Now()
	conn, resp, err := d.DialContext(ctx, u, nil)
	if err != nil {
		switch {
		case resp != nil:
			w.fail("ws_handshake_" + strconv.Itoa(resp.StatusCode))
		case ctx.Err() != nil:
			w.errs.Add("ws_dial_cancelled", 1)
		default:
			w.fail(dialErrKind(err))
		}
		return 0
	}
	w.hs.Record(time.Since(begin))
	release()
	ws.ackAt.Store(0)
	ws.closedAt.Store(0)
	ws.conn.Store(conn)
	w.open.Add(1)
	defer func() {
		ws.closedAt.Store(time.Now().UnixNano())
		w.open.Add(-1)
		w.closed.Add(1)
		_ = conn.Close()
	}()
	if len(t.contactsOf(s)) == 0 {
		ws.ackAt.Store(time.Now().UnixNano())
		w.acked.Add(1)
	}
	// Frames are ~250 bytes; one small buffer per session, reused.
	buf := make([]byte, 512)
	for {
		_, r, err := conn.NextReader()
		if err != nil {
			code := 0
			if !w.ending.Load() {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					code = ce.Code
					w.errs.Add("ws_closed_"+strconv.Itoa(ce.Code), 1)
				} else {
					w.errs.Add("ws_read_error", 1)
				}
			}
			return code
		}
		n, err := io.ReadFull(r, buf)
		if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			err = nil
		} else if err == nil {
			_, err = io.Copy(io.Discard, r) // longer than buf: only its head matters
		}
		if err != nil {
			if !w.ending.Load() {
				w.errs.Add("ws_read_error", 1)
			}
			return 0
		}
		now := time.Now().UnixNano()
		w.frames.Add(1)
		w.frame(s, ws, buf[:n], now)
	}
}

var (
	prefixUpdate     = []byte(`{"type":"presence_update","data":{"user_id":`)
	prefixSubscribed = []byte(`{"type":"subscribed"`)
	prefixError      = []byte(`{"type":"error"`)
	keyVersion       = []byte(`"version":`)
)

func (w *wsWorker) frame(s int, ws *wsSess, b []byte, now int64) {
	switch {
	case bytes.HasPrefix(b, prefixUpdate):
		id, v, ok := parseUpdate(b)
		if !ok {
			w.errs.Add("ws_bad_frame", 1)
			return
		}
		u := id - w.cfg.Topo.UserBase
		if u < 0 || u >= int64(w.cfg.Topo.Users) {
			return
		}
		w.match.receive(s, int(u), v, now)
	case bytes.HasPrefix(b, prefixSubscribed):
		if ws.ackAt.CompareAndSwap(0, now) {
			w.acked.Add(1)
		}
	case bytes.HasPrefix(b, prefixError):
		w.errs.Add("ws_error_frame", 1)
	}
}

// parseUpdate reads user_id and version of a presence_update frame
// without decoding the rest.
func parseUpdate(b []byte) (id int64, v uint64, ok bool) {
	if !bytes.HasPrefix(b, prefixUpdate) {
		return 0, 0, false
	}
	rest := b[len(prefixUpdate):]
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	id, err := strconv.ParseInt(string(rest[:end]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	i := bytes.LastIndex(b, keyVersion)
	if i < 0 {
		return 0, 0, false
	}
	rest = b[i+len(keyVersion):]
	end = 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	v, err = strconv.ParseUint(string(rest[:end]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	return id, v, true
}

func (w *wsWorker) fail(kind string) {
	w.failed.Add(1)
	w.errs.Add(kind, 1)
}

func dialErrKind(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "cannot assign requested address"):
		return "ws_dial_no_source_port"
	case strings.Contains(msg, "too many open files"):
		return "ws_dial_emfile"
	case strings.Contains(msg, "connection refused"):
		return "ws_dial_refused"
	case strings.Contains(msg, "timeout"), strings.Contains(msg, "deadline"):
		return "ws_dial_timeout"
	case strings.Contains(msg, "reset"):
		return "ws_dial_reset"
	}
	return "ws_dial_error"
}

// closeAll ends every session and waits for the readers (bounded).
func (w *wsWorker) closeAll() {
	for i := range w.sess {
		if c := w.sess[i].conn.Load(); c != nil {
			_ = c.NetConn().Close()
		}
	}
	done := make(chan struct{})
	go func() { w.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
}

// wsURL builds the session URL: the token and the contact list in the
// query.
func wsURL(base, token string, t topology, s int) string {
	u := strings.TrimRight(base, "/")
	u = "ws" + strings.TrimPrefix(u, "http")
	var b strings.Builder
	b.WriteString(u)
	b.WriteString("/ws/presence?token=")
	b.WriteString(url.QueryEscape(token))
	if cs := t.contactsOf(s); len(cs) > 0 {
		b.WriteString("&user_ids=")
		for i, c := range cs {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(t.userID(c), 10))
		}
	}
	return b.String()
}

// selfRSS reads this process's resident set size (Linux); 0 elsewhere.
func selfRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
