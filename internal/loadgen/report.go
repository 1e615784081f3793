package loadgen

import (
	"time"

	"github.com/presence-cluster/presence/internal/loadgen/stats"
)

// RateSummary is one REST operation: its target and achieved rate over
// the steady phase, and its outcomes over the whole run.
type RateSummary struct {
	Target   float64 `json:"target_per_s"`
	Achieved float64 `json:"achieved_per_s"`
	OK       int64   `json:"ok"`
	Errors   int64   `json:"errors"`
	// NotFound counts reads of users without a record (404), which is a
	// correct answer, not an error.
	NotFound int64 `json:"not_found,omitempty"`
}

// DeliverySummary is the changes announced and their frames: expected
// (subscribed before the PUT was sent), received, missing, and the
// latency from the PUT being sent to the frame being read.
type DeliverySummary struct {
	Expected  int64         `json:"expected"`
	Received  int64         `json:"received"`
	Missing   int64         `json:"missing"`
	Unmatched int64         `json:"unmatched_frames"`
	Changes   int64         `json:"changes_announced"`
	Latency   stats.Latency `json:"latency"`
}

// SessionSummary is the WebSocket sessions of the run.
type SessionSummary struct {
	Target    int           `json:"target"`
	Opened    int64         `json:"opened"`
	Acked     int64         `json:"acked"`
	Failed    int64         `json:"failed"`
	OpenAtEnd int64         `json:"open_at_end"`
	Frames    int64         `json:"frames"`
	Handshake stats.Latency `json:"handshake"`
}

// NodeMemory is one node's readings: memory growth with the sessions
// (from before any session to the end of the settle phase), CPU and
// actor latency during the steady phase.
type NodeMemory struct {
	URL string `json:"url"`
	// Source says where the readings come from: "pprof" (runtime.MemStats
	// after a forced GC) or "metrics" (the Prometheus gauges, no GC).
	Source        string  `json:"source"`
	SessionsDelta float64 `json:"sessions_delta"`
	// SessionsFrom is "metrics" (presence_ws_sessions_open) or
	// "generator" (sessions the generator held open on this node).
	SessionsFrom   string  `json:"sessions_from"`
	HeapAllocDelta float64 `json:"heap_alloc_delta_bytes,omitempty"`
	HeapDelta      float64 `json:"heap_inuse_delta_bytes"`
	StackDelta     float64 `json:"stack_inuse_delta_bytes"`
	RSSDelta       float64 `json:"rss_delta_bytes,omitempty"`
	GoroutineDel   float64 `json:"goroutines_delta"`
	HeapAllocPer   float64 `json:"heap_alloc_per_session_bytes,omitempty"`
	HeapPerSess    float64 `json:"heap_inuse_per_session_bytes"`
	StackPerSess   float64 `json:"stack_per_session_bytes"`
	HeapStackPer   float64 `json:"heap_inuse_plus_stack_per_session_bytes"`
	RSSPerSess     float64 `json:"rss_per_session_bytes,omitempty"`
	// CPUSeconds is the node's CPU time (user+system) during the steady
	// phase and grace (--pid), and the per-operation shares of it;
	// SystemCPUSeconds is the part of it spent in the kernel (system
	// calls: for a fan-out, mostly the write(2) of each frame).
	CPUSeconds       float64 `json:"steady_cpu_s,omitempty"`
	SystemCPUSeconds float64 `json:"steady_system_cpu_s,omitempty"`
	CPUPerFrameUS    float64 `json:"cpu_us_per_delivered_frame,omitempty"`
	SystemPerFrameUS float64 `json:"system_cpu_us_per_delivered_frame,omitempty"`
	CPUPerRequestU   float64 `json:"cpu_us_per_rest_request,omitempty"`
	// ActorLatency is presence_actor_request_duration_seconds during the
	// steady phase, by owner (local, remote), from the server's buckets.
	ActorLatency map[string]PromLatency `json:"actor_request_latency,omitempty"`
	Error        string                 `json:"error,omitempty"`
	MetricsError string                 `json:"metrics_error,omitempty"`
}

// PromLatency is a latency read from a server histogram.
type PromLatency struct {
	Count  float64 `json:"count"`
	MeanMS float64 `json:"mean_ms"`
	P50MS  float64 `json:"p50_ms"`
	P99MS  float64 `json:"p99_ms"`
}

// GeneratorSummary is the generator's own cost.
type GeneratorSummary struct {
	Workers   int   `json:"workers"`
	InProcess bool  `json:"in_process"`
	RSSBytes  int64 `json:"workers_rss_bytes"`
	HeapStack int64 `json:"workers_heap_plus_stack_bytes"`
	// HeapStackDelta is the growth of the workers' heap+stack from before
	// their first dial to the end, with a GC at both ends.
	HeapStackDelta int64   `json:"workers_heap_plus_stack_delta_bytes"`
	PerSessionKB   float64 `json:"heap_plus_stack_per_session_kib"`
	CPUSeconds     float64 `json:"workers_cpu_s"`
	SourceIPs      int     `json:"source_ips"`
}

// Report is the outcome of one run; its JSON form is what
// presencectl bench --json writes.
type Report struct {
	Started       time.Time                `json:"started"`
	URLs          []string                 `json:"urls"`
	Topology      Topology                 `json:"topology"`
	RampSeconds   float64                  `json:"ramp_s"`
	SteadySeconds float64                  `json:"steady_s"`
	SettleSeconds float64                  `json:"settle_s"`
	Rates         map[string]RateSummary   `json:"rates"`
	HTTP          map[string]stats.Latency `json:"http_latency"`
	Delivery      DeliverySummary          `json:"delivery"`
	Sessions      SessionSummary           `json:"sessions"`
	Errors        map[string]int64         `json:"errors"`
	Memory        []NodeMemory             `json:"server_memory"`
	Generator     GeneratorSummary         `json:"generator"`
	// Scenario is "storm" for the reconnect storm, empty for the steady
	// run; Storm holds the storm's figures and checks.
	Scenario string        `json:"scenario,omitempty"`
	Storm    *StormSummary `json:"storm,omitempty"`
}
