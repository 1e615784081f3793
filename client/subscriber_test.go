package client_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/client"
	"github.com/presence-cluster/presence/wire"
)

const wait = 10 * time.Second

// recorder collects a Subscriber's state events.
type recorder struct{ events chan client.StateEvent }

func newRecorder() *recorder { return &recorder{events: make(chan client.StateEvent, 1024)} }

func (r *recorder) on(ev client.StateEvent) { r.events <- ev }

// waitFor returns the first event for which match holds, failing after wait.
func (r *recorder) waitFor(t *testing.T, what string, match func(client.StateEvent) bool) client.StateEvent {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case ev := <-r.events:
			if match(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s state event", what)
		}
	}
}

func connectedTo(url string) func(client.StateEvent) bool {
	return func(ev client.StateEvent) bool {
		return ev.State == client.StateConnected && strings.HasPrefix(ev.URL, "ws"+strings.TrimPrefix(url, "http"))
	}
}

func subscriber(t *testing.T, token string, urls []string, ids []int64, tune func(*client.Config)) (*client.Subscriber, *recorder) {
	t.Helper()
	rec := newRecorder()
	cfg := client.DefaultConfig()
	cfg.BaseURL, cfg.Token = urls[0], token
	cfg.Subscriber.URLs = urls
	cfg.Subscriber.UserIDs = ids
	cfg.Subscriber.OnState = rec.on
	cfg.Subscriber.MinBackoff = 50 * time.Millisecond
	cfg.Subscriber.MaxBackoff = 200 * time.Millisecond
	if tune != nil {
		tune(&cfg)
	}
	c, err := client.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := c.NewSubscriber()
	t.Cleanup(func() { s.Close() })
	return s, rec
}

// next returns the next update, failing after wait.
func next(t *testing.T, s *client.Subscriber) client.Update {
	t.Helper()
	select {
	case u, ok := <-s.Updates():
		if !ok {
			t.Fatal("updates closed")
		}
		return u
	case <-time.After(wait):
		t.Fatal("no update")
	}
	panic("unreachable")
}

// nextOf skips updates of other users (the subscriber's own user, say).
func nextOf(t *testing.T, s *client.Subscriber, id int64) client.Update {
	t.Helper()
	for {
		if u := next(t, s); u.UserID == id {
			return u
		}
	}
}

func TestSubscriberReceivesUpdates(t *testing.T) {
	n := startNode(t, "sub")
	ctx := ctxT(t)
	bob := newClient(t, n.URL, mint(t, 2, "bob", false))
	carol := newClient(t, n.URL, mint(t, 3, "carol", false))
	if err := bob.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}

	s, rec := subscriber(t, mint(t, 1, "alice", false), []string{n.URL}, []int64{2}, nil)
	rec.waitFor(t, "connected", connectedTo(n.URL))
	// The subscribe answer: bob's current presence.
	u := nextOf(t, s, 2)
	if !u.IsOnline || u.Username != "bob" || u.Timestamp.IsZero() {
		t.Fatalf("snapshot %+v", u)
	}
	yes := true
	st, err := bob.UpdateMyStatus(ctx, wire.StatusUpdate{IsBusy: &yes})
	if err != nil {
		t.Fatal(err)
	}
	if u2 := nextOf(t, s, 2); !u2.IsBusy || u2.Version != st.Version {
		t.Fatalf("update %+v, want busy at version %d", u2, st.Version)
	}

	// A subscription added while connected.
	if err := s.Subscribe(3); err != nil {
		t.Fatal(err)
	}
	if err := carol.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if u3 := nextOf(t, s, 3); !u3.IsOnline || u3.Username != "carol" {
		t.Fatalf("carol: %+v", u3)
	}
	if err := s.Unsubscribe(3); err != nil {
		t.Fatal(err)
	}
	if got := s.Subscriptions(); len(got) != 1 || got[0] != 2 {
		t.Fatalf("Subscriptions = %v", got)
	}

	if s.State() != client.StateConnected {
		t.Fatalf("State = %v", s.State())
	}
	s.Close()
	if s.State() != client.StateClosed {
		t.Fatalf("State after Close = %v", s.State())
	}
	if _, ok := <-s.Updates(); ok {
		// Buffered updates may remain; drain them.
		for range s.Updates() {
		}
	}
	if err := s.Subscribe(9); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
}

// A draining node closes with 1012: the subscriber goes to the next URL at
// once and subscribes there again.
func TestSubscriberFailsOverOn1012(t *testing.T) {
	a := startNode(t, "a")
	b := startNode(t, "b")
	ctx := ctxT(t)
	s, rec := subscriber(t, mint(t, 1, "alice", false), []string{a.URL, b.URL}, []int64{2, 3}, func(c *client.Config) {
		c.Subscriber.RestartJitter = 50 * time.Millisecond
		c.Subscriber.MinBackoff = 5 * time.Second // a backoff would fail the test's timing
		c.Subscriber.MaxBackoff = 5 * time.Second
	})
	rec.waitFor(t, "connected to a", connectedTo(a.URL))
	if err := newClient(t, a.URL, mint(t, 2, "bob", false)).Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	nextOf(t, s, 2)

	start := time.Now()
	if err := a.stop(); err != nil {
		t.Fatal(err)
	}
	ev := rec.waitFor(t, "disconnected", func(ev client.StateEvent) bool { return ev.State == client.StateDisconnected })
	if ev.CloseCode != websocket.CloseServiceRestart || ev.Retry >= 50*time.Millisecond {
		t.Fatalf("disconnect %+v, want 1012 and a retry within the restart jitter", ev)
	}
	rec.waitFor(t, "connected to b", connectedTo(b.URL))
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("failover took %v", d)
	}
	// Carol changes on b: the subscription was sent again there.
	if err := newClient(t, b.URL, mint(t, 3, "carol", false)).Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if u := nextOf(t, s, 3); !u.IsOnline {
		t.Fatalf("carol on b: %+v", u)
	}
}

func TestSubscriberReportsRefusedHandshake(t *testing.T) {
	n := startNode(t, "refuse")
	_, rec := subscriber(t, "bad-token", []string{n.URL}, nil, nil)
	ev := rec.waitFor(t, "disconnected", func(ev client.StateEvent) bool { return ev.State == client.StateDisconnected })
	if !client.IsUnauthorized(ev.Err) || ev.Retry <= 0 {
		t.Fatalf("refused handshake: %+v, want a 401 *Error and a retry", ev)
	}
}

// fakeNode is a WebSocket endpoint that plays a script of frames and then
// closes with a code.
func fakeNode(t *testing.T, frames []string, closeCode int) *httptest.Server {
	t.Helper()
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for _, f := range frames {
			if conn.WriteMessage(websocket.TextMessage, []byte(f)) != nil {
				return
			}
		}
		if closeCode != 0 {
			_ = conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(closeCode, "test"), time.Now().Add(time.Second))
			return
		}
		for {
			if _, _, err := conn.ReadMessage(); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func update(id int64, version int) string {
	return `{"type":"presence_update","data":{"user_id":` + strconv.FormatInt(id, 10) + `,"username":"u","is_online":true,"is_busy":false,` +
		`"busy_until":null,"last_seen":"2026-01-01T00:00:00Z","version":` + strconv.Itoa(version) + `},"timestamp":"2026-01-01T00:00:00Z"}`
}

func TestSubscriberDropsStaleVersions(t *testing.T) {
	srv := fakeNode(t, []string{
		`{"type":"subscribed","user_ids":[7,8]}`,
		update(7, 3), update(7, 2), update(7, 3), update(8, 1), update(7, 5), update(7, 4), update(8, 1), update(8, 2),
		`{"type":"error","detail":"ignored"}`,
		`not json`,
	}, 0)
	s, _ := subscriber(t, "tok", []string{srv.URL}, []int64{7, 8}, nil)
	var got []string
	for range 4 {
		u := next(t, s)
		got = append(got, strconv.FormatInt(u.UserID, 10)+"@"+strconv.FormatUint(u.Version, 10))
	}
	if want := "7@3 8@1 7@5 8@2"; strings.Join(got, " ") != want {
		t.Fatalf("delivered %v, want %s", got, want)
	}
	select {
	case u := <-s.Updates():
		t.Fatalf("delivered %+v after the script", u)
	case <-time.After(200 * time.Millisecond):
	}
}

// 1013 (presence unavailable) backs off on the same node; 1012 moves on.
func TestSubscriberCloseCodes(t *testing.T) {
	unavailable := fakeNode(t, nil, websocket.CloseTryAgainLater)
	other := fakeNode(t, nil, 0)
	_, rec := subscriber(t, "tok", []string{unavailable.URL, other.URL}, nil, func(c *client.Config) {
		c.Subscriber.MinBackoff = 100 * time.Millisecond
		c.Subscriber.MaxBackoff = 400 * time.Millisecond
	})
	var retries []time.Duration
	for len(retries) < 3 {
		ev := rec.waitFor(t, "disconnected", func(ev client.StateEvent) bool { return ev.State != client.StateConnected })
		switch ev.State {
		case client.StateConnecting:
			if !strings.HasPrefix(ev.URL, "ws"+strings.TrimPrefix(unavailable.URL, "http")) {
				t.Fatalf("after a 1013 the subscriber went to %s", ev.URL)
			}
		case client.StateDisconnected:
			if ev.CloseCode != websocket.CloseTryAgainLater {
				t.Fatalf("close code %d, want 1013 (%v)", ev.CloseCode, ev.Err)
			}
			retries = append(retries, ev.Retry)
		}
	}
	// Jittered exponential: [50,100], [100,200], [200,400] ms.
	for i, r := range retries {
		lo := 50 * time.Millisecond << i
		if r < lo || r > 2*lo {
			t.Fatalf("retry %d after %v, want in [%v, %v] (all: %v)", i, r, lo, 2*lo, retries)
		}
	}

	restart := fakeNode(t, nil, websocket.CloseServiceRestart)
	_, rec = subscriber(t, "tok", []string{restart.URL, other.URL}, nil, nil)
	rec.waitFor(t, "connected to the next node", connectedTo(other.URL))
}

// What the subscriber sends: the whole subscription at connect, then
// heartbeats when asked for.
func TestSubscriberSendsSubscriptionAndHeartbeats(t *testing.T) {
	frames := make(chan wire.Frame, 64)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ws/presence" || r.URL.Query().Get("token") != "tok en" {
			http.Error(w, `{"detail":"Invalid or expired token"}`, http.StatusUnauthorized)
			return
		}
		conn, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer conn.Close()
		for {
			var f wire.Frame
			if err := conn.ReadJSON(&f); err != nil {
				return
			}
			frames <- f
		}
	}))
	defer srv.Close()
	_, _ = subscriber(t, "tok en", []string{srv.URL}, []int64{5, 6}, func(c *client.Config) {
		c.Subscriber.HeartbeatInterval = 20 * time.Millisecond
	})
	recv := func() wire.Frame {
		select {
		case f := <-frames:
			return f
		case <-time.After(wait):
			t.Fatal("no frame")
		}
		panic("unreachable")
	}
	f := recv()
	if f.Type != wire.TypeSubscribe || len(f.UserIDs) != 2 {
		t.Fatalf("first frame %+v, want the subscription", f)
	}
	for range 2 {
		if f := recv(); f.Type != wire.TypeHeartbeat {
			t.Fatalf("frame %+v, want a heartbeat", f)
		}
	}
}
