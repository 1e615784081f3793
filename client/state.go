package client

import (
	"time"

	"github.com/presence-cluster/presence/wire"
)

// Update is one presence change pushed by the server.
type Update struct {
	wire.Presence
	// Timestamp is when the server sent it.
	Timestamp time.Time
}

// State is where a Subscriber's connection stands.
type State int

// The states a Subscriber goes through: Connecting, then Connected or
// Disconnected, back to Connecting after the delay, until Closed.
const (
	StateConnecting State = iota + 1
	StateConnected
	StateDisconnected
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnecting:
		return "connecting"
	case StateConnected:
		return "connected"
	case StateDisconnected:
		return "disconnected"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// StateEvent is one change of a Subscriber's connection state.
type StateEvent struct {
	State State
	// URL is the WebSocket URL concerned (without the token).
	URL string
	// Err is why a connection failed or ended (Disconnected): a handshake
	// the server refused is an *Error (401 bad token, 429 too many
	// sessions); a close by the server is a *websocket.CloseError.
	Err error
	// CloseCode is the server's close code (Disconnected), 0 if none came.
	CloseCode int
	// Retry is the delay before the next attempt (Disconnected).
	Retry time.Duration
}
