package broker_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

func TestLoginIssuesVerifiableTokens(t *testing.T) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, envOptions{alg: alg})
			r := e.webRP()
			tk := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
			c := tk.claims
			if c["iss"] != e.issuer || c["idp"] != "alpha" || c["name"] != "Nick alice" || c["picture"] != "https://img.example/alice.png" {
				t.Fatalf("claims = %v", c)
			}
			for _, k := range []string{"sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash"} {
				if _, ok := c[k]; !ok {
					t.Errorf("claim %s missing: %v", k, c)
				}
			}
			if strings.HasPrefix(c["sub"].(string), "openid-") {
				t.Errorf("sub %q is the provider's subject, not the broker's", c["sub"])
			}
			if tk.token.RefreshToken == "" {
				t.Error("no refresh token despite offline_access")
			}
			ui, err := e.Provider.UserInfo(t.Context(), oauth2.StaticTokenSource(tk.token))
			if err != nil {
				t.Fatal(err)
			}
			var uc map[string]any
			_ = ui.Claims(&uc)
			if ui.Subject != c["sub"] || uc["name"] != "Nick alice" {
				t.Errorf("userinfo = %v, want sub %v and name", uc, c["sub"])
			}
		})
	}
}

func TestRefreshNeedsOfflineAccess(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP(oidc.ScopeOpenID, "profile")
	tk := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	if tk.token.RefreshToken != "" {
		t.Fatal("refresh token issued without offline_access")
	}
}

func (e *env) introspect(token string) bool {
	e.t.Helper()
	resp, m := e.postForm("/introspect", url.Values{"token": {token}}, "web", "web-secret-0123456789abcdef0123456789")
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("introspect status %d: %v", resp.StatusCode, m)
	}
	return m["active"] == true
}

func TestAuthorizationCodeRedeemedOnce(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()
	a := r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha"))
	q := r.authorize(e.newBrowser(), a)
	code := q.Get("code")
	const n = 12
	var wg sync.WaitGroup
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := r.exchange(code, a.verifier)
			results <- err
		}()
	}
	wg.Wait()
	close(results)
	ok := 0
	for err := range results {
		if err == nil {
			ok++
			continue
		}
		var re *oauth2.RetrieveError
		if !asRetrieve(err, &re) || re.Response.StatusCode >= 500 {
			t.Errorf("a losing redemption failed badly: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d redemptions succeeded, want exactly 1", ok)
	}
	// A later replay fails too.
	if _, err := r.exchange(code, a.verifier); oauthErrorOf(err) != "invalid_grant" {
		t.Fatalf("replay: %v", err)
	}
}

func TestConsentForClientsThatRequireIt(t *testing.T) {
	e := newEnv(t, envOptions{})
	br := e.newBrowser()
	r := e.rp("consent", "consent-secret-0123456789abcdef0123456789", "https://consent.example/cb")
	resp := br.get(r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha")).url)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `data-consent="allow"`) {
		t.Fatalf("expected a consent page, got %d", resp.StatusCode)
	}
	// prompt=none now answers consent_required.
	a := r.authURL(oauth2.SetAuthURLParam("prompt", "none"))
	if got := r.authorize(br, a).Get("error"); got != "consent_required" {
		t.Fatalf("prompt=none before consent: %q", got)
	}
}

func TestProfileComesFromTheLatestRealProfile(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.fakes["beta"].setProfiles(map[string]connectors.Identity{
		"alice":  {Subject: "beta-alice", DisplayName: "微信用户", RealProfile: false},
		"newbie": {Subject: "beta-newbie", DisplayName: "微信用户", RealProfile: false},
	})
	r := e.webRP()
	br := e.newBrowser()
	first := r.login(br, oauth2.SetAuthURLParam("connector_id", "alpha"))
	// Bind beta (a placeholder profile) to the same user via the account page.
	resp := br.get(e.issuer + "/account")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csrf := qiaotest.Between(string(body), `name="csrf" value="`, `"`)
	req := qiaotest.FormRequest(t, e.issuer+"/account/bind", url.Values{"connector_id": {"beta"}, "csrf": {csrf}}, "", "")
	resp, err := br.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Logging in with the placeholder identity keeps the real profile.
	viaBeta := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "beta"))
	if viaBeta.idToken.Subject != first.idToken.Subject || viaBeta.claims["name"] != "Nick alice" {
		t.Fatalf("beta login: sub %s (want %s), name %v", viaBeta.idToken.Subject, first.idToken.Subject, viaBeta.claims["name"])
	}
	// A new alpha nickname, used most recently, wins.
	e.fakes["alpha"].setProfiles(map[string]connectors.Identity{"alice": {Subject: "openid-alice", DisplayName: "Alice 2", Picture: "https://img.example/a2.png", RealProfile: true}})
	again := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	if again.claims["name"] != "Alice 2" || again.claims["picture"] != "https://img.example/a2.png" {
		t.Fatalf("claims after a new nickname: %v", again.claims)
	}
	// A user whose only identity is a placeholder has no name or picture.
	e.fakes["beta"].setPerson("newbie")
	nb := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "beta"))
	if _, ok := nb.claims["name"]; ok {
		t.Fatalf("placeholder-only user has a name: %v", nb.claims)
	}
}

func TestShortStateIsEchoed(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()
	for _, state := range []string{"xyz", "1"} {
		verifier := oauth2.GenerateVerifier()
		u := r.OAuth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("connector_id", "alpha"), oidc.Nonce("n"))
		q := r.authorize(e.newBrowser(), authRequest{url: u, state: state, verifier: verifier})
		if q.Get("code") == "" || q.Get("state") != state {
			t.Fatalf("state %q: got %v", state, q)
		}
		if _, err := r.exchange(q.Get("code"), verifier); err != nil {
			t.Fatalf("state %q: exchange: %v", state, err)
		}
	}
}

func TestEmailScopeIsAcceptedButNotGranted(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP(oidc.ScopeOpenID, "profile", "email")
	tk := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	if _, ok := tk.claims["email"]; ok {
		t.Fatalf("an email claim appeared: %v", tk.claims)
	}
	if scope, _ := tk.token.Extra("scope").(string); strings.Contains(scope, "email") || !strings.Contains(scope, "profile") {
		t.Fatalf("granted scope %q", scope)
	}
	// An unknown scope is still refused.
	bad := e.webRP(oidc.ScopeOpenID, "admin")
	a := bad.authURL(oauth2.SetAuthURLParam("connector_id", "alpha"))
	if q := bad.authorize(e.newBrowser(), a); q.Get("error") != "invalid_scope" {
		t.Fatalf("unknown scope: %v", q)
	}
}

func TestTokensCarryQiaoPrefixes(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()
	a := r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha"))
	q := r.authorize(e.newBrowser(), a)
	if !strings.HasPrefix(q.Get("code"), "qiao_ac_") {
		t.Fatalf("code %q", q.Get("code"))
	}
	tk, err := r.exchange(q.Get("code"), a.verifier)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tk.token.AccessToken, "qiao_at_") || !strings.HasPrefix(tk.token.RefreshToken, "qiao_rt_") {
		t.Fatalf("tokens %q %q", tk.token.AccessToken, tk.token.RefreshToken)
	}
	// A token relabelled with another kind's prefix is not accepted.
	if _, err := r.refresh("qiao_at_" + strings.TrimPrefix(tk.token.RefreshToken, "qiao_rt_")); err == nil {
		t.Fatal("a refresh token relabelled as an access token was accepted")
	}
	if !e.introspect(tk.token.AccessToken) {
		t.Fatal("access token inactive")
	}
}

func TestNonHTTPPicturesAreDropped(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()
	for i, pic := range []string{"javascript:alert(1)", "data:image/png;base64,AAAA", "//evil.example/a.png", "https://user:pw@img.example/a.png", "ftp://img.example/a.png"} {
		person := fmt.Sprintf("p%d", i)
		e.fakes["alpha"].setProfiles(map[string]connectors.Identity{person: {Subject: "s-" + person, DisplayName: "N", Picture: pic, RealProfile: true}})
		e.fakes["alpha"].setPerson(person)
		tk := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
		if got, ok := tk.claims["picture"]; ok {
			t.Errorf("picture %q reached the ID token as %v", pic, got)
		}
	}
	e.fakes["alpha"].setProfiles(nil)
	e.fakes["alpha"].setPerson("good")
	if tk := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha")); tk.claims["picture"] != "https://img.example/good.png" {
		t.Fatalf("a good picture was dropped: %v", tk.claims["picture"])
	}
}

// TestConcurrentRefreshesOfOneTokenNeverFailWith5xx: several requests
// refresh the same token at once (a client retrying, or a thief racing
// it). Exactly one wins; the others are invalid_grant — also those whose
// rotation found the family already revoked by another loser's reuse
// detection — and none is a 5xx.
func TestConcurrentRefreshesOfOneTokenNeverFailWith5xx(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()
	for round := 0; round < 8; round++ {
		tk := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
		const n = 4
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := r.refresh(tk.token.RefreshToken)
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		wins := 0
		for err := range errs {
			if err == nil {
				wins++
			} else if code := oauthErrorOf(err); code != "invalid_grant" {
				t.Fatalf("round %d: a losing refresh got %q (%v)", round, code, err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d refreshes won, want 1", round, wins)
		}
	}
}

// unionFake is a web connector whose identities carry union ids of a
// namespace, linked by default or not (as WeChat's and QQ's).
type unionFake struct {
	*fakeWeb
	ns   string
	link bool
}

func (u unionFake) UnionNamespace() (string, bool) { return u.ns, u.link }

// TestUnionIDLinksPerConnectorConfiguration: the connector's default, the
// deprecated linking key of its namespace and the connector's own
// link_by_unionid, in that order of strength, decide whether two logins
// with one union id are one user.
func TestUnionIDLinksPerConnectorConfiguration(t *testing.T) {
	for _, tc := range []struct {
		name          string
		linking       map[string]bool // the deprecated linking: keys
		linkByUnionID *bool           // each connector's link_by_unionid
		byDefault     bool
		same          bool
	}{
		{"qq default: not linked", nil, nil, false, false},
		{"wechat default: linked", nil, nil, true, true},
		{"deprecated qq_unionid true", map[string]bool{"qq_unionid": true}, nil, false, true},
		{"deprecated qq_unionid false", map[string]bool{"qq_unionid": false}, nil, false, false},
		{"deprecated wechat_unionid false", map[string]bool{"wechat_unionid": false}, nil, true, false},
		{"link_by_unionid true", nil, ptr(true), false, true},
		{"link_by_unionid false beats the deprecated key", map[string]bool{"qq_unionid": true}, ptr(false), false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := "qq"
			if tc.byDefault {
				ns = "wechat"
			}
			config := func(c *qiaotest.Config) {
				c.Linking = tc.linking
				for i := range c.Connectors {
					c.Connectors[i].LinkByUnionID = tc.linkByUnionID
				}
			}
			e := newEnv(t, envOptions{config: config, wrap: func(_ string, f *fakeWeb) any { return unionFake{f, ns, tc.byDefault} }})
			e.fakes["alpha"].setProfiles(map[string]connectors.Identity{"alice": {Subject: "app1-alice", UnionID: "UID-ALICE", DisplayName: "A", RealProfile: true}})
			e.fakes["beta"].setProfiles(map[string]connectors.Identity{"alice": {Subject: "app2-alice", UnionID: "UID-ALICE", DisplayName: "A", RealProfile: true}})
			r := e.webRP()
			one := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
			two := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "beta"))
			if same := one.idToken.Subject == two.idToken.Subject; same != tc.same {
				t.Fatalf("same user = %v, want %v", same, tc.same)
			}
		})
	}
}

func TestLogoutAcceptsAnExpiredIDTokenHint(t *testing.T) {
	e := newEnv(t, envOptions{config: func(c *qiaotest.Config) { extra(c, "tokens", map[string]any{"id_token_ttl": "1s"}) }})
	br := e.newBrowser()
	r := e.webRP()
	tk := r.login(br, oauth2.SetAuthURLParam("connector_id", "alpha"))
	for time.Now().Before(tk.idToken.Expiry.Add(time.Second)) {
		time.Sleep(50 * time.Millisecond) // wait for the hint to expire
	}
	q := url.Values{"id_token_hint": {tk.raw}, "post_logout_redirect_uri": {"http://127.0.0.1:9/bye"}, "state": {"s1"}}
	resp := br.get(e.issuer + "/logout?" + q.Encode())
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "http://127.0.0.1:9/bye?state=s1" {
		t.Fatalf("logout with an expired hint: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}
