package prom

import (
	"strings"
	"testing"
)

func TestParseProm(t *testing.T) {
	text := `# HELP go_goroutines x
go_goroutines 42
presence_ws_sessions_open 3
presence_actor_request_duration_seconds_bucket{owner="local",le="0.001"} 90
presence_actor_request_duration_seconds_bucket{owner="local",le="0.01"} 100
presence_actor_request_duration_seconds_bucket{owner="local",le="+Inf"} 100
presence_actor_request_duration_seconds_sum{owner="local"} 0.05
presence_actor_request_duration_seconds_count{owner="local"} 100
presence_actor_request_duration_seconds_count{owner="remote"} 7
`
	s, err := Parse(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := s.Get("go_goroutines"); v != 42 {
		t.Errorf("go_goroutines %v", v)
	}
	if v, ok := s.Get("presence_actor_request_duration_seconds_count", "owner", "remote"); !ok || v != 7 {
		t.Errorf("remote count %v %v", v, ok)
	}
	h := s.Histogram("presence_actor_request_duration_seconds", "owner", "local")
	if h.Count != 100 || len(h.Bounds) != 3 {
		t.Fatalf("histogram %+v", h)
	}
	if q := h.Quantile(0.5); q < 0.00055 || q > 0.00056 {
		t.Errorf("p50 %v, want 0.000556 (interpolated)", q)
	}
	if q := h.Quantile(0.95); q < 0.0054 || q > 0.0056 {
		t.Errorf("p95 %v, want 0.0055", q)
	}
}
