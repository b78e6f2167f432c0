package replicas

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// Fixed test values.
const (
	clientID    = qiaotest.WebClient
	redirectURI = qiaotest.RPRedirect
	issuerPath  = "/sso" // the issuer has a path prefix, as behind a shared proxy
	routeHeader = "X-Test-Replica"
	anyReplica  = -1
)

// tokenTTLs are the configuration's token lifetimes.
var tokenTTLs = map[string]any{"id_token_ttl": "10m", "access_token_ttl": "10m", "refresh_token_ttl": "1h"}

// balancer is the load balancer in front of the replicas. A request with
// the header X-Test-Replica: N goes to replica N (the header is removed);
// any other request goes round-robin. It records which replica served
// which path.
type balancer struct {
	mu      sync.Mutex
	targets []*url.URL
	served  map[string]int // "N path" -> count
	next    atomic.Uint64
	proxy   *httputil.ReverseProxy
}

func newBalancer() *balancer {
	b := &balancer{served: map[string]int{}}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			i := b.pick(pr.In)
			pr.Out.Header.Del(routeHeader)
			b.mu.Lock()
			target := b.targets[i]
			b.served[fmt.Sprintf("%d %s", i, pr.In.URL.Path)]++
			b.mu.Unlock()
			pr.SetURL(target)
			pr.Out.Host = pr.In.Host // the public host, as a real proxy keeps it
			pr.SetXForwarded()
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 64, ResponseHeaderTimeout: 30 * time.Second},
	}
	return b
}

func (b *balancer) pick(r *http.Request) int {
	b.mu.Lock()
	n := len(b.targets)
	b.mu.Unlock()
	if i, err := strconv.Atoi(r.Header.Get(routeHeader)); err == nil && i >= 0 && i < n {
		return i
	}
	return int(b.next.Add(1) % uint64(n))
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	n := len(b.targets)
	b.mu.Unlock()
	if n == 0 {
		http.Error(w, "no replica", http.StatusBadGateway)
		return
	}
	b.proxy.ServeHTTP(w, r)
}

func (b *balancer) setTargets(addrs ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.targets = nil
	for _, a := range addrs {
		b.targets = append(b.targets, &url.URL{Scheme: "http", Host: a})
	}
}

// servedBy counts the requests for path that replica i served.
func (b *balancer) servedBy(i int, path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.served[fmt.Sprintf("%d %s", i, path)]
}

// cluster is a qiaotest world of n `qiao serve` replicas behind a
// balancer (the issuer's host) on one PostgreSQL database, with the Weibo
// simulator. The in-process world of the benchmarks is a cluster without
// a balancer (the routing header is then ignored).
type cluster struct {
	*qiaotest.World
	t        testing.TB
	lb       *balancer
	rp       *qiaotest.RP
	replicas []*replica
	http     *http.Client // for API calls; no redirects followed
}

type clusterOptions struct {
	replicas    int
	dsn         string
	rotateEvery string // keys.rotate_every; "" is 720h
}

func newCluster(t *testing.T, o clusterOptions) *cluster {
	t.Helper()
	lb := newBalancer()
	lbSrv := httptest.NewServer(lb)
	t.Cleanup(lbSrv.Close)
	if o.rotateEvery == "" {
		o.rotateEvery = "720h"
	}
	// The replicas start together, as a deployment does: they race for
	// the migrations, the first signing key and the gc lease.
	w := qiaotest.Start(t, qiaotest.WithBinary(), qiaotest.WithReplicas(o.replicas), qiaotest.WithConfig(func(c *qiaotest.Config) {
		c.Issuer = lbSrv.URL + issuerPath
		c.Storage = qiaotest.Storage{Type: "postgres", Postgres: &qiaotest.PostgresConfig{DSN: o.dsn}}
		c.Keys = &qiaotest.Keys{Algorithm: "RS256", RotateEvery: o.rotateEvery}
		c.Extra = map[string]any{"tokens": tokenTTLs}
		c.Connectors = []qiaotest.Connector{qiaotest.Weibo("weibo", "Weibo")}
		c.Clients = []qiaotest.Client{{ID: clientID, Secret: qiaotest.WebSecret, Name: "Web", RedirectURIs: []string{redirectURI}}}
	}))
	c := newWorldCluster(t, w)
	c.lb = lb
	var addrs []string
	for _, r := range w.Replicas {
		rep := &replica{r}
		waitFor(t, 30*time.Second, r.Name+" /readyz 200", func() bool { return rep.status("/readyz") == http.StatusOK })
		c.replicas = append(c.replicas, rep)
		addrs = append(addrs, r.Addr)
	}
	lb.setTargets(addrs...)
	return c
}

// newWorldCluster is the helpers of a cluster around a world.
func newWorldCluster(t testing.TB, w *qiaotest.World) *cluster {
	return &cluster{World: w, t: t, rp: w.RP(clientID), http: &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// ------------------------------------------------------------ browser

// newBrowser is a user agent with its own cookies; the test routes each
// hop (authorize).
func (c *cluster) newBrowser() *qiaotest.Browser { return c.Browser() }

// authRequest is an authorization request of the web client through
// Weibo: state, nonce, PKCE S256, scopes openid profile offline_access.
func (c *cluster) authRequest() qiaotest.AuthRequest { return c.rp.AuthRequest("weibo") }

// statusError is an unexpected HTTP answer at one step of a flow.
type statusError struct {
	step   string
	status int
	body   string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("%s: HTTP %d: %.300s", e.step, e.status, e.body)
}

// authError is an error the client received at its redirect URI.
type authError struct{ code, description string }

func (e *authError) Error() string {
	return fmt.Sprintf("authorization error %s: %s", e.code, e.description)
}

// request is a GET of u, sent to replica `on` when u is on the balancer.
func request(ctx context.Context, u string, on int) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if on != anyReplica {
		req.Header.Set(routeHeader, strconv.Itoa(on))
	}
	return req, nil
}

// step sends one request of br to u (on replica `on`), following no
// redirect.
func step(ctx context.Context, br *qiaotest.Browser, u string, on int) (*qiaotest.Page, error) {
	req, err := request(ctx, u, on)
	if err != nil {
		return nil, err
	}
	return br.Step(req)
}

func isRedirect(p *qiaotest.Page) bool {
	return p.Status == http.StatusFound || p.Status == http.StatusSeeOther
}

// authorize runs a login as person in br: the authorization request on
// replica authOn, Weibo's page where the person is picked, the callback
// on replica callbackOn. It returns the authorization code the client
// receives.
func (c *cluster) authorize(ctx context.Context, br *qiaotest.Browser, a qiaotest.AuthRequest, person string, authOn, callbackOn int) (string, error) {
	p, err := step(ctx, br, a.URL, authOn)
	if err != nil {
		return "", fmt.Errorf("authorization request: %w", err)
	}
	if !isRedirect(p) {
		return "", &statusError{"authorization request", p.Status, p.Body}
	}
	if !strings.HasPrefix(p.Location, c.WeiboURL+sandbox.WeiboPathAuthorize) {
		return "", fmt.Errorf("authorization request redirected to %s, want the Weibo authorize page", p.Location)
	}
	picker, err := step(ctx, br, p.Location, anyReplica)
	if err != nil {
		return "", fmt.Errorf("weibo: %w", err)
	}
	if picker.Status != http.StatusOK {
		return "", &statusError{"weibo authorize", picker.Status, picker.Body}
	}
	pick, err := picker.Link("data-person", person)
	if err != nil {
		return "", fmt.Errorf("weibo: %w", err)
	}
	p, err = step(ctx, br, pick.Href, anyReplica)
	if err != nil {
		return "", fmt.Errorf("weibo: %w", err)
	}
	if p.Status != http.StatusFound {
		return "", &statusError{"weibo pick", p.Status, p.Body}
	}
	if !strings.HasPrefix(p.Location, c.Issuer+"/callback/weibo?") {
		return "", fmt.Errorf("weibo redirected to %s, want the broker's callback", p.Location)
	}
	p, err = step(ctx, br, p.Location, callbackOn)
	if err != nil {
		return "", fmt.Errorf("callback: %w", err)
	}
	if !isRedirect(p) {
		return "", &statusError{"callback", p.Status, p.Body}
	}
	if !strings.HasPrefix(p.Location, redirectURI+"?") {
		return "", fmt.Errorf("callback redirected to %s, want the client", p.Location)
	}
	bq, err := p.RedirectQuery()
	if err != nil {
		return "", fmt.Errorf("callback: %w", err)
	}
	if e := bq.Get("error"); e != "" {
		return "", &authError{code: e, description: bq.Get("error_description")}
	}
	if bq.Get("state") != a.State {
		return "", fmt.Errorf("state %q, want %q", bq.Get("state"), a.State)
	}
	return bq.Get("code"), nil
}

// ------------------------------------------------------------- tokens

// tokenReply is a token endpoint answer.
type tokenReply struct {
	status int
	body   map[string]any
	raw    string
}

func (r tokenReply) str(k string) string { s, _ := r.body[k].(string); return s }

func (r tokenReply) String() string { return fmt.Sprintf("HTTP %d %.300s", r.status, r.raw) }

// token posts form to the token endpoint on replica `on`, as the
// confidential client.
func (c *cluster) token(ctx context.Context, form url.Values, on int) (tokenReply, error) {
	return c.post(ctx, form, on, true)
}

// post posts form to the token endpoint on replica `on`, with the web
// client's credentials when basicAuth.
func (c *cluster) post(ctx context.Context, form url.Values, on int, basicAuth bool) (tokenReply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return tokenReply{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basicAuth {
		req.SetBasicAuth(clientID, qiaotest.WebSecret)
	}
	if on != anyReplica {
		req.Header.Set(routeHeader, strconv.Itoa(on))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return tokenReply{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return tokenReply{}, err
	}
	r := tokenReply{status: resp.StatusCode, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.body)
	return r, nil
}

func (c *cluster) redeem(ctx context.Context, code string, a qiaotest.AuthRequest, on int) (tokenReply, error) {
	return c.token(ctx, url.Values{
		"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {a.Verifier},
	}, on)
}

func (c *cluster) refresh(ctx context.Context, refreshToken string, on int) (tokenReply, error) {
	return c.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, on)
}

// login runs a whole login in br and the code redemption, failing the
// test on any error.
func (c *cluster) login(br *qiaotest.Browser, person string, authOn, callbackOn, tokenOn int) (qiaotest.AuthRequest, tokenReply) {
	c.t.Helper()
	ctx := context.Background()
	a := c.authRequest()
	code, err := c.authorize(ctx, br, a, person, authOn, callbackOn)
	if err != nil {
		c.t.Fatalf("login: %v", err)
	}
	tr, err := c.redeem(ctx, code, a, tokenOn)
	if err != nil {
		c.t.Fatalf("redeem: %v", err)
	}
	if tr.status != http.StatusOK || tr.str("id_token") == "" || tr.str("refresh_token") == "" {
		c.t.Fatalf("redeem: %s, want 200 with an ID token and a refresh token", tr)
	}
	return a, tr
}

// verifyIDToken checks an ID token against the JWKS of replica r, fetched
// from r directly.
func (c *cluster) verifyIDToken(ctx context.Context, r *replica, raw string) (*oidc.IDToken, error) {
	keys := oidc.NewRemoteKeySet(ctx, r.url(issuerPath+"/keys"))
	v := oidc.NewVerifier(c.Issuer, keys, &oidc.Config{ClientID: clientID})
	return v.Verify(ctx, raw)
}

// jwks fetches the key ids replica r publishes, in its order.
func (c *cluster) jwks(r *replica) ([]string, error) {
	resp, err := http.Get(r.url(issuerPath + "/keys"))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s JWKS: HTTP %d", r.Name, resp.StatusCode)
	}
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		return nil, err
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids, nil
}

func jsonDecode(resp *http.Response, v any) error {
	return json.NewDecoder(resp.Body).Decode(v)
}
