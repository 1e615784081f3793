package stats

import (
	"encoding/json"
	"math/rand/v2"
	"testing"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for v := int64(1); v <= 100_000; v++ {
		h.Record(v * 1000) // 1 µs .. 100 ms
	}
	for _, c := range []struct {
		q    float64
		want int64
	}{{0.5, 50_000_000}, {0.9, 90_000_000}, {0.99, 99_000_000}, {0.999, 99_900_000}} {
		got := h.Quantile(c.q)
		if d := float64(got-c.want) / float64(c.want); d > 0.01 || d < -0.01 {
			t.Errorf("q%.3f = %d, want %d within 1%%", c.q, got, c.want)
		}
	}
	if h.Quantile(1) != 100_000_000 || h.Max != 100_000_000 || h.Min != 1000 {
		t.Errorf("max %d min %d q1 %d", h.Max, h.Min, h.Quantile(1))
	}
	if m := h.Mean(); m < 50_000_000 || m > 50_001_000 {
		t.Errorf("mean %f", m)
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 || empty.Mean() != 0 {
		t.Error("empty Histogram should answer 0")
	}
}

// Every value must land in a bucket whose bounds contain it, and bucket
// indices must grow with the value.
func TestHistogramBuckets(t *testing.T) {
	prev := -1
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 1 << 20, 1<<40 + 12345, 1<<62 + 1} {
		i := histIndex(v)
		if i < prev {
			t.Fatalf("index of %d (%d) below the previous one (%d)", v, i, prev)
		}
		prev = i
		lo, w := histLow(i), histWidth(i)
		if v < lo || v >= lo+w {
			t.Errorf("%d in bucket %d = [%d, %d)", v, i, lo, lo+w)
		}
		if v >= histSub && float64(w)/float64(v) > 1.0/histSub {
			t.Errorf("bucket of %d is %d wide: worse than 1/%d", v, w, histSub)
		}
	}
}

// Merging per-worker Histograms, also through their JSON form, gives the
// same percentiles as one Histogram of all values.
func TestHistogramMergeJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var all Histogram
	parts := make([]Histogram, 3)
	for i := 0; i < 30_000; i++ {
		v := int64(rng.ExpFloat64() * 2e6) // ~2 ms mean
		all.Record(v)
		parts[i%3].Record(v)
	}
	var merged Histogram
	for i := range parts {
		b, err := json.Marshal(&parts[i])
		if err != nil {
			t.Fatal(err)
		}
		var back Histogram
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		merged.Merge(&back)
	}
	if merged.N != all.N || merged.Max != all.Max || merged.Min != all.Min {
		t.Fatalf("merged n/min/max %d/%d/%d, want %d/%d/%d", merged.N, merged.Min, merged.Max, all.N, all.Min, all.Max)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		if a, m := all.Quantile(q), merged.Quantile(q); a != m {
			t.Errorf("q%.3f: merged %d, single %d", q, m, a)
		}
	}
}
