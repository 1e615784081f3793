package ws

import (
	"errors"

	"github.com/fasthttp/websocket"
)

// Close codes a session ends with (RFC 6455 section 7.4).
const (
	// CloseSlowConsumer: the client did not read fast enough and its
	// outbound queue filled up.
	CloseSlowConsumer = websocket.ClosePolicyViolation
	// CloseTooManySessions: the user already has the most sessions allowed.
	CloseTooManySessions = websocket.ClosePolicyViolation
	// CloseDraining: the node is shutting down; reconnect (to another node).
	CloseDraining = websocket.CloseServiceRestart
	// CloseFrameTooLarge: a frame exceeded the size limit.
	CloseFrameTooLarge = websocket.CloseMessageTooBig
	// ClosePolicyViolation: the client kept sending over its frame rate
	// limit.
	ClosePolicyViolation = websocket.ClosePolicyViolation
)

var (
	// errDraining refuses a session on a node that is shutting down.
	errDraining = errors.New("node is draining")
	// errTooManySessions refuses a session beyond the per-user cap.
	errTooManySessions = errors.New("too many sessions for this user")
)
