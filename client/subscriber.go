package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/wire"
)

// ErrClosed is returned by the methods of a closed Subscriber.
var ErrClosed = errors.New("presence: subscriber closed")

// ErrDisconnected is the Err of the last StateEvent (StateClosed) of a
// Subscriber that stopped because an administrator disconnected its user
// (close code 4003) and ReconnectAfterDisconnect did not ask to reconnect.
var ErrDisconnected = errors.New("presence: the server disconnected this user (close 4003); not reconnecting")

// Subscriber keeps a WebSocket connection to a node open, subscribed to a
// set of users, and hands on their presence updates newest-first-wins (see
// the package documentation). It reconnects by itself; Close stops it.
type Subscriber struct {
	cfg     SubscriberConfig
	baseCfg Config // for the token
	urls    []string

	ctx     context.Context // cancelled by Close
	cancel  context.CancelFunc
	updates chan Update
	stopped chan struct{} // closed when the loop has ended

	mu       sync.Mutex
	subs     map[int64]struct{}
	versions versionFilter
	conn     *websocket.Conn // nil while not connected
	state    State

	writeMu sync.Mutex // one writer at a time on conn
}

// NewSubscriber starts a Subscriber with the client's token and
// Config.Subscriber. It connects in the background: watch OnState or State
// to know when it is connected.
func (c *Client) NewSubscriber() *Subscriber {
	cfg := c.cfg.Subscriber
	urls := make([]string, len(cfg.URLs))
	for i, u := range cfg.URLs {
		urls[i], _ = wsEndpoint(u) // checked by New
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Subscriber{
		cfg: cfg, baseCfg: c.cfg, urls: urls, ctx: ctx, cancel: cancel,
		updates:  make(chan Update, cfg.UpdateBuffer),
		stopped:  make(chan struct{}),
		subs:     make(map[int64]struct{}, len(cfg.UserIDs)),
		versions: versionFilter{},
		state:    StateConnecting,
	}
	for _, id := range cfg.UserIDs {
		s.subs[id] = struct{}{}
	}
	go s.run()
	return s
}

// Updates delivers the updates when no OnUpdate callback is configured. It
// is closed after Close. A reader that stops reading holds the connection
// up, and the server drops a connection that falls far behind.
func (s *Subscriber) Updates() <-chan Update { return s.updates }

// State is the connection's state now.
func (s *Subscriber) State() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state
}

// Subscribe adds users to the subscription. The server answers with their
// current presence (for users who have a record), then their changes. While
// disconnected the subscription is kept and sent on the next connection.
func (s *Subscriber) Subscribe(ids ...int64) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	s.mu.Lock()
	fresh := make([]int64, 0, len(ids))
	for _, id := range ids {
		if _, ok := s.subs[id]; !ok {
			s.subs[id] = struct{}{}
			fresh = append(fresh, id)
		}
	}
	conn := s.conn
	s.mu.Unlock()
	if conn != nil && len(fresh) > 0 {
		// A failed write ends the connection; the reconnect sends the
		// whole set again, so it is not the caller's error.
		_ = s.write(conn, wire.SubscribeFrame(fresh))
	}
	return nil
}

// Unsubscribe removes users from the subscription and forgets their
// versions. The server goes on sending the connection's own user.
func (s *Subscriber) Unsubscribe(ids ...int64) error {
	if s.ctx.Err() != nil {
		return ErrClosed
	}
	s.mu.Lock()
	gone := make([]int64, 0, len(ids))
	for _, id := range ids {
		if _, ok := s.subs[id]; ok {
			delete(s.subs, id)
			s.versions.forget(id)
			gone = append(gone, id)
		}
	}
	conn := s.conn
	s.mu.Unlock()
	if conn != nil && len(gone) > 0 {
		_ = s.write(conn, wire.UnsubscribeFrame(gone))
	}
	return nil
}

// Subscriptions is the set of users subscribed to, in ascending order.
func (s *Subscriber) Subscriptions() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := make([]int64, 0, len(s.subs))
	for id := range s.subs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Close closes the connection (normal closure) and stops reconnecting;
// it returns when the subscriber has stopped. Later calls do nothing.
func (s *Subscriber) Close() error {
	s.cancel()
	s.mu.Lock()
	conn := s.conn
	s.mu.Unlock()
	if conn != nil {
		msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
		_ = conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		_ = conn.Close()
	}
	<-s.stopped
	return nil
}

// write sends one frame on conn within WriteTimeout.
func (s *Subscriber) write(conn *websocket.Conn, f wire.Frame) error {
	s.writeMu.Lock()
	defer s.writeMu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
	return conn.WriteJSON(f)
}

// setState records st and tells OnState.
func (s *Subscriber) setState(ev StateEvent) {
	s.mu.Lock()
	s.state = ev.State
	s.mu.Unlock()
	if s.cfg.OnState != nil {
		s.cfg.OnState(ev)
	}
}

// randDuration is a random duration in [0, n); 0 for n <= 0.
func randDuration(n time.Duration) time.Duration {
	if n <= 0 {
		return 0
	}
	return rand.N(n)
}
