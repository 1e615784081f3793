package ws

import (
	"bytes"
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
			// The close frame may wait for the client (closeGrace): a
			// goroutine of the session's own writes it, not a worker.
			s.writers.Add(1)
			s.opts.stats.WriterGoroutines.Add(1)
			go s.writeLoop(nil)
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

// writeOnWorker is a writer worker's turn at the session: it frames what
// waits into buf and tries it in one write that does not wait, as long as
// the session has frames and the socket takes them. What the socket does
// not take at once, and the close frame, are passed on to a goroutine of
// the session's own (writeLoop), so a slow client never holds a worker.
// It returns buf for the worker's next session.
func (s *session) writeOnWorker(buf []byte) []byte {
	var spare [][]byte
	for {
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			s.passOn(nil)
			return buf
		}
		b, more := s.queue.take(spare)
		s.mu.Unlock()
		if !more {
			s.writers.Done()
			return buf
		}
		buf = appendBatch(buf[:0], b)
		spare = recycle(b.frames)
		n, err := s.sock.tryWrite(buf)
		if err != nil {
			s.writeFailed("write failed")
			s.writers.Done()
			return buf
		}
		if n < len(buf) {
			// The rest is copied: buf goes on to the next session.
			s.passOn(bytes.Clone(buf[n:]))
			return buf
		}
	}
}

// passOn hands the session, and the unwritten rest of a frame already
// started, from a worker to a goroutine of its own; the writer count
// passes with it.
func (s *session) passOn(rest []byte) {
	s.opts.stats.WriterGoroutines.Add(1)
	go s.writeLoop(rest)
}

// writeLoop is a session's own writer goroutine: it first finishes rest
// (bytes of a batch a worker could not write at once), then writes what is
// queued (control frames, then frames in order, one write per batch) until
// nothing is left, and exits; the next frame goes to a worker again. Once
// the session closes it writes the close frame and stops for good.
func (s *session) writeLoop(rest []byte) {
	defer s.writers.Done()
	if len(rest) > 0 && !s.writeWaiting(rest) {
		return
	}
	var (
		spare [][]byte
		buf   []byte
	)
	for {
		s.mu.Lock()
		if s.closing {
			s.queue.stop()
			s.mu.Unlock()
			s.sendClose()
			return
		}
		b, more := s.queue.take(spare)
		s.mu.Unlock()
		if !more {
			return
		}
		buf = appendBatch(buf[:0], b)
		spare = recycle(b.frames)
		if !s.writeWaiting(buf) {
			return
		}
	}
}

// writeWaiting writes b in full, waiting for the client up to the write
// timeout: a client that cannot take a batch within it is too slow anyway.
// False means the connection broke and the session is closing.
func (s *session) writeWaiting(b []byte) bool {
	_ = s.sock.SetWriteDeadline(time.Now().Add(s.opts.writeTimeout))
	if s.isClosing() {
		// shutdown may have set its shorter deadline just before ours:
		// put it back.
		s.mu.Lock()
		abrupt := s.abrupt
		s.mu.Unlock()
		d := time.Now()
		if !abrupt {
			d = d.Add(closeGrace)
		}
		_ = s.sock.SetWriteDeadline(d)
	}
	if _, err := s.sock.Write(b); err != nil {
		s.writeFailed("write failed")
		return false
	}
	// The workers' writes check the deadline too: one left behind would
	// fail them once it passes.
	_ = s.sock.SetWriteDeadline(time.Time{})
	return true
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
