package api_test

// Benchmarks of the hot paths through a real node: node.Start in
// standalone mode on the memory store, driven over loopback TCP by a
// fasthttp client, exactly as a client would. Every HTTP figure has a
// baseline beside it in the same run: a bare Fiber app answering a fixed
// small JSON body (baseline.NewApp, the one `presencectl bench --serve-baseline` serves), driven with the same requests by
// the same client. The ratio baseline ns/op : route ns/op is the route's
// share of the baseline's throughput.
//
// Why real TCP and not fasthttputil's in-memory listener: the syscalls and
// the kernel's loopback are part of what a request costs, and they cost the
// same for the baseline and the routes, so the ratio stays fair. Client,
// server and kernel share the machine's cores: ns/op of the parallel cases
// is the inverse of the throughput of the whole loop, not of the server
// alone (wrk against a presenced process measures that; see BENCHMARKS.md).
//
//	go test -run '^$' -bench . -benchmem ./api/

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/valyala/fasthttp"

	"github.com/presence-cluster/presence/api"
	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/internal/loadgen/baseline"
	"github.com/presence-cluster/presence/internal/testkit"
	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/node"
)

const benchSecret = "bench-secret-0123456789abcdef0123"

// benchUsers are the users the HTTP benchmarks act as and read.
const (
	benchUserBase = 1_000_000
	benchUsers    = 64
)

func benchToken(b testing.TB, id int64) string {
	b.Helper()
	tok, err := auth.Mint([]byte(benchSecret), auth.MintClaims{UserID: id, Username: "bench" + strconv.FormatInt(id, 10), TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// startBenchNode starts a standalone node on the memory store. The write
// rate limit is raised so far that it never refuses (its bookkeeping stays
// on the path, as in production).
func startBenchNode(b testing.TB) *node.Node {
	b.Helper()
	return testkit.StartStandalone(b, node.Config{Name: "bench", API: api.Config{WriteRate: 1e9}}, benchSecret).Node
}

// startBaseline serves the bare Fiber app on a loopback port.
func startBaseline(b testing.TB) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	app := baseline.NewApp()
	go func() { _ = app.Listener(ln) }()
	b.Cleanup(func() { _ = app.Shutdown() })
	return ln.Addr().String()
}

// httpCase is one kind of request; req(i) fills the i-th request.
type httpCase struct {
	name string
	addr string
	// fill prepares request k (the same shape for the baseline and the
	// route it stands beside).
	fill func(req *fasthttp.Request, k int)
}

type httpEnv struct {
	node     *node.Node
	nodeAddr string
	baseAddr string
	auth     []string // "Bearer <token>" by user index
	batch    string   // ?user_ids= of 50 users
}

func newHTTPEnv(b *testing.B) *httpEnv {
	b.Helper()
	e := &httpEnv{node: startBenchNode(b), baseAddr: startBaseline(b)}
	e.nodeAddr = e.node.HTTPAddr()
	ids := make([]string, 0, 50)
	for i := 0; i < benchUsers; i++ {
		e.auth = append(e.auth, "Bearer "+benchToken(b, benchUserBase+int64(i)))
		if i < 50 {
			ids = append(ids, strconv.Itoa(benchUserBase+i))
		}
	}
	e.batch = strings.Join(ids, ",")
	// Every user gets a record and an active actor, so reads find them.
	c := &fasthttp.HostClient{Addr: e.nodeAddr}
	for k := 0; k < benchUsers; k++ {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		e.heartbeat(req, k)
		req.Header.SetHost(e.nodeAddr)
		if err := c.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("warm-up heartbeat: %v %d %s", err, resp.StatusCode(), resp.Body())
		}
		fasthttp.ReleaseRequest(req)
		fasthttp.ReleaseResponse(resp)
	}
	return e
}

func (e *httpEnv) heartbeat(req *fasthttp.Request, k int) {
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI("/users/me/heartbeat")
	req.Header.Set(fasthttp.HeaderAuthorization, e.auth[k%benchUsers])
}

func (e *httpEnv) presence(req *fasthttp.Request, k int) {
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI("/users/" + strconv.Itoa(benchUserBase+k%50) + "/presence")
	req.Header.Set(fasthttp.HeaderAuthorization, e.auth[k%benchUsers])
}

func (e *httpEnv) batch50(req *fasthttp.Request, k int) {
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI("/users/presence?user_ids=" + e.batch)
	req.Header.Set(fasthttp.HeaderAuthorization, e.auth[k%benchUsers])
}

func (e *httpEnv) cases() []httpCase {
	return []httpCase{
		// The baseline gets the heartbeat's request: same size, same
		// header, same method.
		{"baseline", e.baseAddr, e.heartbeat},
		{"heartbeat", e.nodeAddr, e.heartbeat},
		{"presence", e.nodeAddr, e.presence},
		{"batch50", e.nodeAddr, e.batch50},
	}
}

// runHTTP sends requests of c: one at a time (serial: latency of the round
// trip) or from 8 goroutines per core (parallel: throughput).
func runHTTP(b *testing.B, c httpCase, parallel bool) {
	client := &fasthttp.HostClient{Addr: c.addr, MaxConns: 1024, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	one := func(req *fasthttp.Request, resp *fasthttp.Response, k int) error {
		req.Reset()
		c.fill(req, k)
		req.Header.SetHost(c.addr)
		if err := client.Do(req, resp); err != nil {
			return err
		}
		if resp.StatusCode() != 200 {
			return fmt.Errorf("%s: HTTP %d: %s", c.name, resp.StatusCode(), resp.Body())
		}
		return nil
	}
	b.ReportAllocs()
	b.ResetTimer()
	if !parallel {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		for i := 0; i < b.N; i++ {
			if err := one(req, resp, i); err != nil {
				b.Fatal(err)
			}
		}
	} else {
		var seq atomic.Int64
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			k := int(seq.Add(1)) * 7
			for pb.Next() {
				k++
				if err := one(req, resp, k); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
}

// BenchmarkHTTP runs the baseline and the routes side by side, serial then
// parallel; with -count N they alternate N times.
func BenchmarkHTTP(b *testing.B) {
	e := newHTTPEnv(b)
	for _, mode := range []string{"serial", "parallel"} {
		for _, c := range e.cases() {
			b.Run(mode+"/"+c.name, func(b *testing.B) { runHTTP(b, c, mode == "parallel") })
		}
	}
}

// BenchmarkActorRequest is the part of a request after the HTTP handler:
// the router's round trip to the user actor (standalone: local), without
// HTTP, JSON or auth.
func BenchmarkActorRequest(b *testing.B) {
	n := startBenchNode(b)
	r := n.Router()
	ctx := context.Background()
	const id = benchUserBase
	hb := func() *messages.Envelope {
		return &messages.Envelope{Body: &messages.Envelope_Heartbeat{Heartbeat: &messages.Heartbeat{UserId: id, Username: "bench"}}}
	}
	if _, err := r.Request(ctx, id, hb()); err != nil {
		b.Fatal(err)
	}
	b.Run("heartbeat", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := r.Request(ctx, id, hb()); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("presence", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			env := &messages.Envelope{Body: &messages.Envelope_GetPresence{GetPresence: &messages.GetPresence{UserId: id}}}
			if _, err := r.Request(ctx, id, env); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	v, err := auth.NewVerifier(auth.Config{Secret: []byte(benchSecret)})
	if err != nil {
		b.Fatal(err)
	}
	tok := benchToken(b, 123)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := v.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFanout1000 measures one change reaching 1,000 local sessions:
// 1,000 real WebSocket clients (users of their own) subscribe to one user,
// who toggles busy by PUT; an iteration ends when every client has read the
// frame with the new version. The clients share the process and its cores
// with the node, so reading 1,000 frames is part of the time.
func BenchmarkFanout1000(b *testing.B) {
	const subscribers = 1000
	const hot = int64(500)
	n := startBenchNode(b)
	addr := n.HTTPAddr()
	hotAuth := "Bearer " + benchToken(b, hot)
	client := &fasthttp.HostClient{Addr: addr, ReadTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second}
	busy := false
	put := func() uint64 {
		busy = !busy
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.Header.SetMethod(fasthttp.MethodPut)
		req.SetRequestURI("http://" + addr + "/users/me/status")
		req.Header.Set(fasthttp.HeaderAuthorization, hotAuth)
		req.Header.SetContentType("application/json")
		req.SetBodyString(`{"is_busy":` + strconv.FormatBool(busy) + `}`)
		if err := client.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("PUT: %v %d %s", err, resp.StatusCode(), resp.Body())
		}
		body := resp.Body()
		i := bytes.LastIndex(body, []byte(`"version":`))
		v, _ := strconv.ParseUint(strings.TrimRight(string(body[i+len(`"version":`):]), "}"), 10, 64)
		return v
	}
	v0 := put()

	var (
		target  atomic.Uint64 // version the current iteration waits for
		sentAt  atomic.Int64
		got     atomic.Int64
		acked   atomic.Int64
		done    = make(chan struct{}, 1)
		latMu   sync.Mutex
		lats    []int64
		readers sync.WaitGroup
	)
	hotPrefix := []byte(`{"type":"presence_update","data":{"user_id":` + strconv.FormatInt(hot, 10) + `,`)
	dialer := &websocket.Dialer{ReadBufferSize: 512, WriteBufferSize: 256, WriteBufferPool: &sync.Pool{}, HandshakeTimeout: 10 * time.Second}
	conns := make([]*websocket.Conn, 0, subscribers)
	for i := 0; i < subscribers; i++ {
		u := url.URL{Scheme: "ws", Host: addr, Path: "/ws/presence",
			RawQuery: "token=" + benchToken(b, 10_000+int64(i)) + "&user_ids=" + strconv.FormatInt(hot, 10)}
		conn, _, err := dialer.Dial(u.String(), nil)
		if err != nil {
			b.Fatalf("dial %d: %v", i, err)
		}
		conns = append(conns, conn)
		readers.Add(1)
		go func() {
			defer readers.Done()
			for {
				_, data, err := conn.ReadMessage()
				if err != nil {
					return
				}
				now := time.Now().UnixNano()
				switch {
				case bytes.HasPrefix(data, []byte(`{"type":"subscribed"`)):
					acked.Add(1)
				case bytes.HasPrefix(data, hotPrefix):
					j := bytes.LastIndex(data, []byte(`"version":`))
					end := j + len(`"version":`)
					for end < len(data) && data[end] >= '0' && data[end] <= '9' {
						end++
					}
					v, _ := strconv.ParseUint(string(data[j+len(`"version":`):end]), 10, 64)
					if v != target.Load() {
						continue
					}
					latMu.Lock()
					lats = append(lats, now-sentAt.Load())
					latMu.Unlock()
					if got.Add(1) == subscribers {
						done <- struct{}{}
					}
				}
			}
		}()
	}
	b.Cleanup(func() {
		for _, c := range conns {
			_ = c.Close()
		}
		readers.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for acked.Load() < subscribers {
		if time.Now().After(deadline) {
			b.Fatalf("only %d of %d sessions subscribed", acked.Load(), subscribers)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // let the snapshots drain

	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := v0 + uint64(i) + 1
		target.Store(want)
		got.Store(0)
		sentAt.Store(time.Now().UnixNano())
		if v := put(); v != want {
			b.Fatalf("PUT answered version %d, want %d", v, want)
		}
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			b.Fatalf("iteration %d: %d of %d subscribers got version %d", i, got.Load(), subscribers, want)
		}
	}
	b.StopTimer()
	latMu.Lock()
	slices.Sort(lats)
	if len(lats) > 0 {
		b.ReportMetric(float64(lats[len(lats)/2])/1e6, "p50-ms")
		b.ReportMetric(float64(lats[len(lats)*99/100])/1e6, "p99-ms")
		b.ReportMetric(float64(lats[len(lats)-1])/1e6, "max-ms")
	}
	latMu.Unlock()
}
