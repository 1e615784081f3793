package stats

import (
	"math"
	"sync"
	"time"
)

// SyncHist is a Histogram safe for concurrent use.
type SyncHist struct {
	mu sync.Mutex
	h  Histogram
}

// Record adds one duration.
func (s *SyncHist) Record(d time.Duration) {
	s.mu.Lock()
	s.h.Record(int64(d))
	s.mu.Unlock()
}

// Snapshot returns a copy.
func (s *SyncHist) Snapshot() *Histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.h
	c.Counts = append([]uint64(nil), s.h.Counts...)
	return &c
}

// Latency is how a Histogram appears in the summary, in
// milliseconds.
type Latency struct {
	Count  uint64  `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P90MS  float64 `json:"p90_ms"`
	P99MS  float64 `json:"p99_ms"`
	P999MS float64 `json:"p999_ms"`
	MaxMS  float64 `json:"max_ms"`
}

// Summarize turns h (nanoseconds) into its summary in milliseconds.
func Summarize(h *Histogram) Latency {
	ms := func(ns int64) float64 { return Round3(float64(ns) / 1e6) }
	return Latency{
		Count:  h.N,
		MeanMS: Round3(h.Mean() / 1e6),
		P50MS:  ms(h.Quantile(0.50)),
		P90MS:  ms(h.Quantile(0.90)),
		P99MS:  ms(h.Quantile(0.99)),
		P999MS: ms(h.Quantile(0.999)),
		MaxMS:  ms(h.Max),
	}
}

// Round3 rounds to three decimals, the precision of every summary figure.
func Round3(f float64) float64 { return math.Round(f*1000) / 1000 }
