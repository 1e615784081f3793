package loadgen

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// progressLoop prints a progress line every Progress until stop closes.
func (r *loadRun) progressLoop(start time.Time, stop chan struct{}) {
	t := time.NewTicker(r.p.Progress)
	defer t.Stop()
	prev := map[string]int64{}
	prevAt := start
	for {
		select {
		case <-stop:
			return
		case now := <-t.C:
			var b strings.Builder
			fmt.Fprintf(&b, "[%5.1fs %-6s]", now.Sub(start).Seconds(), r.phase.Load())
			if len(r.workers) > 0 {
				w := r.workerTotals()
				fmt.Fprintf(&b, " sessions %d/%d open (%d failed)", w.Open, r.p.Topology.Sessions, w.Failed)
				if w.Storm != nil && r.storm != nil && r.storm.drainStarted() {
					fmt.Fprintf(&b, " cut off %d back %d", w.Storm.Gone, w.Storm.Back)
				}
				if w.Expected > 0 {
					p99 := float64(w.Delivery.Quantile(0.99)) / 1e6
					fmt.Fprintf(&b, " deliveries %d/%d p99 %.1fms", w.Received, w.Expected, p99)
				}
			}
			dt := now.Sub(prevAt).Seconds()
			for _, name := range slices.Sorted(maps.Keys(r.ops)) {
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
