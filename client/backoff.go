package client

import (
	"errors"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/wire"
)

// outcome is how one connection attempt ended.
type outcome struct {
	err       error
	dialed    bool          // the handshake succeeded
	token     string        // the token the connection was opened with
	closeCode int           // the server's close code, 0 if none
	lived     time.Duration // how long the connection was open
}

// plan is what to do after an outcome.
type plan struct {
	nextURL bool // move on to the next URL of the list
	attempt int  // failed attempts in a row after this one
	delay   time.Duration
	stop    bool // do not reconnect (an admin disconnect)
}

// planReconnect decides the reconnect after out, following the close codes
// of the API: 1012 (the node is draining) reconnects at once to another
// node; 1013 (presence unavailable) and 1008 (policy) back off on the same
// node; a node that cannot be reached is left for the next; any other loss
// backs off, from the start again if the connection had been stable.
// 4001 (the token expired) reconnects soon to the same node, with a token
// fresh from the TokenSource; 4003 (an administrator disconnected the user)
// stops unless ReconnectAfterDisconnect says otherwise, and then backs off.
// rnd returns a random duration in [0, n).
func planReconnect(cfg *SubscriberConfig, out outcome, attempt int, rnd func(n time.Duration) time.Duration) plan {
	switch {
	case out.closeCode == websocket.CloseServiceRestart:
		return plan{nextURL: true, delay: rnd(cfg.RestartJitter)}
	case out.closeCode == wire.CloseTokenExpired:
		return plan{attempt: attempt, delay: rnd(cfg.RestartJitter)}
	case out.closeCode == wire.CloseDisconnected:
		ev := StateEvent{State: StateDisconnected, Err: out.err, CloseCode: out.closeCode}
		if cfg.ReconnectAfterDisconnect == nil || !cfg.ReconnectAfterDisconnect(ev) {
			return plan{stop: true}
		}
		return plan{attempt: attempt + 1, delay: cfg.Backoff(attempt, rnd)}
	case !out.dialed:
		return plan{nextURL: true, attempt: attempt + 1, delay: cfg.Backoff(attempt, rnd)}
	case out.closeCode == websocket.CloseTryAgainLater, out.closeCode == websocket.ClosePolicyViolation:
		return plan{attempt: attempt + 1, delay: cfg.Backoff(attempt, rnd)}
	case out.lived >= cfg.StableAfter:
		return plan{attempt: 1, delay: cfg.Backoff(0, rnd)}
	default:
		return plan{attempt: attempt + 1, delay: cfg.Backoff(attempt, rnd)}
	}
}

// Backoff is how long the subscriber waits before reconnecting after
// attempt failed attempts in a row: MinBackoff doubled attempt times, at
// most MaxBackoff, jittered to between half of it and all of it so that
// clients dropped together do not come back together. rnd returns a
// random duration in [0, n) (rand.N, say). Exported for tools that model
// many clients without a Subscriber each, such as the load generator's
// reconnect storm.
func (cfg *SubscriberConfig) Backoff(attempt int, rnd func(n time.Duration) time.Duration) time.Duration {
	d := cfg.MinBackoff
	for i := 0; i < attempt && d < cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, cfg.MaxBackoff)
	return d/2 + rnd(d/2+1)
}

// closeCodeOf is the close code in err, 0 when the connection ended
// without a close frame.
func closeCodeOf(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return 0
}
