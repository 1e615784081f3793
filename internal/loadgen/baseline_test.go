package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	fws "github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/internal/loadgen/baseline"
	"github.com/presence-cluster/presence/internal/loadgen/prom"
	"github.com/presence-cluster/presence/internal/testkit"
)

// A token signed with a secret nobody knows: the baseline reads sub
// without verifying.
func unverifiedToken(t *testing.T, id int64, name string) string {
	t.Helper()
	tok, err := auth.Mint([]byte("a-secret-the-baseline-never-checks"), auth.MintClaims{UserID: id, Username: name, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func dialWS(t *testing.T, addr, token, userIDs string) *fws.Conn {
	t.Helper()
	u := "ws://" + addr + "/ws/presence?token=" + token
	if userIDs != "" {
		u += "&user_ids=" + userIDs
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := fws.DefaultDialer.DialContext(ctx, u, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func readFrame(t *testing.T, c *fws.Conn) []byte {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	mt, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if mt != fws.TextMessage {
		t.Fatalf("frame type %d", mt)
	}
	return b
}

func httpDo(t *testing.T, method, url, token string, body []byte) (int, []byte) {
	t.Helper()
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(url)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBody(body)
	}
	if err := fasthttp.DoTimeout(req, resp, 10*time.Second); err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode(), append([]byte(nil), resp.Body()...)
}

// jsonKeys lists an object's keys in document order; with path, those of
// the object under that key.
func jsonKeys(t *testing.T, b []byte, path string) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if path != "" {
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		b = m[path]
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		t.Fatalf("%s: not an object", b)
	}
	var keys []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k.(string))
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			t.Fatal(err)
		}
	}
	return keys
}

type updateFrame struct {
	Type string `json:"type"`
	Data struct {
		UserID   int64   `json:"user_id"`
		Username string  `json:"username"`
		IsOnline bool    `json:"is_online"`
		IsBusy   bool    `json:"is_busy"`
		Busy     *string `json:"busy_until"`
		LastSeen string  `json:"last_seen"`
		Version  uint64  `json:"version"`
	} `json:"data"`
	Timestamp string `json:"timestamp"`
}

type statusRecord struct {
	UserID  int64  `json:"user_id"`
	IsBusy  bool   `json:"is_busy"`
	Version uint64 `json:"version"`
}

func decodeUpdate(t *testing.T, b []byte) updateFrame {
	t.Helper()
	var f updateFrame
	if err := json.Unmarshal(b, &f); err != nil || f.Type != "presence_update" {
		t.Fatalf("not a presence_update: %s (%v)", b, err)
	}
	if _, err := time.Parse(time.RFC3339Nano, f.Timestamp); err != nil {
		t.Fatalf("timestamp of %s: %v", b, err)
	}
	if id, v, ok := parseUpdate(b); !ok || id != f.Data.UserID || v != f.Data.Version {
		t.Fatalf("the generator reads %d, %d, %v from %s", id, v, ok, b)
	}
	return f
}

func putStatus(t *testing.T, addr, token string, busy bool) statusRecord {
	t.Helper()
	code, body := httpDo(t, fasthttp.MethodPut, "http://"+addr+"/users/me/status", token, []byte(`{"is_busy":`+strconv.FormatBool(busy)+`}`))
	if code != 200 {
		t.Fatalf("PUT: HTTP %d: %s", code, body)
	}
	var st statusRecord
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("PUT answer %s: %v", body, err)
	}
	if v, ok := jsonUint(body, `"version":`); !ok || v != st.Version {
		t.Fatalf("the generator reads version %d, %v from %s", v, ok, body)
	}
	return st
}

// Subscribers of a user get one presence_update per PUT of that user, with
// the version the PUT answered; a client subscribed to someone else gets
// nothing. Everything the wrk scripts send still gets the fixed body. The
// same holds for both ways the baseline fans out.
func TestBaselineFanout(t *testing.T) {
	for _, f := range []baseline.Fanout{baseline.QueuedWriters, baseline.DirectWrites} {
		t.Run(f.String(), func(t *testing.T) { testBaselineFanout(t, f) })
	}
}

func testBaselineFanout(t *testing.T, f baseline.Fanout) {
	addr := testkit.StartBaseline(t, f)
	const alice = 42
	aliceTok := unverifiedToken(t, alice, "alice")

	subs := make([]*fws.Conn, 3)
	for i := range subs {
		subs[i] = dialWS(t, addr, unverifiedToken(t, int64(100+i), "s"+strconv.Itoa(i)), "42,7,42")
	}
	other := dialWS(t, addr, unverifiedToken(t, 103, "bob"), "43")
	for _, c := range subs {
		if f := readFrame(t, c); string(f) != `{"type":"subscribed","user_ids":[42,7]}` {
			t.Fatalf("answer %s", f)
		}
	}
	if f := readFrame(t, other); string(f) != `{"type":"subscribed","user_ids":[43]}` {
		t.Fatalf("answer %s", f)
	}

	for round, busy := range []bool{true, false, true} {
		st := putStatus(t, addr, aliceTok, busy)
		if st.UserID != alice || st.Version != uint64(round+1) || st.IsBusy != busy {
			t.Fatalf("PUT %d answered %+v", round, st)
		}
		for i, c := range subs {
			f := decodeUpdate(t, readFrame(t, c))
			if f.Data.UserID != alice || f.Data.Version != st.Version || f.Data.IsBusy != busy || f.Data.Username != "alice" || !f.Data.IsOnline {
				t.Fatalf("subscriber %d got %+v, want user %d version %d busy %v", i, f.Data, alice, st.Version, busy)
			}
		}
	}

	// A session gets its own user's changes, as on presenced.
	st := putStatus(t, addr, unverifiedToken(t, 103, "bob"), true)
	if f := decodeUpdate(t, readFrame(t, other)); f.Data.UserID != 103 || f.Data.Version != st.Version {
		t.Fatalf("own update %+v, want version %d", f.Data, st.Version)
	}
	// ... and nothing of alice's.
	_ = other.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, b, err := other.ReadMessage(); err == nil {
		t.Fatalf("unsubscribed client got %s", b)
	} else if ne := net.Error(nil); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("unsubscribed client: %v", err)
	}

	// No token, no change.
	if code, body := httpDo(t, fasthttp.MethodPut, "http://"+addr+"/users/me/status", "", []byte(`{"is_busy":true}`)); code != 401 {
		t.Errorf("PUT without token: HTTP %d: %s", code, body)
	}

	// The HTTP baseline is untouched.
	for _, r := range []struct{ method, path string }{
		{"POST", "/users/me/heartbeat"}, {"GET", "/users/42/presence"}, {"GET", "/users/presence?user_ids=1,2"},
		{"GET", "/healthz"}, {"GET", "/users/me/status"}, {"DELETE", "/anything"},
	} {
		code, body := httpDo(t, r.method, "http://"+addr+r.path, aliceTok, nil)
		if code != 200 || !bytes.Equal(body, baseline.Body) {
			t.Errorf("%s %s: HTTP %d %s", r.method, r.path, code, body)
		}
	}
	if code, _ := httpDo(t, "GET", "http://"+addr+"/ws/presence", "", nil); code != 426 {
		t.Errorf("GET /ws/presence without upgrade: HTTP %d", code)
	}

	// What the generator reads: /metrics (sessions, Go memory) and the
	// forced-GC heap reading.
	code, body := httpDo(t, "GET", "http://"+addr+"/metrics", "", nil)
	s, err := prom.Parse(strings.NewReader(string(body)))
	if code != 200 || err != nil {
		t.Fatalf("/metrics: HTTP %d, %v", code, err)
	}
	if v, ok := s.Get("presence_ws_sessions_open"); !ok || v != 4 {
		t.Errorf("presence_ws_sessions_open = %v, %v; want 4", v, ok)
	}
	if v, ok := s.Get("go_memstats_heap_inuse_bytes"); !ok || v <= 0 {
		t.Errorf("go_memstats_heap_inuse_bytes = %v, %v", v, ok)
	}
	if v, _ := s.Get("presence_baseline_frames_queued_total"); v != 10 {
		t.Errorf("frames queued %v, want 10 (3 subscribers x 3 changes, 1 own)", v)
	}
	if ms, err := pprofMemStats("http://" + addr); err != nil || ms["HeapInuse"] <= 0 || ms["goroutines"] <= 0 {
		t.Errorf("pprof: %v %v", ms, err)
	}
}

// The baseline's PUT answer and presence_update frame have exactly
// presenced's keys, in presenced's order.
func TestBaselineShapeMatchesServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a node")
	}
	const secret = "baseline-shape-secret-0123456789abcdef"
	n := startTestNode(t, "baseline-shape", secret)
	mint := func(id int64) string {
		tok, err := auth.Mint([]byte(secret), auth.MintClaims{UserID: id, Username: "u" + strconv.FormatInt(id, 10), TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	base := testkit.StartBaseline(t, baseline.QueuedWriters)
	type shape struct{ answer, frame, data []string }
	get := func(addr string) shape {
		c := dialWS(t, addr, mint(501), "502")
		if f := readFrame(t, c); !bytes.HasPrefix(f, prefixSubscribed) {
			t.Fatalf("%s: answer %s", addr, f)
		}
		code, body := httpDo(t, fasthttp.MethodPut, "http://"+addr+"/users/me/status", mint(502), []byte(`{"is_busy":true}`))
		if code != 200 {
			t.Fatalf("%s: PUT: HTTP %d %s", addr, code, body)
		}
		// Skip the session's own user's update (presenced sets it online).
		f := readFrame(t, c)
		for id, _, _ := parseUpdate(f); id != 502; id, _, _ = parseUpdate(f) {
			f = readFrame(t, c)
		}
		decodeUpdate(t, f)
		return shape{jsonKeys(t, body, ""), jsonKeys(t, f, ""), jsonKeys(t, f, "data")}
	}
	real, bl := get(n.addr()), get(base)
	if !slices.Equal(real.answer, bl.answer) || !slices.Equal(real.frame, bl.frame) || !slices.Equal(real.data, bl.data) {
		t.Fatalf("presenced: %v / %v / %v\nbaseline:  %v / %v / %v", real.answer, real.frame, real.data, bl.answer, bl.frame, bl.data)
	}
	t.Logf("keys: %v / %v / %v", real.answer, real.frame, real.data)
}

// A /metrics that answers 200 with something else than Prometheus text
// (the old catch-all baseline) is reported, not read as zero memory.
func TestScrapeRefusesNonPrometheus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := baseline.NewApp() // no WebSocket routes: /metrics gets the fixed body
	go func() { _ = app.Listener(ln) }()
	defer func() { _ = app.Shutdown() }()
	r := &loadRun{p: plan{Config: Config{URLs: []string{"http://" + ln.Addr().String()}}}, out: io.Discard}
	s := r.scrapeAll()
	if s[0].err == nil || !strings.Contains(s[0].err.Error(), "go_memstats_heap_inuse_bytes") || s[0].mem.source != "" {
		t.Fatalf("scrape of a non-Prometheus /metrics: err %v, source %q", s[0].err, s[0].mem.source)
	}
	nm := nodeMem("x", s[0], s[0], s[0])
	if nm.Error == "" || nm.MetricsError == "" {
		t.Fatalf("nodeMem: %+v", nm)
	}
}
