// Package stats holds the load generator's measurement types: a mergeable
// log-linear latency histogram, its summary in milliseconds, and named
// counters. Workers ship histograms and counters to the coordinator as
// JSON, so everything here has a stable wire form.
package stats

import (
	"encoding/json"
	"math"
	"math/bits"
)

// Histogram records durations (nanoseconds) in log-linear buckets: exact
// below 128 ns, then 128 buckets per power of two, so any recorded value is
// reported within 0.8% of itself. Histograms of several goroutines or
// worker processes merge by adding counts, which is how the generator
// aggregates percentiles over its workers without shipping raw samples.
type Histogram struct {
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
func (h *Histogram) Record(v int64) {
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
func (h *Histogram) Merge(o *Histogram) {
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
func (h *Histogram) Quantile(q float64) int64 {
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
func (h *Histogram) Mean() float64 {
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

// MarshalJSON writes the compact wire form (non-empty buckets only).
func (h *Histogram) MarshalJSON() ([]byte, error) {
	out := histogramJSON{N: h.N, Sum: h.Sum, Min: h.Min, Max: h.Max, Buckets: [][2]uint64{}}
	for i, c := range h.Counts {
		if c > 0 {
			out.Buckets = append(out.Buckets, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(out)
}

// UnmarshalJSON reads the wire form written by MarshalJSON.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var in histogramJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*h = Histogram{N: in.N, Sum: in.Sum, Min: in.Min, Max: in.Max}
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
