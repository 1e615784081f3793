package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/api/auth"
)

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
		UserID: t.userID(s), Username: "bench" + strconv.Itoa(s), Admin: t.admin(s),
		TTL: time.Duration(max(w.cfg.TokenTTLNS, int64(time.Hour))), Issuer: w.cfg.Issuer, Audience: w.cfg.Audience,
	})
	if err != nil {
		w.fail("ws_mint")
		return
	}
	if w.storm != nil {
		w.stormSession(ctx, i, tok, release)
		return
	}
	node := s % len(w.cfg.URLs)
	for {
		out := w.connect(ctx, i, tok, node, release)
		if !out.dialed || w.cfg.NoReconnect || w.ending.Load() || ctx.Err() != nil {
			return
		}
		switch out.code {
		case websocket.CloseServiceRestart:
			node = (node + 1) % len(w.cfg.URLs)
		case websocket.CloseTryAgainLater:
		default:
			return
		}
		w.errs.Add("ws_reconnect", 1)
		if w.sess[i].ackAt.Swap(0) != 0 {
			w.acked.Add(-1) // "subscribed" counts sessions, not connections
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(reconnectPause()):
		}
	}
}

// stormSession runs session i in the storm scenario: it connects where
// initialNode says and reconnects after every loss as the clients do
// (planStormReconnect), until the run ends.
func (w *wsWorker) stormSession(ctx context.Context, i int, tok string, release func()) {
	s := w.cfg.First + i
	n := len(w.cfg.URLs)
	node := initialNode(s, n, w.cfg.Storm.DrainIndex, w.cfg.Storm.DrainSessions)
	step := stormStep(s, n)
	attempt := 0
	for {
		out := w.connect(ctx, i, tok, node, release)
		if w.ending.Load() || ctx.Err() != nil {
			return
		}
		p := planStormReconnect(out, attempt, randDuration)
		attempt = p.attempt
		if p.nextURL {
			node = (node + step) % n
		}
		w.errs.Add("ws_reconnect", 1)
		if w.sess[i].ackAt.Swap(0) != 0 {
			w.acked.Add(-1)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(p.delay):
		}
	}
}

// randDuration is a random duration in [0, n).
func randDuration(n time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(n)))
}

// reconnectPause spreads the reconnects of sessions closed together.
func reconnectPause() time.Duration {
	return 250*time.Millisecond + time.Duration(rand.Int64N(int64(time.Second)))
}

// readFrames reads session s's frames until the connection ends and
// returns the close code the server ended it with (0 for anything else).
func (w *wsWorker) readFrames(s int, ws *wsSess, conn *websocket.Conn) int {
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

// connOutcome is how one connection of a session ended.
type connOutcome struct {
	code       int  // the server's close code, 0 for anything else
	dialed     bool // the handshake succeeded
	subscribed bool // the session was answered "subscribed"
}

// connect runs one connection of session i to the node at index node
// until it ends.
func (w *wsWorker) connect(ctx context.Context, i int, tok string, node int, release func()) connOutcome {
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
			w.refuse("ws_handshake_" + strconv.Itoa(resp.StatusCode))
		case ctx.Err() != nil:
			w.errs.Add("ws_dial_cancelled", 1)
		default:
			w.refuse(dialErrKind(err))
		}
		return connOutcome{}
	}
	w.hs.Record(time.Since(begin))
	if w.storm != nil && w.storm.after(begin.UnixNano()) {
		w.storm.hs.Record(time.Since(begin))
	}
	release()
	ws.ackAt.Store(0)
	ws.closedAt.Store(0)
	ws.conn.Store(conn)
	w.open.Add(1)
	if len(t.contactsOf(s)) == 0 {
		w.subscribedNow(i, ws, time.Now().UnixNano())
	}
	code := w.readFrames(s, ws, conn)
	now := time.Now().UnixNano()
	ws.closedAt.Store(now)
	w.open.Add(-1)
	w.closed.Add(1)
	_ = conn.Close()
	if w.storm != nil && !w.ending.Load() {
		w.storm.connEnded(i, now)
		if w.storm.after(now) {
			w.storm.refusals.Add("closed_"+strconv.Itoa(code), 1)
		}
	}
	return connOutcome{code: code, dialed: true, subscribed: ws.ackAt.Load() != 0}
}

// subscribedNow records local session i's "subscribed" answer at now.
func (w *wsWorker) subscribedNow(i int, ws *wsSess, now int64) {
	if ws.ackAt.CompareAndSwap(0, now) {
		w.acked.Add(1)
		if w.storm != nil {
			w.storm.subscribed(i, now)
		}
	}
}

// refuse counts a handshake that failed: a failed session, or in a storm
// once the drain began, a refusal the session retries.
func (w *wsWorker) refuse(kind string) {
	if w.storm != nil && w.storm.after(time.Now().UnixNano()) {
		w.storm.refusals.Add(kind, 1)
		w.errs.Add(kind, 1)
		return
	}
	w.fail(kind)
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
		if w.storm != nil {
			w.storm.update(s, int(u), v, !isOffline(b), now)
		}
	case bytes.HasPrefix(b, prefixSubscribed):
		w.subscribedNow(s-w.cfg.First, ws, now)
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
func wsURL(base, token string, t Topology, s int) string {
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
