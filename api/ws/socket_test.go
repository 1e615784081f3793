package ws

import (
	"bytes"
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

	_ = tc.TCPConn.Close()
	if _, err := tc.tryWrite([]byte("x")); err == nil {
		t.Fatal("tryWrite on a closed socket: no error")
	}
}
