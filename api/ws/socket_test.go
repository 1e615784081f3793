package ws

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// TestTrackedConnTryWrite: on a real TCP socket, a write the kernel cannot
// take at once stops where the send buffer is full, without an error and
// without waiting; the rest can be written in full later, and the peer
// reads every byte in order. A closed socket is an error.
func TestTrackedConnTryWrite(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &connListener{Listener: inner, sendBuffer: 4 << 10}
	defer l.Close()
	client, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	accepted, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	tc := accepted.(*trackedConn)
	defer tc.Close()

	payload := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB: more than both buffers
	start := time.Now()
	n, err := tc.tryWrite(payload)
	if err != nil || n == 0 || n >= len(payload) {
		t.Fatalf("tryWrite of 4 MiB to a client not reading = %d, %v; want a part, no error", n, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Fatalf("tryWrite waited %v", took)
	}

	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(client, int64(len(payload))))
		got <- b
	}()
	_ = tc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := tc.Write(payload[n:]); err != nil {
		t.Fatalf("write of the rest: %v", err)
	}
	if b := <-got; !bytes.Equal(b, payload) {
		t.Fatalf("the peer read %d bytes, not the payload in order", len(b))
	}

	_ = tc.Close()
	if _, err := tc.tryWrite([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("tryWrite on a closed socket = %v, want net.ErrClosed", err)
	}
}

// TestTrackedConnTryWriteAfterCloseReachesNoOtherConnection: tryWrite
// writes to the descriptor number itself, and the kernel hands a closed
// connection's number to the next socket opened. A write tried after
// Close must fail, not land on the connection that took the number.
func TestTrackedConnTryWriteAfterCloseReachesNoOtherConnection(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &connListener{Listener: inner}
	defer l.Close()
	dial := func() net.Conn {
		client, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Close() })
		return client
	}
	accept := func() *trackedConn {
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c.(*trackedConn)
	}
	dial()
	first := accept()
	secondClient := dial()
	_ = first.Close()
	// POSIX hands out the lowest free number: the next accept gets the
	// number first had.
	second := accept()
	if second.fd != first.fd {
		t.Fatalf("the next connection got descriptor %d, not the closed %d: the test proves nothing", second.fd, first.fd)
	}
	if n, err := first.tryWrite([]byte("stray")); err == nil || n != 0 {
		t.Fatalf("tryWrite after Close = %d, %v; want an error", n, err)
	}
	_ = secondClient.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if n, _ := secondClient.Read(make([]byte, 16)); n != 0 {
		t.Fatalf("the connection that took the closed one's descriptor got %d bytes", n)
	}
}
