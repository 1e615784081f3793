package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/presence-cluster/presence/api/auth"
)

// Bounds that keep every run finite whatever the flags say.
const (
	benchMaxDuration   = 10 * time.Minute
	benchMaxRamp       = 5 * time.Minute
	benchSettleTimeout = 30 * time.Second // sessions still connecting after the ramp
	benchMaxUsers      = 1_000_000
	benchMaxSessions   = 200_000
	benchPerWorker     = 5000 // sessions one worker process holds by default
)

// benchOptions are the flags of presencectl bench.
type benchOptions struct {
	URLs          []string
	Secret        []byte
	Issuer        string
	Audience      string
	Topo          topology
	HeartbeatRate float64
	ChangeRate    float64
	ReadRate      float64
	BatchRate     float64
	BatchSize     int
	Duration      time.Duration
	Ramp          time.Duration
	Grace         time.Duration
	Progress      time.Duration
	Workers       int
	SourceIPs     []string
	Conns         int
	HTTPTimeout   time.Duration
	JSONFile      string
	PprofURLs     []string
	PIDs          []int
	DialConc      int
	NoReconnect   bool
	// Prewarm heartbeats every session user once before the first memory
	// reading, so the per-session figure excludes the user's actor.
	Prewarm bool
	// inProcess runs the sessions in this process (workers = 0).
	inProcess bool
}

func runBench(args []string, stdout, stderr io.Writer) error {
	flags := newFlagSet("bench", "[--url URL[,URL...]] [--users N] [--sessions N] [--contacts K] [--heartbeat-rate R] [--change-rate R] [--duration D] [--ramp D] [--json FILE]", stderr)
	var (
		urls       = flags.String("url", envOr("PRESENCE_URL", "http://127.0.0.1:8000"), "comma-separated node `URLs` (loopback only); sessions and requests are spread over them")
		dataDir    = flags.String("data-dir", envOr(envDataDir, "./data"), "daemon data `DIR` holding the generated secret")
		secret     = flags.String("secret", "", "HS256 secret to mint the users' tokens with (else env "+envJWTSecret+", else the data dir's)")
		issuer     = flags.String("issuer", envOr(envIssuer, ""), "iss claim of the minted tokens")
		audience   = flags.String("audience", envOr(envAudience, ""), "aud claim of the minted tokens")
		users      = flags.Int("users", 1000, "simulated users `N` (ids user-base .. user-base+N-1)")
		userBase   = flags.Int64("user-base", 1_000_000, "first user `ID`")
		sessions   = flags.Int("sessions", -1, "users holding one WebSocket session each (-1: all users)")
		contacts   = flags.Int("contacts", 10, "`K`: each session subscribes to the next K users (its contact list)")
		hot        = flags.Int("hot", 0, "`H`: every session also subscribes to users 0..H-1, and changes go to those users only (fan-out test)")
		hbRate     = flags.Float64("heartbeat-rate", 100, "REST heartbeats per second, all users together")
		chRate     = flags.Float64("change-rate", 10, "status changes (PUT busy/available) per second")
		readRate   = flags.Float64("read-rate", 0, "single presence reads (GET /users/{id}/presence) per second")
		batchRate  = flags.Float64("batch-rate", 0, "batch presence reads (GET /users/presence) per second")
		batchSize  = flags.Int("batch-size", 50, "ids per batch read (at most 50)")
		duration   = flags.Duration("duration", 20*time.Second, "steady phase after the ramp")
		ramp       = flags.Duration("ramp", 5*time.Second, "ramp-up: sessions open and REST rates rise linearly; changes start after it")
		grace      = flags.Duration("grace", 2*time.Second, "wait for deliveries after the last change")
		progress   = flags.Duration("progress", 5*time.Second, "progress line interval")
		workers    = flags.Int("workers", -1, "worker processes holding the WebSocket sessions (-1: one per 5000 sessions; 0: in this process)")
		sourceIPs  = flags.Int("source-ips", 0, "spread sessions over this many source addresses 127.0.0.10.. (0: 2 per worker)")
		conns      = flags.Int("conns", 64, "REST keep-alive connections per node")
		httpTO     = flags.Duration("http-timeout", 5*time.Second, "REST request timeout")
		jsonFile   = flags.String("json", "", "also write the summary as JSON to `FILE`")
		pprofURLs  = flags.String("pprof-url", "", "comma-separated pprof base `URLs` of the nodes (PRESENCE_PPROF_ADDR), in --url order: memory is read from runtime.MemStats after a forced GC")
		pids       = flags.String("pid", "", "comma-separated process `IDs` of the nodes, in --url order: RSS is read from /proc/PID/status")
		dialConc   = flags.Int("dial-concurrency", 64, "WebSocket handshakes in flight per worker")
		noReconn   = flags.Bool("no-reconnect", false, "sessions the server closes with 1012 or 1013 stay closed (default: reconnect after 0.25-1.25 s, like a client; counted as ws_reconnect)")
		prewarm    = flags.Bool("prewarm", false, "heartbeat every session user once before the first memory reading: per-session memory then excludes the user's actor and record")
		worker     = flags.Bool("worker", false, "internal: run as a worker fed on stdin")
		serveBase  = flags.String("serve-baseline", "", "serve the bare Fiber baseline app on `ADDR` (loopback) instead of generating load")
		serveFor   = flags.Duration("serve-for", 10*time.Minute, "with --serve-baseline: stop after this long")
		wrkDir     = flags.String("wrk-scripts", "", "write wrk Lua scripts (tokens of --users users) into `DIR` instead of generating load")
		classify   = flags.String("classify", "", "with --wrk-scripts: node `URL` whose local and remote users get separate scripts (cluster)")
		classifyN  = flags.Int("classify-users", 200, "with --classify: users to classify")
		wrkWarmup  = flags.Bool("warmup", true, "with --wrk-scripts and --classify: heartbeat every user once so reads find records")
		wrkTargets = flags.Int("wrk-targets", 50, "with --wrk-scripts: users read by the presence scripts")
	)
	if err := parseFlags(flags, args); err != nil {
		return err
	}
	if *worker {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runWorker(ctx, os.Stdin, stdout)
	}
	if *serveBase != "" {
		if err := requireLoopbackAddr(*serveBase); err != nil {
			return usageErrorf(flags, "--serve-baseline: %v", err)
		}
		return serveBaseline(*serveBase, min(*serveFor, time.Hour), stderr)
	}

	o := benchOptions{
		Issuer: *issuer, Audience: *audience,
		HeartbeatRate: *hbRate, ChangeRate: *chRate, ReadRate: *readRate, BatchRate: *batchRate, BatchSize: *batchSize,
		Duration: *duration, Ramp: *ramp, Grace: *grace, Progress: *progress,
		Conns: *conns, HTTPTimeout: *httpTO, JSONFile: *jsonFile, DialConc: *dialConc, Prewarm: *prewarm, NoReconnect: *noReconn,
	}
	for u := range strings.SplitSeq(*urls, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			if err := requireLoopbackURL(u); err != nil {
				return usageErrorf(flags, "--url %s: %v", u, err)
			}
			o.URLs = append(o.URLs, u)
		}
	}
	for u := range strings.SplitSeq(*pprofURLs, ",") {
		if u = strings.TrimRight(strings.TrimSpace(u), "/"); u != "" {
			if err := requireLoopbackURL(u); err != nil {
				return usageErrorf(flags, "--pprof-url %s: %v", u, err)
			}
			o.PprofURLs = append(o.PprofURLs, u)
		}
	}
	for p := range strings.SplitSeq(*pids, ",") {
		if p = strings.TrimSpace(p); p != "" {
			pid, err := strconv.Atoi(p)
			if err != nil || pid <= 0 {
				return usageErrorf(flags, "--pid %q: want a process id", p)
			}
			o.PIDs = append(o.PIDs, pid)
		}
	}
	if len(o.URLs) == 0 {
		return usageErrorf(flags, "--url is required")
	}
	if *sessions < 0 {
		*sessions = *users
	}
	o.Topo = topology{Users: *users, UserBase: *userBase, Sessions: *sessions, Contacts: *contacts, Hot: *hot}
	switch {
	case *users < 1 || *users > benchMaxUsers:
		return usageErrorf(flags, "--users must be 1..%d", benchMaxUsers)
	case *userBase < 1 || *userBase > math.MaxInt64/2:
		return usageErrorf(flags, "--user-base must be positive")
	case *sessions > *users || *sessions > benchMaxSessions:
		return usageErrorf(flags, "--sessions must be at most --users and %d", benchMaxSessions)
	case *contacts < 0 || *contacts >= *users && *users > 1:
		return usageErrorf(flags, "--contacts must be 0..users-1")
	case *hot < 0 || *hot > *users:
		return usageErrorf(flags, "--hot must be 0..users")
	case *hot+*contacts > 1000:
		return usageErrorf(flags, "--hot + --contacts must stay within the server's subscription limit (1000 by default)")
	case *hbRate < 0 || *chRate < 0 || *readRate < 0 || *batchRate < 0:
		return usageErrorf(flags, "rates must not be negative")
	case *batchSize < 1 || *batchSize > 50:
		return usageErrorf(flags, "--batch-size must be 1..50")
	case *duration <= 0 || *duration > benchMaxDuration:
		return usageErrorf(flags, "--duration must be in (0, %s]", benchMaxDuration)
	case *ramp < 0 || *ramp > benchMaxRamp:
		return usageErrorf(flags, "--ramp must be in [0, %s]", benchMaxRamp)
	case *grace < 0 || *grace > time.Minute:
		return usageErrorf(flags, "--grace must be in [0, 1m]")
	case *progress < 100*time.Millisecond:
		return usageErrorf(flags, "--progress must be at least 100ms")
	case *conns < 1 || *conns > 4096:
		return usageErrorf(flags, "--conns must be 1..4096")
	case *httpTO <= 0 || *httpTO > time.Minute:
		return usageErrorf(flags, "--http-timeout must be in (0, 1m]")
	case *dialConc < 1 || *dialConc > 1024:
		return usageErrorf(flags, "--dial-concurrency must be 1..1024")
	case *sourceIPs < 0 || *sourceIPs > 200:
		return usageErrorf(flags, "--source-ips must be 0..200")
	}
	nw := *workers
	if nw < 0 {
		nw = (*sessions + benchPerWorker - 1) / benchPerWorker
	}
	if nw > 64 {
		return usageErrorf(flags, "--workers must be at most 64")
	}
	if nw == 0 {
		o.inProcess = true
		nw = 1
	}
	if *sessions == 0 {
		nw = 0
	}
	o.Workers = nw
	nips := *sourceIPs
	if nips == 0 {
		nips = 2 * max(nw, 1)
	}
	for i := 0; i < nips; i++ {
		o.SourceIPs = append(o.SourceIPs, fmt.Sprintf("127.0.0.%d", 10+i))
	}

	key, err := tokenSecret(*secret, *dataDir)
	if err != nil {
		return err
	}
	o.Secret = key

	if *wrkDir != "" {
		if *classify != "" {
			if err := requireLoopbackURL(*classify); err != nil {
				return usageErrorf(flags, "--classify: %v", err)
			}
		}
		return writeWrkScripts(o, *wrkDir, strings.TrimRight(*classify, "/"), *classifyN, *wrkTargets, *wrkWarmup, stdout)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sum, err := runLoad(ctx, o, stderr)
	if err != nil {
		return err
	}
	printSummary(stdout, sum)
	if o.JSONFile != "" {
		b, err := json.MarshalIndent(sum, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(o.JSONFile, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// requireLoopbackURL refuses anything but http://loopback:port: the
// generator is a local benchmarking tool, never a load source against
// another machine.
func requireLoopbackURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	if u.Scheme != "http" {
		return errors.New("want an http:// URL")
	}
	return requireLoopbackHost(u.Hostname())
}

func requireLoopbackAddr(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	return requireLoopbackHost(host)
}

func requireLoopbackHost(host string) error {
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q is not a loopback address (only 127.0.0.0/8, ::1 or localhost)", host)
	}
	return nil
}

// ---------------------------------------------------------------- summary

type rateSummary struct {
	Target   float64 `json:"target_per_s"`
	Achieved float64 `json:"achieved_per_s"`
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"`
	// NotFound counts reads of users without a record (404), which is a
	// correct answer, not an error.
	NotFound int64 `json:"not_found,omitempty"`
}

type deliverySummary struct {
	Expected  int64          `json:"expected"`
	Received  int64          `json:"received"`
	Missing   int64          `json:"missing"`
	Unmatched int64          `json:"unmatched_frames"`
	Changes   int64          `json:"changes_announced"`
	Latency   latencySummary `json:"latency"`
}

type sessionSummary struct {
	Target    int            `json:"target"`
	Opened    int64          `json:"opened"`
	Acked     int64          `json:"acked"`
	Failed    int64          `json:"failed"`
	OpenAtEnd int64          `json:"open_at_end"`
	Frames    int64          `json:"frames"`
	Handshake latencySummary `json:"handshake"`
}

type nodeMemory struct {
	URL string `json:"url"`
	// Source says where the readings come from: "pprof" (runtime.MemStats
	// after a forced GC) or "metrics" (the Prometheus gauges, no GC).
	Source        string  `json:"source"`
	SessionsDelta float64 `json:"sessions_delta"`
	// SessionsFrom is "metrics" (presence_ws_sessions_open) or
	// "generator" (sessions the generator held open on this node).
	SessionsFrom   string  `json:"sessions_from"`
	HeapAllocDelta float64 `json:"heap_alloc_delta_bytes,omitempty"`
	HeapDelta      float64 `json:"heap_inuse_delta_bytes"`
	StackDelta     float64 `json:"stack_inuse_delta_bytes"`
	RSSDelta       float64 `json:"rss_delta_bytes,omitempty"`
	GoroutineDel   float64 `json:"goroutines_delta"`
	HeapAllocPer   float64 `json:"heap_alloc_per_session_bytes,omitempty"`
	HeapPerSess    float64 `json:"heap_inuse_per_session_bytes"`
	StackPerSess   float64 `json:"stack_per_session_bytes"`
	HeapStackPer   float64 `json:"heap_inuse_plus_stack_per_session_bytes"`
	RSSPerSess     float64 `json:"rss_per_session_bytes,omitempty"`
	// CPUSeconds is the node's CPU time (user+system) during the steady
	// phase and grace (--pid), and the per-operation shares of it.
	CPUSeconds     float64 `json:"steady_cpu_s,omitempty"`
	CPUPerFrameUS  float64 `json:"cpu_us_per_delivered_frame,omitempty"`
	CPUPerRequestU float64 `json:"cpu_us_per_rest_request,omitempty"`
	// ActorLatency is presence_actor_request_duration_seconds during the
	// steady phase, by owner (local, remote), from the server's buckets.
	ActorLatency map[string]promLatency `json:"actor_request_latency,omitempty"`
	Error        string                 `json:"error,omitempty"`
	MetricsError string                 `json:"metrics_error,omitempty"`
}

type promLatency struct {
	Count  float64 `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P99MS  float64 `json:"p99_ms"`
}

type generatorSummary struct {
	Workers   int   `json:"workers"`
	InProcess bool  `json:"in_process"`
	RSSBytes  int64 `json:"workers_rss_bytes"`
	HeapStack int64 `json:"workers_heap_plus_stack_bytes"`
	// HeapStackDelta is the growth of the workers' heap+stack from before
	// their first dial to the end, with a GC at both ends.
	HeapStackDelta int64   `json:"workers_heap_plus_stack_delta_bytes"`
	PerSessionKB   float64 `json:"heap_plus_stack_per_session_kib"`
	CPUSeconds     float64 `json:"workers_cpu_s"`
	SourceIPs      int     `json:"source_ips"`
}

type benchSummary struct {
	Started       time.Time                 `json:"started"`
	URLs          []string                  `json:"urls"`
	Topology      topology                  `json:"topology"`
	RampSeconds   float64                   `json:"ramp_s"`
	SteadySeconds float64                   `json:"steady_s"`
	SettleSeconds float64                   `json:"settle_s"`
	Rates         map[string]rateSummary    `json:"rates"`
	HTTP          map[string]latencySummary `json:"http_latency"`
	Delivery      deliverySummary           `json:"delivery"`
	Sessions      sessionSummary            `json:"sessions"`
	Errors        map[string]int64          `json:"errors"`
	Memory        []nodeMemory              `json:"server_memory"`
	Generator     generatorSummary          `json:"generator"`
}

// ---------------------------------------------------------------- load

// restOp is one kind of REST request the generator makes.
type restOp struct {
	name   string
	rate   float64
	ok     atomic.Int64
	errs   atomic.Int64
	nf     atomic.Int64
	hist   syncHist
	sem    chan struct{}
	steady [2]int64 // ok count at steady start and end
	ramp   bool     // rises over the ramp (changes do not)
}

type loadRun struct {
	o       benchOptions
	out     io.Writer
	clients []*fasthttp.HostClient
	auth    [][]byte // "Bearer <token>" per user index
	errs    counters
	ops     map[string]*restOp
	busy    []atomic.Bool   // the busy state last set per user
	inUse   []atomic.Bool   // a change in flight per user
	lastVer []atomic.Uint64 // newest version a change returned per user
	rr      atomic.Uint64   // round-robin over users and nodes
	wg      sync.WaitGroup  // requests in flight
	workers []*workerHandle
	changes atomic.Int64
}

func runLoad(ctx context.Context, o benchOptions, log io.Writer) (*benchSummary, error) {
	r := &loadRun{o: o, out: log, ops: map[string]*restOp{}}
	n := o.Topo.Users
	r.busy = make([]atomic.Bool, n)
	r.inUse = make([]atomic.Bool, n)
	r.lastVer = make([]atomic.Uint64, n)
	for _, u := range o.URLs {
		pu, _ := url.Parse(u)
		r.clients = append(r.clients, &fasthttp.HostClient{
			Addr:                          pu.Host,
			MaxConns:                      o.Conns,
			MaxConnWaitTimeout:            o.HTTPTimeout,
			ReadTimeout:                   o.HTTPTimeout,
			WriteTimeout:                  o.HTTPTimeout,
			MaxIdleConnDuration:           time.Minute,
			NoDefaultUserAgentHeader:      true,
			DisableHeaderNamesNormalizing: true,
			ReadBufferSize:                4096,
			WriteBufferSize:               4096,
		})
	}
	// Tokens: only the users that make REST calls need one here (the
	// workers mint their sessions' own).
	fmt.Fprintf(log, "bench: minting %d tokens\n", n)
	r.auth = make([][]byte, n)
	for i := 0; i < n; i++ {
		tok, err := auth.Mint(o.Secret, auth.MintClaims{UserID: o.Topo.userID(i), Username: "bench" + strconv.Itoa(i),
			TTL: time.Hour + benchMaxDuration, Issuer: o.Issuer, Audience: o.Audience})
		if err != nil {
			return nil, err
		}
		r.auth[i] = []byte("Bearer " + tok)
	}
	inflight := o.Conns * len(o.URLs) * 2
	for _, op := range []struct {
		name string
		rate float64
		ramp bool
	}{{"heartbeat", o.HeartbeatRate, true}, {"change", o.ChangeRate, false}, {"read", o.ReadRate, true}, {"batch", o.BatchRate, true}} {
		if op.rate > 0 {
			r.ops[op.name] = &restOp{name: op.name, rate: op.rate, sem: make(chan struct{}, inflight), ramp: op.ramp}
		}
	}

	sum := &benchSummary{Started: time.Now().UTC(), URLs: o.URLs, Topology: o.Topo, Rates: map[string]rateSummary{}, HTTP: map[string]latencySummary{}}

	if o.Prewarm {
		if err := r.prewarm(ctx); err != nil {
			return nil, err
		}
	}
	// Server memory before any session.
	before := r.scrapeAll()
	for i, s := range before {
		if s.err != nil {
			fmt.Fprintf(log, "bench: node %s: %v\n", o.URLs[i], s.err)
		}
	}

	start := time.Now()
	if o.Topo.Sessions > 0 {
		if err := r.startWorkers(ctx); err != nil {
			r.stopWorkers()
			return nil, err
		}
	}
	defer r.stopWorkers()

	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var pacers sync.WaitGroup
	rampEnd := start.Add(o.Ramp)
	hardEnd := rampEnd.Add(benchSettleTimeout + o.Duration)
	for _, op := range r.ops {
		if !op.ramp {
			continue
		}
		pacers.Add(1)
		go func(op *restOp) {
			defer pacers.Done()
			r.pace(loadCtx, op, start, o.Ramp, hardEnd)
		}(op)
	}

	progressStop := make(chan struct{})
	progressDone := make(chan struct{})
	phase := atomic.Value{}
	phase.Store("ramp")
	go func() {
		defer close(progressDone)
		r.progressLoop(start, &phase, progressStop)
	}()

	// Ramp, then let the sessions settle (bounded).
	sleepCtx(ctx, time.Until(rampEnd))
	settleStart := time.Now()
	phase.Store("settle")
	for ctx.Err() == nil && time.Since(settleStart) < benchSettleTimeout && o.Topo.Sessions > 0 {
		w := r.workerTotals()
		if w.Acked+w.Failed >= int64(o.Topo.Sessions) {
			break
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	sum.SettleSeconds = round3(time.Since(settleStart).Seconds())
	established := r.scrapeAll()

	// Steady phase: changes start, every rate is at its target.
	phase.Store("steady")
	steadyStart := time.Now()
	for _, op := range r.ops {
		op.steady[0] = op.ok.Load() + op.errs.Load() + op.nf.Load()
	}
	if op := r.ops["change"]; op != nil {
		pacers.Add(1)
		go func() {
			defer pacers.Done()
			r.pace(loadCtx, op, steadyStart, 0, steadyStart.Add(o.Duration))
		}()
	}
	sleepCtx(ctx, o.Duration)
	stopLoad()
	pacers.Wait()
	steadyEnd := time.Now()
	for _, op := range r.ops {
		op.steady[1] = op.ok.Load() + op.errs.Load() + op.nf.Load()
	}
	waitTimeout(&r.wg, o.HTTPTimeout+time.Second)
	phase.Store("grace")
	sleepCtx(ctx, o.Grace)
	end := r.scrapeAll()
	close(progressStop)
	<-progressDone

	results := r.finishWorkers()

	// ---- summary
	sum.RampSeconds = o.Ramp.Seconds()
	steady := steadyEnd.Sub(steadyStart).Seconds()
	sum.SteadySeconds = round3(steady)
	for name, op := range r.ops {
		rs := rateSummary{Target: op.rate, OK: op.ok.Load(), Errors: op.errs.Load(), NotFound: op.nf.Load()}
		if steady > 0 {
			rs.Achieved = round3(float64(op.steady[1]-op.steady[0]) / steady)
		}
		sum.Rates[name] = rs
		sum.HTTP[name] = summarize(op.hist.Snapshot())
	}
	sum.Errors = r.errs.Snapshot()
	var dl, hs histogram
	for _, res := range results {
		dl.Merge(res.Delivery)
		hs.Merge(res.Handshake)
		sum.Delivery.Expected += res.Expected
		sum.Delivery.Received += res.Received
		sum.Delivery.Missing += res.Missing
		sum.Delivery.Unmatched += res.Unmatched
		sum.Sessions.Opened += res.Open + res.Closed
		sum.Sessions.Acked += res.Acked
		sum.Sessions.Failed += res.Failed
		sum.Sessions.OpenAtEnd += res.Open
		sum.Sessions.Frames += res.Frames
		sum.Errors = mergeCounts(sum.Errors, res.Errors)
		sum.Generator.RSSBytes += res.RSSBytes
		sum.Generator.HeapStack += res.HeapBytes + res.StackBytes
		sum.Generator.HeapStackDelta += res.HeapDelta
		sum.Generator.CPUSeconds += res.CPUSeconds
	}
	if len(r.workers) > len(results) {
		sum.Errors["worker_no_result"] += int64(len(r.workers) - len(results))
	}
	if sum.Delivery.Missing > 0 {
		sum.Errors["delivery_missing"] += sum.Delivery.Missing
	}
	sum.Delivery.Changes = r.changes.Load()
	sum.Delivery.Latency = summarize(&dl)
	sum.Sessions.Target = o.Topo.Sessions
	sum.Sessions.Handshake = summarize(&hs)
	sum.Generator.Workers = len(r.workers)
	sum.Generator.InProcess = o.inProcess
	sum.Generator.SourceIPs = len(o.SourceIPs)
	if sum.Sessions.OpenAtEnd > 0 {
		sum.Generator.PerSessionKB = round3(float64(sum.Generator.HeapStackDelta) / float64(sum.Sessions.OpenAtEnd) / 1024)
	}
	var steadyReq int64
	for _, op := range r.ops {
		steadyReq += op.steady[1] - op.steady[0]
	}
	for i, u := range o.URLs {
		nm := nodeMem(u, before[i], established[i], end[i])
		if len(o.URLs) == 1 && nm.CPUSeconds > 0 {
			// Each figure charges the node's whole CPU of the steady phase
			// to one kind of work, so it is an upper bound when both run.
			if sum.Delivery.Received > 0 {
				nm.CPUPerFrameUS = round3(nm.CPUSeconds * 1e6 / float64(sum.Delivery.Received))
			}
			if steadyReq > 0 {
				nm.CPUPerRequestU = round3(nm.CPUSeconds * 1e6 / float64(steadyReq))
			}
		}
		sum.Memory = append(sum.Memory, nm)
	}
	return sum, nil
}

func nodeMem(u string, before, after, end scrape) nodeMemory {
	nm := nodeMemory{URL: u, Source: after.mem.source}
	if after.mem.cpuPost > 0 && end.mem.cpuPre > 0 {
		nm.CPUSeconds = round3(end.mem.cpuPre - after.mem.cpuPost)
	}
	if after.err != nil {
		nm.MetricsError = after.err.Error()
	} else if end.err != nil {
		nm.MetricsError = end.err.Error()
	}
	if before.mem.source == "" || after.mem.source == "" {
		nm.Error = "no memory reading (neither /metrics nor --pprof-url answered)"
		return nm
	}
	b, a := before.mem, after.mem
	nm.SessionsFrom = "metrics"
	nm.SessionsDelta = a.sessions - b.sessions
	if !a.sessionsOK || !b.sessionsOK {
		nm.SessionsFrom = "generator"
		nm.SessionsDelta = a.genSessions - b.genSessions
	}
	nm.HeapDelta = a.heapInuse - b.heapInuse
	nm.StackDelta = a.stackInuse - b.stackInuse
	nm.GoroutineDel = a.goroutines - b.goroutines
	if a.heapAlloc > 0 && b.heapAlloc > 0 {
		nm.HeapAllocDelta = a.heapAlloc - b.heapAlloc
	}
	if a.rss > 0 && b.rss > 0 {
		nm.RSSDelta = a.rss - b.rss
	}
	if nm.SessionsDelta > 0 {
		per := func(v float64) float64 { return math.Round(v / nm.SessionsDelta) }
		nm.HeapAllocPer = per(nm.HeapAllocDelta)
		nm.HeapPerSess = per(nm.HeapDelta)
		nm.StackPerSess = per(nm.StackDelta)
		nm.HeapStackPer = nm.HeapPerSess + nm.StackPerSess
		nm.RSSPerSess = per(nm.RSSDelta)
	}
	if after.err == nil && end.err == nil {
		nm.ActorLatency = map[string]promLatency{}
		for _, owner := range []string{"local", "remote"} {
			h := end.samples.Histogram("presence_actor_request_duration_seconds", "owner", owner).
				Sub(after.samples.Histogram("presence_actor_request_duration_seconds", "owner", owner))
			if h.Count > 0 {
				nm.ActorLatency[owner] = promLatency{Count: h.Count, MeanMS: round3(h.Mean() * 1e3),
					P50MS: round3(h.Quantile(0.5) * 1e3), P99MS: round3(h.Quantile(0.99) * 1e3)}
			}
		}
	}
	return nm
}

func sleepCtx(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(d):
	}
}

// due is how many operations a pacer should have issued after elapsed:
// the integral of a rate that rises linearly over ramp, then stays.
func due(rate float64, ramp, elapsed time.Duration) int64 {
	if elapsed <= 0 || rate <= 0 {
		return 0
	}
	t := elapsed.Seconds()
	if ramp <= 0 {
		return int64(rate * t)
	}
	rs := ramp.Seconds()
	if t < rs {
		return int64(rate * t * t / (2 * rs))
	}
	return int64(rate*rs/2 + rate*(t-rs))
}

// prewarm heartbeats each session user once (bounded concurrency), so
// their actors exist before the memory baseline.
func (r *loadRun) prewarm(ctx context.Context) error {
	op := &restOp{name: "prewarm"}
	n := r.o.Topo.Sessions
	begin := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(r.o.Conns, 64); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				u := int(next.Add(1) - 1)
				if u >= n {
					return
				}
				r.do(op, u%len(r.clients), fasthttp.MethodPost, "/users/me/heartbeat", u, nil)
			}
		}()
	}
	wg.Wait()
	if e := op.errs.Load(); e > 0 {
		return fmt.Errorf("prewarm: %d of %d heartbeats failed: %v", e, n, r.errs.Snapshot())
	}
	fmt.Fprintf(r.out, "bench: prewarmed %d users in %.1fs\n", n, time.Since(begin).Seconds())
	sleepCtx(ctx, time.Second)
	return nil
}

// pace issues op at its rate (open loop) until end or ctx ends. A request
// that finds every slot busy is not sent and counts as <op>_saturated: the
// generator does not slow down to the server's pace, it reports it.
func (r *loadRun) pace(ctx context.Context, op *restOp, start time.Time, ramp time.Duration, end time.Time) {
	var issued int64
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if !now.Before(end) {
				return
			}
			for d := due(op.rate, ramp, now.Sub(start)); issued < d; issued++ {
				select {
				case op.sem <- struct{}{}:
				default:
					r.errs.Add(op.name+"_saturated", 1)
					op.errs.Add(1)
					continue
				}
				r.wg.Add(1)
				seq := r.rr.Add(1)
				go func() {
					defer r.wg.Done()
					defer func() { <-op.sem }()
					r.fire(op, seq)
				}()
			}
		}
	}
}

// fire makes one request of op.
func (r *loadRun) fire(op *restOp, seq uint64) {
	n := r.o.Topo.Users
	node := int(seq % uint64(len(r.clients)))
	switch op.name {
	case "heartbeat":
		u := int(seq % uint64(n))
		r.do(op, node, fasthttp.MethodPost, "/users/me/heartbeat", u, nil)
	case "read":
		u, target := rand.IntN(n), rand.IntN(n)
		r.do(op, node, fasthttp.MethodGet, "/users/"+strconv.FormatInt(r.o.Topo.userID(target), 10)+"/presence", u, nil)
	case "batch":
		var b strings.Builder
		b.WriteString("/users/presence?user_ids=")
		for i := 0; i < r.o.BatchSize; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(r.o.Topo.userID(rand.IntN(n)), 10))
		}
		r.do(op, node, fasthttp.MethodGet, b.String(), rand.IntN(n), nil)
	case "change":
		r.change(op, node)
	}
}

// change toggles a user's busy flag and announces (user, version, send
// time) to the workers, which match it with the frames their sessions get.
func (r *loadRun) change(op *restOp, node int) {
	n := r.o.Topo.Users
	if r.o.Topo.Hot > 0 {
		n = r.o.Topo.Hot
	}
	u := -1
	for try := 0; try < 4; try++ {
		c := rand.IntN(n)
		if r.inUse[c].CompareAndSwap(false, true) {
			u = c
			break
		}
	}
	if u < 0 {
		r.errs.Add("change_user_in_flight", 1)
		op.errs.Add(1)
		return
	}
	defer r.inUse[u].Store(false)
	busy := !r.busy[u].Load()
	body := []byte(`{"is_busy":false}`)
	if busy {
		body = []byte(`{"is_busy":true}`)
	}
	sendAt := time.Now().UnixNano()
	resp, ok := r.do(op, node, fasthttp.MethodPut, "/users/me/status", u, body)
	if !ok {
		return
	}
	v, okv := jsonUint(resp, `"version":`)
	if !okv {
		r.errs.Add("change_no_version", 1)
		return
	}
	r.busy[u].Store(busy)
	if last := r.lastVer[u].Load(); v <= last {
		r.errs.Add("change_version_not_raised", 1)
		return
	}
	r.lastVer[u].Store(v)
	r.changes.Add(1)
	r.announce(u, v, sendAt)
}

func jsonUint(b []byte, key string) (uint64, bool) {
	i := strings.LastIndex(string(b), key)
	if i < 0 {
		return 0, false
	}
	rest := b[i+len(key):]
	end := 0
	for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
		end++
	}
	v, err := strconv.ParseUint(string(rest[:end]), 10, 64)
	return v, err == nil
}

// do sends one request as user u and records its latency. It returns the
// body of a 2xx answer.
func (r *loadRun) do(op *restOp, node int, method, path string, u int, body []byte) ([]byte, bool) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.Header.SetMethod(method)
	req.SetRequestURI(path)
	req.Header.SetHost(r.clients[node].Addr)
	req.Header.SetBytesV("Authorization", r.auth[u])
	if body != nil {
		req.Header.SetContentType("application/json")
		req.SetBody(body)
	}
	begin := time.Now()
	err := r.clients[node].DoTimeout(req, resp, r.o.HTTPTimeout)
	el := time.Since(begin)
	if err != nil {
		op.errs.Add(1)
		kind := "error"
		switch {
		case errors.Is(err, fasthttp.ErrTimeout):
			kind = "timeout"
		case errors.Is(err, fasthttp.ErrNoFreeConns):
			kind = "no_free_conns"
		case strings.Contains(err.Error(), "refused"):
			kind = "refused"
		}
		r.errs.Add(op.name+"_"+kind, 1)
		return nil, false
	}
	op.hist.Record(el)
	code := resp.StatusCode()
	if code == 404 && (op.name == "read" || op.name == "batch") {
		op.nf.Add(1)
		return nil, true
	}
	if code < 200 || code > 299 {
		op.errs.Add(1)
		r.errs.Add(op.name+"_http_"+strconv.Itoa(code), 1)
		return nil, false
	}
	op.ok.Add(1)
	if op.name == "change" {
		return append([]byte(nil), resp.Body()...), true
	}
	return nil, true
}

// ---------------------------------------------------------------- metrics

// memReading is one node's memory at one moment.
type memReading struct {
	source                string // "pprof", "metrics" or "" (none)
	heapInuse, stackInuse float64
	heapAlloc             float64 // pprof only: live heap after the GC
	rss                   float64 // --pid, else process_resident_memory_bytes
	// cpuPre and cpuPost are the process's CPU seconds (--pid) before
	// and after the forced GC: a window starts after one and ends before
	// the next, so the GCs the generator forces are not charged to it.
	cpuPre, cpuPost float64
	goroutines      float64
	sessions        float64 // presence_ws_sessions_open
	sessionsOK      bool
	genSessions     float64 // sessions the generator holds on the node
}

type scrape struct {
	samples promSamples
	err     error // of /metrics
	mem     memReading
}

// scrapeAll reads every node's /metrics and memory. With --pprof-url the
// memory comes from runtime.MemStats after a forced GC (the heap profile
// endpoint with gc=1), which does not depend on when the runtime last
// collected; RSS comes from /proc with --pid.
func (r *loadRun) scrapeAll() []scrape {
	out := make([]scrape, len(r.o.URLs))
	open := float64(r.workerTotals().Open)
	var wg sync.WaitGroup
	for i, u := range r.o.URLs {
		wg.Add(1)
		go func(i int, u string) {
			defer wg.Done()
			s := &out[i]
			// Sessions go to nodes round-robin by user index.
			s.mem.genSessions = math.Round(open / float64(len(r.o.URLs)))
			code, body, err := fasthttp.GetTimeout(nil, u+"/metrics", 10*time.Second)
			if err == nil && code != 200 {
				err = fmt.Errorf("GET /metrics: HTTP %d: %q", code, body[:min(len(body), 300)])
			}
			if err == nil {
				s.samples, err = parseProm(strings.NewReader(string(body)))
			}
			if _, ok := s.samples.Get("go_memstats_heap_inuse_bytes"); err == nil && !ok {
				// A 200 that is not Prometheus text (a catch-all answer)
				// would otherwise read as zero memory.
				err = fmt.Errorf("GET /metrics: no go_memstats_heap_inuse_bytes in the answer: %q", body[:min(len(body), 100)])
			}
			s.err = err
			if err == nil {
				get := func(name string) float64 { v, _ := s.samples.Get(name); return v }
				s.mem = memReading{source: "metrics", heapInuse: get("go_memstats_heap_inuse_bytes"),
					stackInuse: get("go_memstats_stack_inuse_bytes"), rss: get("process_resident_memory_bytes"),
					goroutines: get("go_goroutines"), genSessions: s.mem.genSessions}
				s.mem.sessions, s.mem.sessionsOK = s.samples.Get("presence_ws_sessions_open")
			}
			if i < len(r.o.PIDs) {
				s.mem.cpuPre = pidCPU(r.o.PIDs[i])
			}
			if i < len(r.o.PprofURLs) {
				if ms, err := pprofMemStats(r.o.PprofURLs[i]); err == nil {
					s.mem.source = "pprof"
					s.mem.heapInuse, s.mem.stackInuse, s.mem.heapAlloc = ms["HeapInuse"], ms["StackInuse"], ms["HeapAlloc"]
					s.mem.goroutines = ms["goroutines"]
				} else {
					r.errs.Add("pprof_unavailable", 1)
				}
			}
			if i < len(r.o.PIDs) {
				if rss := pidRSS(r.o.PIDs[i]); rss > 0 {
					s.mem.rss = float64(rss)
				}
				s.mem.cpuPost = pidCPU(r.o.PIDs[i])
			}
		}(i, u)
	}
	wg.Wait()
	return out
}

// pprofMemStats forces a GC on the node (the heap profile with gc=1) and
// reads the runtime.MemStats it prints, and the goroutine count.
func pprofMemStats(base string) (map[string]float64, error) {
	code, body, err := fasthttp.GetTimeout(nil, base+"/debug/pprof/heap?debug=1&gc=1", 60*time.Second)
	if err != nil {
		return nil, err
	}
	if code != 200 {
		return nil, fmt.Errorf("pprof heap: HTTP %d", code)
	}
	out := map[string]float64{}
	for line := range strings.SplitSeq(string(body), "\n") {
		k, v, ok := strings.Cut(strings.TrimPrefix(line, "# "), " = ")
		if !ok || !strings.HasPrefix(line, "# ") {
			continue
		}
		switch k {
		case "HeapAlloc", "HeapInuse", "HeapSys", "Sys":
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			out[k] = f
		case "Stack": // "inuse / sys"
			in, _, _ := strings.Cut(v, " / ")
			f, _ := strconv.ParseFloat(strings.TrimSpace(in), 64)
			out["StackInuse"] = f
		}
	}
	if _, ok := out["HeapInuse"]; !ok {
		return nil, errors.New("pprof heap: no MemStats in the answer")
	}
	code, body, err = fasthttp.GetTimeout(nil, base+"/debug/pprof/goroutine?debug=1", 30*time.Second)
	if err == nil && code == 200 {
		first, _, _ := strings.Cut(string(body), "\n")
		if _, n, ok := strings.Cut(first, "total "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(n), 64)
			out["goroutines"] = f
		}
	}
	return out, nil
}

// pidCPU reads a local process's user+system CPU time in seconds (Linux,
// clock ticks of 1/100 s).
func pidCPU(pid int) float64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// The command name may hold spaces: fields count from its ")".
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100
}

// pidRSS reads a local process's resident set size.
func pidRSS(pid int) int64 {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			if f := strings.Fields(rest); len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

// ---------------------------------------------------------------- workers

type workerHandle struct {
	index  int
	in     io.WriteCloser
	lines  chan string
	cmd    *exec.Cmd
	mu     sync.Mutex
	last   *workerReport
	result *workerReport
	done   chan struct{}
	inDone chan struct{}
}

func (r *loadRun) startWorkers(ctx context.Context) error {
	o := r.o
	per := (o.Topo.Sessions + o.Workers - 1) / o.Workers
	exe, err := os.Executable()
	if err != nil && !o.inProcess {
		return fmt.Errorf("find own binary for the workers: %w", err)
	}
	for w := 0; w < o.Workers; w++ {
		first := w * per
		count := min(per, o.Topo.Sessions-first)
		if count <= 0 {
			break
		}
		cfg := workerConfig{
			Index: w, URLs: o.URLs, Secret: string(o.Secret), Issuer: o.Issuer, Audience: o.Audience,
			Topo: o.Topo, First: first, Count: count, SourceIPs: o.SourceIPs, RampNS: int64(o.Ramp),
			DialConcurrency: o.DialConc, ReadBuffer: 512, WriteBuffer: 256, NoReconnect: o.NoReconnect,
			TokenTTLNS:    int64(time.Hour + benchMaxDuration),
			MaxLifetimeNS: int64(o.Ramp + benchSettleTimeout + o.Duration + o.Grace + 2*time.Minute),
		}
		h := &workerHandle{index: w, lines: make(chan string, 4096), done: make(chan struct{}), inDone: make(chan struct{})}
		var stdout io.Reader
		if o.inProcess {
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			h.in, stdout = inW, outR
			go func() {
				err := runWorker(ctx, inR, outW)
				if err != nil {
					fmt.Fprintf(r.out, "bench: worker %d: %v\n", w, err)
				}
				_ = outW.Close()
				_ = inR.Close()
			}()
		} else {
			cmd := exec.Command(exe, "bench", "--worker")
			cmd.Stderr = r.out
			in, err := cmd.StdinPipe()
			if err != nil {
				return err
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				return err
			}
			if err := cmd.Start(); err != nil {
				return fmt.Errorf("start worker %d: %w", w, err)
			}
			h.cmd, h.in, stdout = cmd, in, out
		}
		b, _ := json.Marshal(cfg)
		if _, err := h.in.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("configure worker %d: %w", w, err)
		}
		go h.writeLoop()
		go h.readLoop(stdout, r.out)
		r.workers = append(r.workers, h)
	}
	fmt.Fprintf(r.out, "bench: %d worker(s) holding %d sessions (%d source addresses)\n", len(r.workers), o.Topo.Sessions, len(o.SourceIPs))
	return nil
}

// writeLoop feeds the worker's stdin from lines, in order.
func (h *workerHandle) writeLoop() {
	defer close(h.inDone)
	bw := bufio.NewWriter(h.in)
	for line := range h.lines {
		_, _ = bw.WriteString(line)
		_ = bw.WriteByte('\n')
		if len(h.lines) == 0 {
			_ = bw.Flush()
		}
	}
	_ = bw.Flush()
}

func (h *workerHandle) readLoop(out io.Reader, log io.Writer) {
	defer close(h.done)
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		var rep workerReport
		if err := json.Unmarshal(sc.Bytes(), &rep); err != nil {
			fmt.Fprintf(log, "bench: worker %d: unreadable report: %v\n", h.index, err)
			continue
		}
		h.mu.Lock()
		if rep.Kind == "result" {
			h.result = &rep
		}
		h.last = &rep
		h.mu.Unlock()
	}
	_, _ = io.Copy(io.Discard, out)
}

// announce tells every worker about a change; a worker whose queue is
// full (it stopped reading) loses it, which shows up as missing
// deliveries rather than a stalled generator.
func (r *loadRun) announce(u int, v uint64, sendAt int64) {
	line := "c " + strconv.Itoa(u) + " " + strconv.FormatUint(v, 10) + " " + strconv.FormatInt(sendAt, 10)
	for _, h := range r.workers {
		select {
		case h.lines <- line:
		default:
			r.errs.Add("announce_dropped", 1)
		}
	}
}

func (r *loadRun) workerTotals() workerReport {
	var t workerReport
	for _, h := range r.workers {
		h.mu.Lock()
		if l := h.last; l != nil {
			t.Open += l.Open
			t.Acked += l.Acked
			t.Failed += l.Failed
			t.Closed += l.Closed
			t.Frames += l.Frames
			t.Expected += l.Expected
			t.Received += l.Received
			if t.Delivery == nil {
				t.Delivery = &histogram{}
			}
			t.Delivery.Merge(l.Delivery)
			t.Errors = mergeCounts(t.Errors, l.Errors)
		}
		h.mu.Unlock()
	}
	return t
}

// finishWorkers tells the workers to stop and collects their results.
func (r *loadRun) finishWorkers() []*workerReport {
	for _, h := range r.workers {
		select {
		case h.lines <- "end":
		case <-time.After(5 * time.Second):
		}
		close(h.lines)
	}
	var out []*workerReport
	deadline := time.After(60 * time.Second)
	for _, h := range r.workers {
		select {
		case <-h.done:
		case <-deadline:
		}
		h.mu.Lock()
		if h.result != nil {
			out = append(out, h.result)
		}
		h.mu.Unlock()
	}
	return out
}

// stopWorkers makes sure no worker outlives the run.
func (r *loadRun) stopWorkers() {
	for _, h := range r.workers {
		select {
		case <-h.inDone:
		case <-time.After(5 * time.Second):
		}
		_ = h.in.Close()
		if h.cmd == nil {
			continue
		}
		exited := make(chan struct{})
		go func() { _ = h.cmd.Wait(); close(exited) }()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = h.cmd.Process.Kill()
			<-exited
		}
	}
	r.workers = nil
}

// ---------------------------------------------------------------- output

func (r *loadRun) progressLoop(start time.Time, phase *atomic.Value, stop chan struct{}) {
	t := time.NewTicker(r.o.Progress)
	defer t.Stop()
	prev := map[string]int64{}
	prevAt := start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			var b strings.Builder
			fmt.Fprintf(&b, "[%5.1fs %-6s]", now.Sub(start).Seconds(), phase.Load())
			if len(r.workers) > 0 {
				w := r.workerTotals()
				fmt.Fprintf(&b, " sessions %d/%d open (%d failed)", w.Open, r.o.Topo.Sessions, w.Failed)
				if w.Expected > 0 {
					p99 := float64(w.Delivery.Quantile(0.99)) / 1e6
					fmt.Fprintf(&b, " deliveries %d/%d p99 %.1fms", w.Received, w.Expected, p99)
				}
			}
			dt := now.Sub(prevAt).Seconds()
			for _, name := range sortedKeys(r.ops) {
				op := r.ops[name]
				c := op.ok.Load() + op.errs.Load() + op.nf.Load()
				fmt.Fprintf(&b, " %s %.0f/s", name, float64(c-prev[name])/dt)
				prev[name] = c
			}
			var errs int64
			for _, v := range r.errs.Snapshot() {
				errs += v
			}
			fmt.Fprintf(&b, " errors %d", errs)
			prevAt = now
			fmt.Fprintln(r.out, b.String())
		}
	}
}

func printSummary(w io.Writer, s *benchSummary) {
	fmt.Fprintf(w, "presencectl bench: %s, %d users, %d sessions x %d contacts + %d hot; ramp %.0fs, settle %.1fs, steady %.1fs\n",
		strings.Join(s.URLs, ","), s.Topology.Users, s.Topology.Sessions, s.Topology.Contacts, s.Topology.Hot,
		s.RampSeconds, s.SettleSeconds, s.SteadySeconds)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\ttarget/s\tachieved/s\tok\t404\terrors\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	for _, name := range sortedKeys(s.Rates) {
		rs, h := s.Rates[name], s.HTTP[name]
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%d\t%d\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", name, rs.Target, rs.Achieved, rs.OK, rs.NotFound, rs.Errors,
			h.P50MS, h.P90MS, h.P99MS, h.P999MS, h.MaxMS)
	}
	tw.Flush()
	if s.Sessions.Target > 0 {
		fmt.Fprintf(w, "sessions: target %d, opened %d, subscribed %d, failed %d, open at end %d; handshake p50 %.1fms p99 %.1fms\n",
			s.Sessions.Target, s.Sessions.Opened, s.Sessions.Acked, s.Sessions.Failed, s.Sessions.OpenAtEnd,
			s.Sessions.Handshake.P50MS, s.Sessions.Handshake.P99MS)
		d := s.Delivery
		fmt.Fprintf(w, "delivery (PUT sent -> subscriber frame read): %d changes, expected %d, received %d, missing %d; p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms\n",
			d.Changes, d.Expected, d.Received, d.Missing, d.Latency.P50MS, d.Latency.P90MS, d.Latency.P99MS, d.Latency.MaxMS)
	}
	for _, m := range s.Memory {
		if m.MetricsError != "" {
			fmt.Fprintf(w, "server %s: /metrics failed: %.200s\n", m.URL, m.MetricsError)
		}
		if m.Error != "" {
			fmt.Fprintf(w, "server %s: %s\n", m.URL, m.Error)
			if m.CPUSeconds > 0 {
				fmt.Fprintf(w, "  node CPU during steady+grace: %.2fs\n", m.CPUSeconds)
			}
			continue
		}
		src := "Prometheus gauges, no forced GC"
		if m.Source == "pprof" {
			src = "runtime.MemStats after a forced GC"
		}
		fmt.Fprintf(w, "server %s (%s): %+.0f sessions (%s), heap_inuse %+.1f MiB, stack_inuse %+.1f MiB, RSS %+.1f MiB, goroutines %+.0f\n",
			m.URL, src, m.SessionsDelta, m.SessionsFrom, m.HeapDelta/(1<<20), m.StackDelta/(1<<20), m.RSSDelta/(1<<20), m.GoroutineDel)
		if m.SessionsDelta > 0 {
			fmt.Fprintf(w, "  per session: heap_inuse %.2f KiB + stack %.2f KiB = %.2f KiB", m.HeapPerSess/1024, m.StackPerSess/1024, m.HeapStackPer/1024)
			if m.HeapAllocPer != 0 {
				fmt.Fprintf(w, "; live heap %.2f KiB", m.HeapAllocPer/1024)
			}
			if m.RSSPerSess != 0 {
				fmt.Fprintf(w, "; RSS %.2f KiB", m.RSSPerSess/1024)
			}
			fmt.Fprintln(w)
		}
		if m.CPUSeconds > 0 {
			fmt.Fprintf(w, "  node CPU during steady+grace: %.2fs", m.CPUSeconds)
			if m.CPUPerFrameUS > 0 {
				fmt.Fprintf(w, "; %.1f µs per delivered frame (all CPU charged to frames)", m.CPUPerFrameUS)
			}
			if m.CPUPerRequestU > 0 {
				fmt.Fprintf(w, "; %.1f µs per REST request (all CPU charged to requests)", m.CPUPerRequestU)
			}
			fmt.Fprintln(w)
		}
		for _, owner := range sortedKeys(m.ActorLatency) {
			l := m.ActorLatency[owner]
			fmt.Fprintf(w, "  actor requests (%s owner, steady phase): %.0f, mean %.3fms, p50 %.3fms, p99 %.3fms (server buckets)\n",
				owner, l.Count, l.MeanMS, l.P50MS, l.P99MS)
		}
	}
	if s.Generator.Workers > 0 {
		fmt.Fprintf(w, "generator: %d worker(s)%s, %d source addresses, heap+stack %.1f MiB (+%.1f KiB per open session), RSS %.1f MiB, workers' CPU %.1fs\n",
			s.Generator.Workers, map[bool]string{true: " in-process", false: ""}[s.Generator.InProcess], s.Generator.SourceIPs,
			float64(s.Generator.HeapStack)/(1<<20), s.Generator.PerSessionKB, float64(s.Generator.RSSBytes)/(1<<20), s.Generator.CPUSeconds)
	}
	if len(s.Errors) == 0 {
		fmt.Fprintln(w, "errors: none")
		return
	}
	fmt.Fprint(w, "errors:")
	for _, k := range sortedKeys(s.Errors) {
		fmt.Fprintf(w, " %s=%d", k, s.Errors[k])
	}
	fmt.Fprintln(w)
}
