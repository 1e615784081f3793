package ws

import (
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// connListener tunes every accepted TCP connection and remembers it by
// remote address, so a session can reset a connection that fasthttp hides
// behind its hijacked wrapper.
type connListener struct {
	net.Listener
	sendBuffer int
	conns      sync.Map // remote address -> *trackedConn
	// drainBytes and drainTime bound a lingering close; lingering holds
	// a token per lingering connection (see linger.go).
	drainBytes int
	drainTime  time.Duration
	lingering  chan struct{}
}

type trackedConn struct {
	*net.TCPConn
	// fd is the socket's descriptor, which the writer workers write to
	// directly (tryWrite). fdUse keeps it from being reused under them:
	// it counts the writes in progress, and Close sets fdClosed in it and
	// waits for those writes before the descriptor is released, so a
	// write never reaches a later connection that got the same number.
	// (A counter rather than a lock: 8 bytes per connection, not 24.)
	fd     int
	fdUse  atomic.Int64
	owner  *connListener
	once   sync.Once
	linger atomic.Bool
}

// fdClosed is the bit of trackedConn.fdUse that Close sets.
const fdClosed = int64(1) << 62

// acquireFD counts a write in; false means Close has begun and the
// descriptor must not be written.
func (c *trackedConn) acquireFD() bool {
	if c.fdUse.Add(1)&fdClosed != 0 {
		c.fdUse.Add(-1)
		return false
	}
	return true
}

func (c *trackedConn) releaseFD() { c.fdUse.Add(-1) }

// retireFD refuses further writes to the descriptor and waits for those
// in progress: non-blocking writes, over within microseconds.
func (c *trackedConn) retireFD() {
	c.fdUse.Or(fdClosed)
	for c.fdUse.Load() != fdClosed {
		runtime.Gosched()
	}
}

// Accept tunes and tracks the next TCP connection.
func (l *connListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	if l.sendBuffer > 0 {
		_ = tc.SetWriteBuffer(l.sendBuffer)
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return c, nil // only for a connection already invalid: left untracked
	}
	t := &trackedConn{TCPConn: tc, fd: -1, owner: l}
	_ = raw.Control(func(fd uintptr) { t.fd = int(fd) })
	if t.fd < 0 {
		return c, nil
	}
	l.conns.Store(tc.RemoteAddr().String(), t)
	return t, nil
}

// Close forgets the connection and closes it, after draining what the
// client still sends if it was marked by LingerOnClose.
func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.owner.conns.Delete(c.RemoteAddr().String())
		c.retireFD()
	})
	if c.linger.CompareAndSwap(true, false) && c.owner.lingerClose(c) {
		return nil
	}
	return c.TCPConn.Close()
}

// reset makes the next close of the connection to remote a TCP reset that
// discards unsent data, freeing the kernel buffers of a client that does
// not read at once.
func (l *connListener) reset(remote net.Addr) {
	if v, ok := l.conns.Load(remote.String()); ok {
		_ = v.(*trackedConn).SetLinger(0)
	}
}
