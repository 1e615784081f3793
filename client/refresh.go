package client

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"strings"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/wire"
)

// refresher keeps the connection's session alive past its token's exp: a
// while before the token expires (RefreshBefore) it asks the TokenSource for
// a new one and sends it in a refresh frame, then does the same for the new
// token, until stop. A token whose exp it cannot read is not refreshed
// (the server closes the session with 4001 at its exp, and the subscriber
// reconnects with a fresh token).
func (s *Subscriber) refresher(conn *websocket.Conn, tok string, stop <-chan struct{}) {
	exp, ok := tokenExpiry(tok)
	for ok {
		t := time.NewTimer(refreshDelay(time.Until(exp), s.cfg.RefreshBefore))
		select {
		case <-stop:
			t.Stop()
			return
		case <-t.C:
		}
		fresh, err := tokenOf(s.ctx, s.baseCfg)
		if err != nil {
			// Try again soon; the server ends the session at exp anyway.
			s.cfg.Logger.Warn("presence subscriber: no token for the refresh", slog.Any("err", err))
			if time.Until(exp) <= 0 {
				return
			}
			continue
		}
		next, known := tokenExpiry(fresh)
		if fresh == tok || !known || !next.After(exp) {
			// Nothing newer to offer yet: ask again closer to exp.
			if time.Until(exp) <= s.cfg.MinBackoff {
				return
			}
			sleepOrStop(s.cfg.MinBackoff, stop)
			continue
		}
		if s.write(conn, wire.RefreshFrame(fresh)) != nil {
			return // the connection is gone; the reconnect dials with a fresh token
		}
		tok, exp = fresh, next
	}
}

// refreshDelay is how long to wait before refreshing a token that expires
// in left: RefreshBefore ahead of its expiry, or half-way through what is
// left when that is less than twice RefreshBefore.
func refreshDelay(left, before time.Duration) time.Duration {
	if left <= 0 {
		return 0
	}
	if left < 2*before {
		return left / 2
	}
	return left - before
}

func sleepOrStop(d time.Duration, stop <-chan struct{}) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-stop:
	}
}

// tokenExpiry reads the exp claim of a JWT without verifying it (the
// server does that): only to know when to refresh.
func tokenExpiry(tok string) (time.Time, bool) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp json.Number `json:"exp"`
	}
	d := json.NewDecoder(bytes.NewReader(payload))
	d.UseNumber()
	if d.Decode(&c) != nil || c.Exp == "" {
		return time.Time{}, false
	}
	f, err := c.Exp.Float64()
	if err != nil || f <= 0 {
		return time.Time{}, false
	}
	return time.Unix(0, int64(f*1e9)), true
}
