package oidc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/internal/conntest"
	"github.com/qiaoidp/qiao/connectors/oidc"
)

// provider is a minimal OpenID Connect provider: discovery, JWKS and a
// token endpoint whose ID token the test shapes.
type provider struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	key    *ecdsa.PrivateKey
	kid    string
	shape  func(claims map[string]any) // changes the ID token's claims
	signer *ecdsa.PrivateKey           // nil: key
	reply  string                      // a token endpoint reply instead of the ID token
	status int
	jwks   atomic.Int64 // JWKS fetches
	// what the token endpoint saw
	form  url.Values
	basic string
}

func newProvider(t *testing.T) *provider {
	p := &provider{t: t, kid: "k1"}
	p.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": p.srv.URL, "authorization_endpoint": p.srv.URL + "/auth", "token_endpoint": p.srv.URL + "/token",
			"jwks_uri": p.srv.URL + "/keys", "code_challenge_methods_supported": []string{"S256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		p.jwks.Add(1)
		p.mu.Lock()
		defer p.mu.Unlock()
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &p.key.PublicKey, KeyID: p.kid, Algorithm: "ES256", Use: "sig"}}})
	})
	mux.HandleFunc("/token", func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.form = r.PostForm
		user, pass, _ := r.BasicAuth()
		p.basic = user + ":" + pass
		w.Header().Set("Content-Type", "application/json")
		if p.reply != "" {
			w.WriteHeader(p.status)
			_, _ = w.Write([]byte(p.reply))
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "at", "token_type": "Bearer", "id_token": p.idToken(r.PostForm.Get("code"))})
	})
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// idToken is the ID token for code, which carries the nonce as
// "code-NONCE".
func (p *provider) idToken(code string) string {
	now := time.Now()
	claims := map[string]any{
		"iss": p.srv.URL, "aud": "qiao", "sub": "user-1", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
		"nonce": strings.TrimPrefix(code, "code-"), "name": "Alice", "picture": "https://img.example/a.png",
		"preferred_username": "alice", "email": "alice@example.com",
	}
	if p.shape != nil {
		p.shape(claims)
	}
	key := p.key
	if p.signer != nil {
		key = p.signer
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", p.kid))
	if err != nil {
		p.t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		p.t.Fatal(err)
	}
	raw, _ := jws.CompactSerialize()
	return raw
}

func (p *provider) connector(t *testing.T, cfg oidc.Config) *oidc.Connector {
	t.Helper()
	if cfg.Issuer == "" {
		cfg.Issuer = p.srv.URL
	}
	if cfg.ClientID == "" {
		cfg.ClientID, cfg.ClientSecret = "qiao", "s3cret"
	}
	c, err := oidc.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const callbackURL = "https://qiao.example/callback/up"

// login runs LoginURL and HandleCallback as the broker would, the
// provider answering with code "code-NONCE".
func login(t *testing.T, c *oidc.Connector) (connectors.Identity, *url.URL, error) {
	t.Helper()
	req := connectors.LoginRequest{State: "state0123456789abcdef", CallbackURL: callbackURL}
	raw, data, err := c.LoginURL(context.Background(), req)
	if err != nil {
		t.Fatalf("LoginURL: %v", err)
	}
	if len(data) > connectors.MaxLoginData {
		t.Fatalf("%d bytes of per-login data", len(data))
	}
	u, _ := url.Parse(raw)
	req.Data = data
	id, err := c.HandleCallback(context.Background(), req, url.Values{"code": {"code-" + u.Query().Get("nonce")}, "state": {req.State}})
	return id, u, err
}

func TestLoginURLAsksForACodeWithPKCEAndANonce(t *testing.T) {
	p := newProvider(t)
	_, u, err := login(t, p.connector(t, oidc.Config{Scopes: []string{"profile"}}))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	want := map[string]string{"response_type": "code", "client_id": "qiao", "redirect_uri": callbackURL, "scope": "openid profile",
		"state": "state0123456789abcdef", "code_challenge_method": "S256"}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if !strings.HasPrefix(u.String(), p.srv.URL+"/auth?") || len(q.Get("nonce")) < 20 {
		t.Errorf("authorization URL %s: want the discovered endpoint and a nonce", u)
	}
	// The verifier sent to the token endpoint matches the challenge.
	sum := sha256.Sum256([]byte(p.form.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != q.Get("code_challenge") {
		t.Errorf("code_verifier does not match the code_challenge")
	}
	if p.basic != "qiao:s3cret" || p.form.Get("client_secret") != "" || p.form.Get("redirect_uri") != callbackURL {
		t.Errorf("token request: basic %q, form %v; want client_secret_basic and the callback URL", p.basic, p.form)
	}
}

func TestIDTokenIsVerified(t *testing.T) {
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tests := []struct {
		name   string
		shape  func(map[string]any)
		signer *ecdsa.PrivateKey
		reply  string
		status int
		kind   error
	}{
		{name: "valid", kind: nil},
		{name: "another audience", shape: func(c map[string]any) { c["aud"] = "someone-else" }, kind: connectors.ErrInvalidCode},
		{name: "audience list with this client", shape: func(c map[string]any) { c["aud"] = []string{"x", "qiao"}; c["azp"] = "qiao" }, kind: nil},
		{name: "azp of another client", shape: func(c map[string]any) { c["aud"] = []string{"x", "qiao"}; c["azp"] = "x" }, kind: connectors.ErrInvalidCode},
		{name: "another issuer", shape: func(c map[string]any) { c["iss"] = "https://evil.example" }, kind: connectors.ErrInvalidCode},
		{name: "expired", shape: func(c map[string]any) { c["exp"] = time.Now().Add(-2 * time.Minute).Unix() }, kind: connectors.ErrInvalidCode},
		{name: "no exp", shape: func(c map[string]any) { delete(c, "exp") }, kind: connectors.ErrInvalidCode},
		{name: "issued in the future", shape: func(c map[string]any) { c["iat"] = time.Now().Add(time.Hour).Unix() }, kind: connectors.ErrInvalidCode},
		{name: "another login's nonce", shape: func(c map[string]any) { c["nonce"] = "replayed" }, kind: connectors.ErrInvalidCode},
		{name: "no sub", shape: func(c map[string]any) { delete(c, "sub") }, kind: connectors.ErrInvalidCode},
		{name: "signed by another key", signer: other, kind: connectors.ErrInvalidCode},
		{name: "code refused", reply: `{"error":"invalid_grant","error_description":"code used"}`, status: 400, kind: connectors.ErrInvalidCode},
		{name: "client refused", reply: `{"error":"invalid_client"}`, status: 401, kind: connectors.ErrConfig},
		{name: "provider down", reply: `oops`, status: 503, kind: connectors.ErrUnavailable},
		{name: "no id_token", reply: `{"access_token":"x"}`, status: 200, kind: connectors.ErrUnavailable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newProvider(t)
			p.shape, p.signer, p.reply, p.status = tc.shape, tc.signer, tc.reply, tc.status
			id, _, err := login(t, p.connector(t, oidc.Config{}))
			if tc.kind == nil {
				if err != nil || id.Subject != "user-1" {
					t.Fatalf("identity %+v, %v; want user-1", id, err)
				}
				return
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "code-") {
				t.Errorf("the error carries a secret or the code: %v", err)
			}
		})
	}
}

func TestClaimsMapToTheProfile(t *testing.T) {
	p := newProvider(t)
	id, _, err := login(t, p.connector(t, oidc.Config{Claims: oidc.Claims{Name: "preferred_username"}}))
	if err != nil {
		t.Fatal(err)
	}
	if id.DisplayName != "alice" || id.Picture != "https://img.example/a.png" || !id.RealProfile {
		t.Errorf("identity %+v, want preferred_username as the name", id)
	}
	p.shape = func(c map[string]any) { delete(c, "name"); delete(c, "picture") }
	id, _, err = login(t, p.connector(t, oidc.Config{}))
	if err != nil || id.DisplayName != "alice@example.com" || id.Picture != "" {
		t.Errorf("identity %+v (%v), want the email as the name when there is no name", id, err)
	}
}

func TestRotatedKeyIsFetchedOnce(t *testing.T) {
	p := newProvider(t)
	c := p.connector(t, oidc.Config{})
	if _, _, err := login(t, c); err != nil {
		t.Fatal(err)
	}
	p.mu.Lock()
	p.key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.kid = "k2"
	p.mu.Unlock()
	if _, _, err := login(t, c); err != nil {
		t.Fatalf("after the provider rotated its key: %v", err)
	}
	if _, _, err := login(t, c); err != nil {
		t.Fatal(err)
	}
	if n := p.jwks.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2 (first use, then the new key id)", n)
	}
}

func TestCallbackErrorsAndLostLoginData(t *testing.T) {
	p := newProvider(t)
	c := p.connector(t, oidc.Config{})
	req := connectors.LoginRequest{State: "state0123456789abcdef", CallbackURL: callbackURL, Data: []byte("n v")}
	for _, tc := range []struct {
		query url.Values
		data  []byte
		kind  error
	}{
		{url.Values{"error": {"access_denied"}}, req.Data, connectors.ErrAccessDenied},
		{url.Values{"error": {"temporarily_unavailable"}}, req.Data, connectors.ErrUnavailable},
		{url.Values{"error": {"invalid_scope"}}, req.Data, connectors.ErrConfig},
		{url.Values{}, req.Data, connectors.ErrAccessDenied},
		{url.Values{"code": {"c"}}, nil, connectors.ErrInvalidCode},
	} {
		r := req
		r.Data = tc.data
		if _, err := c.HandleCallback(context.Background(), r, tc.query); !errors.Is(err, tc.kind) {
			t.Errorf("callback %v with data %q: %v, want %v", tc.query, tc.data, err, tc.kind)
		}
	}
}

func TestValidate(t *testing.T) {
	err := (&oidc.Config{Issuer: "ftp://x", Scopes: []string{"openid", "two words"}}).Validate()
	fields := conntest.Fields(err)
	if strings.Join(fields, ",") != "issuer,client_id,scopes[1]" {
		t.Errorf("fields %v, want issuer, client_id, scopes[1]", fields)
	}
	if (&oidc.Config{Issuer: "https://id.example", ClientID: "c"}).Validate() != nil {
		t.Error("a public client with an issuer is valid")
	}
}

// TestDiscoveryDocumentIsChecked: a discovery document naming another
// issuer, lacking an endpoint or without PKCE S256 is refused with a
// clear error of the right kind, and a refused document is not cached.
func TestDiscoveryDocumentIsChecked(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape func(doc map[string]any)
		kind  error
	}{
		{"another issuer", func(d map[string]any) { d["issuer"] = "https://evil.example" }, connectors.ErrConfig},
		{"no token endpoint", func(d map[string]any) { delete(d, "token_endpoint") }, connectors.ErrUnavailable},
		{"jwks_uri not http", func(d map[string]any) { d["jwks_uri"] = "file:///etc/keys" }, connectors.ErrUnavailable},
		{"plain PKCE only", func(d map[string]any) { d["code_challenge_methods_supported"] = []string{"plain"} }, connectors.ErrConfig},
		{"not JSON", nil, connectors.ErrUnavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var broken atomic.Bool
			broken.Store(true)
			var srv *httptest.Server
			srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				doc := map[string]any{
					"issuer": srv.URL, "authorization_endpoint": srv.URL + "/auth", "token_endpoint": srv.URL + "/token",
					"jwks_uri": srv.URL + "/keys", "code_challenge_methods_supported": []string{"S256"},
				}
				if broken.Load() {
					if tc.shape == nil {
						_, _ = w.Write([]byte("<html>"))
						return
					}
					tc.shape(doc)
				}
				_ = json.NewEncoder(w).Encode(doc)
			}))
			t.Cleanup(srv.Close)
			c, err := oidc.New(oidc.Config{Issuer: srv.URL, ClientID: "qiao"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			req := connectors.LoginRequest{State: "state0123456789abcdef", CallbackURL: callbackURL}
			if _, _, err := c.LoginURL(context.Background(), req); !errors.Is(err, tc.kind) {
				t.Fatalf("LoginURL: %v, want %v", err, tc.kind)
			}
			broken.Store(false)
			if u, _, err := c.LoginURL(context.Background(), req); err != nil || !strings.HasPrefix(u, srv.URL+"/auth?") {
				t.Errorf("after the document was mended: %q, %v", u, err)
			}
		})
	}
}
