// Package prom reads the Prometheus text exposition a node serves on
// /metrics: just enough (samples by series, histograms by label) for the
// load generator to take memory and latency readings without pulling in a
// Prometheus client.
package prom

import (
	"bufio"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Samples are the samples of a Prometheus text exposition, keyed by
// the series as written ("name" or `name{label="v"}`).
type Samples map[string]float64

// Parse reads the text format; comments and malformed lines are
// skipped. Label order is kept as the server wrote it, which is stable for
// one server.
func Parse(r io.Reader) (Samples, error) {
	out := Samples{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		// The value follows the last space outside the labels; a
		// timestamp, if any, would follow it (the Go client writes none).
		end := strings.LastIndexByte(line, '}')
		rest := line
		if end >= 0 {
			rest = line[end+1:]
		}
		fields := strings.Fields(rest)
		if end < 0 && len(fields) > 0 {
			fields = fields[1:] // the name
		}
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		key := line
		if end >= 0 {
			key = line[:end+1]
		} else {
			key = strings.Fields(line)[0]
		}
		out[key] = v
	}
	return out, sc.Err()
}

// Get returns the sample of name with exactly the given label pairs
// (in any order), or 0 and false.
func (p Samples) Get(name string, labels ...string) (float64, bool) {
	if len(labels) == 0 {
		v, ok := p[name]
		return v, ok
	}
	for k, v := range p {
		if !strings.HasPrefix(k, name+"{") {
			continue
		}
		if labelsMatch(k[len(name)+1:len(k)-1], labels) {
			return v, true
		}
	}
	return 0, false
}

func labelsMatch(set string, want []string) bool {
	have := map[string]string{}
	for part := range strings.SplitSeq(set, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			continue
		}
		have[k] = strings.Trim(v, `"`)
	}
	if len(have) != len(want)/2 {
		return false
	}
	for i := 0; i+1 < len(want); i += 2 {
		if have[want[i]] != want[i+1] {
			return false
		}
	}
	return true
}

// Histogram is one Prometheus histogram series: cumulative counts by
// upper bound.
type Histogram struct {
	Bounds []float64
	Cum    []float64
	Count  float64
	Sum    float64
}

// Histogram extracts the histogram name with the given extra labels
// (besides le).
func (p Samples) Histogram(name string, labels ...string) Histogram {
	var h Histogram
	type bc struct{ le, c float64 }
	var bs []bc
	for k, v := range p {
		if !strings.HasPrefix(k, name+"_bucket{") {
			continue
		}
		set := k[len(name)+len("_bucket{") : len(k)-1]
		var le string
		var rest []string
		for part := range strings.SplitSeq(set, ",") {
			lk, lv, _ := strings.Cut(part, "=")
			if lk == "le" {
				le = strings.Trim(lv, `"`)
				continue
			}
			rest = append(rest, part)
		}
		if !labelsMatch(strings.Join(rest, ","), labels) {
			continue
		}
		f, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue // "+Inf" parses; anything else is skipped
		}
		bs = append(bs, bc{f, v})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, b := range bs {
		h.Bounds = append(h.Bounds, b.le)
		h.Cum = append(h.Cum, b.c)
	}
	h.Count, _ = p.Get(name+"_count", labels...)
	h.Sum, _ = p.Get(name+"_sum", labels...)
	return h
}

// Sub returns h minus an earlier snapshot of the same series.
func (h Histogram) Sub(before Histogram) Histogram {
	out := Histogram{Bounds: h.Bounds, Count: h.Count - before.Count, Sum: h.Sum - before.Sum}
	out.Cum = make([]float64, len(h.Cum))
	for i := range h.Cum {
		out.Cum[i] = h.Cum[i]
		if i < len(before.Cum) && before.Bounds[i] == h.Bounds[i] {
			out.Cum[i] -= before.Cum[i]
		}
	}
	return out
}

// Quantile interpolates linearly inside the bucket, as PromQL's
// histogram_quantile does; the answer is only as good as the buckets.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count <= 0 || len(h.Cum) == 0 {
		return 0
	}
	rank := q * h.Count
	prevBound, prevCum := 0.0, 0.0
	for i, c := range h.Cum {
		if c >= rank {
			b := h.Bounds[i]
			if math.IsInf(b, 1) {
				return prevBound
			}
			if c == prevCum {
				return b
			}
			return prevBound + (b-prevBound)*(rank-prevCum)/(c-prevCum)
		}
		prevBound, prevCum = h.Bounds[i], c
	}
	return prevBound
}

// Mean is Sum/Count.
func (h Histogram) Mean() float64 {
	if h.Count <= 0 {
		return 0
	}
	return h.Sum / h.Count
}
