package node

import (
	"log/slog"
	"strings"

	dto "github.com/prometheus/client_model/go"

	"github.com/presence-cluster/presence/messages"
)

// fillCounters copies this node's counters into st for GET /admin/stats
// (through actors.Config.NodeCounters). They are read from the node's own
// Prometheus registry, so the dashboard and /metrics cannot disagree.
func (n *Node) fillCounters(st *messages.NodeStats) {
	st.NodeName = n.cfg.Name
	st.StartedAt = n.started.UnixMicro()
	families, err := n.metrics.reg.Gather()
	if err != nil {
		// Gather returns what it could read along with the error.
		n.log.Debug("gather metrics for /admin/stats", slog.Any("err", err))
	}
	for _, f := range families {
		ms := f.GetMetric()
		switch f.GetName() {
		case "presence_ws_sessions_open":
			st.SessionsOpen = int64(sumValues(ms))
		case "presence_http_requests_total":
			countRequests(st, ms)
		case "presence_offline_push_delay_seconds":
			if len(ms) > 0 {
				h := ms[0].GetHistogram()
				st.OfflinePushDelayCount = int64(h.GetSampleCount())
				st.OfflinePushDelaySumSeconds = h.GetSampleSum()
			}
		case "presence_offline_flaps_suppressed_total":
			st.FlapsSuppressed = int64(sumValues(ms))
		case "presence_cleanup_ghosts_total":
			st.Ghosts = int64(sumValues(ms))
		case "process_cpu_seconds_total":
			st.CpuSeconds = sumValues(ms)
		case "go_goroutines":
			st.Goroutines = int64(sumValues(ms))
		case "go_memstats_heap_alloc_bytes":
			st.HeapBytes = int64(sumValues(ms))
		}
	}
}

// countRequests sums the HTTP request counter, and its 4xx and 5xx parts.
func countRequests(st *messages.NodeStats, ms []*dto.Metric) {
	for _, m := range ms {
		v := int64(m.GetCounter().GetValue())
		st.HttpRequests += v
		for _, l := range m.GetLabel() {
			if l.GetName() != "code" {
				continue
			}
			switch {
			case strings.HasPrefix(l.GetValue(), "4"):
				st.HttpClientErrors += v
			case strings.HasPrefix(l.GetValue(), "5"):
				st.HttpServerErrors += v
			}
		}
	}
}

// sumValues adds up the values of a counter or gauge family.
func sumValues(ms []*dto.Metric) float64 {
	var s float64
	for _, m := range ms {
		switch {
		case m.Counter != nil:
			s += m.GetCounter().GetValue()
		case m.Gauge != nil:
			s += m.GetGauge().GetValue()
		case m.Untyped != nil:
			s += m.GetUntyped().GetValue()
		}
	}
	return s
}
