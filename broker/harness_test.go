package broker_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
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

	"github.com/qiaoidp/qiao/internal/syncbuf"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/broker"
	"github.com/qiaoidp/qiao/cmd/qiao/registry"
	"github.com/qiaoidp/qiao/cmd/qiao/wire"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
	"github.com/qiaoidp/qiao/storage/postgres"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

const testSecret = "0123456789abcdef0123456789abcdef-test-secret"

// fakeWeb is a web connector defined for the tests: its "provider" sends
// the browser straight back with code=<person>, where the person is the
// one the test chose for this connector.
type fakeWeb struct {
	mu       sync.Mutex
	person   string
	refuse   bool
	fail     error
	calls    atomic.Int64
	profiles map[string]connectors.Identity
}

func (f *fakeWeb) LoginURL(_ context.Context, req connectors.LoginRequest) (string, []byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	q := url.Values{"state": {req.State}}
	if !f.refuse {
		q.Set("code", f.person)
	}
	return req.CallbackURL + "?" + q.Encode(), nil, nil
}

func (f *fakeWeb) HandleCallback(_ context.Context, _ connectors.LoginRequest, q url.Values) (connectors.Identity, error) {
	f.calls.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return connectors.Identity{}, f.fail
	}
	code := q.Get("code")
	if code == "" {
		return connectors.Identity{}, fmt.Errorf("user refused: %w", connectors.ErrAccessDenied)
	}
	if id, ok := f.profiles[code]; ok {
		return id, nil
	}
	return connectors.Identity{Subject: "openid-" + code, DisplayName: "Nick " + code, Picture: "https://img.example/" + code + ".png", RealProfile: true}, nil
}

func (f *fakeWeb) setProfiles(p map[string]connectors.Identity) {
	f.mu.Lock()
	f.profiles = p
	f.mu.Unlock()
}

func (f *fakeWeb) setPerson(p string) {
	f.mu.Lock()
	f.person = p
	f.mu.Unlock()
}

// env is a broker on a real HTTP server and SQLite file.
type env struct {
	t        *testing.T
	issuer   string
	cfg      *config.Config
	broker   *broker.Broker
	server   *httptest.Server
	dbPath   string
	fakes    map[string]*fakeWeb
	extra    []broker.Connector
	wrap     func(id string, f *fakeWeb) any
	logs     *syncBuffer
	provider *oidc.Provider
	pgDSN    string          // the PostgreSQL database, instead of dbPath
	store    storage.Storage // the running broker's store
}

type syncBuffer = syncbuf.Buffer

const testConfig = `
issuer: ISSUER
secret: "` + testSecret + `"
storage: { type: sqlite, sqlite: { path: DBPATH } }
keys: { algorithm: ALG }
connectors:
  - { id: alpha, type: weibo, name: Alpha, config: { client_id: a, client_secret: a-secret } }
  - { id: beta, type: weibo, name: Beta, config: { client_id: b, client_secret: b-secret } }
clients:
  - id: web
    secret: web-secret-0123456789abcdef0123456789
    name: Web App
    redirect_uris: [http://127.0.0.1:9/callback]
    post_logout_redirect_uris: [http://127.0.0.1:9/bye]
    account_api: true
  - id: spa
    public: true
    name: SPA
    redirect_uris: [http://127.0.0.1:9/spa]
  - id: second
    secret: second-secret-0123456789abcdef0123456789
    redirect_uris: [https://second.example/cb]
  - id: onlybeta
    secret: onlybeta-secret-0123456789abcdef0123456789
    redirect_uris: [https://beta.example/cb]
    connectors: [beta]
  - id: consent
    secret: consent-secret-0123456789abcdef0123456789
    redirect_uris: [https://consent.example/cb]
    require_consent: true
  - id: onlyalpha
    secret: onlyalpha-secret-0123456789abcdef0123456789
    redirect_uris: [https://alpha.example/cb]
    connectors: [alpha]
    account_api: true
`

type envOptions struct {
	alg    string
	dbPath string
	yaml   string // replaces testConfig
	extra  []broker.Connector
	now    func() time.Time
	// wrap gives the fake of connector id more capabilities; nil: none.
	wrap  func(id string, f *fakeWeb) any
	pgDSN string // run on this PostgreSQL database instead of SQLite
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, issuer: "http://" + ln.Addr().String() + "/qiao", logs: &syncBuffer{}, extra: o.extra, wrap: o.wrap, pgDSN: o.pgDSN}
	e.dbPath = o.dbPath
	if e.dbPath == "" {
		e.dbPath = filepath.Join(t.TempDir(), "qiao.db")
	}
	if o.alg == "" {
		o.alg = "RS256"
	}
	y := o.yaml
	if y == "" {
		y = testConfig
	}
	y = strings.NewReplacer("ISSUER", e.issuer, "DBPATH", e.dbPath, "ALG", o.alg).Replace(y)
	cfg, err := config.Parse([]byte(y), "test.yaml", nil, registry.Types())
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	e.cfg = cfg
	e.fakes = map[string]*fakeWeb{}
	var conns []broker.Connector
	for _, k := range cfg.Connectors {
		if hasConnector(o.extra, k.ID) {
			continue
		}
		f := &fakeWeb{person: "alice"}
		e.fakes[k.ID] = f
		conns = append(conns, e.fakeConnector(k, f))
	}
	conns = append(conns, o.extra...)
	e.start(ln, conns, o.now)
	return e
}

func (e *env) start(ln net.Listener, conns []broker.Connector, now func() time.Time) {
	t := e.t
	var store storage.Storage
	var err error
	if e.pgDSN != "" {
		store, err = postgres.Open(context.Background(), e.pgDSN)
	} else {
		store, err = sqlite.Open(context.Background(), e.dbPath)
	}
	if err != nil {
		t.Fatal(err)
	}
	e.store = store
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	opts := wire.Options(e.cfg)
	opts.Store, opts.Connectors, opts.Logger, opts.Now = store, conns, log, now
	b, err := broker.New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	e.broker = b
	srv := httptest.NewUnstartedServer(b.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	e.server = srv
	t.Cleanup(func() {
		srv.Close()
		store.Close()
	})
	ctx := oidc.InsecureIssuerURLContext(context.Background(), e.issuer)
	e.provider, err = oidc.NewProvider(ctx, e.issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
}

// fakeConnector is the configured connector k played by f.
func (e *env) fakeConnector(k config.Connector, f *fakeWeb) broker.Connector {
	var impl any = f
	if e.wrap != nil {
		impl = e.wrap(k.ID, f)
	}
	return broker.Connector{ID: k.ID, Type: k.Type, Name: k.Name, Names: k.Names, LinkByUnionID: k.LinkByUnionID, Impl: impl}
}

// restart stops the server and store and starts a new broker on the same
// SQLite file and address.
func (e *env) restart() {
	addr := e.server.Listener.Addr().String()
	e.server.Close()
	var conns []broker.Connector
	for _, k := range e.cfg.Connectors {
		if f, ok := e.fakes[k.ID]; ok {
			conns = append(conns, e.fakeConnector(k, f))
		}
	}
	conns = append(conns, e.extra...)
	var ln net.Listener
	var err error
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.start(ln, conns, nil)
}

// browser is a user agent with its own cookies that stops at the RP.
type browser struct {
	t      *testing.T
	client *http.Client
	ua     string
}

func (e *env) newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	br := &browser{t: e.t}
	br.client = &http.Client{
		Jar: jar,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Host != e.server.Listener.Addr().String() {
				return http.ErrUseLastResponse // arrived at the client
			}
			if br.ua != "" {
				req.Header.Set("User-Agent", br.ua)
			}
			return nil
		},
		Timeout: 30 * time.Second,
	}
	return br
}

func (br *browser) get(u string) *http.Response {
	br.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		br.t.Fatal(err)
	}
	if br.ua != "" {
		req.Header.Set("User-Agent", br.ua)
	}
	resp, err := br.client.Do(req)
	if err != nil {
		br.t.Fatal(err)
	}
	return resp
}

// rp is a relying party on go-oidc and x/oauth2.
type rp struct {
	e        *env
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
	public   bool
}

func (e *env) rp(clientID, secret, redirect string, scopes ...string) *rp {
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess}
	}
	return &rp{
		e:        e,
		oauth:    oauth2.Config{ClientID: clientID, ClientSecret: secret, RedirectURL: redirect, Endpoint: e.provider.Endpoint(), Scopes: scopes},
		verifier: e.provider.Verifier(&oidc.Config{ClientID: clientID}),
		public:   secret == "",
	}
}

// authRequest is one authorization request in flight.
type authRequest struct {
	url, state, nonce, verifier string
}

func (r *rp) authURL(extra ...oauth2.AuthCodeOption) authRequest {
	a := authRequest{state: randString(), nonce: randString(), verifier: oauth2.GenerateVerifier()}
	opts := append([]oauth2.AuthCodeOption{oidc.Nonce(a.nonce), oauth2.S256ChallengeOption(a.verifier)}, extra...)
	a.url = r.oauth.AuthCodeURL(a.state, opts...)
	return a
}

func randString() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// authorize runs the browser through the authorization request and
// returns the query the client received.
func (r *rp) authorize(br *browser, a authRequest) url.Values {
	r.e.t.Helper()
	resp := br.get(a.url)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		body, _ := io.ReadAll(resp.Body)
		r.e.t.Fatalf("authorize: status %d, want a redirect to the client; body: %.400s", resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		r.e.t.Fatal(err)
	}
	return loc.Query()
}

// tokens is what a login yields.
type tokens struct {
	token   *oauth2.Token
	idToken *oidc.IDToken
	raw     string
	claims  map[string]any
}

func (r *rp) exchange(code, verifier string) (*tokens, error) {
	ctx := context.Background()
	tok, err := r.oauth.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, err
	}
	return r.verify(tok)
}

func (r *rp) verify(tok *oauth2.Token) (*tokens, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return &tokens{token: tok}, nil
	}
	idt, err := r.verifier.Verify(context.Background(), raw)
	if err != nil {
		return nil, fmt.Errorf("verifying ID token: %w", err)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return nil, fmt.Errorf("at_hash: %w", err)
		}
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, err
	}
	return &tokens{token: tok, idToken: idt, raw: raw, claims: claims}, nil
}

// login runs a whole login and returns verified tokens.
func (r *rp) login(br *browser, extra ...oauth2.AuthCodeOption) *tokens {
	r.e.t.Helper()
	a := r.authURL(extra...)
	q := r.authorize(br, a)
	if q.Get("error") != "" {
		r.e.t.Fatalf("authorize error %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != a.state {
		r.e.t.Fatalf("state = %q, want %q", q.Get("state"), a.state)
	}
	tk, err := r.exchange(q.Get("code"), a.verifier)
	if err != nil {
		r.e.t.Fatalf("exchange: %v", err)
	}
	if tk.idToken != nil && tk.idToken.Nonce != a.nonce {
		r.e.t.Fatalf("nonce = %q, want %q", tk.idToken.Nonce, a.nonce)
	}
	return tk
}

func (r *rp) refresh(refreshToken string) (*tokens, error) {
	src := r.oauth.TokenSource(context.Background(), &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Now().Add(-time.Hour)})
	tok, err := src.Token()
	if err != nil {
		return nil, err
	}
	return r.verify(tok)
}

// postForm posts to a broker endpoint, with HTTP Basic if user is set.
func (e *env) postForm(path string, form url.Values, user, pass string) (*http.Response, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(body, &m)
	return resp, m
}

func oauthErrorOf(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

func asRetrieve(err error, re **oauth2.RetrieveError) bool { return errors.As(err, re) }

func hasConnector(list []broker.Connector, id string) bool {
	for _, c := range list {
		if c.ID == id {
			return true
		}
	}
	return false
}
