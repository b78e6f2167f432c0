package broker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/qiaoidp/qiao/storage"
)

// Metrics are the broker's Prometheus series. Connectors report their
// provider calls through ObserveUpstream (a connectors.Observer).
type Metrics struct {
	Registry       *prometheus.Registry
	logins         *prometheus.CounterVec
	tokens         *prometheus.CounterVec
	upstream       *prometheus.CounterVec
	upstreamTime   *prometheus.HistogramVec
	httpErrors     *prometheus.CounterVec
	bindOperations *prometheus.CounterVec
	rateLimited    *prometheus.CounterVec
}

// NewMetrics registers the broker's series on a new registry.
func NewMetrics() *Metrics {
	m := &Metrics{
		Registry: prometheus.NewRegistry(),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qiao_logins_total", Help: "Upstream logins by connector and result.",
		}, []string{"connector", "result"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qiao_tokens_issued_total", Help: "Token responses issued, by grant type.",
		}, []string{"grant_type"}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qiao_upstream_requests_total", Help: "Calls to the providers' APIs.",
		}, []string{"connector", "endpoint", "result"}),
		upstreamTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "qiao_upstream_request_duration_seconds", Help: "Latency of calls to the providers' APIs.",
			Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"connector", "endpoint"}),
		httpErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qiao_errors_total", Help: "Error responses by endpoint and OAuth error code.",
		}, []string{"endpoint", "error"}),
		bindOperations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qiao_account_operations_total", Help: "Bind and unbind operations by result.",
		}, []string{"operation", "result"}),
		rateLimited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "qiao_rate_limited_total", Help: "Requests refused with 429 by an abuse limit, by endpoint and limit (ip, client, client_auth).",
		}, []string{"endpoint", "limit"}),
	}
	m.Registry.MustRegister(m.logins, m.tokens, m.upstream, m.upstreamTime, m.httpErrors, m.bindOperations, m.rateLimited,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// initConnector makes a connector's series visible at zero before its
// first login, so dashboards and alerts see them from the start.
func (m *Metrics) initConnector(id string) {
	for _, result := range []string{"success", "denied", "invalid_code", "unavailable", "error"} {
		m.logins.WithLabelValues(id, result)
	}
	for _, gt := range []string{"authorization_code", "refresh_token", grantTokenExchange} {
		m.tokens.WithLabelValues(gt)
	}
}

// ObserveUpstream records one provider call; it is a connectors.Observer.
func (m *Metrics) ObserveUpstream(connectorID, endpoint, result string, d time.Duration) {
	m.upstream.WithLabelValues(connectorID, endpoint, result).Inc()
	m.upstreamTime.WithLabelValues(connectorID, endpoint).Observe(d.Seconds())
}

// initRateLimited makes the series of every limit that is on visible at
// zero.
func (m *Metrics) initRateLimited(l Limits) {
	for endpoint, r := range map[string]Rate{limitAuth: l.Auth, limitToken: l.Token, limitCallback: l.Callback, limitAccount: l.Account} {
		if r.PerIP > 0 {
			m.rateLimited.WithLabelValues(endpoint, limitByIP)
		}
		if r.PerClient > 0 && endpoint != limitCallback {
			m.rateLimited.WithLabelValues(endpoint, limitByClient)
		}
	}
	if l.ClientAuth.Failures > 0 {
		for _, endpoint := range []string{limitToken, "introspect", "revoke"} {
			m.rateLimited.WithLabelValues(endpoint, limitByClientAuth)
		}
	}
}

// storeCounter is a store that counts its round trips and commits.
type storeCounter interface {
	Counts() storage.Counts
}

// observeStore exports the store's counts as qiao_store_round_trips_total
// and qiao_store_commits_total. A registry that has them already (a
// Metrics shared by two brokers) keeps the first store's.
func (m *Metrics) observeStore(c storeCounter) {
	_ = m.Registry.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "qiao_store_round_trips_total", Help: "Round trips to the store's database (SQLite: statements).",
	}, func() float64 { return float64(c.Counts().RoundTrips) }))
	_ = m.Registry.Register(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "qiao_store_commits_total", Help: "Write transactions the store committed.",
	}, func() float64 { return float64(c.Counts().Commits) }))
}
