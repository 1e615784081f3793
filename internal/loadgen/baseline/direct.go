package baseline

import (
	"encoding/binary"
	"net"
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
	// waited for). The connection's writer goroutine still sends the
	// pings, each in one write of its own, so frames never interleave.
	DirectWrites
)

// String names the mode as presencectl bench --serve-fanout takes it.
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
// unregistered (under that lock) before the library closes its socket
// (when the handler returns), so the descriptor cannot have been reused.
func sendAll(fd int, frame []byte) bool {
	n, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(frame))),
		uintptr(len(frame)), syscall.MSG_DONTWAIT|syscall.MSG_NOSIGNAL, 0, 0)
	return errno == 0 && int(n) == len(frame)
}

// socketFD is the descriptor under a connection the WebSocket handler got,
// or -1. fasthttp hands the handler a wrapper of the accepted connection;
// UnsafeConn is its way to the connection itself.
func socketFD(c net.Conn) int {
	if w, ok := c.(interface{ UnsafeConn() net.Conn }); ok {
		c = w.UnsafeConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return -1
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1
	}
	fd := -1
	if raw.Control(func(d uintptr) { fd = int(d) }) != nil {
		return -1
	}
	return fd
}
