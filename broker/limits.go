package broker

import (
	"math"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// The limited endpoints: the label of qiao_rate_limited_total{endpoint}.
const (
	limitAuth     = "auth"
	limitToken    = "token"
	limitCallback = "callback"
	limitAccount  = "account"
)

// What was over its limit: the label of qiao_rate_limited_total{limit}.
const (
	limitByIP         = "ip"
	limitByClient     = "client"
	limitByClientAuth = "client_auth"
)

// maxBuckets caps the buckets one limiter keeps: beyond it, buckets that
// are full again (idle) go first, then arbitrary ones. 50 000 buckets are
// a few megabytes.
const maxBuckets = 50_000

// bucket is one token bucket: tokens left at last.
type bucket struct {
	tokens float64
	last   time.Time
}

// limiter is a set of token buckets, one per key (a client address or a
// client id), each refilled at rate per second up to burst. Each replica
// keeps its own.
type limiter struct {
	rate  float64
	burst float64
	// idle is how long a drained bucket takes to be full again: a bucket
	// untouched that long is the same as none, and may be forgotten.
	idle time.Duration

	mu        sync.Mutex
	buckets   map[string]*bucket
	max       int
	lastSweep time.Time
}

// newLimiter returns nil (no limit) when rate is 0.
func newLimiter(rate float64, burst int, maxKeys int) *limiter {
	if rate <= 0 {
		return nil
	}
	burst = max(burst, 1)
	return &limiter{
		rate:    rate,
		burst:   float64(burst),
		idle:    time.Duration(float64(burst) / rate * float64(time.Second)),
		buckets: map[string]*bucket{},
		max:     maxKeys,
	}
}

// allow takes one token from key's bucket; when there is none, it says
// how long until there is.
func (l *limiter) allow(key string, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= l.max || now.Sub(l.lastSweep) > time.Minute {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if elapsed := now.Sub(b.last); elapsed > 0 {
		b.tokens = math.Min(l.burst, b.tokens+elapsed.Seconds()*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// sweep forgets the buckets that are full again and, when that is not
// enough, arbitrary ones until a tenth of the room is free. l.mu is held.
func (l *limiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.buckets {
		if now.Sub(b.last) >= l.idle {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.max-l.max/10 {
			break
		}
		delete(l.buckets, k)
	}
}

// size is how many buckets the limiter holds (for tests).
func (l *limiter) size() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// endpointLimits are one endpoint's buckets: per client address and per
// client id.
type endpointLimits struct {
	ip, client *limiter
}

// limits are the broker's abuse limits (config "limits").
type limits struct {
	exempt      []netip.Prefix
	endpoints   map[string]endpointLimits
	clientAuth  *authBackoff
	knownClient func(id string) bool
}

func newLimits(cfg Limits, knownClient func(string) bool) *limits {
	l := &limits{exempt: cfg.Exempt, endpoints: map[string]endpointLimits{}, knownClient: knownClient}
	for name, r := range map[string]Rate{
		limitAuth: cfg.Auth, limitToken: cfg.Token, limitCallback: cfg.Callback, limitAccount: cfg.Account,
	} {
		l.endpoints[name] = endpointLimits{
			ip:     newLimiter(r.PerIP, r.PerIPBurst, maxBuckets),
			client: newLimiter(r.PerClient, r.PerClientBurst, maxBuckets),
		}
	}
	l.clientAuth = newAuthBackoff(cfg.ClientAuth)
	return l
}

// ipBucketKey is the bucket key of a client address: the address, or for IPv6
// its /64, since one subscriber commonly holds a whole /64.
func ipBucketKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

func (l *limits) exempted(ip string) bool {
	a, err := netip.ParseAddr(ip)
	return err == nil && isTrusted(a, l.exempt)
}

// allowIP checks the client address's bucket of endpoint.
func (l *limits) allowIP(endpoint, ip string, now time.Time) (bool, time.Duration) {
	if l.exempted(ip) {
		return true, 0
	}
	return l.endpoints[endpoint].ip.allow(ipBucketKey(ip), now)
}

// allowClient checks the client id's bucket of endpoint. Only configured
// clients have buckets, so made-up ids cannot fill the map; requests from
// an exempt address are not counted.
func (l *limits) allowClient(endpoint, clientID, ip string, now time.Time) (bool, time.Duration) {
	if clientID == "" || !l.knownClient(clientID) || l.exempted(ip) {
		return true, 0
	}
	return l.endpoints[endpoint].client.allow(clientID, now)
}

// retryAfter is the Retry-After value for a wait: whole seconds, at
// least 1.
func retryAfter(wait time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
}

// requestIP is the client address the middleware found.
func requestIP(r *http.Request) string {
	ip, _ := r.Context().Value(ipKey{}).(string)
	return ip
}

// requestClientID is the client id an OAuth request names: HTTP Basic
// (form-encoded, RFC 6749 §2.3.1) or the client_id parameter.
func requestClientID(r *http.Request) string {
	if id, _, ok := r.BasicAuth(); ok {
		if u, err := url.QueryUnescape(id); err == nil {
			return u
		}
		return id
	}
	if id := r.PostForm.Get("client_id"); id != "" {
		return id
	}
	return r.URL.Query().Get("client_id")
}

// rateLimited answers a request over a limit: 429 with Retry-After, the
// OAuth JSON error where the endpoint speaks JSON, the message page
// elsewhere.
func (s *site) rateLimited(w http.ResponseWriter, r *http.Request, endpoint, by string, wait time.Duration, asJSON bool) {
	s.metrics.rateLimited.WithLabelValues(endpoint, by).Inc()
	// Debug: under a flood an info line per refusal would flood the log;
	// the metric is the signal.
	s.log.Debug("rate limited", "endpoint", endpoint, "limit", by, "ip", requestIP(r), "retry_after", retryAfter(wait))
	w.Header().Set("Retry-After", retryAfter(wait))
	if asJSON {
		writeJSON(w, http.StatusTooManyRequests, oauthError{Error: "temporarily_unavailable",
			Description: "Too many requests. Retry after " + retryAfter(wait) + " seconds."})
		return
	}
	s.errorPage(w, r, http.StatusTooManyRequests, msgTooManyRequests)
}

// limited wraps an endpoint's handler with its per-address limit and, for
// requests that name a client (clientID non-nil), its per-client limit.
func (s *site) limited(endpoint string, asJSON bool, clientID func(*http.Request) string, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		now := s.now()
		ip := requestIP(r)
		if ok, wait := s.limits.allowIP(endpoint, ip, now); !ok {
			s.rateLimited(w, r, endpoint, limitByIP, wait, asJSON)
			return
		}
		if clientID != nil {
			if ok, wait := s.limits.allowClient(endpoint, clientID(r), ip, now); !ok {
				s.rateLimited(w, r, endpoint, limitByClient, wait, asJSON)
				return
			}
		}
		next(w, r)
	}
}

// authBackoff slows down the guessing of one client's secret: after
// `failures` failed authentications in a row, every further attempt in a
// window of 1s, doubling with each failure up to maxWait, is refused
// before the secret is checked. A success ends it. Refusals do not
// lengthen the window, so the rightful client waits at most maxWait after
// the guessing stops. Only configured confidential clients are tracked.
type authBackoff struct {
	failures int
	maxWait  time.Duration

	mu    sync.Mutex
	state map[string]*backoffState
}

type backoffState struct {
	failed int
	last   time.Time // of the last failure
	until  time.Time
}

// backoffForget is how long after its last failure a client's failures
// are forgotten.
const backoffForget = 15 * time.Minute

func newAuthBackoff(cfg ClientAuth) *authBackoff {
	if cfg.Failures <= 0 {
		return nil
	}
	return &authBackoff{failures: cfg.Failures, maxWait: cfg.MaxBackoff, state: map[string]*backoffState{}}
}

// allow reports whether an authentication of id may be tried now.
func (a *authBackoff) allow(id string, now time.Time) (bool, time.Duration) {
	if a == nil {
		return true, 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if s, ok := a.state[id]; ok && now.Before(s.until) {
		return false, s.until.Sub(now)
	}
	return true, 0
}

// result records the outcome of an authentication of id and returns
// the backoff window it opened (0: none).
func (a *authBackoff) result(id string, ok bool, now time.Time) (failed int, wait time.Duration) {
	if a == nil {
		return 0, 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if ok {
		delete(a.state, id)
		return 0, 0
	}
	s := a.state[id]
	if s == nil || now.Sub(s.last) > backoffForget {
		s = &backoffState{}
		a.state[id] = s
	}
	s.failed++
	s.last = now
	if over := s.failed - a.failures; over >= 0 {
		wait = a.maxWait
		if over < 16 {
			wait = min(a.maxWait, time.Second<<over)
		}
		s.until = now.Add(wait)
	}
	return s.failed, wait
}

// checkClientAuth is the backoff check of a request that authenticates a
// client by secret; false when it was answered.
func (s *site) checkClientAuth(w http.ResponseWriter, r *http.Request, endpoint, id string) bool {
	if !s.confidential(id) {
		return true
	}
	ok, wait := s.limits.clientAuth.allow(id, s.now())
	if !ok {
		s.rateLimited(w, r, endpoint, limitByClientAuth, wait, true)
	}
	return ok
}

// clientAuthResult records whether a confidential client's authentication
// succeeded; a failure that opens a backoff window is logged for the
// admin (at most one line per window and client).
func (s *site) clientAuthResult(r *http.Request, id string, ok bool) {
	if !s.confidential(id) {
		return
	}
	if failed, wait := s.limits.clientAuth.result(id, ok, s.now()); wait > 0 {
		s.log.Warn("client authentication keeps failing; backing off", "client_id", id,
			"failures", failed, "wait", wait.String(), "ip", requestIP(r))
	}
}

func (s *site) confidential(id string) bool {
	c, ok := s.clients.get(id)
	return ok && !c.Public
}
