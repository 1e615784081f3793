package loadgen

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/presence-cluster/presence/api/auth"
	"github.com/presence-cluster/presence/internal/loadgen/stats"
)

// loadRun is the coordinator's state for one run.
type loadRun struct {
	p       plan
	out     io.Writer
	clients []*fasthttp.HostClient
	auth    [][]byte // "Bearer <token>" per user index
	errs    stats.Counters
	ops     map[string]*restOp
	busy    []atomic.Bool   // the busy state last set per user
	inUse   []atomic.Bool   // a change in flight per user
	lastVer []atomic.Uint64 // newest version a change returned per user
	rr      atomic.Uint64   // round-robin over users and nodes
	wg      sync.WaitGroup  // requests in flight
	workers []*workerHandle
	changes atomic.Int64
	phase   atomic.Value // "ramp", "settle", "steady", "storm", "grace": for the progress line
	storm   *stormRun    // nil unless the storm scenario
}

// timeline is when each phase of a run began and ended, and the nodes'
// readings taken between phases.
type timeline struct {
	start, steadyStart, steadyEnd time.Time
	settle                        time.Duration
	// before any session, once the sessions are established, at the end.
	before, established, end []scrape
}

// Run validates cfg, drives one run (prewarm, ramp, settle, steady phase,
// grace) and returns its report. Progress lines go to cfg.Log. It returns
// early, with what was measured so far, when ctx ends.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r, err := newRun(cfg.plan())
	if err != nil {
		return nil, err
	}
	return r.execute(ctx)
}

// newRun sets up the REST clients, the users' tokens and the operations.
func newRun(p plan) (*loadRun, error) {
	r := &loadRun{p: p, out: p.Log, ops: map[string]*restOp{}, storm: newStormRun(p)}
	n := p.Topology.Users
	r.busy = make([]atomic.Bool, n)
	r.inUse = make([]atomic.Bool, n)
	r.lastVer = make([]atomic.Uint64, n)
	for _, u := range p.restURLs() {
		pu, err := url.Parse(u)
		if err != nil {
			return nil, fmt.Errorf("node URL %s: %w", u, err)
		}
		r.clients = append(r.clients, newHostClient(pu.Host, p.Conns, p.HTTPTimeout))
	}
	// Tokens: only the users that make REST calls need one here (the
	// workers mint their sessions' own).
	fmt.Fprintf(r.out, "bench: minting %d tokens\n", n)
	r.auth = make([][]byte, n)
	for i := 0; i < n; i++ {
		tok, err := auth.Mint(p.Secret, auth.MintClaims{UserID: p.Topology.userID(i), Username: "bench" + strconv.Itoa(i),
			TTL: time.Hour + MaxDuration, Issuer: p.Issuer, Audience: p.Audience})
		if err != nil {
			return nil, fmt.Errorf("mint token of user %d: %w", p.Topology.userID(i), err)
		}
		r.auth[i] = []byte("Bearer " + tok)
	}
	inflight := p.Conns * len(p.URLs) * 2
	for _, op := range []struct {
		name string
		rate float64
		ramp bool
	}{{"heartbeat", p.HeartbeatRate, true}, {"change", p.ChangeRate, false}, {"read", p.ReadRate, true}, {"batch", p.BatchRate, true}} {
		if op.rate > 0 {
			r.ops[op.name] = &restOp{name: op.name, rate: op.rate, sem: make(chan struct{}, inflight), ramp: op.ramp}
		}
	}
	return r, nil
}

func newHostClient(addr string, conns int, timeout time.Duration) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                          addr,
		MaxConns:                      conns,
		MaxConnWaitTimeout:            timeout,
		ReadTimeout:                   timeout,
		WriteTimeout:                  timeout,
		MaxIdleConnDuration:           time.Minute,
		NoDefaultUserAgentHeader:      true,
		DisableHeaderNamesNormalizing: true,
		ReadBufferSize:                4096,
		WriteBufferSize:               4096,
	}
}

// execute runs the phases in order and builds the report.
func (r *loadRun) execute(ctx context.Context) (*Report, error) {
	started := time.Now().UTC()
	if r.p.Prewarm {
		if err := r.prewarm(ctx); err != nil {
			return nil, err
		}
	}
	if r.p.Topology.HiddenHot {
		if err := r.hideHot(); err != nil {
			return nil, err
		}
	}
	var tl timeline
	// Server memory before any session.
	tl.before = r.scrapeAll()
	for i, s := range tl.before {
		if s.err != nil {
			fmt.Fprintf(r.out, "bench: node %s: %v\n", r.p.URLs[i], s.err)
		}
	}

	tl.start = time.Now()
	if r.p.Topology.Sessions > 0 {
		if err := r.startWorkers(ctx); err != nil {
			r.stopWorkers()
			return nil, err
		}
	}
	defer r.stopWorkers()

	r.phase.Store("ramp")
	progressStop := make(chan struct{})
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		r.progressLoop(tl.start, progressStop)
	}()
	r.measure(ctx, &tl)
	close(progressStop)
	<-progressDone

	if r.storm != nil {
		r.sendCurrentVersions(ctx)
	}
	results := r.finishWorkers()
	return r.report(started, &tl, results), nil
}

// measure runs ramp, settle, steady phase and grace, taking the nodes'
// readings between them.
func (r *loadRun) measure(ctx context.Context, tl *timeline) {
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	var pacers sync.WaitGroup
	rampEnd := tl.start.Add(r.p.Ramp)
	r.startRampPacers(loadCtx, &pacers, tl.start, rampEnd.Add(settleTimeout+r.p.Duration))

	// Ramp, then let the sessions settle (bounded).
	sleepCtx(ctx, time.Until(rampEnd))
	tl.settle = r.settle(ctx)
	tl.established = r.scrapeAll()

	// Steady phase: changes start, every rate is at its target.
	r.phase.Store("steady")
	tl.steadyStart = time.Now()
	for _, op := range r.ops {
		op.steady[0] = op.count()
	}
	if op := r.ops["change"]; op != nil {
		pacers.Add(1)
		go func() {
			defer pacers.Done()
			r.pace(loadCtx, op, tl.steadyStart, 0, tl.steadyStart.Add(r.p.Duration))
		}()
	}
	if r.storm != nil {
		go func() {
			defer close(r.storm.done)
			r.runStorm(ctx, tl.steadyStart, tl.steadyStart.Add(r.p.Duration+stormComebackWait))
		}()
	}
	sleepCtx(ctx, r.p.Duration)
	stopLoad()
	pacers.Wait()
	tl.steadyEnd = time.Now()
	for _, op := range r.ops {
		op.steady[1] = op.count()
	}
	waitTimeout(&r.wg, r.p.HTTPTimeout+time.Second)
	if r.storm != nil {
		r.phase.Store("comeback")
		<-r.storm.done // every session back, or the wait's bound
	}

	r.phase.Store("grace")
	sleepCtx(ctx, r.p.Grace)
	tl.end = r.scrapeAll()
}

// startRampPacers starts the operations that rise over the ramp; they run
// until hardEnd or ctx ends.
func (r *loadRun) startRampPacers(ctx context.Context, pacers *sync.WaitGroup, start, hardEnd time.Time) {
	for _, op := range r.ops {
		if !op.ramp {
			continue
		}
		pacers.Add(1)
		go func(op *restOp) {
			defer pacers.Done()
			r.pace(ctx, op, start, r.p.Ramp, hardEnd)
		}(op)
	}
}

// settle waits (bounded) until every session has subscribed or failed,
// and returns how long that took.
func (r *loadRun) settle(ctx context.Context) time.Duration {
	settleStart := time.Now()
	r.phase.Store("settle")
	for ctx.Err() == nil && time.Since(settleStart) < settleTimeout && r.p.Topology.Sessions > 0 {
		w := r.workerTotals()
		if w.Acked+w.Failed >= int64(r.p.Topology.Sessions) {
			break
		}
		sleepCtx(ctx, 200*time.Millisecond)
	}
	return time.Since(settleStart)
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
