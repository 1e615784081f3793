package ws

import (
	"time"

	"github.com/fasthttp/websocket"
)

// close ends the session: the writer sends a close frame with code and
// reason, and the reader is unblocked so the connection is released. It does
// no network I/O itself, so it is safe under the hub's lock, and it is safe
// to call many times and from any goroutine.
func (s *session) close(code int, reason string) { s.shutdown(code, reason, false) }

// abort ends the session of a client that does not read: the writer may be
// blocked on its full socket, so both directions are cut at once, no close
// frame is attempted, and the connection is reset (unsent data dropped)
// rather than closed.
func (s *session) abort(code int, reason string) { s.shutdown(code, reason, true) }

func (s *session) shutdown(code int, reason string, abrupt bool) {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.closeCode, s.closeReason, s.abrupt = code, reason, abrupt
		if !abrupt && s.queue.wake() {
			s.startWriter() // to write the close frame
		}
		s.mu.Unlock()
		close(s.done)
		// fasthttp ignores Close on a hijacked connection until the handler
		// returns, so deadlines are what unblock the reader (and, for an
		// abort, the writer).
		now := time.Now()
		nc := s.conn.NetConn()
		_ = nc.SetReadDeadline(now)
		if abrupt {
			if s.opts.reset != nil {
				s.opts.reset(nc.RemoteAddr())
			}
			_ = nc.SetWriteDeadline(now)
		} else {
			// A write blocked on a client that stopped reading gets a
			// short while to finish (and the close frame after it), not
			// the full write timeout.
			_ = nc.SetWriteDeadline(now.Add(closeGrace))
		}
	})
}

// writeLoop writes what is queued (a ping, then frames in order) until
// nothing is left, and exits; the next frame starts a new one. Once the
// session closes it writes the close frame and stops for good.
func (s *session) writeLoop() {
	defer s.writers.Done()
	// spare is a written batch's emptied slice, handed back to the queue
	// so that a frame to an idle session (a fan-out) needs no allocation.
	var spare [][]byte
	for {
		s.mu.Lock()
		if s.closing {
			s.queue.stop()
			s.mu.Unlock()
			s.sendClose()
			return
		}
		frames, ping, more := s.queue.take(spare)
		s.mu.Unlock()
		if !more {
			return
		}
		spare = nil

		// One deadline for the whole batch: a client that cannot take
		// it within the write timeout is too slow anyway. (The library
		// applies it to the socket before every write, so it costs the
		// same per frame whichever way it is set.)
		deadline := time.Now().Add(s.opts.writeTimeout)
		_ = s.conn.SetWriteDeadline(deadline)
		if ping {
			if err := s.conn.WriteControl(websocket.PingMessage, nil, deadline); err != nil {
				s.writeFailed("ping failed")
				return
			}
		}
		for _, frame := range frames {
			if s.isClosing() {
				break // the loop's next turn writes the close frame
			}
			if err := s.conn.WriteMessage(websocket.TextMessage, frame); err != nil {
				s.writeFailed("write failed")
				return
			}
		}
		spare = recycle(frames)
	}
}

// writeFailed ends a session whose connection broke under the writer: no
// close frame can follow.
func (s *session) writeFailed(reason string) {
	s.mu.Lock()
	s.queue.stop()
	s.mu.Unlock()
	s.close(websocket.CloseGoingAway, reason)
}

// sendClose writes the close frame of a session closed with close (not
// abort), from the writer goroutine.
func (s *session) sendClose() {
	s.mu.Lock()
	code, reason, abrupt := s.closeCode, s.closeReason, s.abrupt
	s.mu.Unlock()
	if abrupt {
		return
	}
	_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(closeGrace))
}
