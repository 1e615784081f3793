package loadgen

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"time"

	"github.com/presence-cluster/presence/internal/loadgen/stats"
)

// workerHandle is the coordinator's end of one worker: announcements go
// out on its stdin (lines), reports come back on its stdout.
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

// startWorkers splits the sessions over the workers, starts them (as
// processes, or goroutines in process) and sends each its configuration.
func (r *loadRun) startWorkers(ctx context.Context) error {
	p := r.p
	per := (p.Topology.Sessions + p.workers - 1) / p.workers
	for w := 0; w < p.workers; w++ {
		first := w * per
		count := min(per, p.Topology.Sessions-first)
		if count <= 0 {
			break
		}
		h := &workerHandle{index: w, lines: make(chan string, 4096), done: make(chan struct{}), inDone: make(chan struct{})}
		var stdout io.Reader
		var err error
		if p.inProcess {
			stdout = r.startInProcess(ctx, h)
		} else if stdout, err = r.startProcess(h); err != nil {
			return err
		}
		b, _ := json.Marshal(r.workerConfig(w, first, count))
		if _, err := h.in.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("configure worker %d: %w", w, err)
		}
		go h.writeLoop()
		go h.readLoop(stdout, r.out)
		r.workers = append(r.workers, h)
	}
	fmt.Fprintf(r.out, "bench: %d worker(s) holding %d sessions (%d source addresses)\n", len(r.workers), p.Topology.Sessions, len(p.sourceIPs))
	return nil
}

// workerConfig is worker w's share: sessions first..first+count-1.
func (r *loadRun) workerConfig(w, first, count int) workerConfig {
	p := r.p
	return workerConfig{
		Index: w, URLs: p.URLs, Secret: string(p.Secret), Issuer: p.Issuer, Audience: p.Audience,
		Topo: p.Topology, First: first, Count: count, SourceIPs: p.sourceIPs, RampNS: int64(p.Ramp),
		DialConcurrency: p.DialConcurrency, ReadBuffer: 512, WriteBuffer: 256, NoReconnect: p.NoReconnect,
		TokenTTLNS:    int64(time.Hour + MaxDuration),
		MaxLifetimeNS: int64(p.Ramp + settleTimeout + p.Duration + p.Grace + 2*time.Minute + r.stormExtra()),
		Storm:         r.workerStorm(),
	}
}

// stormExtra is how much longer than a steady run a storm may last: the
// wait for the comeback and for late updates.
func (r *loadRun) stormExtra() time.Duration {
	if r.storm == nil {
		return 0
	}
	return stormComebackWait + convergeTimeout
}

// workerStorm is the workers' storm configuration, nil outside a storm.
func (r *loadRun) workerStorm() *workerStormConfig {
	if r.storm == nil {
		return nil
	}
	return &workerStormConfig{DrainIndex: r.storm.drainIndex, DrainSessions: r.storm.expected}
}

// startInProcess runs RunWorker on pipes in this process (--workers 0)
// and returns its output.
func (r *loadRun) startInProcess(ctx context.Context, h *workerHandle) io.Reader {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	h.in = inW
	go func() {
		if err := RunWorker(ctx, inR, outW); err != nil {
			fmt.Fprintf(r.out, "bench: worker %d: %v\n", h.index, err)
		}
		_ = outW.Close()
		_ = inR.Close()
	}()
	return outR
}

// startProcess starts this binary in worker mode and returns its stdout;
// its stderr goes to the run's log.
func (r *loadRun) startProcess(h *workerHandle) (io.Reader, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own binary for the workers: %w", err)
	}
	cmd := exec.Command(exe, r.p.WorkerArgs...)
	cmd.Stderr = r.out
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("worker %d stdin: %w", h.index, err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("worker %d stdout: %w", h.index, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker %d: %w", h.index, err)
	}
	h.cmd, h.in = cmd, in
	return out, nil
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

// readLoop keeps the worker's latest report and its result.
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

// workerTotals sums the workers' latest reports.
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
				t.Delivery = &stats.Histogram{}
			}
			t.Delivery.Merge(l.Delivery)
			t.Errors = stats.MergeCounts(t.Errors, l.Errors)
			if l.Storm != nil {
				if t.Storm == nil {
					t.Storm = &workerStorm{}
				}
				t.Storm.Gone += l.Storm.Gone
				t.Storm.Back += l.Storm.Back
			}
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
