package baseline

import (
	"encoding/binary"
	"net"
	"sync"
	"syscall"
	"unsafe"
)

// Fanout is how the baseline's hub puts a change on its subscribers'
// sockets.
type Fanout int

const (
	// QueuedWriters is the idiomatic broadcast server: each connection
	// has a writer goroutine fed by a bounded channel, and the library
	// frames and writes each frame with a deadline (conn.go).
	QueuedWriters Fanout = iota
	// DirectWrites is the write floor: the change is framed once and
	// written with one non-blocking send(2) per subscriber, in a loop
	// under the hub's lock, with no goroutine, channel, deadline or
	// library in between. It is what one change to many subscribers costs
	// on this machine's network stack and nothing more; no real server
	// can do less per frame (a socket that would block is cut off, not
	// waited for).
	DirectWrites
)

// String names the mode as --serve-baseline-fanout takes it.
func (f Fanout) String() string {
	if f == DirectWrites {
		return "direct"
	}
	return "queued"
}

// directFrame frames payload as an unmasked, final text frame, the way a
// server sends it.
func directFrame(payload []byte) []byte {
	n := len(payload)
	dst := make([]byte, 0, n+10)
	switch {
	case n <= 125:
		dst = append(dst, 0x81, byte(n))
	case n <= 0xFFFF:
		dst = binary.BigEndian.AppendUint16(append(dst, 0x81, 126), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint64(append(dst, 0x81, 127), uint64(n))
	}
	return append(dst, payload...)
}

// sendAll writes frame to the socket fd in one non-blocking send(2); it
// reports false unless the kernel took all of it. The caller holds the
// hub's lock and fd belongs to a registered connection, which is
// unregistered (under that lock) before its socket is closed, so the
// descriptor cannot have been reused.
func sendAll(fd int, frame []byte) bool {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(frame))),
		uintptr(len(frame)), syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL, 0, 0)
	return errno == 0 && int(n) == len(frame)
}

// fdListener remembers the descriptor of every connection it accepted,
// by remote address, until the connection is closed: fasthttp hands the
// WebSocket handler a wrapper of the connection that hides it.
type fdListener struct {
	net.Listener
	fds sync.Map // remote address -> descriptor
}

type fdConn struct {
	*net.TCPConn
	owner *fdListener
}

func (l *fdListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c, nil
	}
	l.fds.Store(tc.RemoteAddr().String(), socketFD(tc))
	return &fdConn{TCPConn: tc, owner: l}, nil
}

func (c *fdConn) Close() error {
	c.owner.fds.Delete(c.RemoteAddr().String())
	return c.TCPConn.Close()
}

// fd is the descriptor of the accepted connection whose remote address is
// remote, or -1.
func (l *fdListener) fd(remote net.Addr) int {
	if v, ok := l.fds.Load(remote.String()); ok {
		return v.(int)
	}
	return -1
}

// socketFD is the descriptor under c, or -1 if it has none.
func socketFD(c *net.TCPConn) int {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	if raw.Control(func(d uintptr) { fd = int(d) }) != nil {
		return -1
	}
	return fd
}
