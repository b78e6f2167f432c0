package e2e_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// upstreamOf is a qiaotest world whose only connector is its Weibo
// simulator and whose only client is downstream-qiao, the downstream
// broker at downstreamIssuer.
func upstreamOf(t *testing.T, downstreamIssuer string) *qiaotest.World {
	return qiaotest.Start(t, qiaotest.WithConfig(func(c *qiaotest.Config) {
		c.Secret = "upstream-secret-upstream-secret-0123456789"
		c.Connectors = []qiaotest.Connector{qiaotest.Weibo("weibo", "")}
		c.Clients = []qiaotest.Client{{
			ID: "downstream-qiao", Secret: "downstream-client-secret-0123456789",
			RedirectURIs: []string{downstreamIssuer + "/callback/upstream"},
		}}
	}))
}

// downstreamOf is a qiaotest world, served on ln, whose only connector
// is an oidc connector to the provider at upstreamIssuer and whose only
// client is the app at http://rp.invalid.
func downstreamOf(t *testing.T, ln net.Listener, upstreamIssuer string) *qiaotest.World {
	return qiaotest.Start(t, qiaotest.WithListener(ln), qiaotest.WithConfig(func(c *qiaotest.Config) {
		c.Secret = "downstream-secret-downstream-secret-01234"
		c.Connectors = []qiaotest.Connector{{
			ID: "upstream", Type: "oidc",
			Names: map[string]string{"en": "Company Login", "zh-CN": "公司登录"},
			Config: map[string]any{
				"issuer":        upstreamIssuer,
				"client_id":     "downstream-qiao",
				"client_secret": "downstream-client-secret-0123456789",
				"scopes":        []string{"openid", "profile"},
			},
		}}
		c.Clients = []qiaotest.Client{{
			ID: "app", Secret: "app-secret-0123456789abcdef0123456789",
			RedirectURIs: []string{"http://rp.invalid/cb"}, AllowHTTPHosts: []string{"rp.invalid"},
		}}
	}))
}

// TestOIDCConnectorLogsInThroughAnotherQiao: a second Qiao is the
// upstream of an oidc connector. The person signs in at the downstream
// broker, is sent to the upstream broker (discovery, PKCE, nonce), picks
// a person at the upstream's Weibo simulator, and comes back; the
// downstream ID token is valid and the identity's subject is the
// upstream's sub, the profile its name and picture.
func TestOIDCConnectorLogsInThroughAnotherQiao(t *testing.T) {
	downLn := qiaotest.Listen(t)
	downIssuer := "http://" + downLn.Addr().String()
	up := upstreamOf(t, downIssuer)
	upIssuer := up.Issuer
	down := downstreamOf(t, downLn, upIssuer)

	ctx := oidc.InsecureIssuerURLContext(context.Background(), downIssuer)
	provider, err := oidc.NewProvider(ctx, downIssuer)
	if err != nil {
		t.Fatal(err)
	}
	rp := oauth2.Config{ClientID: "app", ClientSecret: "app-secret-0123456789abcdef0123456789", RedirectURL: "http://rp.invalid/cb",
		Endpoint: provider.Endpoint(), Scopes: []string{oidc.ScopeOpenID, "profile"}}
	verifier := provider.Verifier(&oidc.Config{ClientID: "app"})

	login := func(person string) (claims map[string]any, upstreamPage string) {
		t.Helper()
		state, nonce, pkce := qiaotest.RandString(), qiaotest.RandString(), oauth2.GenerateVerifier()
		authURL := rp.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(pkce))
		br := qiaotest.NewBrowser(func(u *url.URL) bool { return u.Host == "rp.invalid" })
		var visited []string
		br.OnRedirect = func(u *url.URL) { visited = append(visited, u.String()) }
		p, err := br.LoginAt(authURL, person)
		if err != nil {
			t.Fatalf("login of %s: %v (visited %v; downstream log %s)", person, err, visited, down.Logs.String())
		}
		for _, v := range visited {
			if strings.HasPrefix(v, upIssuer+"/auth?") {
				upstreamPage = v
			}
		}
		q, err := p.RedirectQuery()
		if err != nil || q.Get("state") != state || q.Get("code") == "" {
			t.Fatalf("back at the app with %v (%v); downstream log %s", q, err, down.Logs.String())
		}
		tok, err := rp.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(pkce))
		if err != nil {
			t.Fatalf("exchange: %v", err)
		}
		raw, _ := tok.Extra("id_token").(string)
		idt, err := verifier.Verify(ctx, raw)
		if err != nil {
			t.Fatalf("downstream ID token: %v", err)
		}
		if err := idt.Claims(&claims); err != nil || claims["nonce"] != nonce {
			t.Fatalf("claims %v (%v), want nonce %q", claims, err, nonce)
		}
		return claims, upstreamPage
	}

	claims, upstreamAuth := login("alice")
	if upstreamAuth == "" {
		t.Fatal("the browser never went through the upstream broker's /auth")
	}
	a, _ := url.Parse(upstreamAuth)
	for key, want := range map[string]string{"client_id": "downstream-qiao", "code_challenge_method": "S256", "redirect_uri": downIssuer + "/callback/upstream", "scope": "openid profile"} {
		if got := a.Query().Get(key); got != want {
			t.Errorf("upstream authorization request %s = %q, want %q", key, got, want)
		}
	}
	if a.Query().Get("nonce") == "" || a.Query().Get("code_challenge") == "" {
		t.Errorf("upstream authorization request without nonce or code_challenge: %s", upstreamAuth)
	}
	if claims["idp"] != "upstream" {
		t.Errorf("idp = %v, want upstream", claims["idp"])
	}

	// The downstream identity's subject is the upstream's sub: the
	// upstream user who holds alice's Weibo identity.
	sub, _ := claims["sub"].(string)
	ids, err := down.Store.ListIdentities(context.Background(), sub)
	if err != nil || len(ids) != 1 || ids[0].ConnectorID != "upstream" || ids[0].ConnectorType != "oidc" {
		t.Fatalf("downstream identities of %s: %+v (%v), want one of connector upstream", sub, ids, err)
	}
	upstreamSub := ids[0].Subject
	upIDs, err := up.Store.ListIdentities(context.Background(), upstreamSub)
	if err != nil || len(upIDs) != 1 || upIDs[0].ConnectorID != "weibo" {
		t.Fatalf("the downstream identity's subject %q is not an upstream user with alice's Weibo identity: %+v (%v)", upstreamSub, upIDs, err)
	}
	alice := sandbox.DefaultPersons()[0]
	if claims["name"] != alice.Name || ids[0].DisplayName != alice.Name {
		t.Errorf("name = %v (identity %q), want the upstream's %q", claims["name"], ids[0].DisplayName, alice.Name)
	}

	// The same person again is the same downstream user; another person
	// another one.
	again, _ := login("alice")
	if again["sub"] != sub {
		t.Errorf("alice's second login is sub %v, want %v", again["sub"], sub)
	}
	bob, _ := login("bob")
	if bob["sub"] == sub {
		t.Error("bob got alice's sub")
	}

	// The chooser names the connector as configured, per language.
	for lang, want := range map[string]string{"en": "Continue with Company Login", "zh-CN": "使用公司登录登录"} {
		req, _ := http.NewRequest(http.MethodGet, down.Issuer+"/account", nil)
		req.Header.Set("Accept-Language", lang)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), want) {
			t.Errorf("%s account page lacks %q", lang, want)
		}
	}
}

// TestOIDCConnectorRefusesAnUpstreamWithAnotherIssuer: discovery must
// name the configured issuer exactly; a mismatch is the admin's problem
// and no login starts.
func TestOIDCConnectorRefusesAnUpstreamWithAnotherIssuer(t *testing.T) {
	fake := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"issuer":"https://evil.example","authorization_endpoint":"https://evil.example/auth","token_endpoint":"https://evil.example/token","jwks_uri":"https://evil.example/keys"}`))
	}))
	t.Cleanup(fake.Close)
	down := downstreamOf(t, qiaotest.Listen(t), fake.URL)
	br := qiaotest.NewBrowser(func(u *url.URL) bool { return u.Host != strings.TrimPrefix(down.Issuer, "http://") })
	p, err := br.Get(down.Issuer + "/account/login?connector_id=upstream")
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != http.StatusBadGateway {
		t.Fatalf("status %d, want 502 (the provider's configuration)", p.Status)
	}
	if !strings.Contains(down.Logs.String(), "evil.example") {
		t.Errorf("the log does not tell the admin which issuer the discovery named:\n%s", down.Logs.String())
	}
}
