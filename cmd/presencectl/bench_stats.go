package main

import (
	"bufio"
	"encoding/json"
	"io"
	"math"
	"math/bits"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// histogram records durations (nanoseconds) in log-linear buckets: exact
// below 128 ns, then 128 buckets per power of two, so any recorded value is
// reported within 0.8% of itself. Histograms of several goroutines or
// worker processes merge by adding counts, which is how the generator
// aggregates percentiles over its workers without shipping raw samples.
type histogram struct {
	Counts []uint64 `json:"-"`
	N      uint64   `json:"n"`
	Sum    float64  `json:"sum_ns"`
	Min    int64    `json:"min_ns"`
	Max    int64    `json:"max_ns"`
}

const histSubBits = 7
const histSub = 1 << histSubBits

// histIndex maps a value to its bucket.
func histIndex(v int64) int {
	if v < histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	e := bits.Len64(uint64(v)) - histSubBits - 1
	m := uint64(v) >> e
	return (e+1)*histSub + int(m-histSub)
}

// histLow is the smallest value of bucket i; histWidth its width.
func histLow(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	e := i/histSub - 1
	m := int64(i%histSub + histSub)
	return m << e
}

func histWidth(i int) int64 {
	if i < histSub {
		return 1
	}
	return 1 << (i/histSub - 1)
}

// Record adds one value (negative values count as 0).
func (h *histogram) Record(v int64) {
	if v < 0 {
		v = 0
	}
	i := histIndex(v)
	if i >= len(h.Counts) {
		n := make([]uint64, i+1+histSub)
		copy(n, h.Counts)
		h.Counts = n
	}
	h.Counts[i]++
	if h.N == 0 || v < h.Min {
		h.Min = v
	}
	if v > h.Max {
		h.Max = v
	}
	h.N++
	h.Sum += float64(v)
}

// Merge adds o's counts to h.
func (h *histogram) Merge(o *histogram) {
	if o == nil || o.N == 0 {
		return
	}
	if len(o.Counts) > len(h.Counts) {
		n := make([]uint64, len(o.Counts))
		copy(n, h.Counts)
		h.Counts = n
	}
	for i, c := range o.Counts {
		h.Counts[i] += c
	}
	if h.N == 0 || o.Min < h.Min {
		h.Min = o.Min
	}
	if o.Max > h.Max {
		h.Max = o.Max
	}
	h.N += o.N
	h.Sum += o.Sum
}

// Quantile returns the value at quantile q (0..1): the middle of the bucket
// holding the ceil(q*N)-th smallest value, clamped to [Min, Max]. q >= 1 is
// the exact maximum.
func (h *histogram) Quantile(q float64) int64 {
	if h.N == 0 {
		return 0
	}
	if q >= 1 {
		return h.Max
	}
	if q <= 0 {
		return h.Min
	}
	rank := uint64(math.Ceil(q * float64(h.N)))
	if rank < 1 {
		rank = 1
	}
	var seen uint64
	for i, c := range h.Counts {
		seen += c
		if seen >= rank {
			v := histLow(i) + histWidth(i)/2
			return min(max(v, h.Min), h.Max)
		}
	}
	return h.Max
}

// Mean returns the average value.
func (h *histogram) Mean() float64 {
	if h.N == 0 {
		return 0
	}
	return h.Sum / float64(h.N)
}

// histogramJSON is the wire form: the non-empty buckets as [index, count]
// pairs, so a worker's result stays small.
type histogramJSON struct {
	Buckets [][2]uint64 `json:"buckets"`
	N       uint64      `json:"n"`
	Sum     float64     `json:"sum_ns"`
	Min     int64       `json:"min_ns"`
	Max     int64       `json:"max_ns"`
}

func (h *histogram) MarshalJSON() ([]byte, error) {
	out := histogramJSON{N: h.N, Sum: h.Sum, Min: h.Min, Max: h.Max, Buckets: [][2]uint64{}}
	for i, c := range h.Counts {
		if c > 0 {
			out.Buckets = append(out.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(out)
}

func (h *histogram) UnmarshalJSON(b []byte) error {
	var in histogramJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*h = histogram{N: in.N, Sum: in.Sum, Min: in.Min, Max: in.Max}
	for _, bc := range in.Buckets {
		i := int(bc[0])
		if i > 64*histSub {
			continue // beyond any int64: corrupt input
		}
		if i >= len(h.Counts) {
			n := make([]uint64, i+1)
			copy(n, h.Counts)
			h.Counts = n
		}
		h.Counts[i] += bc[1]
	}
	return nil
}

// syncHist is a histogram safe for concurrent use.
type syncHist struct {
	mu sync.Mutex
	h  histogram
}

func (s *syncHist) Record(d time.Duration) {
	s.mu.Lock()
	s.h.Record(int64(d))
	s.mu.Unlock()
}

// Snapshot returns a copy.
func (s *syncHist) Snapshot() *histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.h
	c.Counts = append([]uint64(nil), s.h.Counts...)
	return &c
}

// latencySummary is how a histogram appears in the summary, in
// milliseconds.
type latencySummary struct {
	Count  uint64  `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	P999MS float64 `json:"p999_ms"`
	MaxMS  float64 `json:"max_ms"`
}

func summarize(h *histogram) latencySummary {
	ms := func(ns int64) float64 { return round3(float64(ns) / 1e6) }
	return latencySummary{
		Count:  h.N,
		MeanMS: round3(h.Mean() / 1e6),
		P50MS:  ms(h.Quantile(0.50)),
		P90MS:  ms(h.Quantile(0.90)),
		P99MS:  ms(h.Quantile(0.99)),
		P999MS: ms(h.Quantile(0.999)),
		MaxMS:  ms(h.Max),
	}
}

func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// counters is a set of named counts (errors by kind).
type counters struct {
	mu sync.Mutex
	m  map[string]int64
}

func (c *counters) Add(kind string, n int64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]int64)
	}
	c.m[kind] += n
	c.mu.Unlock()
}

func (c *counters) Snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

func mergeCounts(dst, src map[string]int64) map[string]int64 {
	if dst == nil {
		dst = make(map[string]int64)
	}
	for k, v := range src {
		dst[k] += v
	}
	return dst
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// promSamples are the samples of a Prometheus text exposition, keyed by
// the series as written ("name" or `name{label="v"}`).
type promSamples map[string]float64

// parseProm reads the text format; comments and malformed lines are
// skipped. Label order is kept as the server wrote it, which is stable for
// one server.
func parseProm(r io.Reader) (promSamples, error) {
	out := promSamples{}
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
func (p promSamples) Get(name string, labels ...string) (float64, bool) {
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

// promHistogram is one Prometheus histogram series: cumulative counts by
// upper bound.
type promHistogram struct {
	Bounds []float64
	Cum    []float64
	Count  float64
	Sum    float64
}

// Histogram extracts the histogram name with the given extra labels
// (besides le).
func (p promSamples) Histogram(name string, labels ...string) promHistogram {
	var h promHistogram
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
func (h promHistogram) Sub(before promHistogram) promHistogram {
	out := promHistogram{Bounds: h.Bounds, Count: h.Count - before.Count, Sum: h.Sum - before.Sum}
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
func (h promHistogram) Quantile(q float64) float64 {
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
func (h promHistogram) Mean() float64 {
	if h.Count <= 0 {
		return 0
	}
	return h.Sum / h.Count
}
