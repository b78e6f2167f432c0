package securitytest

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/broker"
	"github.com/qiaoidp/qiao/cmd/qiao/registry"
	"github.com/qiaoidp/qiao/cmd/qiao/wire"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/internal/syncbuf"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

// Every secret of the configuration is a distinctive string, so that a
// leak is found by a plain substring search.
const (
	brokerSecret  = "BROKERSECRETxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx42"
	webSecret     = "WEBCLIENTSECRETzzzzzzzzzzzzzzzzzzzz1"
	otherSecret   = "OTHERCLIENTSECRETzzzzzzzzzzzzzzzzz2"
	consentSecret = "CONSENTCLIENTSECRETzzzzzzzzzzzzzzz3"
	webOnlySecret = "WEBONLYCLIENTSECRETzzzzzzzzzzzzzzz4"
	alphaSecret   = "ALPHAPROVIDERSECRET5"
	betaSecret    = "BETAPROVIDERSECRETx6"
	miniSecret    = "MINIPROVIDERSECRETx7"
)

const yamlConfig = `
issuer: ISSUER
secret: "` + brokerSecret + `"
log: { level: debug }
storage: { type: sqlite, sqlite: { path: DBPATH } }
connectors:
  - { id: alpha, type: weibo, name: Alpha, config: { client_id: a, client_secret: "` + alphaSecret + `" } }
  - { id: beta, type: weibo, name: Beta, config: { client_id: b, client_secret: "` + betaSecret + `" } }
  - { id: mini, type: wechat_miniprogram, name: Mini, config: { client_id: wxmini, client_secret: "` + miniSecret + `" } }
clients:
  - id: web
    secret: "` + webSecret + `"
    name: Web App
    redirect_uris: [https://app.example/cb, http://127.0.0.1:9/loop]
    post_logout_redirect_uris: [https://app.example/bye]
    account_api: true
  - id: other
    secret: "` + otherSecret + `"
    redirect_uris: [https://other.example/cb]
    post_logout_redirect_uris: [https://other.example/bye]
  - id: spa
    public: true
    name: SPA
    redirect_uris: [https://spa.example/cb]
  - id: consent
    secret: "` + consentSecret + `"
    redirect_uris: [https://consent.example/cb]
    require_consent: true
  - id: webonly
    secret: "` + webOnlySecret + `"
    redirect_uris: [https://webonly.example/cb]
    connectors: [alpha, beta]
  - id: miniapp
    public: true
    connectors: [mini]
`

// fakeWeb is a web connector whose "provider" sends the browser straight
// back to the callback with code=<person>; the profile of each person can
// be set by the test (nickname, avatar URL).
type fakeWeb struct {
	mu       sync.Mutex
	person   string
	profiles map[string]connectors.Identity
	calls    atomic.Int64
}

func (f *fakeWeb) LoginURL(_ context.Context, req connectors.LoginRequest) (string, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := url.Values{"state": {req.State}, "code": {f.person}}
	return req.CallbackURL + "?" + q.Encode(), nil, nil
}

func (f *fakeWeb) HandleCallback(_ context.Context, _ connectors.LoginRequest, q url.Values) (connectors.Identity, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	code := q.Get("code")
	if code == "" {
		return connectors.Identity{}, fmt.Errorf("no code: %w", connectors.ErrAccessDenied)
	}
	if len(code) > 64 {
		return connectors.Identity{}, fmt.Errorf("code too long: %w", connectors.ErrInvalidCode)
	}
	if id, ok := f.profiles[code]; ok {
		return id, nil
	}
	return connectors.Identity{Subject: "uid-" + code, DisplayName: "Nick " + code, Picture: "https://img.example/" + code + ".png", RealProfile: true}, nil
}

func (f *fakeWeb) set(person string, profile *connectors.Identity) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.person = person
	if profile != nil {
		if f.profiles == nil {
			f.profiles = map[string]connectors.Identity{}
		}
		f.profiles[person] = *profile
	}
}

// sessionKeyOf is the session_key the fake mini-program hands the broker
// for a person: a secret that must never leave it.
func sessionKeyOf(person string) string { return "SESSIONKEY-" + person + "-q9" }

// fakeMini is a mini-program connector: code "person:N" is person's and
// works once.
type fakeMini struct {
	mu    sync.Mutex
	used  map[string]bool
	calls atomic.Int64
}

// SubjectTokenType: the token exchange takes wx.login codes for it.
func (f *fakeMini) SubjectTokenType() string {
	return "urn:qiao:params:oauth:token-type:wechat-js-code"
}

func (f *fakeMini) ExchangeCode(_ context.Context, code string) (connectors.Identity, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	person, _, ok := strings.Cut(code, ":")
	if !ok || person == "" || f.used[code] {
		return connectors.Identity{}, fmt.Errorf("40029: %w", connectors.ErrInvalidCode)
	}
	if f.used == nil {
		f.used = map[string]bool{}
	}
	f.used[code] = true
	return connectors.Identity{Subject: "mp-" + person, DisplayName: "微信用户", Secret: []byte(sessionKeyOf(person))}, nil
}

// env is a broker on a real HTTP server and a SQLite file. Its issuer may
// be https: the test client then reaches the plain-HTTP server through a
// transport that rewrites the issuer's host, so that cookies behave as
// they would in a browser talking to https.
type env struct {
	t       testing.TB
	issuer  string
	host    string // the issuer's host
	broker  *broker.Broker
	handler http.Handler
	server  *httptest.Server
	dbPath  string
	logs    *syncbuf.Buffer
	web     map[string]*fakeWeb
	mini    *fakeMini
	tr      http.RoundTripper
}

type envOptions struct {
	issuer string // "" : http://127.0.0.1:PORT/qiao
	extra  string // top-level YAML appended to the configuration
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{t: t, logs: &syncbuf.Buffer{}, dbPath: filepath.Join(t.TempDir(), "qiao.db"), mini: &fakeMini{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.issuer = o.issuer
	if e.issuer == "" {
		e.issuer = "http://" + ln.Addr().String() + "/qiao"
	}
	iu, err := url.Parse(e.issuer)
	if err != nil {
		t.Fatal(err)
	}
	e.host = iu.Host
	y := strings.NewReplacer("ISSUER", e.issuer, "DBPATH", e.dbPath).Replace(yamlConfig) + o.extra
	cfg, err := config.Parse([]byte(y), "security.yaml", nil, registry.Types())
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	e.web = map[string]*fakeWeb{}
	var conns []broker.Connector
	for _, k := range cfg.Connectors {
		var impl any
		if k.TokenEndpointOnly() {
			impl = e.mini
		} else {
			f := &fakeWeb{person: "alice"}
			e.web[k.ID] = f
			impl = f
		}
		conns = append(conns, broker.Connector{ID: k.ID, Type: k.Type, Name: k.Name, Impl: impl})
	}
	store, err := sqlite.Open(context.Background(), e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := wire.Options(cfg)
	opts.Store, opts.Connectors, opts.Logger = store, conns, log
	b, err := broker.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	e.broker = b
	e.handler = b.Handler()
	srv := httptest.NewUnstartedServer(e.handler)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	e.server = srv
	t.Cleanup(func() {
		srv.Close()
		store.Close()
	})
	e.tr = &rewriteTransport{from: e.host, to: ln.Addr().String()}
	return e
}

// rewriteTransport sends requests for the issuer's host to the test
// server over plain HTTP.
type rewriteTransport struct{ from, to string }

func (rt *rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host == rt.from {
		r = r.Clone(r.Context())
		r.URL.Scheme = "http"
		r.URL.Host = rt.to
	}
	return http.DefaultTransport.RoundTrip(r)
}

// browser is a user agent with its own cookies. It follows redirects
// within the broker and stops at anything else (a client or a provider).
type browser struct {
	e      *env
	client *http.Client
}

func (e *env) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	br := &browser{e: e}
	br.client = &http.Client{
		Jar:       jar,
		Transport: e.tr,
		Timeout:   20 * time.Second,
		CheckRedirect: func(req *http.Request, _ []*http.Request) error {
			if req.URL.Host != e.host {
				return http.ErrUseLastResponse
			}
			return nil
		},
	}
	return br
}

// noFollow is a client that never follows redirects (and has no cookies
// unless given).
func (e *env) noFollow(jar http.CookieJar) *http.Client {
	return &http.Client{
		Jar:           jar,
		Transport:     e.tr,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

type response struct {
	status int
	header http.Header
	body   string
	json   map[string]any
}

func (r response) location() string { return r.header.Get("Location") }

func do(t testing.TB, c *http.Client, req *http.Request) response {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := response{status: resp.StatusCode, header: resp.Header, body: string(body)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(body, &out.json)
	}
	return out
}

func (br *browser) get(u string) response {
	br.e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		br.e.t.Fatal(err)
	}
	return do(br.e.t, br.client, req)
}

func (br *browser) postForm(u string, form url.Values) response {
	br.e.t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		br.e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return do(br.e.t, br.client, req)
}

// cookie returns the value of the broker's cookie name in this browser.
func (br *browser) cookie(name string) string {
	u, _ := url.Parse(br.e.issuer + "/")
	for _, c := range br.client.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// accountScope is what the first-party web client asks for to use the
// account API.
const accountScope = "openid profile offline_access account"

// authParams is an authorization request with PKCE S256.
type authParams struct {
	url.Values
	verifier string
}

func (e *env) authParams(clientID, redirect string, extra ...string) authParams {
	v := randomToken() + randomToken() // 48 characters: PKCE wants 43-128
	p := authParams{Values: url.Values{
		"client_id":             {clientID},
		"redirect_uri":          {redirect},
		"response_type":         {"code"},
		"scope":                 {"openid profile offline_access"},
		"state":                 {"st" + randomToken()},
		"nonce":                 {"nn" + randomToken()},
		"code_challenge":        {s256(v)},
		"code_challenge_method": {"S256"},
		"connector_id":          {"alpha"},
	}, verifier: v}
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			p.Del(extra[i])
		} else {
			p.Set(extra[i], extra[i+1])
		}
	}
	return p
}

// authorize runs the browser through /auth and returns the redirect the
// client received (or fails the test when there is none).
func (br *browser) authorize(p authParams) *url.URL {
	br.e.t.Helper()
	r := br.get(br.e.issuer + "/auth?" + p.Encode())
	if r.status != http.StatusFound && r.status != http.StatusSeeOther {
		br.e.t.Fatalf("authorize: status %d, want a redirect to the client; body %.300s", r.status, r.body)
	}
	u, err := url.Parse(r.location())
	if err != nil {
		br.e.t.Fatal(err)
	}
	return u
}

// code runs a login and returns the authorization code.
func (br *browser) code(p authParams) string {
	br.e.t.Helper()
	u := br.authorize(p)
	q := u.Query()
	if q.Get("error") != "" || q.Get("code") == "" {
		br.e.t.Fatalf("authorize: %s", u)
	}
	if q.Get("state") != p.Get("state") {
		br.e.t.Fatalf("state %q, want %q", q.Get("state"), p.Get("state"))
	}
	return q.Get("code")
}

// token posts to the token endpoint; user/pass set HTTP Basic.
func (e *env) token(form url.Values, user, pass string) response {
	e.t.Helper()
	return e.post("/token", form, user, pass)
}

func (e *env) post(path string, form url.Values, user, pass string) response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return do(e.t, e.noFollow(nil), req)
}

// redeem exchanges a code for tokens as a confidential client.
func (e *env) redeem(code string, p authParams, user, pass string) response {
	e.t.Helper()
	return e.token(url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {p.Get("redirect_uri")},
		"code_verifier": {p.verifier},
	}, user, pass)
}

// loginTokens runs a full web login for client web and returns the token
// response (access_token, refresh_token, id_token).
func (e *env) loginTokens(br *browser) map[string]any {
	e.t.Helper()
	p := e.authParams("web", "https://app.example/cb", "scope", accountScope)
	r := e.redeem(br.code(p), p, "web", webSecret)
	if r.status != http.StatusOK {
		e.t.Fatalf("redeem: %d %s", r.status, r.body)
	}
	return r.json
}

// miniTokens logs a person in through the mini-program exchange.
func (e *env) miniTokens(clientID, code string) response {
	e.t.Helper()
	return e.token(url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {code},
		"subject_token_type": {"urn:qiao:params:oauth:token-type:wechat-js-code"},
		"subject_issuer":     {"mini"},
		"client_id":          {clientID},
		"scope":              {"openid profile offline_access"},
	}, "", "")
}

// introspect reports whether token is active, asked by client web.
func (e *env) active(token, hint string) bool {
	e.t.Helper()
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	r := e.post("/introspect", form, "web", webSecret)
	if r.status != http.StatusOK {
		e.t.Fatalf("introspect: %d %s", r.status, r.body)
	}
	return r.json["active"] == true
}

var tokenCounter atomic.Int64

func randomToken() string {
	b := sha256.Sum256([]byte(fmt.Sprint(time.Now().UnixNano(), tokenCounter.Add(1))))
	return base64.RawURLEncoding.EncodeToString(b[:18])
}

func s256(v string) string {
	s := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}
