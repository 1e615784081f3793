package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/node"
)

// TestWSClientPingAndCloseEcho: a client's ping is answered with a pong
// carrying its payload, in order with the frames around it, and a client's
// close is echoed with its code, as the WebSocket protocol asks. (The node's
// writers put frames on the socket themselves, so these answers go through
// the session's writer instead of the library's reader.)
func TestWSClientPingAndCloseEcho(t *testing.T) {
	t.Parallel()
	n := startNode(t, node.Config{})
	conn, _, err := wsTryDial(n, wsQuery(mint(t, 1300, "pinger", false), ""), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	wsWaitSessions(t, n, 1300, 1)

	pongs := make(chan string, 4)
	conn.SetPongHandler(func(data string) error { pongs <- data; return nil })
	var closeCode int
	conn.SetCloseHandler(func(code int, _ string) error { closeCode = code; return nil })
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))

	for _, payload := range []string{"", "are you there", strings.Repeat("p", 125)} {
		if err := conn.WriteControl(websocket.PingMessage, []byte(payload), time.Now().Add(time.Second)); err != nil {
			t.Fatalf("ping: %v", err)
		}
		// A subscribe after the ping: its answer follows the pong.
		if err := conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"subscribe","user_ids":[1301]}`)); err != nil {
			t.Fatalf("subscribe: %v", err)
		}
		_, data, err := conn.ReadMessage() // pong handler runs before this frame returns
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		select {
		case got := <-pongs:
			if got != payload {
				t.Fatalf("pong %q, want %q", got, payload)
			}
		default:
			t.Fatalf("frame %s arrived before the pong to a ping sent earlier", data)
		}
		if !strings.Contains(string(data), `"subscribed"`) {
			t.Fatalf("after the pong: %s, want the subscribe answer", data)
		}
	}

	if err := conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4100, "bye"), time.Now().Add(time.Second)); err != nil {
		t.Fatalf("close: %v", err)
	}
	for {
		if _, _, err = conn.ReadMessage(); err != nil {
			break
		}
	}
	if closeCode != 4100 || wsCloseCode(err) != 4100 {
		t.Fatalf("close echo %d (%v), want 4100", closeCode, err)
	}
}
