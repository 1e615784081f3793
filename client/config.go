package client

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/fasthttp/websocket"
)

// TokenSource returns the bearer token to send; it is called for every
// request and every WebSocket connection, so it may refresh tokens.
type TokenSource func(ctx context.Context) (string, error)

// Config configures a Client and the Subscribers it makes. Start from
// DefaultConfig; New fills any zero field with its default.
type Config struct {
	// BaseURL is where REST calls go: a node or a load balancer in front
	// of the nodes, e.g. "http://localhost:8000". Required.
	BaseURL string
	// Token is a static bearer token. TokenSource, when set, is asked
	// instead. With neither, requests carry no Authorization header.
	Token       string
	TokenSource TokenSource
	// HTTPClient makes the REST calls. Its Timeout may stay zero: every
	// call is bounded by its context.
	HTTPClient *http.Client
	// MaxResponseBytes bounds the answer read from the server.
	MaxResponseBytes int64
	// Subscriber configures the Subscribers made by NewSubscriber.
	Subscriber SubscriberConfig
}

// SubscriberConfig configures the WebSocket subscriber.
type SubscriberConfig struct {
	// URLs are the nodes to connect to, as http(s):// or ws(s):// base
	// URLs; empty means Config.BaseURL. A node that is draining (close
	// code 1012) or cannot be reached makes the subscriber try the next.
	URLs []string
	// UserIDs are subscribed to from the first connection on.
	UserIDs []int64
	// OnUpdate, when set, receives every update in place of the Updates
	// channel. It runs on the connection's reader: a slow callback delays
	// reading, and a server drops a reader that falls far behind.
	OnUpdate func(Update)
	// OnState, when set, receives every change of connection state. It
	// runs on the subscriber's goroutine and must not block.
	OnState func(StateEvent)
	// UpdateBuffer is the capacity of the Updates channel.
	UpdateBuffer int
	// MinBackoff and MaxBackoff bound the delay before a reconnect; it
	// doubles with each failed attempt and is jittered to between half of
	// it and all of it.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// RestartJitter bounds the random delay before reconnecting after the
	// node closed with 1012 (draining): soon, but not all clients at once.
	RestartJitter time.Duration
	// StableAfter is how long a connection must have lasted for its loss
	// to restart the backoff from MinBackoff.
	StableAfter time.Duration
	// HeartbeatInterval, when positive, sends a heartbeat frame this often.
	// The open connection alone keeps the user online, so this is only for
	// intermediaries that close idle connections.
	HeartbeatInterval time.Duration
	// IdleTimeout drops a connection on which nothing (frame or ping) has
	// arrived for this long; the server pings every 30 s by default.
	IdleTimeout time.Duration
	// WriteTimeout bounds writing one frame.
	WriteTimeout time.Duration
	// RefreshBefore is how long before the connection's token expires the
	// subscriber asks Config.TokenSource for a new token and sends it in a
	// refresh frame, so the server does not close the session (close code
	// 4001). A token with less than twice this left is refreshed half-way
	// through what is left. Only with a TokenSource (a static Token cannot
	// be refreshed: its session ends at its exp, and the reconnect is
	// refused once it has expired).
	RefreshBefore time.Duration
	// ReconnectAfterDisconnect is asked when the server closed the
	// connection because an administrator disconnected the user (close
	// code 4003). Returning true reconnects (with a token from
	// TokenSource, which should be a new one); false, or no function, stops
	// the subscriber: its last StateEvent is StateClosed with an Err
	// matching ErrDisconnected.
	ReconnectAfterDisconnect func(StateEvent) bool
	// Dialer opens the connections (its HandshakeTimeout bounds a
	// handshake).
	Dialer *websocket.Dialer
	// Logger receives reconnects (debug) and error frames (warn).
	Logger *slog.Logger
}

// DefaultConfig returns a complete Config with every default filled in;
// only BaseURL and the token are left to set.
func DefaultConfig() Config {
	return Config{
		HTTPClient:       http.DefaultClient,
		MaxResponseBytes: 4 << 20,
		Subscriber: SubscriberConfig{
			UpdateBuffer:  256,
			MinBackoff:    500 * time.Millisecond,
			MaxBackoff:    30 * time.Second,
			RestartJitter: 250 * time.Millisecond,
			StableAfter:   10 * time.Second,
			IdleTimeout:   90 * time.Second,
			WriteTimeout:  10 * time.Second,
			RefreshBefore: 30 * time.Second,
			Dialer:        &websocket.Dialer{HandshakeTimeout: 10 * time.Second, Proxy: http.ProxyFromEnvironment},
			Logger:        slog.Default(),
		},
	}
}

// withDefaults fills the zero fields of c from DefaultConfig: the one place
// defaults are applied.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.HTTPClient == nil {
		c.HTTPClient = d.HTTPClient
	}
	setDefault(&c.MaxResponseBytes, d.MaxResponseBytes)
	s, ds := &c.Subscriber, d.Subscriber
	if len(s.URLs) == 0 {
		s.URLs = []string{c.BaseURL}
	}
	setDefault(&s.UpdateBuffer, ds.UpdateBuffer)
	setDefault(&s.MinBackoff, ds.MinBackoff)
	setDefault(&s.MaxBackoff, ds.MaxBackoff)
	setDefault(&s.RestartJitter, ds.RestartJitter)
	setDefault(&s.StableAfter, ds.StableAfter)
	setDefault(&s.IdleTimeout, ds.IdleTimeout)
	setDefault(&s.WriteTimeout, ds.WriteTimeout)
	setDefault(&s.RefreshBefore, ds.RefreshBefore)
	if s.MaxBackoff < s.MinBackoff {
		s.MaxBackoff = s.MinBackoff
	}
	if s.Dialer == nil {
		s.Dialer = ds.Dialer
	}
	if s.Logger == nil {
		s.Logger = ds.Logger
	}
	return c
}

// setDefault sets *p to v when *p is zero or negative.
func setDefault[T int | int64 | time.Duration](p *T, v T) {
	if *p <= 0 {
		*p = v
	}
}
