package node

import (
	"context"
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/presence-cluster/presence/messages"
	"github.com/presence-cluster/presence/store"
)

// nodeMetrics are the node's Prometheus metrics beyond the API's own. Each
// node has its own registry, so several in-process nodes do not collide.
type nodeMetrics struct {
	reg *prometheus.Registry

	actorsActive    prometheus.Gauge
	activations     prometheus.Counter
	offlineAfter    prometheus.Histogram
	flapsSuppressed prometheus.Counter
	ghosts          prometheus.Counter
	requestLatency  *prometheus.HistogramVec
	storeLatency    *prometheus.HistogramVec
	storeErrors     *prometheus.CounterVec
	reads           *prometheus.CounterVec
	remoteRefused   prometheus.Counter
}

func newNodeMetrics() *nodeMetrics {
	m := &nodeMetrics{
		reg: prometheus.NewRegistry(),
		actorsActive: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "presence_actors_active", Help: "User actors alive on this node.",
		}),
		activations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presence_actor_activations_total", Help: "User actor activations on this node.",
		}),
		offlineAfter: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "presence_offline_push_delay_seconds",
			Help:    "Time from a user's last sign of life to the offline transition a timer made (inactivity or disconnect grace).",
			Buckets: []float64{1, 5, 10, 15, 20, 30, 60, 120, 300, 330, 360, 600, 1800},
		}),
		flapsSuppressed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presence_offline_flaps_suppressed_total",
			Help: "Sessions that re-attached inside the disconnect grace, so no offline/online pair was pushed.",
		}),
		ghosts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presence_cleanup_ghosts_total",
			Help: "Users an admin cleanup or a re-arm found online or busy past their deadline (a timer that did not fire); should stay at zero.",
		}),
		requestLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "presence_actor_request_duration_seconds",
			Help:    "Round trip of a routed request to a user actor, by where the owner was.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .5, 1, 5},
		}, []string{"owner"}),
		storeLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "presence_store_duration_seconds",
			Help:    "Store call latency by operation.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1, 5},
		}, []string{"op"}),
		reads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presence_reads_total",
			Help: "Users read by presence reads through this node, by how they were answered: from the owners' published snapshots, or by the user actors (inactive users, a timer due).",
		}, []string{"path"}),
		remoteRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "presence_remote_auth_refused_total",
			Help: "Calls to the actor-remoting port refused because they carried no valid cluster-key credential (a non-member, a node with another key, a clock off by more than 2 min, a replay).",
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presence_store_errors_total", Help: "Failed store calls by operation (version conflicts excluded).",
		}, []string{"op"}),
	}
	// Both paths show from the start, at zero, for dashboards.
	m.reads.WithLabelValues("snapshot")
	m.reads.WithLabelValues("actor")
	m.reg.MustRegister(m.actorsActive, m.activations, m.offlineAfter, m.flapsSuppressed, m.ghosts,
		m.requestLatency, m.storeLatency, m.storeErrors, m.reads, m.remoteRefused,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// registerNode adds the gauges read from the node's parts.
func (m *nodeMetrics) registerNode(n *Node) {
	m.reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "presence_cluster_members", Help: "Members this node sees (alive or suspect).",
		}, func() float64 { return float64(len(n.members.View().All)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "presence_cluster_owners", Help: "Members that own users in this node's view.",
		}, func() float64 { return float64(len(n.members.View().Owners)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "presence_store_last_seen_pending", Help: "Users whose last_seen waits in the write-behind queue.",
		}, func() float64 { return float64(n.lastSeen.Stats().Pending) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "presence_store_last_seen_flushes_total", Help: "Batched last_seen writes.",
		}, func() float64 { return float64(n.lastSeen.Stats().Flushes) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "presence_store_last_seen_flush_errors_total", Help: "Failed batched last_seen writes (kept and retried).",
		}, func() float64 { return float64(n.lastSeen.Stats().Errors) }),
	)
}

// The actors.Observer and routing.Observer implementations.

// RequestDone observes a routed request's round trip by where the owner
// was.
func (m *nodeMetrics) RequestDone(local bool, d time.Duration) {
	owner := "remote"
	if local {
		owner = "local"
	}
	m.requestLatency.WithLabelValues(owner).Observe(d.Seconds())
}

func (m *nodeMetrics) ActorActivated() {
	m.actorsActive.Inc()
	m.activations.Inc()
}
func (m *nodeMetrics) ActorPassivated() { m.actorsActive.Dec() }
func (m *nodeMetrics) WentOffline(since time.Duration) {
	m.offlineAfter.Observe(since.Seconds())
}
func (m *nodeMetrics) FlapSuppressed() { m.flapsSuppressed.Inc() }

func (m *nodeMetrics) PresenceRead(fromSnapshot, fromActor int) {
	if fromSnapshot > 0 {
		m.reads.WithLabelValues("snapshot").Add(float64(fromSnapshot))
	}
	if fromActor > 0 {
		m.reads.WithLabelValues("actor").Add(float64(fromActor))
	}
}

func (m *nodeMetrics) CleanupFound(offline, busy int64) {
	m.ghosts.Add(float64(offline + busy))
}

// instrumentedStore times every store call.
type instrumentedStore struct {
	store.Store
	m *nodeMetrics
}

func (s instrumentedStore) observe(op string, start time.Time, err error) {
	s.m.storeLatency.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, store.ErrNotFound) && !isConflict(err) {
		s.m.storeErrors.WithLabelValues(op).Inc()
	}
}

func (s instrumentedStore) Load(ctx context.Context, id int64) (*messages.UserState, error) {
	start := time.Now()
	st, err := s.Store.Load(ctx, id)
	s.observe("load", start, err)
	return st, err
}

func (s instrumentedStore) Save(ctx context.Context, st *messages.UserState, prev uint64) error {
	start := time.Now()
	err := s.Store.Save(ctx, st, prev)
	s.observe("save", start, err)
	return err
}

func (s instrumentedStore) TouchLastSeen(ctx context.Context, t []store.Touch) error {
	start := time.Now()
	err := s.Store.TouchLastSeen(ctx, t)
	s.observe("touch_last_seen", start, err)
	return err
}

func isConflict(err error) bool { return errors.Is(err, store.ErrVersionConflict) }
