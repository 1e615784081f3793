package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fasthttp/websocket"

	"github.com/presence-cluster/presence/internal/loadgen/stats"
)

// workerConfig is the first line a worker reads on stdin. The secret
// travels here, not on the command line, so ps does not show it.
type workerConfig struct {
	Index     int      `json:"index"`
	URLs      []string `json:"urls"`
	Secret    string   `json:"secret"`
	Issuer    string   `json:"issuer,omitempty"`
	Audience  string   `json:"audience,omitempty"`
	Topo      Topology `json:"topology"`
	First     int      `json:"first"`
	Count     int      `json:"count"`
	SourceIPs []string `json:"source_ips"`
	RampNS    int64    `json:"ramp_ns"`
	// DialConcurrency bounds handshakes in flight.
	DialConcurrency int   `json:"dial_concurrency"`
	ReadBuffer      int   `json:"read_buffer"`
	WriteBuffer     int   `json:"write_buffer"`
	TokenTTLNS      int64 `json:"token_ttl_ns"`
	// MaxLifetimeNS ends the worker even if the coordinator never says so.
	MaxLifetimeNS int64 `json:"max_lifetime_ns"`
	// NoReconnect keeps sessions closed by the server (1012, 1013) closed.
	NoReconnect bool `json:"no_reconnect,omitempty"`
	// Storm is set in the reconnect-storm scenario.
	Storm *workerStormConfig `json:"storm,omitempty"`
}

// workerReport is what a worker writes on stdout, one JSON object a line:
// progress every second, then one result.
type workerReport struct {
	Kind  string `json:"kind"` // "progress" or "result"
	Index int    `json:"index"`

	Open       int64            `json:"open"`
	Acked      int64            `json:"acked"`
	Failed     int64            `json:"failed"`
	Closed     int64            `json:"closed"`
	Frames     int64            `json:"frames"`
	Expected   int64            `json:"expected"`
	Received   int64            `json:"received"`
	Missing    int64            `json:"missing"`
	Unmatched  int64            `json:"unmatched"`
	Errors     map[string]int64 `json:"errors,omitempty"`
	Delivery   *stats.Histogram `json:"delivery,omitempty"`
	Handshake  *stats.Histogram `json:"handshake,omitempty"`
	RSSBytes   int64            `json:"rss_bytes,omitempty"`
	HeapBytes  int64            `json:"heap_inuse_bytes,omitempty"`
	StackBytes int64            `json:"stack_inuse_bytes,omitempty"`
	HeapDelta  int64            `json:"heap_stack_delta_bytes,omitempty"`
	CPUSeconds float64          `json:"cpu_s,omitempty"`
	Goroutines int              `json:"goroutines,omitempty"`
	// Storm: in progress reports only Gone and Back.
	Storm *workerStorm `json:"storm,omitempty"`
}

// wsWorker holds the sessions of one worker.
type wsWorker struct {
	cfg    workerConfig
	sess   []wsSess
	match  *matcher
	dialer []*websocket.Dialer // one per source address
	errs   stats.Counters
	hs     stats.SyncHist
	storm  *stormState // nil unless the storm scenario

	open, acked, failed, closed, frames atomic.Int64
	ending                              atomic.Bool
	wg                                  sync.WaitGroup
}

// RunWorker is the worker mode (presencectl bench --worker): it reads its
// configuration and the coordinator's change announcements from in, holds
// its share of the sessions, and writes reports to out, one JSON object a
// line: progress every second, then one result.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer) error {
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	cfg, err := readWorkerConfig(sc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.MaxLifetimeNS))
	defer cancel()

	w := newWSWorker(cfg)
	runtime.GC()
	var ms0 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	var outMu sync.Mutex
	enc := json.NewEncoder(out)
	emit := func(r *workerReport) {
		outMu.Lock()
		defer outMu.Unlock()
		_ = enc.Encode(r)
	}

	dialCtx, stopDialing := context.WithCancel(ctx)
	defer stopDialing()
	dialDone := make(chan struct{})
	go func() {
		defer close(dialDone)
		w.dialAll(dialCtx)
	}()
	progressDone := make(chan struct{})
	progressStop := make(chan struct{})
	go func() {
		defer close(progressDone)
		w.progressLoop(ctx, progressStop, emit)
	}()

	w.readAnnouncements(ctx, sc)

	w.ending.Store(true)
	stopDialing()
	<-dialDone
	close(progressStop)
	<-progressDone
	w.match.finish()
	res := w.result(&ms0)
	w.closeAll()
	emit(res)
	return nil
}

// readWorkerConfig reads and checks the first line.
func readWorkerConfig(sc *bufio.Scanner) (workerConfig, error) {
	var cfg workerConfig
	if !sc.Scan() {
		return cfg, errors.New("worker: no configuration on stdin")
	}
	if err := json.Unmarshal(sc.Bytes(), &cfg); err != nil {
		return cfg, fmt.Errorf("worker: configuration: %w", err)
	}
	if cfg.Count < 0 || cfg.First < 0 || cfg.First+cfg.Count > cfg.Topo.Sessions || len(cfg.URLs) == 0 {
		return cfg, errors.New("worker: configuration out of range")
	}
	if cfg.MaxLifetimeNS <= 0 {
		cfg.MaxLifetimeNS = int64(15 * time.Minute)
	}
	return cfg, nil
}

// newWSWorker allocates the sessions and one dialer per source address.
func newWSWorker(cfg workerConfig) *wsWorker {
	w := &wsWorker{cfg: cfg, sess: make([]wsSess, cfg.Count)}
	w.match = newMatcher(cfg.Topo, cfg.First, cfg.Count, w.sess)
	if cfg.Storm != nil {
		w.storm = newStormState(cfg.Topo, cfg.First, cfg.Count)
	}
	ips := cfg.SourceIPs
	if len(ips) == 0 {
		ips = []string{""}
	}
	// One write buffer pool for all sessions: a session writes only pongs
	// and its close frame, so it holds no write buffer between writes.
	pool := &sync.Pool{}
	for _, ip := range ips {
		d := &websocket.Dialer{
			HandshakeTimeout: 15 * time.Second,
			ReadBufferSize:   max(cfg.ReadBuffer, 256),
			WriteBufferSize:  max(cfg.WriteBuffer, 256),
			WriteBufferPool:  pool,
		}
		if ip != "" {
			local := &net.TCPAddr{IP: net.ParseIP(ip)}
			nd := &net.Dialer{LocalAddr: local, Timeout: 10 * time.Second}
			d.NetDialContext = nd.DialContext
		}
		w.dialer = append(w.dialer, d)
	}
	return w
}

// progressLoop emits a progress report every second and expires the
// receipts nobody announced.
func (w *wsWorker) progressLoop(ctx context.Context, stop chan struct{}, emit func(*workerReport)) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case now := <-t.C:
			w.match.expire(now, 30*time.Second)
			emit(w.report("progress"))
		}
	}
}

// readAnnouncements feeds the coordinator's lines to the matcher until
// "end", the end of input or ctx: "c <user index> <version> <send unix ns>".
func (w *wsWorker) readAnnouncements(ctx context.Context, sc *bufio.Scanner) {
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case line, ok := <-lines:
			if !ok || line == "end" {
				return
			}
			w.handleLine(line)
		}
	}
}

// result is the final report, with the worker's own memory and CPU; ms0
// is the memory before the first dial.
func (w *wsWorker) result(ms0 *runtime.MemStats) *workerReport {
	res := w.report("result")
	if w.storm != nil {
		res.Storm = w.storm.result(w.sess)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.HeapDelta = int64(ms.HeapInuse+ms.StackInuse) - int64(ms0.HeapInuse+ms0.StackInuse)
	res.RSSBytes = selfRSS()
	res.HeapBytes = int64(ms.HeapInuse)
	res.StackBytes = int64(ms.StackInuse)
	res.Goroutines = runtime.NumGoroutine()
	res.CPUSeconds = pidCPU(os.Getpid())
	return res
}

// handleLine parses one announcement.
func (w *wsWorker) handleLine(line string) {
	if w.stormLine(line) {
		return
	}
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "c" {
		w.errs.Add("worker_bad_line", 1)
		return
	}
	u, err1 := strconv.Atoi(f[1])
	v, err2 := strconv.ParseUint(f[2], 10, 64)
	at, err3 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || u < 0 || u >= w.cfg.Topo.Users {
		w.errs.Add("worker_bad_line", 1)
		return
	}
	w.match.announce(u, v, at)
}

// report is the worker's counters now.
func (w *wsWorker) report(kind string) *workerReport {
	exp, rec, miss, unm, lat := w.match.snapshot()
	return &workerReport{
		Kind: kind, Index: w.cfg.Index,
		Open: w.open.Load(), Acked: w.acked.Load(), Failed: w.failed.Load(), Closed: w.closed.Load(),
		Frames: w.frames.Load(), Expected: exp, Received: rec, Missing: miss, Unmatched: unm,
		Errors: w.errs.Snapshot(), Delivery: lat, Handshake: w.hs.Snapshot(),
		Storm: w.stormProgress(),
	}
}

// stormProgress is the storm's counts for a progress report.
func (w *wsWorker) stormProgress() *workerStorm {
	if w.storm == nil {
		return nil
	}
	return &workerStorm{Gone: w.storm.gone.Load(), Back: w.storm.back.Load()}
}
