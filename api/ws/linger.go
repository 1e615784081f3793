package ws

import (
	"io"
	"net"
	"time"
)

// Lingering close, as web servers do it (nginx's lingering_close): when
// the server answers a request it did not read to the end (413: body over
// the limit; 431: head over the limit) and then closes, the client may
// still be sending. Closing a socket with unread data makes the kernel
// send a reset, which destroys the response in flight: most clients (Go's
// net/http, Python requests) then report "connection reset" instead of
// the 413. So such a connection is closed for writing first (the response
// and a FIN go out), then what the client still sends is read and
// discarded, bounded in bytes and in time, and only then is the socket
// closed.
//
// Bounds per connection: DrainBytes read at most (into io.Discard's pooled
// 8 KiB buffer: the discarded bytes are never held), DrainTime at most (a
// read deadline), one goroutine. At most maxLingering connections linger at
// once; beyond that a connection is closed at once as before, so a flood
// of oversized requests cannot pile up goroutines.

// Defaults of the lingering close.
const (
	DefaultDrainBytes = 8 << 20
	DefaultDrainTime  = 5 * time.Second
	maxLingering      = 512
)

// LingerOnClose marks the connection so that its next Close drains what
// the client still sends before closing (see above). The HTTP error
// handler calls it for 413 and 431.
func (c *trackedConn) LingerOnClose() { c.linger.Store(true) }

// lingerClose closes c for writing, discards up to the bounds of what the
// peer still sends, and closes it; in the background, so the server's
// worker is free at once. It reports false (and does nothing) when too
// many connections linger already.
func (l *connListener) lingerClose(c *trackedConn) bool {
	select {
	case l.lingering <- struct{}{}:
	default:
		return false
	}
	go func() {
		defer func() { <-l.lingering }()
		_ = c.TCPConn.CloseWrite()
		_ = c.TCPConn.SetReadDeadline(time.Now().Add(l.drainTime))
		_, _ = io.CopyN(io.Discard, c.TCPConn, int64(l.drainBytes))
		_ = c.TCPConn.Close()
	}()
	return true
}

// LingerOnClose marks conn (a connection accepted through Listener) for a
// lingering close; other connections are left alone.
func LingerOnClose(conn net.Conn) {
	if t, ok := conn.(interface{ LingerOnClose() }); ok {
		t.LingerOnClose()
	}
}
