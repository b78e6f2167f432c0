package qiaotest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// RP is a relying party of the world, on go-oidc and x/oauth2.
type RP struct {
	w        *World
	ClientID string
	OAuth    oauth2.Config
	Verifier *oidc.IDTokenVerifier
}

// RP is the configured client clientID as a relying party: its secret,
// its first redirect URI, and scopes (default: openid profile
// offline_access).
func (w *World) RP(clientID string, scopes ...string) *RP {
	w.T.Helper()
	c := w.Config.Client(clientID)
	if c == nil {
		w.T.Fatalf("qiaotest: no client %q", clientID)
	}
	if len(scopes) == 0 {
		scopes = []string{oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess}
	}
	redirect := ""
	if len(c.RedirectURIs) > 0 {
		redirect = c.RedirectURIs[0]
	}
	return &RP{
		w:        w,
		ClientID: clientID,
		OAuth: oauth2.Config{
			ClientID: clientID, ClientSecret: c.Secret, RedirectURL: redirect,
			Endpoint: w.Provider.Endpoint(), Scopes: scopes,
		},
		Verifier: w.Provider.Verifier(&oidc.Config{ClientID: clientID}),
	}
}

// AuthRequest is one authorization request in flight.
type AuthRequest struct {
	URL, State, Nonce, Verifier string
}

// RandString is 16 random bytes, base64url.
func RandString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// AuthRequest is an authorization request with state, nonce and PKCE
// S256, for connector (connector_id; "" shows the chooser).
func (r *RP) AuthRequest(connector string, opts ...oauth2.AuthCodeOption) AuthRequest {
	a := AuthRequest{State: RandString(), Nonce: RandString(), Verifier: oauth2.GenerateVerifier()}
	opts = append([]oauth2.AuthCodeOption{oidc.Nonce(a.Nonce), oauth2.S256ChallengeOption(a.Verifier)}, opts...)
	if connector != "" {
		opts = append(opts, oauth2.SetAuthURLParam("connector_id", connector))
	}
	a.URL = r.OAuth.AuthCodeURL(a.State, opts...)
	return a
}

// Tokens is a verified token response.
type Tokens struct {
	Token   *oauth2.Token
	IDToken string         // raw
	Claims  map[string]any // of the verified ID token
}

// Context carries the world's back-channel client for x/oauth2.
func (r *RP) Context() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, r.w.HTTP)
}

// Code checks the redirect the browser stopped at (no error, the state)
// and returns its code.
func (r *RP) Code(p *Page, a AuthRequest) (string, error) {
	q, err := p.RedirectQuery()
	if err != nil {
		return "", err
	}
	return codeOf(q, a)
}

// codeOf checks the query a relying party received for a (no error, the
// state) and returns its code.
func codeOf(q url.Values, a AuthRequest) (string, error) {
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("authorization error %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != a.State {
		return "", fmt.Errorf("state = %q, want %q", q.Get("state"), a.State)
	}
	return q.Get("code"), nil
}

// Finish checks the redirect the browser stopped at, exchanges the code
// and verifies the ID token (and its nonce).
func (r *RP) Finish(p *Page, a AuthRequest) (*Tokens, error) {
	code, err := r.Code(p, a)
	if err != nil {
		return nil, err
	}
	return r.redeem(code, a)
}

// FinishQuery is Finish for a relying party that received the redirect
// itself (a served redirect URI, where a real browser lands): q is the
// query it got.
func (r *RP) FinishQuery(q url.Values, a AuthRequest) (*Tokens, error) {
	code, err := codeOf(q, a)
	if err != nil {
		return nil, err
	}
	return r.redeem(code, a)
}

// redeem exchanges the code of a and verifies the ID token and its nonce.
func (r *RP) redeem(code string, a AuthRequest) (*Tokens, error) {
	tok, err := r.OAuth.Exchange(r.Context(), code, oauth2.VerifierOption(a.Verifier))
	if err != nil {
		return nil, fmt.Errorf("exchange: %w", err)
	}
	t, err := r.Verify(tok)
	if err != nil {
		return nil, err
	}
	if t.Claims["nonce"] != a.Nonce {
		return nil, fmt.Errorf("nonce = %v, want %q", t.Claims["nonce"], a.Nonce)
	}
	return t, nil
}

// Verify verifies the ID token of a token response and its at_hash.
func (r *RP) Verify(tok *oauth2.Token) (*Tokens, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, fmt.Errorf("no id_token in the token response")
	}
	idt, err := r.Verifier.Verify(r.Context(), raw)
	if err != nil {
		return nil, fmt.Errorf("verifying the ID token: %w", err)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		return nil, fmt.Errorf("at_hash: %w", err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, err
	}
	return &Tokens{Token: tok, IDToken: raw, Claims: claims}, nil
}

// Refresh redeems a refresh token and verifies the new ID token.
func (r *RP) Refresh(refreshToken string) (*Tokens, error) {
	tok, err := r.OAuth.TokenSource(r.Context(), &oauth2.Token{RefreshToken: refreshToken}).Token()
	if err != nil {
		return nil, err
	}
	return r.Verify(tok)
}

// OAuthError is the OAuth error code of an x/oauth2 token error ("" if
// it is not one).
func OAuthError(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		return re.ErrorCode
	}
	return ""
}

// Login runs a whole web login of person through connector in b:
// /auth, the simulator's picker, the callback, the code, the tokens.
func (r *RP) Login(b *Browser, connector, person string) (*Tokens, error) {
	a := r.AuthRequest(connector)
	p, err := b.LoginAt(a.URL, person)
	if err != nil {
		return nil, err
	}
	return r.Finish(p, a)
}

// MustLogin is Login that must succeed.
func (r *RP) MustLogin(t testing.TB, b *Browser, connector, person string) *Tokens {
	t.Helper()
	tk, err := r.Login(b, connector, person)
	if err != nil {
		t.Fatalf("login of %s through %s: %v", person, connector, err)
	}
	return tk
}

// LoginError runs a login that must come back to the RP with an error,
// checks its state and that no code came with it, and returns the
// redirect's query. atCallback, if set, is called when the provider
// sends the browser back to the broker's callback, so that it can break
// the provider's server-to-server calls that follow.
func (r *RP) LoginError(t testing.TB, b *Browser, connector, person string, atCallback func()) url.Values {
	t.Helper()
	a := r.AuthRequest(connector)
	if atCallback != nil {
		b.OnRedirect = func(u *url.URL) {
			if strings.Contains(u.Path, "/callback/") {
				atCallback()
			}
		}
	}
	p, err := b.LoginAt(a.URL, person)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	q, err := p.RedirectQuery()
	if err != nil {
		t.Fatalf("the login did not come back to the RP: %v", err)
	}
	if q.Get("state") != a.State {
		t.Errorf("state = %q, want %q", q.Get("state"), a.State)
	}
	if q.Get("code") != "" {
		t.Errorf("a code came with the error %q", q.Get("error"))
	}
	return q
}

// Login signs person in through connector for the web client (WebClient)
// and returns the verified tokens; the browser keeps its session.
func (b *Browser) Login(connector, person string) (*Tokens, error) {
	if b.w == nil {
		return nil, errors.New("qiaotest: Login needs a browser of a World")
	}
	return b.w.RP(WebClient).Login(b, connector, person)
}

// Deny starts a login of the web client through connector and refuses at
// the provider's picker; it returns the query of the redirect back to
// the RP (whose state it checks), e.g. error=access_denied. (QQ, as the
// real one, never calls back on a refusal: Deny("qq") is an error.)
func (b *Browser) Deny(connector string) (url.Values, error) {
	if b.w == nil {
		return nil, errors.New("qiaotest: Deny needs a browser of a World")
	}
	a := b.w.RP(WebClient).AuthRequest(connector)
	picker, err := b.Get(a.URL)
	if err != nil {
		return nil, err
	}
	if picker.Status != http.StatusOK {
		return nil, fmt.Errorf("the authorization request ended with HTTP %d at %s, not at a picker page", picker.Status, picker.URL)
	}
	p, err := b.Refuse(picker)
	if err != nil {
		return nil, err
	}
	q, err := p.RedirectQuery()
	if err != nil {
		return nil, err
	}
	if q.Get("state") != a.State {
		return nil, fmt.Errorf("state = %q, want %q", q.Get("state"), a.State)
	}
	return q, nil
}

// RawAuth is an authorization request built parameter by parameter
// (response_type code, scope openid profile offline_access, state, nonce,
// PKCE S256, connector_id), for tests that send unusual or invalid
// requests: change its Values with Set and Del. RP.AuthRequest is a
// relying party's own request.
type RawAuth struct {
	url.Values
	Verifier string // the PKCE code_verifier
}

// NewRawAuth is client's authorization request redirecting to redirect,
// through connector ("": no connector_id, the chooser).
func NewRawAuth(client, redirect, connector string) RawAuth {
	v := oauth2.GenerateVerifier()
	a := RawAuth{Values: url.Values{
		"response_type":         {"code"},
		"client_id":             {client},
		"redirect_uri":          {redirect},
		"scope":                 {"openid profile offline_access"},
		"state":                 {RandString()},
		"nonce":                 {RandString()},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(v)},
		"code_challenge_method": {"S256"},
	}, Verifier: v}
	if connector != "" {
		a.Set("connector_id", connector)
	}
	return a
}

// URL is the request at issuer's authorization endpoint.
func (a RawAuth) URL(issuer string) string { return issuer + "/auth?" + a.Encode() }

// State is the request's state.
func (a RawAuth) State() string { return a.Get("state") }

// Code checks that p is the redirect (302 or 303) back to a's redirect
// URI with a's state, a code and no error, and returns the code;
// anything else fails t.
func (a RawAuth) Code(t testing.TB, p *Page) string {
	t.Helper()
	if p.Status != http.StatusFound && p.Status != http.StatusSeeOther {
		t.Fatalf("authorization: HTTP %d at %s, want a redirect to the client; body: %.300s", p.Status, p.URL, p.Body)
	}
	if !strings.HasPrefix(p.Location, a.Get("redirect_uri")) {
		t.Fatalf("authorization: redirected to %s, not to %s", p.Location, a.Get("redirect_uri"))
	}
	q, err := p.RedirectQuery()
	if err != nil {
		t.Fatalf("authorization: %v", err)
	}
	if q.Get("error") != "" || q.Get("code") == "" {
		t.Fatalf("authorization: no code in %s", p.Location)
	}
	if q.Get("state") != a.State() {
		t.Fatalf("callback state %q, want %q", q.Get("state"), a.State())
	}
	return q.Get("code")
}

// CodeForm is the token request redeeming code issued for a
// (authorization_code grant, its redirect_uri and code_verifier); the
// client authenticates as the caller adds.
func (a RawAuth) CodeForm(code string) url.Values {
	return url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {a.Get("redirect_uri")},
		"code_verifier": {a.Verifier},
	}
}
