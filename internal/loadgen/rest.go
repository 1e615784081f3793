package loadgen

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/presence-cluster/presence/internal/loadgen/stats"
)

// restOp is one kind of REST request the generator makes.
type restOp struct {
	name   string
	rate   float64
	ok     atomic.Int64
	errs   atomic.Int64
	nf     atomic.Int64
	hist   stats.SyncHist
	sem    chan struct{}
	steady [2]int64 // ok count at steady start and end
	ramp   bool     // rises over the ramp (changes do not)
}

// count is every request of op that got an answer or failed.
func (op *restOp) count() int64 { return op.ok.Load() + op.errs.Load() + op.nf.Load() }

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
	n := r.p.Topology.Sessions
	begin := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < min(r.p.Conns, 64); w++ {
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
	n := r.p.Topology.Users
	node := int(seq % uint64(len(r.clients)))
	switch op.name {
	case "heartbeat":
		u := int(seq % uint64(n))
		r.do(op, node, fasthttp.MethodPost, "/users/me/heartbeat", u, nil)
	case "read":
		u, target := rand.IntN(n), rand.IntN(n)
		r.do(op, node, fasthttp.MethodGet, "/users/"+strconv.FormatInt(r.p.Topology.userID(target), 10)+"/presence", u, nil)
	case "batch":
		var b strings.Builder
		b.WriteString("/users/presence?user_ids=")
		for i := 0; i < r.p.BatchSize; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.FormatInt(r.p.Topology.userID(rand.IntN(n)), 10))
		}
		r.do(op, node, fasthttp.MethodGet, b.String(), rand.IntN(n), nil)
	case "change":
		r.change(op, node)
	}
}

// change toggles a user's busy flag and announces (user, version, send
// time) to the workers, which match it with the frames their sessions get.
func (r *loadRun) change(op *restOp, node int) {
	n := r.p.Topology.Users
	if r.p.Topology.Hot > 0 {
		n = r.p.Topology.Hot
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
	err := r.clients[node].DoTimeout(req, resp, r.p.HTTPTimeout)
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
