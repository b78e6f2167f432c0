package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// The broker tests run on qiaotest's world in process, every connector
// played by a test's own connector (qiaotest.WithFake): by default a
// fakeWeb per configured connector.

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

// fakeConnector is connector id of type weibo, played by a test's fake
// (its app is not registered at the simulator).
func fakeConnector(id, name string) qiaotest.Connector {
	k := qiaotest.Weibo(id, name)
	k.NotAtSimulator = true
	return k
}

// testConfig is the broker tests' configuration: the web connectors
// alpha and beta, and clients of every kind.
func testConfig(c *qiaotest.Config) {
	c.Secret = testSecret
	c.Keys = &qiaotest.Keys{Algorithm: "RS256"}
	c.Connectors = []qiaotest.Connector{fakeConnector("alpha", "Alpha"), fakeConnector("beta", "Beta")}
	c.Clients = []qiaotest.Client{
		{ID: "web", Secret: "web-secret-0123456789abcdef0123456789", Name: "Web App", RedirectURIs: []string{"http://127.0.0.1:9/callback"},
			PostLogoutRedirectURIs: []string{"http://127.0.0.1:9/bye"}, AccountAPI: true},
		{ID: "spa", Public: true, Name: "SPA", RedirectURIs: []string{"http://127.0.0.1:9/spa"}},
		{ID: "second", Secret: "second-secret-0123456789abcdef0123456789", RedirectURIs: []string{"https://second.example/cb"}},
		{ID: "onlybeta", Secret: "onlybeta-secret-0123456789abcdef0123456789", RedirectURIs: []string{"https://beta.example/cb"}, Connectors: []string{"beta"}},
		{ID: "consent", Secret: "consent-secret-0123456789abcdef0123456789", RedirectURIs: []string{"https://consent.example/cb"}, RequireConsent: true},
		{ID: "onlyalpha", Secret: "onlyalpha-secret-0123456789abcdef0123456789", RedirectURIs: []string{"https://alpha.example/cb"},
			Connectors: []string{"alpha"}, AccountAPI: true},
	}
}

// withMini adds the mini-program connector mini (first, before alpha and
// beta) to the configuration.
func withMini(c *qiaotest.Config) {
	mini := qiaotest.MiniProgram("mini", "Mini")
	mini.NotAtSimulator = true
	c.Connectors = append([]qiaotest.Connector{mini}, c.Connectors...)
}

// extra sets the top-level key of the configuration to v.
func extra(c *qiaotest.Config, key string, v any) {
	if c.Extra == nil {
		c.Extra = map[string]any{}
	}
	c.Extra[key] = v
}

// env is a qiaotest world whose connectors are the test's fakes.
type env struct {
	*qiaotest.World
	t      testing.TB
	issuer string
	// fakes are the fakeWeb of each connector the test did not play
	// with a connector of its own.
	fakes map[string]*fakeWeb
}

type envOptions struct {
	alg string // keys.algorithm; "": RS256
	// config changes testConfig.
	config func(*qiaotest.Config)
	// play are the connectors the test plays with its own
	// implementation (by id); every other one is a fakeWeb.
	play map[string]any
	now  func() time.Time
	// wrap gives the fake of connector id more capabilities; nil: none.
	wrap func(id string, f *fakeWeb) any
	pg   bool // PostgreSQL instead of SQLite
	// opts are more world options (e.g. qiaotest.WithIssuer).
	opts []qiaotest.Option
}

// mini is the options of a world with the mini-program connector mini,
// played by impl.
func mini(impl any) envOptions {
	return envOptions{config: withMini, play: map[string]any{"mini": impl}}
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	cfg := qiaotest.Base()
	testConfig(&cfg)
	if o.alg != "" {
		cfg.Keys.Algorithm = o.alg
	}
	if o.config != nil {
		o.config(&cfg)
	}
	e := &env{t: t, fakes: map[string]*fakeWeb{}}
	opts := []qiaotest.Option{
		qiaotest.WithIssuerPath("/qiao"),
		qiaotest.WithConfig(func(c *qiaotest.Config) { *c = cfg }),
		qiaotest.WithNow(o.now),
	}
	for _, k := range cfg.Connectors {
		impl, ok := o.play[k.ID]
		if !ok {
			f := &fakeWeb{person: "alice"}
			e.fakes[k.ID] = f
			impl = f
			if o.wrap != nil {
				impl = o.wrap(k.ID, f)
			}
		}
		opts = append(opts, qiaotest.WithFake(k.ID, impl))
	}
	if o.pg {
		opts = append(opts, qiaotest.WithStore(qiaotest.Postgres))
	}
	e.World = qiaotest.Start(t, append(opts, o.opts...)...)
	e.issuer = e.Issuer
	return e
}

// dbPath is the broker's SQLite file.
func (e *env) dbPath() string { return e.Config.Storage.SQLite.Path }

// browser is a qiaotest browser: its own cookies, following redirects
// within the broker and stopping at the relying party.
type browser struct {
	*qiaotest.Browser
	t testing.TB
}

func (e *env) newBrowser() *browser { return &browser{Browser: e.Browser(), t: e.t} }

// get loads u (with the browser's User-Agent); the caller closes the
// body.
func (br *browser) get(u string) *http.Response {
	br.t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		br.t.Fatal(err)
	}
	if br.UserAgent != "" {
		req.Header.Set("User-Agent", br.UserAgent)
	}
	resp, err := br.Client.Do(req)
	if err != nil {
		br.t.Fatal(err)
	}
	return resp
}

// rp is a configured client as a relying party (qiaotest.RP) with the
// given secret and redirect URI.
type rp struct {
	*qiaotest.RP
	e *env
}

func (e *env) rp(clientID, secret, redirect string, scopes ...string) *rp {
	r := e.RP(clientID, scopes...)
	r.OAuth.ClientSecret, r.OAuth.RedirectURL = secret, redirect
	return &rp{RP: r, e: e}
}

// webRP is the "web" client of the test configuration, with its secret
// and redirect URI.
func (e *env) webRP(scopes ...string) *rp {
	return e.rp("web", "web-secret-0123456789abcdef0123456789", "http://127.0.0.1:9/callback", scopes...)
}

// authRequest is one authorization request in flight.
type authRequest struct {
	url, state, nonce, verifier string
}

// authURL is an authorization request with state, nonce and PKCE S256.
func (r *rp) authURL(extra ...oauth2.AuthCodeOption) authRequest {
	a := r.AuthRequest("", extra...)
	return authRequest{url: a.URL, state: a.State, nonce: a.Nonce, verifier: a.Verifier}
}

// authorize runs the browser through the authorization request and
// returns the query the client received.
func (r *rp) authorize(br *browser, a authRequest) url.Values {
	r.e.t.Helper()
	p, err := br.Get(a.url)
	if err != nil {
		r.e.t.Fatal(err)
	}
	if p.Status != http.StatusFound && p.Status != http.StatusSeeOther {
		r.e.t.Fatalf("authorize: status %d, want a redirect to the client; body: %.400s", p.Status, p.Body)
	}
	q, err := p.RedirectQuery()
	if err != nil {
		r.e.t.Fatalf("authorize: %v", err)
	}
	return q
}

// tokens is what a login yields.
type tokens struct {
	token   *oauth2.Token
	idToken *oidc.IDToken
	raw     string
	claims  map[string]any
}

func (r *rp) exchange(code, verifier string) (*tokens, error) {
	tok, err := r.OAuth.Exchange(r.Context(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, err
	}
	return r.verify(tok)
}

// verify verifies the ID token of a token response (qiaotest.RP.Verify:
// signature, audience, at_hash), if it has one.
func (r *rp) verify(tok *oauth2.Token) (*tokens, error) {
	if raw, _ := tok.Extra("id_token").(string); raw == "" {
		return &tokens{token: tok}, nil
	}
	v, err := r.Verify(tok)
	if err != nil {
		return nil, err
	}
	idt, err := r.Verifier.Verify(r.Context(), v.IDToken)
	if err != nil {
		return nil, err
	}
	return &tokens{token: tok, idToken: idt, raw: v.IDToken, claims: v.Claims}, nil
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
	tok, err := r.OAuth.TokenSource(r.Context(), &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil {
		return nil, err
	}
	return r.verify(tok)
}

// postForm posts to a broker endpoint, with HTTP Basic if user is set
// (qiaotest's World.Post), and returns the answer's status and headers
// and its JSON.
func (e *env) postForm(path string, form url.Values, user, pass string) (*http.Response, map[string]any) {
	e.t.Helper()
	p := e.Post(e.t, path, form, user, pass)
	return &http.Response{StatusCode: p.Status, Header: p.Header}, p.JSON()
}

// exchange trades a wx.login code at the connector mini for tokens with
// scope, as the confidential client clientID (HTTP Basic).
func (e *env) exchange(clientID, secret, code, scope string) (*http.Response, map[string]any) {
	e.t.Helper()
	form := qiaotest.ExchangeForm("mini", clientID, code, scope)
	form.Del("client_id")
	return e.postForm("/token", form, clientID, secret)
}

func oauthErrorOf(err error) string { return qiaotest.OAuthError(err) }

func asRetrieve(err error, re **oauth2.RetrieveError) bool { return errors.As(err, re) }

func ptr[T any](v T) *T { return &v }
