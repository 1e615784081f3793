package api

import (
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
)

// httpMetrics are the request metrics of the HTTP front.
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// registerMetrics registers the API's and the hub's metrics with reg.
func (s *Server) registerMetrics(reg prometheus.Registerer) {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "presence_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "presence_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern and method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"route", "method"}),
	}
	reg.MustRegister(m.requests, m.latency,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "presence_heartbeat_interval_advised_seconds",
			Help: "Heartbeat interval this node advises its REST clients; above a third of offline_after while the heartbeat budget is exceeded.",
		}, func() float64 { return s.advice.interval().Seconds() }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "presence_heartbeats_per_second",
			Help: "REST heartbeats this node received in the last whole second (what the heartbeat budget is compared with).",
		}, s.advice.rate),
	)
	reg.MustRegister(s.ws.Collectors()...)
	s.metrics = m
}

// observe is the middleware that records every request; the route label
// is the route pattern, so cardinality stays fixed.
func (s *Server) observe(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	if err != nil {
		// Let the error handler set the status before it is recorded.
		if herr := s.handleError(c, err); herr != nil {
			return herr
		}
	}
	route := c.Route().Path
	code := c.Response().StatusCode()
	if code == fiber.StatusNotFound && route == "/" {
		route = "unmatched"
	}
	// c.Method() points into a request buffer fasthttp reuses: label
	// values must be stable strings.
	method := methodLabel(c.Method())
	s.metrics.requests.WithLabelValues(route, method, strconv.Itoa(code)).Inc()
	s.metrics.latency.WithLabelValues(route, method).Observe(time.Since(start).Seconds())
	return nil
}

// methodLabels are the methods labelled by name; any other is "OTHER".
var methodLabels = []string{
	fiber.MethodGet, fiber.MethodHead, fiber.MethodPost, fiber.MethodPut,
	fiber.MethodPatch, fiber.MethodDelete, fiber.MethodOptions,
}

// methodLabel returns m's label: the stable string of methodLabels equal
// to it, not m itself.
func methodLabel(m string) string {
	for _, l := range methodLabels {
		if m == l {
			return l
		}
	}
	return "OTHER"
}
