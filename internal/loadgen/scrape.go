package loadgen

import (
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/presence-cluster/presence/internal/loadgen/prom"
)

// memReading is one node's memory at one moment.
type memReading struct {
	source                string // "pprof", "metrics" or "" (none)
	heapInuse, stackInuse float64
	heapAlloc             float64 // pprof only: live heap after the GC
	rss                   float64 // --pid, else process_resident_memory_bytes
	// cpuPre and cpuPost are the process's CPU time (--pid) before and
	// after the forced GC: a window starts after one and ends before the
	// next, so the GCs the generator forces are not charged to it.
	cpuPre, cpuPost cpuTime
	goroutines      float64
	sessions        float64 // presence_ws_sessions_open
	sessionsOK      bool
	genSessions     float64 // sessions the generator holds on the node
}

type scrape struct {
	samples prom.Samples
	err     error // of /metrics
	mem     memReading
}

// scrapeAll reads every node's /metrics and memory. With --pprof-url the
// memory comes from runtime.MemStats after a forced GC (the heap profile
// endpoint with gc=1), which does not depend on when the runtime last
// collected; RSS comes from /proc with --pid.
func (r *loadRun) scrapeAll() []scrape {
	out := make([]scrape, len(r.p.URLs))
	// Sessions go to nodes round-robin by user index.
	perNode := math.Round(float64(r.workerTotals().Open) / float64(len(r.p.URLs)))
	var wg sync.WaitGroup
	for i, u := range r.p.URLs {
		wg.Add(1)
		go func(i int, u string) {
			defer wg.Done()
			s := &out[i]
			s.samples, s.err = scrapeMetrics(u)
			if s.err == nil {
				s.mem = metricsReading(s.samples)
			}
			s.mem.genSessions = perNode
			r.readProcess(i, &s.mem)
		}(i, u)
	}
	wg.Wait()
	return out
}

// scrapeMetrics reads a node's /metrics.
func scrapeMetrics(u string) (prom.Samples, error) {
	code, body, err := fasthttp.GetTimeout(nil, u+"/metrics", 10*time.Second)
	if err == nil && code != 200 {
		err = fmt.Errorf("GET /metrics: HTTP %d: %q", code, body[:min(len(body), 300)])
	}
	var samples prom.Samples
	if err == nil {
		samples, err = prom.Parse(strings.NewReader(string(body)))
	}
	if _, ok := samples.Get("go_memstats_heap_inuse_bytes"); err == nil && !ok {
		// A 200 that is not Prometheus text (a catch-all answer)
		// would otherwise read as zero memory.
		err = fmt.Errorf("GET /metrics: no go_memstats_heap_inuse_bytes in the answer: %q", body[:min(len(body), 100)])
	}
	return samples, err
}

// metricsReading is the memory the Prometheus gauges report (no GC).
func metricsReading(s prom.Samples) memReading {
	get := func(name string) float64 { v, _ := s.Get(name); return v }
	m := memReading{source: "metrics", heapInuse: get("go_memstats_heap_inuse_bytes"),
		stackInuse: get("go_memstats_stack_inuse_bytes"), rss: get("process_resident_memory_bytes"),
		goroutines: get("go_goroutines")}
	m.sessions, m.sessionsOK = s.Get("presence_ws_sessions_open")
	return m
}

// readProcess overrides node i's reading with the forced-GC memory
// (--pprof-url) and adds RSS and CPU (--pid), the CPU read on both sides
// of the forced GC.
func (r *loadRun) readProcess(i int, m *memReading) {
	if i < len(r.p.PIDs) {
		m.cpuPre = pidCPUTime(r.p.PIDs[i])
	}
	if i < len(r.p.PprofURLs) {
		if ms, err := pprofMemStats(r.p.PprofURLs[i]); err == nil {
			m.source = "pprof"
			m.heapInuse, m.stackInuse, m.heapAlloc = ms["HeapInuse"], ms["StackInuse"], ms["HeapAlloc"]
			m.goroutines = ms["goroutines"]
		} else {
			r.errs.Add("pprof_unavailable", 1)
		}
	}
	if i < len(r.p.PIDs) {
		if rss := pidRSS(r.p.PIDs[i]); rss > 0 {
			m.rss = float64(rss)
		}
		m.cpuPost = pidCPUTime(r.p.PIDs[i])
	}
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

// cpuTime is a process's CPU time in seconds, split as the kernel counts
// it: user is the process's own code, system its system calls. On
// loopback a sender's write(2) also runs the receiving socket's TCP
// processing and wakes the reader, so a node's system time counts work
// that the clients' machines would do in production.
type cpuTime struct{ user, system float64 }

func (c cpuTime) total() float64 { return c.user + c.system }

// pidCPU reads a local process's user+system CPU time in seconds.
func pidCPU(pid int) float64 { return pidCPUTime(pid).total() }

// pidCPUTime reads a local process's CPU time (Linux); zero elsewhere.
func pidCPUTime(pid int) cpuTime {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return cpuTime{}
	}
	return parseStatCPU(string(b))
}

// parseStatCPU reads utime and stime (clock ticks of 1/100 s) from the
// text of /proc/PID/stat; zero when it is not that.
func parseStatCPU(stat string) cpuTime {
	// The command name may hold spaces and parentheses: fields count from
	// its last ")".
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return cpuTime{}
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return cpuTime{}
	}
	ut, uerr := strconv.ParseFloat(f[11], 64)
	st, serr := strconv.ParseFloat(f[12], 64)
	if uerr != nil || serr != nil {
		return cpuTime{}
	}
	return cpuTime{user: ut / 100, system: st / 100}
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

// selfRSS reads this process's resident set size (Linux); 0 elsewhere.
func selfRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
