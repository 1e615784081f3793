package stats

import "sync"

// Counters is a set of named counts (errors by kind).
type Counters struct {
	mu sync.Mutex
	m  map[string]int64
}

// Add adds n to kind.
func (c *Counters) Add(kind string, n int64) {
	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[string]int64)
	}
	c.m[kind] += n
	c.mu.Unlock()
}

// Snapshot returns a copy of the counts.
func (c *Counters) Snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

// MergeCounts adds src to dst, allocating dst if nil, and returns it.
func MergeCounts(dst, src map[string]int64) map[string]int64 {
	if dst == nil {
		dst = make(map[string]int64)
	}
	for k, v := range src {
		dst[k] += v
	}
	return dst
}
