package spectest

import (
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/qiaoidp/qiao/internal/qiaotest"
	"golang.org/x/oauth2"
)

func refresh(t *testing.T, s *stack, rt, client, secret string) (int, tokens) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}
	user := client
	if secret == "" {
		form.Set("client_id", client)
		user = ""
	}
	res := s.Post(t, "/token", form, user, secret)
	var tk tokens
	_ = json.Unmarshal([]byte(res.Body), &tk)
	return res.Status, tk
}

func introspect(t *testing.T, s *stack, token string) map[string]any {
	t.Helper()
	res := s.Post(t, "/introspect", url.Values{"token": {token}}, webClient, webSecret)
	if res.Status != 200 {
		t.Fatalf("introspect: %d %s", res.Status, res.Body)
	}
	return res.MustJSON(t)
}

// SPEC: "All OIDC endpoint paths are published in
// {issuer}/.well-known/openid-configuration (authorization, token,
// userinfo, jwks, revocation, introspection, end_session)."
func TestDiscoveryPublishesEveryEndpointUnderTheIssuer(t *testing.T) {
	s := shared
	res := s.Bearer(t, http.MethodGet, "/.well-known/openid-configuration", "", nil)
	if res.Status != 200 {
		t.Fatalf("discovery: %d", res.Status)
	}
	d := res.MustJSON(t)
	if d["issuer"] != s.Issuer {
		t.Errorf("issuer %v, want %s", d["issuer"], s.Issuer)
	}
	for key, path := range map[string]string{
		"authorization_endpoint": "/auth", "token_endpoint": "/token", "userinfo_endpoint": "/userinfo",
		"jwks_uri": "/keys", "revocation_endpoint": "/revoke", "introspection_endpoint": "/introspect",
		"end_session_endpoint": "/logout",
	} {
		t.Run(key, func(t *testing.T) {
			v, _ := d[key].(string)
			if !strings.HasPrefix(v, s.Issuer+"/") {
				t.Fatalf("%s = %q, want a URL under %s", key, v, s.Issuer)
			}
			if v != s.Issuer+path {
				t.Errorf("%s = %q, want %s (README)", key, v, s.Issuer+path)
			}
		})
	}
	if !containsAny(d["code_challenge_methods_supported"], "S256") {
		t.Errorf("code_challenge_methods_supported %v lacks S256", d["code_challenge_methods_supported"])
	}
	for _, gt := range []string{"authorization_code", "refresh_token", tokenExGrant} {
		if !containsAny(d["grant_types_supported"], gt) {
			t.Errorf("grant_types_supported %v lacks %s", d["grant_types_supported"], gt)
		}
	}
}

// SPEC: "Web apps log in with standard OIDC (authorization code + PKCE)
// using any certified OIDC client library" and the ID token claims
// "iss sub aud exp iat auth_time nonce at_hash, idp, with scope profile:
// name picture". Uses go-oidc as the relying party, with an issuer path
// prefix.
func TestGoOIDCRelyingPartySignsInWithPKCE(t *testing.T) {
	s := shared
	ctx := context.Background()
	provider, err := oidc.NewProvider(ctx, s.Issuer)
	if err != nil {
		t.Fatalf("go-oidc discovery: %v", err)
	}
	conf := oauth2.Config{ClientID: webClient, ClientSecret: webSecret, Endpoint: provider.Endpoint(),
		RedirectURL: rpRedirect, Scopes: []string{oidc.ScopeOpenID, "profile", "offline_access"}}
	verifier := oauth2.GenerateVerifier()
	state, nonce := qiaotest.RandString(), qiaotest.RandString()
	authURL := conf.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("connector_id", "weibo"))
	b := s.Browser(desktopUA)
	p := s.follow(t, b, authURL, "p24")
	u, _ := url.Parse(p.Location)
	if u == nil || u.Query().Get("state") != state || u.Query().Get("code") == "" {
		t.Fatalf("callback %q, want a code and state %s", p.Location, state)
	}
	tok, err := conf.Exchange(ctx, u.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: webClient}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verify id_token: %v", err)
	}
	if idt.Nonce != nonce {
		t.Errorf("nonce %q, want %q", idt.Nonce, nonce)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		t.Errorf("at_hash: %v", err)
	}
	var c map[string]any
	if err := idt.Claims(&c); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "idp", "name", "picture"} {
		if _, ok := c[k]; !ok {
			t.Errorf("ID token lacks %q: %v", k, c)
		}
	}
	if c["idp"] != "weibo" || c["name"] != "Person p24" {
		t.Errorf("idp=%v name=%v, want weibo, Person p24", c["idp"], c["name"])
	}
	if sub, _ := c["sub"].(string); sub == "" || sub == s.Weibo.UID("p24") {
		t.Errorf("sub %q must be the broker's own id, not the Weibo uid", sub)
	}
	if h, _ := qiaotest.JWT(t, raw); h["kid"] == nil {
		t.Errorf("ID token header has no kid: %v", h)
	}
	ui, err := provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var uc map[string]any
	_ = ui.Claims(&uc)
	if ui.Subject != idt.Subject || uc["name"] != "Person p24" || uc["picture"] == nil {
		t.Errorf("userinfo %v, want sub %s with name and picture", uc, idt.Subject)
	}
	// The refresh token works through the library too.
	src := conf.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken})
	nt, err := src.Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if nt.RefreshToken == tok.RefreshToken || nt.RefreshToken == "" {
		t.Errorf("refresh token not rotated")
	}
}

// SPEC: "Refresh tokens are issued only with scope `offline_access`; a
// refresh returns a new ID token when `openid` was granted. `idp` stays the
// connector of the original login" and "refresh tokens (rotated on use,
// reuse of an old one revokes the family)".
func TestRefreshTokensRotateAndReuseRevokesTheFamily(t *testing.T) {
	s := shared
	t.Run("no offline_access, no refresh token", func(t *testing.T) {
		b := s.Browser(desktopUA)
		a := qiaotest.NewRawAuth(webClient, rpRedirect, "qq")
		a.Set("scope", "openid profile")
		p := s.follow(t, b, a.URL(s.Issuer), "p08")
		tk := s.redeem(t, a, p, webSecret)
		if tk.RefreshToken != "" || tk.IDToken == "" {
			t.Errorf("refresh_token=%q id_token set=%v, want no refresh token and an ID token", tk.RefreshToken, tk.IDToken != "")
		}
	})
	first, _ := s.webLogin(t, "qq", "p08")
	if first.RefreshToken == "" {
		t.Fatal("no refresh token with offline_access")
	}
	status, second := refresh(t, s, first.RefreshToken, webClient, webSecret)
	if status != 200 {
		t.Fatalf("refresh: %d %+v", status, second)
	}
	t.Run("a refresh returns a new ID token with the original idp", func(t *testing.T) {
		if second.IDToken == "" {
			t.Fatal("no id_token after refresh")
		}
		c0, c1 := claims(t, first.IDToken), claims(t, second.IDToken)
		if c1["idp"] != "qq" || c1["sub"] != c0["sub"] {
			t.Errorf("after refresh idp=%v sub=%v, want qq %v", c1["idp"], c1["sub"], c0["sub"])
		}
	})
	t.Run("the refresh token is rotated", func(t *testing.T) {
		if second.RefreshToken == "" || second.RefreshToken == first.RefreshToken {
			t.Errorf("refresh token %q not rotated", second.RefreshToken)
		}
	})
	t.Run("the access token of the rotated grant is inactive", func(t *testing.T) {
		if got := introspect(t, s, first.AccessToken); got["active"] != false {
			t.Errorf("access token of the rotated refresh token: %v, want inactive", got)
		}
	})
	t.Run("reusing the old refresh token is invalid_grant", func(t *testing.T) {
		status, tk := refresh(t, s, first.RefreshToken, webClient, webSecret)
		if status != http.StatusBadRequest || tk.Error != "invalid_grant" {
			t.Errorf("reuse: %d %q, want 400 invalid_grant", status, tk.Error)
		}
	})
	t.Run("after the reuse the whole family is revoked", func(t *testing.T) {
		status, tk := refresh(t, s, second.RefreshToken, webClient, webSecret)
		if status != http.StatusBadRequest || tk.Error != "invalid_grant" {
			t.Errorf("newest refresh token after reuse: %d %q, want 400 invalid_grant", status, tk.Error)
		}
		if got := introspect(t, s, second.AccessToken); got["active"] != false {
			t.Errorf("newest access token after reuse: %v, want inactive", got)
		}
		if got := introspect(t, s, second.RefreshToken); got["active"] != false {
			t.Errorf("newest refresh token after reuse: %v, want inactive", got)
		}
		res := s.Bearer(t, http.MethodGet, "/userinfo", second.AccessToken, nil)
		if res.Status != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("userinfo with a revoked token: %d %q, want 401 Bearer", res.Status, res.Header.Get("WWW-Authenticate"))
		}
	})
}

// SPEC: "revocation (RFC 7009)".
func TestRevocation(t *testing.T) {
	s := shared
	t.Run("revoking an access token makes it inactive", func(t *testing.T) {
		tk, _ := s.webLogin(t, "weibo", "p09")
		res := s.Post(t, "/revoke", url.Values{"token": {tk.AccessToken}, "token_type_hint": {"access_token"}}, webClient, webSecret)
		if res.Status != 200 {
			t.Fatalf("revoke: %d %s", res.Status, res.Body)
		}
		if got := introspect(t, s, tk.AccessToken); got["active"] != false {
			t.Errorf("after revocation: %v", got)
		}
		if st := s.Bearer(t, http.MethodGet, "/userinfo", tk.AccessToken, nil).Status; st != http.StatusUnauthorized {
			t.Errorf("userinfo after revocation: %d, want 401", st)
		}
	})
	t.Run("revoking a refresh token stops it", func(t *testing.T) {
		tk, _ := s.webLogin(t, "weibo", "p09")
		status := s.Post(t, "/revoke", url.Values{"token": {tk.RefreshToken}}, webClient, webSecret).Status
		if status != 200 {
			t.Fatalf("revoke: %d", status)
		}
		if st, r := refresh(t, s, tk.RefreshToken, webClient, webSecret); st != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("refresh after revocation: %d %q", st, r.Error)
		}
		if got := introspect(t, s, tk.AccessToken); got["active"] != false {
			t.Errorf("the access token of a revoked grant: %v, want inactive", got)
		}
	})
	t.Run("an unknown token answers 200", func(t *testing.T) {
		res := s.Post(t, "/revoke", url.Values{"token": {"not-a-token"}}, webClient, webSecret)
		if res.Status != 200 {
			t.Errorf("revoke of an unknown token: %d %s, want 200 (RFC 7009 2.2)", res.Status, res.Body)
		}
	})
	t.Run("a wrong client secret is invalid_client", func(t *testing.T) {
		res := s.Post(t, "/revoke", url.Values{"token": {"x"}}, webClient, "wrong-secret-wrong-secret-wrong-secret")
		if res.Status != http.StatusUnauthorized || res.MustJSON(t)["error"] != "invalid_client" {
			t.Errorf("revoke with a bad secret: %d %s, want 401 invalid_client", res.Status, res.Body)
		}
	})
}

// SPEC: "Introspection is for authenticated confidential clients; an active
// answer carries `active, sub, client_id, scope, exp, iat, token_type`."
func TestIntrospectionForAuthenticatedConfidentialClients(t *testing.T) {
	s := shared
	tk, _ := s.webLogin(t, "weibo", "p10")
	sub := claims(t, tk.IDToken)["sub"]
	t.Run("an active answer carries the RFC 7662 fields", func(t *testing.T) {
		got := introspect(t, s, tk.AccessToken)
		for _, k := range []string{"active", "sub", "client_id", "scope", "exp", "iat", "token_type"} {
			if _, ok := got[k]; !ok {
				t.Errorf("introspection lacks %q: %v", k, got)
			}
		}
		if got["active"] != true || got["sub"] != sub || got["client_id"] != webClient {
			t.Errorf("introspection %v, want active, sub %v, client_id %s", got, sub, webClient)
		}
		if sc, _ := got["scope"].(string); !strings.Contains(sc, "openid") {
			t.Errorf("scope %q", sc)
		}
	})
	t.Run("client_secret_post works too", func(t *testing.T) {
		res := s.Post(t, "/introspect", url.Values{"token": {tk.AccessToken}, "client_id": {webClient}, "client_secret": {webSecret}}, "", "")
		if res.Status != 200 || res.MustJSON(t)["active"] != true {
			t.Errorf("client_secret_post: %d %s", res.Status, res.Body)
		}
	})
	t.Run("unauthenticated and public callers are refused", func(t *testing.T) {
		for name, try := range map[string]func() int{
			"no client authentication": func() int {
				st := s.Post(t, "/introspect", url.Values{"token": {tk.AccessToken}}, "", "").Status
				return st
			},
			"wrong secret": func() int {
				st := s.Post(t, "/introspect", url.Values{"token": {tk.AccessToken}}, webClient, "nope-nope-nope-nope-nope-nope-nope").Status
				return st
			},
			"public client": func() int {
				st := s.Post(t, "/introspect", url.Values{"token": {tk.AccessToken}, "client_id": {spaClient}}, "", "").Status
				return st
			},
			"public client with HTTP Basic": func() int {
				st := s.Post(t, "/introspect", url.Values{"token": {tk.AccessToken}}, spaClient, "").Status
				return st
			},
			"unknown client": func() int {
				st := s.Post(t, "/introspect", url.Values{"token": {tk.AccessToken}}, "who", "x").Status
				return st
			},
		} {
			if st := try(); st != http.StatusUnauthorized {
				t.Errorf("%s: %d, want 401", name, st)
			}
		}
	})
	t.Run("an unknown token is inactive", func(t *testing.T) {
		if got := introspect(t, s, "ory_at_unknown.unknown"); got["active"] != false {
			t.Errorf("%v", got)
		}
	})
}

// SPEC: "Userinfo returns the same profile claims."
func TestUserinfoReturnsTheProfileClaims(t *testing.T) {
	s := shared
	tk, _ := s.webLogin(t, "qq", "p11")
	c := claims(t, tk.IDToken)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run(method, func(t *testing.T) {
			res := s.Bearer(t, method, "/userinfo", tk.AccessToken, nil)
			if res.Status != 200 {
				t.Fatalf("userinfo: %d %s", res.Status, res.Body)
			}
			u := res.MustJSON(t)
			if u["sub"] != c["sub"] || u["name"] != c["name"] || u["picture"] != c["picture"] || u["name"] != "Person p11" {
				t.Errorf("userinfo %v, ID token %v", u, c)
			}
		})
	}
	t.Run("without profile scope no name", func(t *testing.T) {
		b := s.Browser(desktopUA)
		a := qiaotest.NewRawAuth(webClient, rpRedirect, "qq")
		a.Set("scope", "openid")
		p := s.follow(t, b, a.URL(s.Issuer), "p11")
		tk := s.redeem(t, a, p, webSecret)
		if n, ok := claims(t, tk.IDToken)["name"]; ok {
			t.Errorf("ID token without profile scope has name %v", n)
		}
		if n, ok := s.Bearer(t, http.MethodGet, "/userinfo", tk.AccessToken, nil).MustJSON(t)["name"]; ok {
			t.Errorf("userinfo without profile scope has name %v", n)
		}
	})
	t.Run("no token is 401 with WWW-Authenticate Bearer", func(t *testing.T) {
		res := s.Bearer(t, http.MethodGet, "/userinfo", "", nil)
		if res.Status != http.StatusUnauthorized || !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%d %q", res.Status, res.Header.Get("WWW-Authenticate"))
		}
	})
}

// SPEC: "RP-initiated logout with a valid `id_token_hint` (or `client_id`)
// and a registered `post_logout_redirect_uri` redirects there at once, with
// `state`."
func TestLogoutRedirectsToRegisteredURIWithState(t *testing.T) {
	s := shared
	t.Run("id_token_hint", func(t *testing.T) {
		tk, b := s.webLogin(t, "weibo", "p12")
		state := qiaotest.RandString()
		p := b.StepGet(t, s.Issuer+"/logout?"+url.Values{"id_token_hint": {tk.IDToken}, "post_logout_redirect_uri": {rpLogout}, "state": {state}}.Encode())
		u, _ := url.Parse(p.Location)
		if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, rpLogout) || u.Query().Get("state") != state {
			t.Fatalf("logout: %d Location %q, want %s?state=%s", p.Status, p.Location, rpLogout, state)
		}
		// The session is gone: prompt=none now needs a login.
		a := qiaotest.NewRawAuth(webClient, rpRedirect, "")
		a.Set("prompt", "none")
		p = b.StepGet(t, a.URL(s.Issuer))
		u, _ = url.Parse(p.Location)
		if u == nil || u.Query().Get("error") != "login_required" {
			t.Errorf("prompt=none after logout: %d %q, want login_required", p.Status, p.Location)
		}
	})
	// Issue 8: client_id alone (oauth2-proxy sends nothing else) asks
	// first; the confirmation's form still returns to the client with
	// its state.
	t.Run("client_id", func(t *testing.T) {
		_, b := s.webLogin(t, "weibo", "p12")
		state := qiaotest.RandString()
		p := b.StepGet(t, s.Issuer+"/logout?"+url.Values{"client_id": {webClient}, "post_logout_redirect_uri": {rpLogout}, "state": {state}}.Encode())
		if p.Status != http.StatusOK || !strings.Contains(p.Body, "data-confirm-logout") {
			t.Fatalf("logout with client_id alone: %d Location %q, want the confirmation page", p.Status, p.Location)
		}
		form := url.Values{}
		for _, m := range regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`).FindAllStringSubmatch(p.Body, -1) {
			form.Add(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
		}
		p = b.StepForm(t, http.MethodPost, s.Issuer+"/logout", form)
		u, _ := url.Parse(p.Location)
		if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, rpLogout) || u.Query().Get("state") != state {
			t.Fatalf("logout: %d Location %q, want %s?state=%s", p.Status, p.Location, rpLogout, state)
		}
	})
	t.Run("an unregistered post_logout_redirect_uri is not followed", func(t *testing.T) {
		tk, b := s.webLogin(t, "weibo", "p12")
		p := b.StepGet(t, s.Issuer+"/logout?"+url.Values{"id_token_hint": {tk.IDToken}, "post_logout_redirect_uri": {"https://evil.example.com/"}, "state": {"x"}}.Encode())
		if isRedirect(p.Status) && strings.HasPrefix(p.Location, "https://evil.example.com") {
			t.Fatalf("logout redirected to an unregistered URI: %s", p.Location)
		}
	})
}
