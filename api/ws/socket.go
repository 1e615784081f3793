package ws

import (
	"net"
	"syscall"
	"time"
	"unsafe"
)

// socket is the byte stream under a session's WebSocket connection, which
// the session's writers put their frames on directly (frame.go).
type socket interface {
	// Write writes all of b, waiting for the client as long as the write
	// deadline allows.
	Write(b []byte) (int, error)
	SetWriteDeadline(t time.Time) error
	// tryWrite writes as much of b as the kernel takes at once, without
	// waiting: n < len(b) with a nil error means the rest would block.
	tryWrite(b []byte) (n int, err error)
}

// streamSocket is a connection whose writes cannot be tried without
// waiting (one the node's listener did not accept, such as a test pipe):
// every write of its session runs on a goroutine of the session's own.
type streamSocket struct{ net.Conn }

func (streamSocket) tryWrite([]byte) (int, error) { return 0, nil }

// tryWrite writes b with one non-blocking send(2) (repeated only for a
// partial write the kernel may complete, or an interrupt): the writer
// workers' way of writing a batch, with no deadline to set and no timer
// left behind. A full socket buffer (EAGAIN) is no error: n tells how far
// it got.
//
// It writes to the descriptor itself rather than through the runtime's
// poller (syscall.RawConn): the poller's locks and deadline checks touch
// three more structures of every connection, cold in a fan-out to
// thousands of sessions, and the session's writer already keeps its
// writes in order. The descriptor is non-blocking (the runtime made it
// so), and it is never written once Close has begun (acquireFD).
func (c *trackedConn) tryWrite(b []byte) (n int, err error) {
	if !c.acquireFD() {
		return 0, net.ErrClosed
	}
	defer c.releaseFD()
	for n < len(b) {
		m, errno := writeNonBlocking(c.fd, b[n:])
		if m > 0 {
			n += m
		}
		switch {
		case errno == 0 && m > 0:
			continue
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN || errno == 0:
			return n, nil
		default:
			return n, errno
		}
	}
	return n, nil
}

// writeNonBlocking sends b on a socket without waiting: send(2) with
// MSG_DONTWAIT (and MSG_NOSIGNAL: a reset peer is an error, not a
// signal), which skips the file layer a write(2) passes through (the file
// position lock, the checks for files). It is made without telling the
// scheduler that the goroutine enters a system call (syscall.Write does):
// the call returns within microseconds, and at thousands of writes a
// second the handoff of the goroutine's processor that the runtime's
// monitor otherwise starts for a thread in a system call costs more than
// the write.
func writeNonBlocking(fd int, b []byte) (int, syscall.Errno) {
	r, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
		syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), 0
}

// socketOf is the socket under nc, the connection the library wraps: the
// listener's tracked connection when the node's listener accepted it (HTTP
// is served on that listener as it is, without TLS, so the tracked
// connection carries the WebSocket bytes unchanged), else nc itself,
// written from goroutines only.
func (s *Server) socketOf(nc net.Conn) socket {
	if l := s.listener.Load(); l != nil {
		if v, ok := l.conns.Load(nc.RemoteAddr().String()); ok {
			return v.(*trackedConn)
		}
	}
	return streamSocket{nc}
}
