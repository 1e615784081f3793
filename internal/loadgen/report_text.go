package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// WriteSummary prints the report as presencectl bench does: one line of
// setup, a table of the REST operations, then sessions and deliveries,
// each node's readings, the generator's cost and the errors by kind.
func WriteSummary(w io.Writer, s *Report) {
	fmt.Fprintf(w, "presencectl bench: %s, %d users, %d sessions x %d contacts + %d hot; ramp %.0fs, settle %.1fs, steady %.1fs\n",
		strings.Join(s.URLs, ","), s.Topology.Users, s.Topology.Sessions, s.Topology.Contacts, s.Topology.Hot,
		s.RampSeconds, s.SettleSeconds, s.SteadySeconds)
	writeRates(w, s)
	if s.Sessions.Target > 0 {
		fmt.Fprintf(w, "sessions: target %d, opened %d, subscribed %d, failed %d, open at end %d; handshake p50 %.1fms p99 %.1fms\n",
			s.Sessions.Target, s.Sessions.Opened, s.Sessions.Acked, s.Sessions.Failed, s.Sessions.OpenAtEnd,
			s.Sessions.Handshake.P50MS, s.Sessions.Handshake.P99MS)
		d := s.Delivery
		fmt.Fprintf(w, "delivery (PUT sent -> subscriber frame read): %d changes, expected %d, received %d, missing %d; p50 %.2fms p90 %.2fms p99 %.2fms max %.2fms\n",
			d.Changes, d.Expected, d.Received, d.Missing, d.Latency.P50MS, d.Latency.P90MS, d.Latency.P99MS, d.Latency.MaxMS)
	}
	for _, m := range s.Memory {
		writeNode(w, &m)
	}
	if s.Generator.Workers > 0 {
		fmt.Fprintf(w, "generator: %d worker(s)%s, %d source addresses, heap+stack %.1f MiB (+%.1f KiB per open session), RSS %.1f MiB, workers' CPU %.1fs\n",
			s.Generator.Workers, map[bool]string{true: " in-process", false: ""}[s.Generator.InProcess], s.Generator.SourceIPs,
			float64(s.Generator.HeapStack)/(1<<20), s.Generator.PerSessionKB, float64(s.Generator.RSSBytes)/(1<<20), s.Generator.CPUSeconds)
	}
	writeErrors(w, s.Errors)
	if s.Storm != nil {
		writeStorm(w, s.Storm)
	}
}

func writeRates(w io.Writer, s *Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\ttarget/s\tachieved/s\tok\t404\terrors\tp50 ms\tp90 ms\tp99 ms\tp99.9 ms\tmax ms\t")
	for _, name := range slices.Sorted(maps.Keys(s.Rates)) {
		rs, h := s.Rates[name], s.HTTP[name]
		fmt.Fprintf(tw, "%s\t%.0f\t%.1f\t%d\t%d\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t\n", name, rs.Target, rs.Achieved, rs.OK, rs.NotFound, rs.Errors,
			h.P50MS, h.P90MS, h.P99MS, h.P999MS, h.MaxMS)
	}
	tw.Flush()
}

// writeNode prints one node's memory, CPU and actor latency readings.
func writeNode(w io.Writer, m *NodeMemory) {
	if m.MetricsError != "" {
		fmt.Fprintf(w, "server %s: /metrics failed: %.200s\n", m.URL, m.MetricsError)
	}
	if m.Error != "" {
		fmt.Fprintf(w, "server %s: %s\n", m.URL, m.Error)
		if m.CPUSeconds > 0 {
			fmt.Fprintf(w, "  node CPU during steady+grace: %.2fs\n", m.CPUSeconds)
		}
		return
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
			fmt.Fprintf(w, "; %.1f µs per delivered frame (all CPU charged to frames; %.1f µs of it in the kernel)", m.CPUPerFrameUS, m.SystemPerFrameUS)
		}
		if m.CPUPerRequestU > 0 {
			fmt.Fprintf(w, "; %.1f µs per REST request (all CPU charged to requests)", m.CPUPerRequestU)
		}
		fmt.Fprintln(w)
	}
	for _, owner := range slices.Sorted(maps.Keys(m.ActorLatency)) {
		l := m.ActorLatency[owner]
		fmt.Fprintf(w, "  actor requests (%s owner, steady phase): %.0f, mean %.3fms, p50 %.3fms, p99 %.3fms (server buckets)\n",
			owner, l.Count, l.MeanMS, l.P50MS, l.P99MS)
	}
}

func writeErrors(w io.Writer, errs map[string]int64) {
	if len(errs) == 0 {
		fmt.Fprintln(w, "errors: none")
		return
	}
	fmt.Fprint(w, "errors:")
	for _, k := range slices.Sorted(maps.Keys(errs)) {
		fmt.Fprintf(w, " %s=%d", k, errs[k])
	}
	fmt.Fprintln(w)
}
