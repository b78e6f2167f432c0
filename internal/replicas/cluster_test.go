package replicas

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
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
)

// Fixed test values. The secrets reach qiao through its environment, as
// in production.
const (
	testSecret     = "replicas-test-secret-0123456789abcdef-0123456789"
	clientID       = "web"
	clientSecret   = "web-secret-for-the-replica-tests"
	redirectURI    = "http://127.0.0.1:9/callback"
	weiboAppKey    = "1352222456"
	weiboAppSecret = "weibo-app-secret-for-tests"
	issuerPath     = "/sso" // the issuer has a path prefix, as behind a shared proxy
	routeHeader    = "X-Test-Replica"
	anyReplica     = -1
)

const configTemplate = `
issuer: @ISSUER@
http: { listen: "127.0.0.1:0" }
storage:
  type: postgres
  postgres: { dsn: "${QIAO_DATABASE_URL}" }
secret: "${QIAO_SECRET}"
keys: { algorithm: RS256, rotate_every: @ROTATE@ }
tokens: { id_token_ttl: 10m, access_token_ttl: 10m, refresh_token_ttl: 1h }
log: { level: debug, format: json }
connectors:
  - id: weibo
    type: weibo
    name: Weibo
    config:
      client_id: "` + weiboAppKey + `"
      client_secret: "${WEIBO_APPSECRET}"
      auth_base_url: @WEIBO@
      api_base_url: @WEIBO@
clients:
  - id: ` + clientID + `
    secret: "${WEB_SECRET}"
    name: Web
    redirect_uris: [` + redirectURI + `]
`

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

// cluster is n qiao processes behind a balancer, with a Weibo simulator.
type cluster struct {
	t        testing.TB
	issuer   string
	lb       *balancer
	weibo    *sandbox.Weibo
	weiboURL string
	cfgPath  string
	env      []string
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
	bin := qiaoBinary.qiao(t)
	c := &cluster{t: t, lb: newBalancer()}
	lbSrv := httptest.NewServer(c.lb)
	t.Cleanup(lbSrv.Close)
	c.issuer = lbSrv.URL + issuerPath
	c.weibo = sandbox.NewWeibo(sandbox.WeiboOptions{Apps: []sandbox.WeiboApp{{
		ClientID: weiboAppKey, Secret: weiboAppSecret, RedirectURI: c.issuer + "/callback/weibo",
	}}})
	wbSrv := httptest.NewServer(c.weibo)
	t.Cleanup(wbSrv.Close)
	c.weiboURL = wbSrv.URL
	if o.rotateEvery == "" {
		o.rotateEvery = "720h"
	}
	cfg := strings.NewReplacer("@ISSUER@", c.issuer, "@WEIBO@", c.weiboURL, "@ROTATE@", o.rotateEvery).Replace(configTemplate)
	c.cfgPath = writeFile(t, t.TempDir(), "qiao.yaml", cfg)
	c.env = []string{
		"QIAO_DATABASE_URL=" + o.dsn,
		"QIAO_SECRET=" + testSecret,
		"WEIBO_APPSECRET=" + weiboAppSecret,
		"WEB_SECRET=" + clientSecret,
	}
	c.http = &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// Start the replicas together, as a deployment does: they race for
	// the migrations, the first signing key and the gc lease.
	c.replicas = make([]*replica, o.replicas)
	errs := make([]error, o.replicas)
	var wg sync.WaitGroup
	for i := range c.replicas {
		wg.Go(func() {
			c.replicas[i], errs[i] = startReplica(t, fmt.Sprintf("replica-%c", 'A'+i), bin, c.cfgPath, c.env)
		})
	}
	wg.Wait()
	var addrs []string
	for i, r := range c.replicas {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		addrs = append(addrs, r.addr)
	}
	c.lb.setTargets(addrs...)
	return c
}

// ------------------------------------------------------------ browser

// browser is a user agent with its own cookies. It follows no redirect by
// itself: the test routes each hop.
type browser struct {
	c      *cluster
	client *http.Client
}

func (c *cluster) newBrowser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		c.t.Fatal(err)
	}
	return &browser{c: c, client: &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		Transport:     c.http.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

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

// get fetches u, sent to replica `on` when u is on the balancer.
func (br *browser) get(ctx context.Context, u string, on int) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	if on != anyReplica {
		req.Header.Set(routeHeader, strconv.Itoa(on))
	}
	resp, err := br.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// pending is an authorization request in flight.
type pending struct {
	state, nonce, verifier string
	authURL                string
}

func newPending(issuer string) pending {
	p := pending{state: randString(), nonce: randString(), verifier: randString() + randString()}
	sum := sha256.Sum256([]byte(p.verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {redirectURI},
		"scope":                 {"openid profile offline_access"},
		"state":                 {p.state},
		"nonce":                 {p.nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(sum[:])},
		"code_challenge_method": {"S256"},
		"connector_id":          {"weibo"},
	}
	p.authURL = issuer + "/auth?" + q.Encode()
	return p
}

func randString() string {
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authorize runs a login as person: the authorization request on replica
// authOn, the Weibo page, the callback on replica callbackOn. It returns
// the authorization code the client receives.
func (br *browser) authorize(ctx context.Context, p pending, person string, authOn, callbackOn int) (string, error) {
	resp, body, err := br.get(ctx, p.authURL, authOn)
	if err != nil {
		return "", fmt.Errorf("authorization request: %w", err)
	}
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		return "", &statusError{"authorization request", resp.StatusCode, string(body)}
	}
	loc, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("authorization request: %w", err)
	}
	if !strings.HasPrefix(loc.String(), br.c.weiboURL+sandbox.WeiboPathAuthorize) {
		return "", fmt.Errorf("authorization request redirected to %s, want the Weibo authorize page", loc)
	}
	q := loc.Query()
	q.Set("sandbox_person", person) // the person's pick on Weibo's page
	loc.RawQuery = q.Encode()
	resp, body, err = br.get(ctx, loc.String(), anyReplica)
	if err != nil {
		return "", fmt.Errorf("weibo: %w", err)
	}
	if resp.StatusCode != http.StatusFound {
		return "", &statusError{"weibo authorize", resp.StatusCode, string(body)}
	}
	cb := resp.Header.Get("Location")
	if !strings.HasPrefix(cb, br.c.issuer+"/callback/weibo?") {
		return "", fmt.Errorf("weibo redirected to %s, want the broker's callback", cb)
	}
	resp, body, err = br.get(ctx, cb, callbackOn)
	if err != nil {
		return "", fmt.Errorf("callback: %w", err)
	}
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		return "", &statusError{"callback", resp.StatusCode, string(body)}
	}
	back, err := resp.Location()
	if err != nil {
		return "", fmt.Errorf("callback: %w", err)
	}
	if !strings.HasPrefix(back.String(), redirectURI+"?") {
		return "", fmt.Errorf("callback redirected to %s, want the client", back)
	}
	bq := back.Query()
	if e := bq.Get("error"); e != "" {
		return "", &authError{code: e, description: bq.Get("error_description")}
	}
	if bq.Get("state") != p.state {
		return "", fmt.Errorf("state %q, want %q", bq.Get("state"), p.state)
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return tokenReply{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, clientSecret)
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

func (c *cluster) redeem(ctx context.Context, code string, p pending, on int) (tokenReply, error) {
	return c.token(ctx, url.Values{
		"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirectURI}, "code_verifier": {p.verifier},
	}, on)
}

func (c *cluster) refresh(ctx context.Context, refreshToken string, on int) (tokenReply, error) {
	return c.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}}, on)
}

// login runs a whole login and code redemption, failing the test on any
// error.
func (c *cluster) login(br *browser, person string, authOn, callbackOn, tokenOn int) (pending, tokenReply) {
	c.t.Helper()
	ctx := context.Background()
	p := newPending(c.issuer)
	code, err := br.authorize(ctx, p, person, authOn, callbackOn)
	if err != nil {
		c.t.Fatalf("login: %v", err)
	}
	tr, err := c.redeem(ctx, code, p, tokenOn)
	if err != nil {
		c.t.Fatalf("redeem: %v", err)
	}
	if tr.status != http.StatusOK || tr.str("id_token") == "" || tr.str("refresh_token") == "" {
		c.t.Fatalf("redeem: %s, want 200 with an ID token and a refresh token", tr)
	}
	return p, tr
}

// verifyIDToken checks an ID token against the JWKS of replica r, fetched
// from r directly.
func (c *cluster) verifyIDToken(ctx context.Context, r *replica, raw string) (*oidc.IDToken, error) {
	keys := oidc.NewRemoteKeySet(ctx, r.url(issuerPath+"/keys"))
	v := oidc.NewVerifier(c.issuer, keys, &oidc.Config{ClientID: clientID})
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
		return nil, fmt.Errorf("%s JWKS: HTTP %d", r.name, resp.StatusCode)
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
