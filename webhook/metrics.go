package webhook

import "github.com/prometheus/client_golang/prometheus"

// Reasons a delivery attempt failed, the label of
// presence_webhook_failed_total.
const (
	ReasonStatus  = "status"  // the receiver answered outside 2xx
	ReasonTimeout = "timeout" // no answer within Config.Timeout
	ReasonNetwork = "network" // refused, reset, DNS: no answer at all
)

// metrics are the feed's Prometheus metrics, labelled by receiver URL.
type metrics struct {
	delivered *prometheus.CounterVec
	retries   *prometheus.CounterVec
	failed    *prometheus.CounterVec
	dropped   *prometheus.CounterVec
	lag       *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer, f *Feed) (*metrics, error) {
	m := &metrics{
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presence_webhook_delivered_total", Help: "Events a webhook receiver accepted (2xx).",
		}, []string{"receiver"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presence_webhook_retries_total", Help: "Webhook requests sent again after a failed attempt.",
		}, []string{"receiver"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presence_webhook_failed_total", Help: "Failed webhook attempts by reason (status, timeout, network); each is retried.",
		}, []string{"receiver", "reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presence_webhook_dropped_total",
			Help: "Events that overflowed the webhook queue: only the latest state of their user is kept and delivered (catch-up).",
		}, []string{"receiver"}),
		lag: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "presence_webhook_delivery_lag_seconds",
			Help:    "Time from a change to the receiver accepting it.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"receiver"}),
	}
	depth := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "presence_webhook_queue_depth", Help: "Events not yet accepted by webhook receivers, queued or in flight (all receivers).",
	}, func() float64 { return float64(f.Depth()) })
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.delivered, m.retries, m.failed, m.dropped, m.lag, depth} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
