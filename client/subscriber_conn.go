package client

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/wire"
)

// run connects, serves the connection until it ends, and reconnects as
// planReconnect says, until Close.
func (s *Subscriber) run() {
	defer close(s.stopped)
	defer close(s.updates)
	final := StateEvent{State: StateClosed}
	defer func() { s.setState(final) }()
	attempt, idx := 0, 0
	for {
		u := s.urls[idx]
		s.setState(StateEvent{State: StateConnecting, URL: u})
		out := s.connectAndServe(u)
		if s.ctx.Err() != nil {
			return
		}
		p := planReconnect(&s.cfg, out, attempt, randDuration)
		if p.stop {
			// Stopped for good: later calls get ErrClosed, as after Close.
			s.cancel()
			s.setState(StateEvent{State: StateDisconnected, URL: u, Err: out.err, CloseCode: out.closeCode})
			final = StateEvent{State: StateClosed, URL: u, Err: fmt.Errorf("%w: %w", ErrDisconnected, out.err), CloseCode: out.closeCode}
			return
		}
		attempt = p.attempt
		if p.nextURL {
			idx = (idx + 1) % len(s.urls)
		}
		s.cfg.Logger.Debug("presence subscriber disconnected", slog.String("url", u),
			slog.Int("close_code", out.closeCode), slog.Any("err", out.err), slog.Duration("retry_in", p.delay))
		s.setState(StateEvent{State: StateDisconnected, URL: u, Err: out.err, CloseCode: out.closeCode, Retry: p.delay})
		t := time.NewTimer(p.delay)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
	}
}

// connectAndServe makes one connection to u and reads it until it ends.
func (s *Subscriber) connectAndServe(u string) outcome {
	conn, tok, err := s.dial(u)
	if err != nil {
		return outcome{err: err}
	}
	start := time.Now()
	s.mu.Lock()
	if s.ctx.Err() != nil { // Close ran during the handshake
		s.mu.Unlock()
		conn.Close()
		return outcome{err: ErrClosed, dialed: true}
	}
	s.conn = conn
	ids := make([]int64, 0, len(s.subs))
	for id := range s.subs {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.conn = nil
		s.mu.Unlock()
		conn.Close()
	}()
	s.setState(StateEvent{State: StateConnected, URL: u})
	if len(ids) > 0 {
		if err := s.write(conn, wire.SubscribeFrame(ids)); err != nil {
			return outcome{err: fmt.Errorf("send subscribe: %w", err), dialed: true}
		}
	}
	stop := make(chan struct{})
	defer close(stop)
	if s.cfg.HeartbeatInterval > 0 {
		go s.heartbeats(conn, stop)
	}
	if s.baseCfg.TokenSource != nil {
		go s.refresher(conn, tok, stop)
	}
	err = s.read(conn)
	return outcome{err: err, dialed: true, token: tok, closeCode: closeCodeOf(err), lived: time.Since(start)}
}

// dial opens a connection to u with the token in the query, and returns
// the token too.
func (s *Subscriber) dial(u string) (*websocket.Conn, string, error) {
	tok, err := tokenOf(s.ctx, s.baseCfg)
	if err != nil {
		return nil, "", err
	}
	target := u
	if tok != "" {
		target += "?token=" + url.QueryEscape(tok)
	}
	conn, resp, err := s.cfg.Dialer.DialContext(s.ctx, target, nil)
	if err != nil {
		if resp != nil {
			// A refused handshake: the status and the API's error body.
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			return nil, "", fmt.Errorf("presence: connect %s: %w", u, newError(resp.StatusCode, resp.Header, body))
		}
		return nil, "", fmt.Errorf("presence: connect %s: %w", u, err)
	}
	return conn, tok, nil
}

// read handles frames until the connection ends, and returns why.
func (s *Subscriber) read(conn *websocket.Conn) error {
	alive := func() { _ = conn.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout)) }
	alive()
	conn.SetPingHandler(func(data string) error {
		alive()
		err := conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(s.cfg.WriteTimeout))
		if err != nil && !isTimeout(err) {
			return err
		}
		return nil
	})
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		alive()
		var f wire.Frame
		if err := json.Unmarshal(msg, &f); err != nil {
			s.cfg.Logger.Warn("presence subscriber: undecodable frame", slog.Any("err", err))
			continue
		}
		switch f.Type {
		case wire.TypePresenceUpdate:
			if f.Data != nil && !s.deliver(Update{Presence: *f.Data, Timestamp: f.Timestamp}) {
				return ErrClosed
			}
		case wire.TypeError:
			s.cfg.Logger.Warn("presence subscriber: the server refused a frame", slog.String("detail", f.Detail))
		case wire.TypeRefreshed:
			s.cfg.Logger.Debug("presence subscriber: session refreshed", slog.Time("expires_at", f.ExpiresAt))
		}
	}
}

// deliver hands u on unless its version is not news; false once closed.
func (s *Subscriber) deliver(u Update) bool {
	s.mu.Lock()
	news := s.versions.accept(u.UserID, u.Version)
	s.mu.Unlock()
	if !news {
		return true
	}
	if s.cfg.OnUpdate != nil {
		s.cfg.OnUpdate(u)
		return true
	}
	select {
	case s.updates <- u:
		return true
	case <-s.ctx.Done():
		return false
	}
}

// heartbeats sends a heartbeat frame every HeartbeatInterval until stop.
func (s *Subscriber) heartbeats(conn *websocket.Conn, stop <-chan struct{}) {
	t := time.NewTicker(s.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if s.write(conn, wire.HeartbeatFrame()) != nil {
				return
			}
		case <-stop:
			return
		}
	}
}

func isTimeout(err error) bool {
	te, ok := err.(interface{ Timeout() bool })
	return ok && te.Timeout()
}

// wsEndpoint is the WebSocket URL of the presence endpoint of a node given
// by its http(s):// or ws(s):// base URL.
func wsEndpoint(base string) (string, error) {
	u, err := url.Parse(base)
	if err != nil {
		return "", fmt.Errorf("presence client: node URL: %w", err)
	}
	switch u.Scheme {
	case "http":
		u.Scheme = "ws"
	case "https":
		u.Scheme = "wss"
	case "ws", "wss":
	default:
		return "", fmt.Errorf("presence client: node URL %q: want http(s):// or ws(s)://", base)
	}
	if u.Host == "" {
		return "", fmt.Errorf("presence client: node URL %q has no host", base)
	}
	u.Path = strings.TrimRight(u.Path, "/") + "/ws/presence"
	u.RawQuery, u.Fragment = "", ""
	return u.String(), nil
}
