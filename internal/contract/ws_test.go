package contract_test

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/wire"
)

// TestWebSocketFramesMatchAsyncAPI opens a session, makes the node send
// every kind of frame, validates each against docs/asyncapi.yaml and checks
// that the server frame types seen are exactly the ones documented.
func TestWebSocketFramesMatchAsyncAPI(t *testing.T) {
	v := load(t)
	n := startNode(t)
	alice, bob := token(t, 123, "alice", false), token(t, 456, "bob", false)
	if resp, body := n.call(t, "POST", "/users/me/heartbeat", alice, "", nil); resp.StatusCode != 200 {
		t.Fatalf("heartbeat: %d %s", resp.StatusCode, body)
	}
	url := "ws" + strings.TrimPrefix(n.base, "http") + "/ws/presence?user_ids=123&token=" + bob
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()

	seen := map[string]int{}
	send := func(f any) {
		t.Helper()
		b, err := json.Marshal(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.CheckFrame(b); err != nil && !strings.Contains(string(b), "bogus") {
			t.Errorf("client frame: %v", err)
		}
		if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	// await reads frames until one of type typ arrives, validating each.
	await := func(typ string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			_ = conn.SetReadDeadline(deadline)
			_, data, err := conn.ReadMessage()
			if err != nil {
				t.Fatalf("waiting for %s: %v (seen %v)", typ, err, seen)
			}
			var head struct{ Type string }
			_ = json.Unmarshal(data, &head)
			seen[head.Type]++
			if err := v.CheckFrame(data); err != nil {
				t.Error(err)
			}
			if head.Type == typ {
				return
			}
		}
	}
	await(wire.TypeSubscribed)
	await(wire.TypePresenceUpdate)
	send(wire.SubscribeFrame([]int64{789}))
	await(wire.TypeSubscribed)
	send(wire.HeartbeatFrame())
	send(wire.UnsubscribeFrame([]int64{789}))
	await(wire.TypeUnsubscribed)
	send(wire.RefreshFrame(bob))
	await(wire.TypeRefreshed)
	send(map[string]any{"type": "bogus"})
	await(wire.TypeError)
	// A change by alice is pushed.
	if resp, body := n.call(t, "PUT", "/users/me/status", alice, `{"is_busy":true}`, nil); resp.StatusCode != 200 {
		t.Fatalf("put: %d %s", resp.StatusCode, body)
	}
	await(wire.TypePresenceUpdate)

	var got []string
	for typ := range seen {
		got = append(got, typ)
	}
	slices.Sort(got)
	if want := v.ServerFrameTypes(); !slices.Equal(got, want) {
		t.Errorf("server frame types seen %v, documented %v", got, want)
	}
	if want := []string{wire.TypeHeartbeat, wire.TypeRefresh, wire.TypeSubscribe, wire.TypeUnsubscribe}; !slices.Equal(v.ClientFrameTypes(), want) {
		t.Errorf("client frame types documented %v, the server takes %v", v.ClientFrameTypes(), want)
	}

	// A frame over the size limit ends the session with the documented 1009.
	_ = conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"heartbeat","pad":"`+strings.Repeat("x", 70<<10)+`"}`))
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		if _, _, err = conn.ReadMessage(); err != nil {
			break
		}
	}
	var ce *websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.CloseMessageTooBig {
		t.Errorf("oversized frame: %v, want close 1009", err)
	}
}

// TestCheckFrameRefuses shows that frames off the document fail.
func TestCheckFrameRefuses(t *testing.T) {
	v := load(t)
	for _, f := range []string{
		`{"type":"presence_changed","data":{}}`,
		`{"type":"subscribed","ids":[1]}`,
		`{"type":"error"}`,
		`{"type":"presence_update","data":{"user_id":7,"username":"x","online":true,"is_busy":false,"busy_until":null,"last_seen":null,"version":9},"timestamp":"2026-01-02T03:04:05Z"}`,
		`not json`,
	} {
		if err := v.CheckFrame([]byte(f)); err == nil {
			t.Errorf("frame passed: %s", f)
		}
	}
	ok := `{"type":"presence_update","data":{"user_id":7,"username":"x","is_online":true,"is_busy":false,"busy_until":null,"last_seen":null,"version":9},"timestamp":"2026-01-02T03:04:05.0000006Z"}`
	if err := v.CheckFrame([]byte(ok)); err != nil {
		t.Errorf("a good frame failed: %v", err)
	}
}
