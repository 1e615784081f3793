package ws

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Collectors returns the Prometheus collectors of the hub's counters.
func (s *Server) Collectors() []prometheus.Collector {
	st := s.hub.Stats()
	counter := func(name, help string, v *atomic.Int64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v.Load()) })
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "presence_ws_sessions_open", Help: "WebSocket sessions open on this node.",
		}, func() float64 { return float64(st.SessionsOpen.Load()) }),
		counter("presence_ws_pushes_total", "Presence changes received by this node's hub from user actors.",
			&st.Pushes),
		counter("presence_ws_frames_queued_total", "Frames queued to WebSocket sessions.",
			&st.FramesQueued),
		counter("presence_ws_slow_consumer_disconnects_total", "Sessions closed because their outbound queue was full.",
			&st.SlowDisconnects),
		counter("presence_ws_stale_updates_dropped_total", "Updates not sent because the session already had that version or a newer one.",
			&st.StaleDropped),
		counter("presence_ws_writer_goroutines_total", "Writer goroutines started for sessions the writer workers could not write to at once (slow sockets, close frames).",
			&st.WriterGoroutines),
		counter("presence_ws_attach_retries_total", "Session attaches tried again on the open connection after a failure that may pass (instead of closing with 1013).",
			&st.AttachRetries),
		counter("presence_ws_snapshot_fallbacks_total", "Subscribe snapshots taken from the hub's newest pushed state because reading the user failed.",
			&st.SnapshotFallbacks),
		counter("presence_ws_snapshot_retries_total", "Subscribe snapshots read again later because reading the user failed and the hub had no state of it.",
			&st.SnapshotRetries),
		counter("presence_ws_watches_total", "Watches this node's hub placed on user actors.",
			&st.WatchesPerformed),
	}
}
