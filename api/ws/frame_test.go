package ws

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/fasthttp/websocket"
)

// TestAppendServerFrameReadsBack: what the writers frame themselves is
// what a WebSocket client reads, at every length encoding, with control
// frames before the data frames of a batch.
func TestAppendServerFrameReadsBack(t *testing.T) {
	payloads := []string{"", "x", strings.Repeat("a", 125), strings.Repeat("b", 126), strings.Repeat("c", 0xFFFF), strings.Repeat("d", 0x10000)}
	frames := make([][]byte, len(payloads))
	for i, p := range payloads {
		frames[i] = []byte(p)
	}
	wire := appendBatch(nil, batch{frames: frames, ping: true, pong: []byte("hi")})

	server, client := net.Pipe()
	defer client.Close()
	go func() {
		defer server.Close()
		if acceptHandshake(server) == nil {
			_, _ = io.Copy(server, bytes.NewReader(wire))
		}
	}()
	u, _ := url.Parse("ws://test/ws")
	c, _, err := websocket.NewClient(client, u, nil, 1024, 1024)
	if err != nil {
		t.Fatal(err)
	}
	var pings, pongs []string
	c.SetPingHandler(func(s string) error { pings = append(pings, s); return nil })
	c.SetPongHandler(func(s string) error { pongs = append(pongs, s); return nil })
	for i, want := range payloads {
		mt, got, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if mt != websocket.TextMessage || string(got) != want {
			t.Fatalf("frame %d: type %d, %d bytes; want text, %d bytes", i, mt, len(got), len(want))
		}
	}
	if len(pings) != 1 || pings[0] != "" || len(pongs) != 1 || pongs[0] != "hi" {
		t.Fatalf("control frames: pings %q pongs %q, want [\"\"] [\"hi\"]", pings, pongs)
	}
}

// acceptHandshake reads a client's upgrade request from c and accepts it
// (RFC 6455, section 4.2.2).
func acceptHandshake(c net.Conn) error {
	req, err := http.ReadRequest(bufio.NewReader(c))
	if err != nil {
		return err
	}
	h := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	_, err = fmt.Fprintf(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
		base64.StdEncoding.EncodeToString(h[:]))
	return err
}
