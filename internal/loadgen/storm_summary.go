package loadgen

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/presence-cluster/presence/internal/loadgen/stats"
)

// stormSummary merges the workers' storm figures with the coordinator's
// and judges them.
func (r *loadRun) stormSummary(results []*workerReport) *StormSummary {
	sr := r.storm
	sr.mu.Lock()
	defer sr.mu.Unlock()
	s := &StormSummary{DrainURL: sr.cfg.DrainURL, DrainAt: sr.drainAt.UTC(), OnDrained: sr.expected,
		TargetS: sr.cfg.Target.Seconds(), GraceS: sr.cfg.DisconnectGrace.Seconds(), VersionReadFailed: sr.readFailed,
		Refusals: map[string]int64{}}
	if sr.drainErr != nil {
		s.DrainError = sr.drainErr.Error()
	}
	ev := stormEvidence{offline: map[int]int64{}, down: map[int]bool{}}
	var hs stats.Histogram
	var converged time.Duration
	for _, res := range results {
		ws := res.Storm
		if ws == nil {
			continue
		}
		hs.Merge(ws.Handshake)
		s.Refusals = stats.MergeCounts(s.Refusals, ws.Refusals)
		s.SubscribedAtEnd += ws.SubscribedAtEnd
		s.Compared += ws.Compared
		s.Stale += ws.Stale
		s.StaleAtRead += ws.StaleAtRead
		s.Ahead += ws.Ahead
		if converged >= 0 {
			converged = max(converged, time.Duration(ws.ConvergedNS))
			if ws.ConvergedNS < 0 {
				converged = -1
			}
		}
		s.StaleExamples = append(s.StaleExamples, ws.Examples...)
		ev.sessions = append(ev.sessions, ws.Sessions...)
		for _, o := range ws.Offline {
			if at, ok := ev.offline[o.U]; !ok || o.At < at {
				ev.offline[o.U] = o.At
			}
		}
		for _, d := range ws.Down {
			ev.down[d] = true
		}
	}
	s.CurrentAfterS = -1
	if converged >= 0 {
		s.CurrentAfterS = stats.Round3(converged.Seconds())
	}
	s.StaleExamples = s.StaleExamples[:min(len(s.StaleExamples), maxMismatchExamples)]
	s.Handshake = stats.Summarize(&hs)
	r.addComeback(s, ev.sessions)
	s.Closes1013 = s.Refusals["closed_1013"]
	for k, v := range s.Refusals {
		if k != "closed_1012" && k != "closed_1013" {
			s.OtherRefusals += v
		}
	}
	s.Store = storeRates(sr.samples)
	if !sr.drainAt.IsZero() {
		flaps := findFlaps(ev, r.p.Topology, sr.drainAt.UnixNano(), sr.cfg.DisconnectGrace)
		s.Flaps, s.OfflineSeen = len(flaps), len(ev.offline)
		s.FlapExamples = flaps[:min(len(flaps), maxFlapExamples)]
	}
	s.Checks = stormChecks(s, r.p.Topology.Sessions)
	s.Pass = !slices.ContainsFunc(s.Checks, func(c StormCheck) bool { return !c.OK })
	return s
}

// addComeback fills the cut-off and back counts and how long the
// sessions took to be subscribed again, from the drain.
func (r *loadRun) addComeback(s *StormSummary, sessions []stormSession) {
	var back stats.Histogram
	drainAt := r.storm.drainAt.UnixNano()
	var last int64
	for _, c := range sessions {
		s.CutOff++
		if c.Back == 0 {
			s.NotBack++
			continue
		}
		s.Back++
		back.Record(c.Back - drainAt)
		last = max(last, c.Back)
	}
	if last > 0 {
		s.AllBackS = secondsSince(drainAt, last)
	}
	if s.Back > 0 {
		s.BackP50S = stats.Round3(float64(back.Quantile(0.5)) / 1e9)
		s.BackP99S = stats.Round3(float64(back.Quantile(0.99)) / 1e9)
	}
}

// storeRates turns the staying nodes' store counters into rates over the
// storm window, and the highest rate between two samples.
func storeRates(samples []storeSample) StormStore {
	var out StormStore
	if len(samples) < 2 {
		return out
	}
	first, last := samples[0], samples[len(samples)-1]
	writes := func(s storeSample) float64 { return s.saves + s.touches }
	window := last.at.Sub(first.at).Seconds()
	if window <= 0 {
		return out
	}
	out.WindowS = stats.Round3(window)
	out.WritesPerS = stats.Round3((writes(last) - writes(first)) / window)
	out.SavesPerS = stats.Round3((last.saves - first.saves) / window)
	out.TouchesPerS = stats.Round3((last.touches - first.touches) / window)
	out.LoadsPerS = stats.Round3((last.loads - first.loads) / window)
	out.FlapsSuppressed = last.flapsSuppressed - first.flapsSuppressed
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		out.ScrapeErrors += b.errors
		if dt := b.at.Sub(a.at).Seconds(); dt > 0 && b.errors == 0 && a.errors == 0 {
			out.PeakWritesPerS = max(out.PeakWritesPerS, stats.Round3((writes(b)-writes(a))/dt))
		}
	}
	return out
}

// writeStorm prints the storm's part of the summary.
func writeStorm(w io.Writer, s *StormSummary) {
	p := func(format string, a ...any) { fmt.Fprintf(w, format, a...) }
	p("storm: drained %s at %s; %d sessions on it, %d cut off, %d back (%d not back); all back after %.2fs (p50 %.2fs, p99 %.2fs; target %.0fs)\n",
		s.DrainURL, s.DrainAt.Format("15:04:05.000"), s.OnDrained, s.CutOff, s.Back, s.NotBack, s.AllBackS, s.BackP50S, s.BackP99S, s.TargetS)
	p("storm: reconnect handshakes %d, p50 %.1fms p99 %.1fms max %.1fms; 1013 closes %d, other refusals %d%s\n",
		s.Handshake.Count, s.Handshake.P50MS, s.Handshake.P99MS, s.Handshake.MaxMS, s.Closes1013, s.OtherRefusals, refusalList(s.Refusals))
	st := s.Store
	p("storm: staying nodes' store over %.1fs: %.0f writes/s (peak %.0f/s; saves %.0f/s, last_seen flushes %.1f/s), loads %.0f/s; flaps suppressed %.0f\n",
		st.WindowS, st.WritesPerS, st.PeakWritesPerS, st.SavesPerS, st.TouchesPerS, st.LoadsPerS, st.FlapsSuppressed)
	p("storm: %d sessions subscribed at the end; of %d contact versions %d stale when read by REST, all current %.2fs later (-1: not in 10s), %d stale then (lost), %d newer than the read; %d users seen offline, %d flaps (grace %.0fs)\n",
		s.SubscribedAtEnd, s.Compared, s.StaleAtRead, s.CurrentAfterS, s.Stale, s.Ahead, s.OfflineSeen, s.Flaps, s.GraceS)
	for _, e := range s.StaleExamples {
		p("  stale: session of %d has %d at version %d, current %d\n", e.Session, e.User, e.Seen, e.Current)
	}
	for _, f := range s.FlapExamples {
		p("  flap: %d seen offline %.2fs after the drain (back %.2fs)\n", f.UserID, f.SeenOfflineS, f.BackS)
	}
	for _, c := range s.Checks {
		p("  [%s] %s: %s\n", map[bool]string{true: "ok", false: "FAIL"}[c.OK], c.Name, c.Detail)
	}
	p("storm: %s\n", map[bool]string{true: "PASS", false: "FAIL"}[s.Pass])
}

func refusalList(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteString(" (")
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	b.WriteByte(')')
	return b.String()
}
