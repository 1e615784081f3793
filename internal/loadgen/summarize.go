package loadgen

import (
	"math"
	"time"

	"github.com/presence-cluster/presence/internal/loadgen/stats"
)

// report builds the run's report from the operations' counters, the
// workers' results and the nodes' readings.
func (r *loadRun) report(started time.Time, tl *timeline, results []*workerReport) *Report {
	sum := &Report{Started: started, URLs: r.p.URLs, Topology: r.p.Topology, Rates: map[string]RateSummary{}, HTTP: map[string]stats.Latency{}}
	sum.SettleSeconds = stats.Round3(tl.settle.Seconds())
	sum.RampSeconds = r.p.Ramp.Seconds()
	steady := tl.steadyEnd.Sub(tl.steadyStart).Seconds()
	sum.SteadySeconds = stats.Round3(steady)
	for name, op := range r.ops {
		rs := RateSummary{Target: op.rate, OK: op.ok.Load(), Errors: op.errs.Load(), NotFound: op.nf.Load()}
		if steady > 0 {
			rs.Achieved = stats.Round3(float64(op.steady[1]-op.steady[0]) / steady)
		}
		sum.Rates[name] = rs
		sum.HTTP[name] = stats.Summarize(op.hist.Snapshot())
	}
	sum.Errors = r.errs.Snapshot()
	r.addWorkerResults(sum, results)
	sum.Delivery.Changes = r.changes.Load()
	var steadyReq int64
	for _, op := range r.ops {
		steadyReq += op.steady[1] - op.steady[0]
	}
	for i, u := range r.p.URLs {
		if r.storm != nil && i == r.storm.drainIndex {
			continue // gone by the end: no reading to compare
		}
		nm := nodeMem(u, tl.before[i], tl.established[i], tl.end[i])
		if len(r.p.URLs) == 1 && nm.CPUSeconds > 0 {
			// Each figure charges the node's whole CPU of the steady phase
			// to one kind of work, so it is an upper bound when both run.
			if sum.Delivery.Received > 0 {
				nm.CPUPerFrameUS = stats.Round3(nm.CPUSeconds * 1e6 / float64(sum.Delivery.Received))
				nm.SystemPerFrameUS = stats.Round3(nm.SystemCPUSeconds * 1e6 / float64(sum.Delivery.Received))
			}
			if steadyReq > 0 {
				nm.CPUPerRequestU = stats.Round3(nm.CPUSeconds * 1e6 / float64(steadyReq))
			}
		}
		sum.Memory = append(sum.Memory, nm)
	}
	if r.storm != nil {
		sum.Scenario = "storm"
		sum.Storm = r.stormSummary(results)
	}
	return sum
}

// addWorkerResults adds the workers' sessions, deliveries, errors and own
// cost to sum.
func (r *loadRun) addWorkerResults(sum *Report, results []*workerReport) {
	var dl, hs stats.Histogram
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
		sum.Errors = stats.MergeCounts(sum.Errors, res.Errors)
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
	sum.Delivery.Latency = stats.Summarize(&dl)
	sum.Sessions.Target = r.p.Topology.Sessions
	sum.Sessions.Handshake = stats.Summarize(&hs)
	sum.Generator.Workers = len(r.workers)
	sum.Generator.InProcess = r.p.inProcess
	sum.Generator.SourceIPs = len(r.p.sourceIPs)
	if sum.Sessions.OpenAtEnd > 0 {
		sum.Generator.PerSessionKB = stats.Round3(float64(sum.Generator.HeapStackDelta) / float64(sum.Sessions.OpenAtEnd) / 1024)
	}
}

// nodeMem turns a node's three readings into its figures: memory from
// before to after the sessions were established, CPU and actor latency
// from then to the end.
func nodeMem(u string, before, after, end scrape) NodeMemory {
	nm := NodeMemory{URL: u, Source: after.mem.source}
	if after.mem.cpuPost.total() > 0 && end.mem.cpuPre.total() > 0 {
		nm.CPUSeconds = stats.Round3(end.mem.cpuPre.total() - after.mem.cpuPost.total())
		nm.SystemCPUSeconds = stats.Round3(end.mem.cpuPre.system - after.mem.cpuPost.system)
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
		nm.ActorLatency = map[string]PromLatency{}
		for _, owner := range []string{"local", "remote"} {
			h := end.samples.Histogram("presence_actor_request_duration_seconds", "owner", owner).
				Sub(after.samples.Histogram("presence_actor_request_duration_seconds", "owner", owner))
			if h.Count > 0 {
				nm.ActorLatency[owner] = PromLatency{Count: h.Count, MeanMS: stats.Round3(h.Mean() * 1e3),
					P50MS: stats.Round3(h.Quantile(0.5) * 1e3), P99MS: stats.Round3(h.Quantile(0.99) * 1e3)}
			}
		}
	}
	return nm
}
