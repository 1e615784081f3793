package loadgen

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// stormRun is the coordinator's state for the storm scenario.
type stormRun struct {
	cfg        *StormConfig
	drainIndex int
	expected   int // sessions connected to the draining node
	mu         sync.Mutex
	drainAt    time.Time
	drainErr   error
	allBackAt  time.Time     // when the workers' progress first showed every session back
	samples    []storeSample // the staying nodes' store counters during the storm
	readFailed int           // users whose current version could not be read
	done       chan struct{} // closed when runStorm returns
}

// drainStarted reports whether the drain has begun.
func (sr *stormRun) drainStarted() bool {
	sr.mu.Lock()
	defer sr.mu.Unlock()
	return !sr.drainAt.IsZero()
}

// storeSample is the staying nodes' store calls so far, summed.
type storeSample struct {
	at                    time.Time
	saves, touches, loads float64
	flapsSuppressed       float64
	errors                int
}

func newStormRun(p plan) *stormRun {
	if p.Storm == nil {
		return nil
	}
	sr := &stormRun{cfg: p.Storm, drainIndex: p.Storm.drainIndex(p.URLs), expected: p.Storm.DrainSessions, done: make(chan struct{})}
	if sr.expected < 0 {
		sr.expected = p.Topology.Sessions
	}
	return sr
}

// runStorm waits DrainAfter into the steady phase, starts the drain and
// samples the staying nodes' store counters until every cut-off session
// is back or until end (past the steady phase: the run waits for the
// comeback).
func (r *loadRun) runStorm(ctx context.Context, steadyStart, end time.Time) {
	sr := r.storm
	sleepCtx(ctx, time.Until(steadyStart.Add(sr.cfg.DrainAfter)))
	if ctx.Err() != nil {
		return
	}
	r.phase.Store("storm")
	first := r.sampleStore()
	at := time.Now()
	sr.mu.Lock()
	sr.drainAt = at
	sr.samples = append(sr.samples, first)
	sr.mu.Unlock()
	r.announceLine("d " + strconv.FormatInt(at.UnixNano(), 10))
	err := sr.cfg.drain(ctx)
	fmt.Fprintf(r.out, "bench: draining %s (%d sessions on it)\n", sr.cfg.DrainURL, sr.expected)
	if err != nil {
		sr.mu.Lock()
		sr.drainErr = err
		sr.mu.Unlock()
		fmt.Fprintf(r.out, "bench: drain: %v\n", err)
		return
	}
	for ctx.Err() == nil && time.Now().Before(end) {
		sleepCtx(ctx, 500*time.Millisecond)
		s := r.sampleStore()
		w := r.workerTotals()
		sr.mu.Lock()
		sr.samples = append(sr.samples, s)
		back := w.Storm != nil && w.Storm.Gone >= int64(sr.expected) && w.Storm.Back >= w.Storm.Gone
		if back && sr.allBackAt.IsZero() {
			sr.allBackAt = time.Now()
		}
		sr.mu.Unlock()
		if back {
			return
		}
	}
}

// stormComebackWait bounds the wait, after the steady phase, for sessions
// still away (a client's backoff grows to 30 s).
const stormComebackWait = time.Minute

// sampleStore reads the store counters of the nodes that stay.
func (r *loadRun) sampleStore() storeSample {
	s := storeSample{at: time.Now()}
	for i, u := range r.p.URLs {
		if i == r.storm.drainIndex {
			continue
		}
		m, err := scrapeMetrics(u)
		if err != nil {
			s.errors++
			continue
		}
		get := func(op string) float64 { v, _ := m.Get("presence_store_duration_seconds_count", "op", op); return v }
		s.saves += get("save")
		s.touches += get("touch_last_seen")
		s.loads += get("load")
		v, _ := m.Get("presence_offline_flaps_suppressed_total")
		s.flapsSuppressed += v
	}
	s.at = s.at.Add(time.Since(s.at) / 2)
	return s
}

// announceLine sends a line to every worker, waiting (bounded) for room:
// unlike a change, a storm line must not be dropped.
func (r *loadRun) announceLine(line string) {
	for _, h := range r.workers {
		select {
		case h.lines <- line:
		case <-time.After(5 * time.Second):
			r.errs.Add("announce_dropped", 1)
		}
	}
}

// sendCurrentVersions reads every user's current version through the
// staying nodes (batch reads) and sends them to the workers, which compare
// them with what their sessions saw.
func (r *loadRun) sendCurrentVersions(ctx context.Context) {
	n := r.p.Topology.Users
	const batch = 50
	const perLine = 1000
	versions := make([]uint64, n)
	for first := 0; first < n && ctx.Err() == nil; first += batch {
		last := min(first+batch, n)
		if err := r.readVersions(first, last, versions); err != nil {
			r.storm.readFailed += last - first
			r.errs.Add("storm_version_read_failed", 1)
		}
	}
	for first := 0; first < n; first += perLine {
		var b strings.Builder
		b.WriteString("v ")
		b.WriteString(strconv.Itoa(first))
		for u := first; u < min(first+perLine, n); u++ {
			b.WriteByte(' ')
			b.WriteString(strconv.FormatUint(versions[u], 10))
		}
		r.announceLine(b.String())
	}
}

// readVersions reads users first..last-1 with one batch read (retrying a
// refusal a few times, as a client honouring Retry-After would) into
// versions; users without a record stay 0.
func (r *loadRun) readVersions(first, last int, versions []uint64) error {
	var path strings.Builder
	path.WriteString("/users/presence?user_ids=")
	for u := first; u < last; u++ {
		if u > first {
			path.WriteByte(',')
		}
		path.WriteString(strconv.FormatInt(r.p.Topology.userID(u), 10))
	}
	var err error
	for try := 0; try < 5; try++ {
		var body []byte
		if body, err = r.get(first, path.String()); err == nil {
			return r.parseVersions(body, versions)
		}
		time.Sleep(time.Second)
	}
	return err
}

// get sends one GET as user u to a staying node and returns the body of
// a 200.
func (r *loadRun) get(u int, path string) ([]byte, error) {
	req := fasthttp.AcquireRequest()
	resp := fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	c := r.clients[u%len(r.clients)]
	req.Header.SetMethod(fasthttp.MethodGet)
	req.SetRequestURI(path)
	req.Header.SetHost(c.Addr)
	req.Header.SetBytesV("Authorization", r.auth[u])
	if err := c.DoTimeout(req, resp, r.p.HTTPTimeout); err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode() != 200 {
		return nil, fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode())
	}
	return append([]byte(nil), resp.Body()...), nil
}

func (r *loadRun) parseVersions(body []byte, versions []uint64) error {
	var recs []struct {
		UserID  int64  `json:"user_id"`
		Version uint64 `json:"version"`
	}
	if err := json.Unmarshal(body, &recs); err != nil {
		return fmt.Errorf("batch read: %w", err)
	}
	for _, rec := range recs {
		if u := rec.UserID - r.p.Topology.UserBase; u >= 0 && u < int64(len(versions)) {
			versions[u] = rec.Version
		}
	}
	return nil
}
