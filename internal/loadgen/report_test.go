package loadgen

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/presence-cluster/presence/internal/loadgen/stats"
)

// The --json summary's keys are what scripts and BENCHMARKS.md read: they
// must not change with the Go names (encoding/json decodes keys without
// regard to case, so a round trip through Report would not notice).
func TestReportJSONKeys(t *testing.T) {
	rep := &Report{
		Rates:  map[string]RateSummary{"heartbeat": {}},
		HTTP:   map[string]stats.Latency{"heartbeat": {}},
		Errors: map[string]int64{},
		Memory: []NodeMemory{{}},
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		want string
	}{
		{"", "delivery errors generator http_latency ramp_s rates server_memory sessions settle_s started steady_s topology urls"},
		{"topology", "contacts hot sessions user_base users"},
		{"delivery", "changes_announced expected latency missing received unmatched_frames"},
		{"sessions", "acked failed frames handshake open_at_end opened target"},
		{"generator", "heap_plus_stack_per_session_kib in_process source_ips workers workers_cpu_s workers_heap_plus_stack_bytes workers_heap_plus_stack_delta_bytes workers_rss_bytes"},
	} {
		obj := m
		if tc.path != "" {
			obj = nil
			if err := json.Unmarshal(m[tc.path], &obj); err != nil {
				t.Fatalf("%s: %v", tc.path, err)
			}
		}
		if got := strings.Join(slices.Sorted(maps.Keys(obj)), " "); got != tc.want {
			t.Errorf("keys of %q:\n got %s\nwant %s", tc.path, got, tc.want)
		}
	}
}
