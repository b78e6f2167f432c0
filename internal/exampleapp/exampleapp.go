// Package exampleapp is the relying party of the sandbox demo: a small web
// app that signs its users in through Qiao with nothing but a certified
// OpenID Connect library (coreos/go-oidc and x/oauth2), the way any app
// would. It shows one login button per connector (an authorization
// request with connector_id) and one without connector_id, for the
// broker's chooser; it uses the authorization code flow with PKCE,
// verifies the ID token (signature, issuer, audience, expiry, nonce,
// at_hash), shows its claims, refreshes the tokens, and signs out with
// RP-initiated logout.
//
// The app keeps its own sessions in memory, keyed by a random cookie.
// That is fine for a demo that runs as one process; a real app with more
// than one replica would keep them in a shared store or a sealed cookie.
package exampleapp

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Connector is one login button: a connector id of the broker and the
// label to show.
type Connector struct {
	ID   string
	Name string
}

// Config is what the app needs to know about itself and the broker.
type Config struct {
	Issuer       string // the broker's issuer URL
	ClientID     string
	ClientSecret string // "" for a public client (PKCE alone)
	// BaseURL is where the app is served, without a trailing slash; the
	// redirect URI is BaseURL+"/callback" and the post-logout redirect
	// URI BaseURL+"/".
	BaseURL    string
	Connectors []Connector
	// Scopes requested; nil: openid profile offline_access.
	Scopes []string
	// HTTPClient makes the discovery, JWKS and token calls; nil: the
	// default client.
	HTTPClient *http.Client
	Logger     *slog.Logger // nil: slog.Default()
}

// sessionCookie names the app's own session cookie.
const sessionCookie = "exampleapp_session"

// pendingTTL is how long an authorization request may take.
const pendingTTL = 10 * time.Minute

// maxSessions caps the in-memory session map, so that a client that
// throws away its cookies cannot grow it without bound.
const maxSessions = 10000

// App is the example relying party; it is an http.Handler.
type App struct {
	cfg        Config
	log        *slog.Logger
	provider   *oidc.Provider
	verifier   *oidc.IDTokenVerifier
	oauth      oauth2.Config
	endSession string
	mux        *http.ServeMux

	mu       sync.Mutex
	sessions map[string]*session // in memory: see the package comment
}

// session is one browser's state at the app.
type session struct {
	created time.Time
	csrf    string
	pending map[string]pendingAuth // by state
	tokens  *signedIn
	notice  string // shown once on the next page
	errMsg  string // shown once on the next page
	logout  string // the state of the logout request in flight
}

// pendingAuth is an authorization request in flight.
type pendingAuth struct {
	nonce    string
	verifier string
	created  time.Time
}

// signedIn is what a successful login or refresh left.
type signedIn struct {
	token     *oauth2.Token
	rawID     string
	claims    map[string]any
	refreshed int
	when      time.Time
}

// New discovers the broker and returns the app.
func New(ctx context.Context, cfg Config) (*App, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.BaseURL == "" {
		return nil, errors.New("exampleapp: Issuer, ClientID and BaseURL are required")
	}
	cfg.BaseURL = strings.TrimSuffix(cfg.BaseURL, "/")
	if _, err := url.Parse(cfg.BaseURL); err != nil {
		return nil, fmt.Errorf("exampleapp: BaseURL: %w", err)
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess}
	}
	a := &App{cfg: cfg, log: cfg.Logger, sessions: map[string]*session{}}
	if a.log == nil {
		a.log = slog.Default()
	}
	if cfg.HTTPClient != nil {
		ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	}
	// The demo's issuer is plain http on loopback; go-oidc accepts it.
	p, err := oidc.NewProvider(ctx, cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("exampleapp: discovering %s: %w", cfg.Issuer, err)
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := p.Claims(&meta); err != nil {
		return nil, fmt.Errorf("exampleapp: reading the discovery document: %w", err)
	}
	a.provider = p
	a.endSession = meta.EndSession
	a.verifier = p.Verifier(&oidc.Config{ClientID: cfg.ClientID})
	a.oauth = oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		RedirectURL:  cfg.BaseURL + "/callback",
		Endpoint:     p.Endpoint(),
		Scopes:       cfg.Scopes,
	}
	a.mux = http.NewServeMux()
	a.mux.HandleFunc("GET /{$}", a.home)
	a.mux.HandleFunc("GET /login", a.login)
	a.mux.HandleFunc("GET /callback", a.callback)
	a.mux.HandleFunc("POST /refresh", a.refresh)
	a.mux.HandleFunc("POST /logout", a.logout)
	a.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		errorPage(w, http.StatusNotFound, "There is no page at "+r.URL.Path+" in this app.")
	})
	return a, nil
}

// RedirectURL is the redirect URI to register for the app's client.
func (a *App) RedirectURL() string { return a.oauth.RedirectURL }

// PostLogoutRedirectURL is the post-logout redirect URI to register.
func (a *App) PostLogoutRedirectURL() string { return a.cfg.BaseURL + "/" }

func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	a.mux.ServeHTTP(w, r)
}

func randomToken() string {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the platform is broken
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// sessionOf returns the browser's session, creating one (and its cookie)
// when create is set.
func (a *App) sessionOf(w http.ResponseWriter, r *http.Request, create bool) *session {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, err := r.Cookie(sessionCookie); err == nil {
		if s, ok := a.sessions[c.Value]; ok {
			return s
		}
	}
	if !create {
		return nil
	}
	if len(a.sessions) >= maxSessions {
		a.evictOldestLocked()
	}
	id := randomToken()
	s := &session{created: time.Now(), csrf: randomToken(), pending: map[string]pendingAuth{}}
	a.sessions[id] = s
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: "/", HttpOnly: true,
		Secure: strings.HasPrefix(a.cfg.BaseURL, "https://"), SameSite: http.SameSiteLaxMode,
	})
	return s
}

func (a *App) evictOldestLocked() {
	var oldest string
	var at time.Time
	for id, s := range a.sessions {
		if oldest == "" || s.created.Before(at) {
			oldest, at = id, s.created
		}
	}
	delete(a.sessions, oldest)
}

// home shows the login buttons, or the signed-in user's claims.
func (a *App) home(w http.ResponseWriter, r *http.Request) {
	s := a.sessionOf(w, r, true)
	a.mu.Lock()
	data := pageData{
		Connectors: a.cfg.Connectors,
		Issuer:     a.cfg.Issuer,
		Account:    strings.TrimSuffix(a.cfg.Issuer, "/") + "/account?client_id=" + url.QueryEscape(a.cfg.ClientID),
		CSRF:       s.csrf,
		Notice:     s.notice,
		Error:      s.errMsg,
	}
	s.notice, s.errMsg = "", ""
	if st := r.URL.Query().Get("state"); st != "" && s.logout != "" && subtle.ConstantTimeCompare([]byte(st), []byte(s.logout)) == 1 {
		// Back from the broker's end_session_endpoint.
		s.logout = ""
		data.Notice = "Signed out of the app and of the broker."
	}
	if t := s.tokens; t != nil {
		data.SignedIn = true
		data.Name, _ = t.claims["name"].(string)
		data.Picture, _ = t.claims["picture"].(string)
		data.IdP, _ = t.claims["idp"].(string)
		data.Claims = claimRows(t.claims)
		data.RawClaims = prettyJSON(t.claims)
		data.Refreshed = t.refreshed
		data.HasRefresh = t.token.RefreshToken != ""
		data.AccessExpiry = t.token.Expiry.Format(time.RFC3339)
		data.When = t.when.Format(time.RFC3339)
	}
	a.mu.Unlock()
	render(w, http.StatusOK, data)
}

// login starts an authorization request: connector=ID goes straight to
// that connector (connector_id), none shows the broker's chooser.
func (a *App) login(w http.ResponseWriter, r *http.Request) {
	connector := r.URL.Query().Get("connector")
	if connector != "" && !a.knows(connector) {
		errorPage(w, http.StatusBadRequest, "This app has no sign-in button for connector "+strconv.Quote(connector)+".")
		return
	}
	s := a.sessionOf(w, r, true)
	state, p := randomToken(), pendingAuth{nonce: randomToken(), verifier: oauth2.GenerateVerifier(), created: time.Now()}
	a.mu.Lock()
	for k, v := range s.pending {
		if time.Since(v.created) > pendingTTL {
			delete(s.pending, k)
		}
	}
	if len(s.pending) >= 20 {
		a.mu.Unlock()
		errorPage(w, http.StatusTooManyRequests, "Too many sign-ins are in progress in this browser: finish one, or wait ten minutes.")
		return
	}
	s.pending[state] = p
	a.mu.Unlock()
	opts := []oauth2.AuthCodeOption{oidc.Nonce(p.nonce), oauth2.S256ChallengeOption(p.verifier)}
	if connector != "" {
		opts = append(opts, oauth2.SetAuthURLParam("connector_id", connector))
	}
	http.Redirect(w, r, a.oauth.AuthCodeURL(state, opts...), http.StatusFound)
}

func (a *App) knows(id string) bool {
	for _, c := range a.cfg.Connectors {
		if c.ID == id {
			return true
		}
	}
	return false
}

// callback finishes the authorization request: exchanges the code with
// its PKCE verifier and verifies the ID token.
func (a *App) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s := a.sessionOf(w, r, false)
	if s == nil {
		errorPage(w, http.StatusBadRequest, "This browser has no session at the app (were cookies cleared, or the app restarted?): start the sign-in again from the home page.")
		return
	}
	state := q.Get("state")
	a.mu.Lock()
	p, ok := s.pending[state]
	delete(s.pending, state)
	a.mu.Unlock()
	if !ok || state == "" || time.Since(p.created) > pendingTTL {
		a.finish(w, r, s, "", "The sign-in response does not match a sign-in this browser started (unknown or expired state).")
		return
	}
	if e := q.Get("error"); e != "" {
		msg := "The broker answered " + e
		if d := q.Get("error_description"); d != "" {
			msg += ": " + d
		}
		a.finish(w, r, s, "", msg)
		return
	}
	ctx := a.context(r.Context())
	tok, err := a.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(p.verifier))
	if err != nil {
		a.log.Warn("exampleapp: code exchange failed", "err", errorText(err))
		a.finish(w, r, s, "", "The code exchange failed: "+errorText(err))
		return
	}
	si, err := a.verify(ctx, tok, p.nonce)
	if err != nil {
		a.log.Warn("exampleapp: ID token refused", "err", err)
		a.finish(w, r, s, "", "The ID token did not verify: "+err.Error())
		return
	}
	a.mu.Lock()
	s.tokens = si
	a.mu.Unlock()
	a.finish(w, r, s, "Signed in: the ID token verified.", "")
}

// verify checks the ID token of a token response. nonce is "" after a
// refresh (the new ID token then carries the original nonce, or none).
func (a *App) verify(ctx context.Context, tok *oauth2.Token, nonce string) (*signedIn, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("the token response has no id_token")
	}
	idt, err := a.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return nil, errors.New("the nonce does not match this sign-in")
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
	return &signedIn{token: tok, rawID: raw, claims: claims, when: time.Now()}, nil
}

// refresh uses the refresh token and shows the new ID token's claims.
func (a *App) refresh(w http.ResponseWriter, r *http.Request) {
	s := a.postSession(w, r)
	if s == nil {
		return
	}
	a.mu.Lock()
	cur := s.tokens
	a.mu.Unlock()
	if cur == nil || cur.token.RefreshToken == "" {
		a.finish(w, r, s, "", "There is no refresh token: sign in first (with scope offline_access).")
		return
	}
	ctx := a.context(r.Context())
	old := *cur.token
	old.Expiry = time.Now().Add(-time.Minute) // force the refresh
	tok, err := a.oauth.TokenSource(ctx, &old).Token()
	if err != nil {
		a.finish(w, r, s, "", "The refresh failed: "+errorText(err))
		return
	}
	si, err := a.verify(ctx, tok, "")
	if err != nil {
		a.finish(w, r, s, "", "The refreshed ID token did not verify: "+err.Error())
		return
	}
	if prev, ok := cur.claims["sub"]; !ok || prev != si.claims["sub"] {
		a.finish(w, r, s, "", "The refreshed ID token is for another subject.")
		return
	}
	si.refreshed = cur.refreshed + 1
	a.mu.Lock()
	s.tokens = si
	a.mu.Unlock()
	a.finish(w, r, s, "Refreshed: a new access token, refresh token and ID token.", "")
}

// logout forgets the tokens and sends the browser to the broker's
// end_session_endpoint, which comes back to the home page.
func (a *App) logout(w http.ResponseWriter, r *http.Request) {
	s := a.postSession(w, r)
	if s == nil {
		return
	}
	state := randomToken()
	a.mu.Lock()
	cur := s.tokens
	s.tokens = nil
	s.logout = state
	a.mu.Unlock()
	if cur == nil || a.endSession == "" {
		a.finish(w, r, s, "Signed out of the app.", "")
		return
	}
	u, err := url.Parse(a.endSession)
	if err != nil {
		a.finish(w, r, s, "", "The broker's end_session_endpoint is not a URL.")
		return
	}
	v := u.Query()
	v.Set("id_token_hint", cur.rawID)
	v.Set("post_logout_redirect_uri", a.PostLogoutRedirectURL())
	v.Set("state", state)
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// postSession returns the session of a form POST whose CSRF token
// matches, or writes the error.
func (a *App) postSession(w http.ResponseWriter, r *http.Request) *session {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	s := a.sessionOf(w, r, false)
	if s == nil {
		errorPage(w, http.StatusBadRequest, "This browser has no session at the app (were cookies cleared, or the app restarted?).")
		return nil
	}
	if subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) != 1 {
		errorPage(w, http.StatusBadRequest, "This form has expired: go back to the home page and try again.")
		return nil
	}
	return s
}

// finish shows a notice or an error on the home page (post/redirect/get).
func (a *App) finish(w http.ResponseWriter, r *http.Request, s *session, notice, errMsg string) {
	a.mu.Lock()
	s.notice, s.errMsg = notice, errMsg
	a.mu.Unlock()
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (a *App) context(ctx context.Context) context.Context {
	if a.cfg.HTTPClient != nil {
		return context.WithValue(ctx, oauth2.HTTPClient, a.cfg.HTTPClient)
	}
	return ctx
}

// errorText is an OAuth error as a line for the page (the token endpoint's
// error and description, without the response body).
func errorText(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode != "" {
		if re.ErrorDescription != "" {
			return re.ErrorCode + ": " + re.ErrorDescription
		}
		return re.ErrorCode
	}
	return err.Error()
}

// claimRow is one line of the claims table.
type claimRow struct {
	Name, Value, Meaning string
}

var claimMeanings = map[string]string{
	"iss": "issuer", "sub": "the broker's stable user id", "aud": "audience (this app)",
	"exp": "expires", "iat": "issued at", "auth_time": "when the user signed in",
	"nonce": "this sign-in's nonce", "at_hash": "access token hash",
	"idp": "connector used to sign in", "name": "nickname", "picture": "avatar",
	"phone_number": "verified phone number", "phone_number_verified": "phone verified",
	"rat": "requested at", "jti": "token id", "sid": "session id",
}

func claimRows(claims map[string]any) []claimRow {
	keys := make([]string, 0, len(claims))
	for k := range claims {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	rows := make([]claimRow, 0, len(keys))
	for _, k := range keys {
		v := claims[k]
		var text string
		switch x := v.(type) {
		case string:
			text = x
		case float64:
			text = fmt.Sprint(x)
			if k == "exp" || k == "iat" || k == "auth_time" || k == "rat" {
				text = fmt.Sprintf("%.0f (%s)", x, time.Unix(int64(x), 0).UTC().Format(time.RFC3339))
			}
		default:
			b, _ := json.Marshal(x)
			text = string(b)
		}
		rows = append(rows, claimRow{Name: k, Value: text, Meaning: claimMeanings[k]})
	}
	return rows
}

func prettyJSON(v any) string {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return ""
	}
	return string(b)
}

type pageData struct {
	Connectors   []Connector
	Issuer       string
	Account      string
	CSRF         string
	Notice       string
	Error        string
	SignedIn     bool
	Name         string // the name claim, if any
	Picture      string // the picture claim, if any
	IdP          string // the connector of the sign-in
	Claims       []claimRow
	RawClaims    string
	Refreshed    int
	HasRefresh   bool
	AccessExpiry string
	When         string
}

func render(w http.ResponseWriter, status int, data pageData) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	// The app's pages load nothing from anywhere: inline style only,
	// images (avatars) from wherever the provider serves them.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' http: https: data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = pageTmpl.ExecuteTemplate(w, "home", data)
}

// errorPage is the app's own error page: what went wrong and the way
// back to the home page, never a bare line of text.
func errorPage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	_ = pageTmpl.ExecuteTemplate(w, "error", struct {
		Status  int
		Title   string
		Message string
	}{status, http.StatusText(status), msg})
}

var pageTmpl = template.Must(template.New("page").Parse(`
{{define "head"}}<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<style>
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI","PingFang SC","Noto Sans CJK SC",sans-serif;color:#1f2328;background:#f6f7f9}
.top{background:#1f2a44;color:#fff}
.top div{max-width:60em;margin:0 auto;padding:.7em 1em;display:flex;align-items:center;gap:.8em;flex-wrap:wrap}
.logo{width:30px;height:30px;border-radius:8px;background:#f0b429;color:#1f2a44;font-weight:800;display:grid;place-items:center}
.top strong{font-size:17px}.top small{color:#c9d1e3}
main{max-width:60em;margin:0 auto;padding:1em}
.card{background:#fff;border:1px solid #dfe3ea;border-radius:10px;padding:1em 1.2em;margin:0 0 1em}
h1{font-size:22px;margin:.1em 0 .4em}h2{font-size:17px;margin:.2em 0 .6em}
.buttons{display:flex;flex-wrap:wrap;gap:.5em;margin:.4em 0}
.buttons a,.buttons button{display:inline-flex;align-items:center;gap:.4em;padding:.55em 1em;border:1px solid #b7c0cf;border-radius:8px;background:#fff;color:#1f2328;text-decoration:none;font:inherit;cursor:pointer}
.buttons a:hover,.buttons button:hover{background:#eef2ff;border-color:#5b6fd6}
.buttons .primary{background:#2f45b5;border-color:#2f45b5;color:#fff}.buttons .primary:hover{background:#24379a}
a:focus-visible,button:focus-visible{outline:3px solid #f0b429;outline-offset:2px}
.notice{background:#e8f7ee;border:1px solid #8fd0a8;padding:.6em .8em;border-radius:8px;margin:0 0 1em}
.error{background:#fdecec;border:1px solid #e6a3a3;padding:.6em .8em;border-radius:8px;margin:0 0 1em}
.who{display:flex;align-items:center;gap:.8em}.who img{width:48px;height:48px;border-radius:8px;background:#dfe3ea}
.who .name{font-size:18px;font-weight:600}.muted{color:#57606a;font-size:13px}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #e5e8ee;padding:.35em .5em;text-align:left;vertical-align:top}
td.v{font-family:ui-monospace,monospace;word-break:break-all}
pre{background:#f3f4f6;padding:1em;overflow:auto;border-radius:8px}form{display:inline}
details summary{cursor:pointer;color:#2f45b5}
code{font-family:ui-monospace,monospace;font-size:.92em}
</style>{{end}}

{{define "bar"}}<header class="top"><div><span class="logo" aria-hidden="true">E</span><strong>Example App</strong><small>a relying party of the Qiao demo</small></div></header>{{end}}

{{define "home"}}<!DOCTYPE html>
<html lang="en"><head>{{template "head"}}<title>Example App · Qiao demo</title></head>
<body>
{{template "bar"}}
<main>
{{if .Notice}}<p class="notice" role="status" data-notice>{{.Notice}}</p>{{end}}
{{if .Error}}<p class="error" role="alert" data-error>{{.Error}}</p>{{end}}
{{if .SignedIn}}
<section class="card" aria-labelledby="signed-in">
<div class="who">{{if .Picture}}<img src="{{.Picture}}" alt="">{{end}}<div><h1 id="signed-in" class="name">{{if .Name}}{{.Name}}{{else}}Signed in{{end}}</h1>
<p class="muted">through <code>{{.IdP}}</code> · signed in or refreshed at {{.When}}; the access token expires at {{.AccessExpiry}}.{{if .Refreshed}} Refreshed {{.Refreshed}} time(s).{{end}}</p></div></div>
<div class="buttons">
{{if .HasRefresh}}<form method="post" action="/refresh"><input type="hidden" name="csrf" value="{{.CSRF}}"><button type="submit" data-action="refresh">Refresh tokens</button></form>{{end}}
<a href="{{.Account}}" data-action="account">Manage bound accounts</a>
<form method="post" action="/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><button type="submit" class="primary" data-action="logout">Log out</button></form>
</div>
</section>
<section class="card" aria-labelledby="claims">
<h2 id="claims">The verified ID token's claims</h2>
<table data-claims>
<tr><th>Claim</th><th>Value</th><th>Meaning</th></tr>
{{range .Claims}}<tr data-claim="{{.Name}}"><td><code>{{.Name}}</code></td><td class="v">{{.Value}}</td><td class="muted">{{.Meaning}}</td></tr>
{{end}}</table>
<details><summary>The same claims as JSON</summary>
<pre data-raw-claims>{{.RawClaims}}</pre></details>
</section>
{{else}}
<section class="card" aria-labelledby="sign-in">
<h1 id="sign-in">Sign in</h1>
<div class="buttons">
{{range .Connectors}}<a href="/login?connector={{.ID}}" data-login="{{.ID}}">Sign in with {{.Name}}</a>
{{end}}<a class="primary" href="/login" data-login="">Choose at the broker…</a>
</div>
<p class="muted">Each button is an authorization request with <code>connector_id</code>; the last one has none, so the broker shows its chooser.</p>
</section>
<section class="card">
<p class="muted">This app uses go-oidc and x/oauth2 (authorization code + PKCE) against the Qiao broker at <code>{{.Issuer}}</code>.
The broker's account page: <a href="{{.Account}}">{{.Account}}</a>.</p>
</section>
{{end}}
</main>
</body></html>
{{end}}

{{define "error"}}<!DOCTYPE html>
<html lang="en"><head>{{template "head"}}<title>{{.Title}} · Example App</title></head>
<body data-app-error="{{.Status}}">
{{template "bar"}}
<main>
<section class="card">
<h1>{{.Title}}</h1>
<p class="error" role="alert" data-error>{{.Message}}</p>
<div class="buttons"><a class="primary" href="/" data-action="home">Back to the Example App</a></div>
</section>
</main>
</body></html>
{{end}}
`))
