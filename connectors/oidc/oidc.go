// Package oidc is the connector for any standard OpenID Connect provider
// as an upstream: Keycloak, Dex, Google, Microsoft Entra ID, Authing,
// another Qiao. It finds the provider's endpoints by discovery
// ({issuer}/.well-known/openid-configuration), sends the browser through
// the authorization code flow with PKCE (S256) and a nonce, redeems the
// code at the token endpoint and verifies the ID token against the
// provider's published keys (JWKS): signature, iss, aud (and azp), exp,
// iat and nonce. The identity's subject is the ID token's sub; the
// display name and picture come from the claims the configuration names.
//
// Discovery happens on the first login, not at start, so that a provider
// that is down does not keep Qiao from starting; a failed discovery is
// retried on the next login. The keys are fetched again when no cached key
// verifies an ID token (the provider rotated its key); ID tokens come only
// from the provider's token endpoint, so no one else can make Qiao fetch.
package oidc

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/qiaoidp/qiao/connectors"
)

// Type is the connector type a configuration file names.
const Type = "oidc"

// Endpoint names, as the metrics and the errors show them.
const (
	endpointDiscovery = "openid-configuration"
	endpointJWKS      = "jwks"
	endpointToken     = "token"
)

// DefaultScopes are requested when the configuration names none.
var DefaultScopes = []string{"openid", "profile", "email"}

// clockSkew is how far the provider's clock may be from ours.
const clockSkew = time.Minute

// signingAlgs are the ID token algorithms accepted (never "none" or HMAC).
var signingAlgs = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Config is an OpenID Connect upstream, as a configuration file's
// config: block gives it.
type Config struct {
	// Issuer is the provider's issuer URL; discovery reads
	// {issuer}/.well-known/openid-configuration, whose issuer must be
	// this value exactly.
	Issuer string `yaml:"issuer"`
	// ClientID and ClientSecret are Qiao's client at the provider. An
	// empty secret makes Qiao a public client there (PKCE only).
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// Scopes requested; default DefaultScopes. openid is always sent.
	Scopes []string `yaml:"scopes"`
	// Claims names the ID token claims that carry the profile.
	Claims Claims `yaml:"claims"`
}

// Claims maps ID token claims to the profile; an empty value is the
// default.
type Claims struct {
	Name    string `yaml:"name"`    // the display name; default "name"
	Picture string `yaml:"picture"` // the avatar URL; default "picture"
	// Email is the display name when the name claim is absent; default
	// "email". Qiao keeps no e-mail address of its own.
	Email string `yaml:"email"`
}

// Validate reports every problem of the configuration, each as a
// *connectors.FieldError.
func (c *Config) Validate() error {
	var p connectors.Problems
	p.Required("issuer", c.Issuer)
	p.URL("issuer", c.Issuer)
	p.Required("client_id", c.ClientID)
	for i, s := range c.Scopes {
		if s == "" || strings.ContainsAny(s, " \t\n\"\\") {
			p.Add(fmt.Sprintf("scopes[%d]", i), "must be one scope without spaces or quotes")
		}
	}
	return p.Err()
}

// Open builds the connector.
func (c *Config) Open(id string, deps connectors.Deps) (any, error) {
	return New(*c, deps.Caller)
}

// Connector logs users in at an OpenID Connect provider. It is safe for
// concurrent use.
type Connector struct {
	cfg    Config
	scope  string
	caller *connectors.Caller
	now    func() time.Time

	mu        sync.Mutex
	meta      *metadata // nil until discovered
	keys      jose.JSONWebKeySet
	keysFresh bool // keys were fetched
}

// New checks cfg and returns the connector; caller makes every provider
// call (nil: a Caller with ConnectorID "oidc").
func New(cfg Config, caller *connectors.Caller) (*Connector, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("oidc: %w: %w", connectors.ErrConfig, err)
	}
	scopes := cfg.Scopes
	if len(scopes) == 0 {
		scopes = DefaultScopes
	}
	if !slices.Contains(scopes, "openid") {
		scopes = append([]string{"openid"}, scopes...)
	}
	if cfg.Claims.Name == "" {
		cfg.Claims.Name = "name"
	}
	if cfg.Claims.Picture == "" {
		cfg.Claims.Picture = "picture"
	}
	if cfg.Claims.Email == "" {
		cfg.Claims.Email = "email"
	}
	if caller == nil {
		caller = &connectors.Caller{ConnectorID: Type}
	}
	return &Connector{cfg: cfg, scope: strings.Join(scopes, " "), caller: caller, now: time.Now}, nil
}

// metadata is the part of the discovery document the connector uses.
type metadata struct {
	Issuer            string   `json:"issuer"`
	AuthorizationURL  string   `json:"authorization_endpoint"`
	TokenURL          string   `json:"token_endpoint"`
	JWKSURL           string   `json:"jwks_uri"`
	AuthMethods       []string `json:"token_endpoint_auth_methods_supported"`
	ChallengeMethods  []string `json:"code_challenge_methods_supported"`
	SigningAlgorithms []string `json:"id_token_signing_alg_values_supported"`
}

// discover returns the provider's metadata, fetching it on first use.
func (c *Connector) discover(ctx context.Context) (*metadata, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.meta != nil {
		return c.meta, nil
	}
	var m metadata
	wellKnown := strings.TrimSuffix(c.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	err := c.getJSON(ctx, endpointDiscovery, wellKnown, &m)
	if err != nil {
		return nil, err
	}
	switch {
	case m.Issuer != c.cfg.Issuer:
		return nil, fmt.Errorf("oidc: the discovery document names issuer %q, not the configured %q: %w", m.Issuer, c.cfg.Issuer, connectors.ErrConfig)
	case !httpURL(m.AuthorizationURL) || !httpURL(m.TokenURL) || !httpURL(m.JWKSURL):
		return nil, fmt.Errorf("oidc: the discovery document lacks an http(s) authorization_endpoint, token_endpoint or jwks_uri: %w", connectors.ErrUnavailable)
	case len(m.ChallengeMethods) > 0 && !slices.Contains(m.ChallengeMethods, "S256"):
		return nil, fmt.Errorf("oidc: the provider does not support PKCE S256: %w", connectors.ErrConfig)
	}
	c.meta = &m
	return c.meta, nil
}

func httpURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != ""
}

// getJSON fetches u and decodes its JSON body into out.
func (c *Connector) getJSON(ctx context.Context, endpoint, u string, out any) error {
	return c.caller.Call(ctx, Type, endpoint, func() (*http.Request, error) {
		return http.NewRequest(http.MethodGet, u, nil)
	}, nil, func(r connectors.Reply) error {
		if r.Status != http.StatusOK {
			return connectors.Unparseable("HTTP %d", r.Status)
		}
		if err := json.Unmarshal(r.Body, out); err != nil {
			return connectors.Unparseable("the reply is not the expected JSON")
		}
		return nil
	})
}

// LoginURL returns the provider's authorization URL for this login. Its
// per-login data is the nonce and the PKCE verifier, which come back to
// HandleCallback.
func (c *Connector) LoginURL(ctx context.Context, req connectors.LoginRequest) (string, []byte, error) {
	if req.State == "" || req.CallbackURL == "" {
		return "", nil, fmt.Errorf("oidc: login request without state or callback URL: %w", connectors.ErrConfig)
	}
	m, err := c.discover(ctx)
	if err != nil {
		return "", nil, err
	}
	nonce, verifier := random(24), random(32)
	challenge := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.cfg.ClientID},
		"redirect_uri":          {req.CallbackURL},
		"scope":                 {c.scope},
		"state":                 {req.State},
		"nonce":                 {nonce},
		"code_challenge":        {base64.RawURLEncoding.EncodeToString(challenge[:])},
		"code_challenge_method": {"S256"},
	}
	if req.Mobile {
		q.Set("display", "touch")
	}
	sep := "?"
	if strings.Contains(m.AuthorizationURL, "?") {
		sep = "&"
	}
	return m.AuthorizationURL + sep + q.Encode(), []byte(nonce + " " + verifier), nil
}

// random is n random bytes, base64url without padding.
func random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never returns an error (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}

// HandleCallback redeems the callback's code and verifies the ID token.
func (c *Connector) HandleCallback(ctx context.Context, req connectors.LoginRequest, query url.Values) (connectors.Identity, error) {
	if e := query.Get("error"); e != "" {
		return connectors.Identity{}, authorizeError(e, query.Get("error_description"))
	}
	code := query.Get("code")
	if code == "" {
		return connectors.Identity{}, &connectors.ProviderError{Provider: Type, Endpoint: "authorize",
			Message: "the callback carries neither a code nor an error", Kind: connectors.ErrAccessDenied}
	}
	nonce, verifier, ok := strings.Cut(string(req.Data), " ")
	if !ok || nonce == "" || verifier == "" {
		return connectors.Identity{}, fmt.Errorf("oidc: the login lost its nonce and PKCE verifier: %w", connectors.ErrInvalidCode)
	}
	m, err := c.discover(ctx)
	if err != nil {
		return connectors.Identity{}, err
	}
	raw, err := c.redeem(ctx, m, code, verifier, req.CallbackURL)
	if err != nil {
		return connectors.Identity{}, err
	}
	claims, err := c.verify(ctx, m, raw, nonce)
	if err != nil {
		return connectors.Identity{}, err
	}
	return c.identity(claims)
}

// authorizeError is the provider's refusal on the callback (RFC 6749
// 4.1.2.1).
func authorizeError(code, description string) error {
	kind := connectors.ErrAccessDenied
	switch code {
	case "temporarily_unavailable", "server_error":
		kind = connectors.ErrUnavailable
	case "invalid_request", "unauthorized_client", "unsupported_response_type", "invalid_scope":
		kind = connectors.ErrConfig
	}
	msg := code
	if description != "" {
		msg += ": " + connectors.Truncate(description)
	}
	return &connectors.ProviderError{Provider: Type, Endpoint: "authorize", Message: msg, Kind: kind}
}

// tokenReply is the token endpoint's answer (success or error).
type tokenReply struct {
	IDToken          string `json:"id_token"`
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// redeem exchanges the code for the ID token.
func (c *Connector) redeem(ctx context.Context, m *metadata, code, verifier, callback string) (string, error) {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {callback},
		"code_verifier": {verifier},
	}
	basic := c.cfg.ClientSecret != "" && (len(m.AuthMethods) == 0 || slices.Contains(m.AuthMethods, "client_secret_basic"))
	if !basic {
		form.Set("client_id", c.cfg.ClientID)
		if c.cfg.ClientSecret != "" {
			form.Set("client_secret", c.cfg.ClientSecret)
		}
	}
	var reply tokenReply
	err := c.caller.Call(ctx, Type, endpointToken, func() (*http.Request, error) {
		r, err := http.NewRequest(http.MethodPost, m.TokenURL, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		r.Header.Set("Accept", "application/json")
		if basic {
			r.SetBasicAuth(url.QueryEscape(c.cfg.ClientID), url.QueryEscape(c.cfg.ClientSecret))
		}
		return r, nil
	}, []string{code, verifier, c.cfg.ClientSecret}, func(r connectors.Reply) error {
		if err := json.Unmarshal(r.Body, &reply); err != nil {
			return connectors.Unparseable("HTTP %d without a JSON body", r.Status)
		}
		if reply.Error != "" || r.Status != http.StatusOK {
			kind := connectors.ErrConfig
			if reply.Error == "invalid_grant" {
				kind = connectors.ErrInvalidCode
			}
			return &connectors.ProviderError{Provider: Type, Message: connectors.Truncate(reply.Error + ": " + reply.ErrorDescription), Kind: kind}
		}
		if reply.IDToken == "" {
			return connectors.Unparseable("the token reply has no id_token")
		}
		return nil
	})
	return reply.IDToken, err
}

// verify checks the ID token's signature against the provider's keys and
// its claims, and returns them.
func (c *Connector) verify(ctx context.Context, m *metadata, raw, nonce string) (map[string]any, error) {
	jws, err := jose.ParseSigned(raw, signingAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, invalidToken("not a JWS signed with an accepted algorithm")
	}
	kid := jws.Signatures[0].Header.KeyID
	payload, err := c.verifySignature(ctx, m, jws, kid)
	if err != nil {
		return nil, err
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, invalidToken("the payload is not a JSON object")
	}
	now := c.now()
	if iss, _ := claims["iss"].(string); iss != m.Issuer {
		return nil, invalidToken(fmt.Sprintf("iss %q is not the issuer %q", iss, m.Issuer))
	}
	if !audienceHas(claims["aud"], c.cfg.ClientID) {
		return nil, invalidToken("aud does not name this client")
	}
	if azp, ok := claims["azp"].(string); ok && azp != c.cfg.ClientID {
		return nil, invalidToken("azp names another client")
	}
	exp, ok := numericDate(claims["exp"])
	if !ok || !now.Before(exp.Add(clockSkew)) {
		return nil, invalidToken("expired or without exp")
	}
	if iat, ok := numericDate(claims["iat"]); ok && iat.After(now.Add(clockSkew)) {
		return nil, invalidToken("issued in the future")
	}
	if got, _ := claims["nonce"].(string); got != nonce {
		return nil, invalidToken("the nonce is not this login's")
	}
	if sub, _ := claims["sub"].(string); sub == "" {
		return nil, invalidToken("no sub")
	}
	return claims, nil
}

// verifySignature verifies jws with the key kid of the provider's key set,
// fetching the set when it is not cached or lacks the key.
func (c *Connector) verifySignature(ctx context.Context, m *metadata, jws *jose.JSONWebSignature, kid string) ([]byte, error) {
	for attempt := 0; attempt < 2; attempt++ {
		keys, err := c.keySet(ctx, m, attempt > 0)
		if err != nil {
			return nil, err
		}
		candidates := keys.Keys
		if kid != "" {
			candidates = keys.Key(kid)
		}
		for _, k := range candidates {
			if k.Use != "" && k.Use != "sig" {
				continue
			}
			if payload, err := jws.Verify(k); err == nil {
				return payload, nil
			}
		}
	}
	return nil, invalidToken("no key of the provider verifies the signature")
}

// keySet returns the provider's keys: the cached ones, or fetched ones
// when there are none yet or refresh asks.
func (c *Connector) keySet(ctx context.Context, m *metadata, refresh bool) (jose.JSONWebKeySet, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keysFresh && !refresh {
		return c.keys, nil
	}
	var set jose.JSONWebKeySet
	if err := c.getJSON(ctx, endpointJWKS, m.JWKSURL, &set); err != nil {
		return jose.JSONWebKeySet{}, err
	}
	c.keys, c.keysFresh = set, true
	return set, nil
}

func invalidToken(why string) error {
	return &connectors.ProviderError{Provider: Type, Endpoint: "id_token", Message: "the ID token is invalid: " + why, Kind: connectors.ErrInvalidCode}
}

func audienceHas(aud any, clientID string) bool {
	switch a := aud.(type) {
	case string:
		return a == clientID
	case []any:
		for _, v := range a {
			if s, _ := v.(string); s == clientID {
				return true
			}
		}
	}
	return false
}

func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

// identity maps the verified claims to the identity.
func (c *Connector) identity(claims map[string]any) (connectors.Identity, error) {
	str := func(name string) string {
		s, _ := claims[name].(string)
		return s
	}
	id := connectors.Identity{Subject: str("sub"), DisplayName: str(c.cfg.Claims.Name), Picture: str(c.cfg.Claims.Picture)}
	if id.DisplayName == "" {
		id.DisplayName = str(c.cfg.Claims.Email)
	}
	id = id.Clean()
	id.RealProfile = id.DisplayName != "" || id.Picture != ""
	if len(id.Subject) > 255 {
		return connectors.Identity{}, invalidToken("sub longer than 255 characters")
	}
	return id, nil
}

// DisplayName is the issuer's host: the configuration's name: or names:
// say what people know the provider as.
func (c *Connector) DisplayName(string) string {
	if u, err := url.Parse(c.cfg.Issuer); err == nil && u.Host != "" {
		return u.Host
	}
	return "OpenID Connect"
}
