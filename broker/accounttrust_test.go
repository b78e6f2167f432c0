package broker_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/internal/qiaotest"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

// miniEnv is a broker with the alpha and beta web connectors and the mini
// mini-program connector.
func miniEnv(t *testing.T, now func() time.Time) *env {
	code := &fakeCode{used: map[string]bool{}}
	o := mini(code)
	o.now = now
	return newEnv(t, o)
}

// identitiesOf lists the connector ids bound to the user, through the API.
func identitiesOf(t *testing.T, api apiClient) []string {
	t.Helper()
	st, me := api.do("GET", "/api/v1/me", "")
	if st != 200 {
		t.Fatalf("GET /api/v1/me: %d %v", st, me)
	}
	var out []string
	list, _ := me["identities"].([]any)
	for _, x := range list {
		m, _ := x.(map[string]any)
		id, _ := m["connector_id"].(string)
		out = append(out, id)
	}
	return out
}

func TestAccountScopeOnlyForClientsWithAccountAPI(t *testing.T) {
	e := miniEnv(t, nil)
	// At /auth: invalid_scope back to the client.
	r := e.rp("second", "second-secret-0123456789abcdef0123456789", "https://second.example/cb", "openid", "account")
	q := r.authorize(e.newBrowser(), r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha")))
	if q.Get("error") != "invalid_scope" {
		t.Fatalf("/auth with scope account for a client without account_api: %v", q)
	}
	// At the token exchange: invalid_scope, and WeChat is not called.
	resp, m := e.exchange("second", "second-secret-0123456789abcdef0123456789", "alice:1", "openid account")
	if resp.StatusCode != 400 || m["error"] != "invalid_scope" {
		t.Fatalf("token exchange with scope account for a client without account_api: %d %v", resp.StatusCode, m)
	}
	// The refused exchange did not spend the code at WeChat.
	e.miniToken("web", "web-secret-0123456789abcdef0123456789", "alice:1", "openid account")
	// A client with account_api gets it, and discovery lists it.
	tk := e.webRP(accountScopes...).login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	if sc, _ := tk.token.Extra("scope").(string); !strings.Contains(sc, "account") {
		t.Fatalf("granted scope %q lacks account", sc)
	}
	var disco struct {
		Scopes []string `json:"scopes_supported"`
	}
	dr := e.newBrowser().get(e.issuer + "/.well-known/openid-configuration")
	defer dr.Body.Close()
	_ = json.NewDecoder(dr.Body).Decode(&disco)
	if !strings.Contains(strings.Join(disco.Scopes, " "), "account") {
		t.Fatalf("scopes_supported = %v, want account listed", disco.Scopes)
	}
}

// TestAnotherAppsTokenCannotChangeAliceAccounts is the attack of issue 8
// item 1: tokens that should not be able to bind or unbind cannot, and
// nothing changes.
func TestAnotherAppsTokenCannotChangeAliceAccounts(t *testing.T) {
	clk := &clock{}
	e := miniEnv(t, clk.Now)
	// Alice has alpha and beta (bound through the first-party app).
	web := e.webRP(accountScopes...)
	br := e.newBrowser()
	alice := web.login(br, oauth2.SetAuthURLParam("connector_id", "alpha"))
	owner := apiClient{e: e, token: alice.token.AccessToken}
	a := &accountBrowser{t: t, e: e, br: br}
	a.get("/account")
	if b := a.post("/account/bind", url.Values{"connector_id": {"beta"}}); !strings.Contains(b, `data-identity="beta"`) {
		t.Fatalf("bind beta:\n%s", b)
	}
	want := "alpha beta"

	// Client B (no account_api): its token for Alice has no account scope.
	second := e.rp("second", "second-secret-0123456789abcdef0123456789", "https://second.example/cb").login(br)
	b := apiClient{e: e, token: second.token.AccessToken}
	for _, req := range []struct{ method, path, body string }{
		{"GET", "/api/v1/me", ""},
		{"POST", "/api/v1/me/identities", `{"connector_id":"mini","code":"mallory:1"}`},
		{"DELETE", "/api/v1/me/identities/beta", ""},
		{"DELETE", "/api/v1/me/sessions", ""},
	} {
		st, m, hdr := b.doHeader(req.method, req.path, req.body)
		if st != 403 || m["error"] != "insufficient_scope" || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="insufficient_scope", scope="account"`) {
			t.Errorf("%s %s with client B's token: %d %v %q", req.method, req.path, st, m, hdr.Get("WWW-Authenticate"))
		}
	}

	// A first-party client with a fresh sign-in that may not use the
	// connector: 403.
	onlyAlpha := e.rp("onlyalpha", "onlyalpha-secret-0123456789abcdef0123456789", "https://alpha.example/cb", accountScopes...).
		login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	oa := apiClient{e: e, token: onlyAlpha.token.AccessToken}
	if st, m := oa.do("POST", "/api/v1/me/identities", `{"connector_id":"mini","code":"mallory:3"}`); st != 400 || m["error"] != "invalid_request" {
		t.Errorf("bind of a connector the client may not use: %d %v", st, m)
	}
	if st, m := oa.do("DELETE", "/api/v1/me/identities/beta", ""); st != 403 || m["error"] != "access_denied" {
		t.Errorf("unbind of a connector the client may not use: %d %v", st, m)
	}

	// A first-party token whose sign-in is too old: RFC 9470 step-up.
	clk.Advance(20 * time.Minute)
	for _, req := range []struct{ method, path, body string }{
		{"POST", "/api/v1/me/identities", `{"connector_id":"mini","code":"mallory:2"}`},
		{"DELETE", "/api/v1/me/identities/beta", ""},
	} {
		st, m, hdr := owner.doHeader(req.method, req.path, req.body)
		h := hdr.Get("WWW-Authenticate")
		if st != 401 || m["error"] != "insufficient_user_authentication" || m["max_age"] != float64(900) ||
			!strings.Contains(h, `error="insufficient_user_authentication"`) || !strings.Contains(h, "max_age=900") {
			t.Errorf("%s %s with an old sign-in: %d %v %q", req.method, req.path, st, m, h)
		}
	}
	// A refreshed token keeps the old sign-in time.
	refreshed, err := web.refresh(alice.token.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if st, m := (apiClient{e: e, token: refreshed.token.AccessToken}).do("DELETE", "/api/v1/me/identities/beta", ""); st != 401 {
		t.Errorf("refreshed token with an old sign-in: %d %v", st, m)
	}

	// Nothing changed: Alice still has alpha and beta, and no mini.
	if got := strings.Join(identitiesOf(t, oa), " "); got != want {
		t.Fatalf("Alice's identities = %q, want %q", got, want)
	}
}

// doHeader is do that also returns the response headers.
func (a apiClient) doHeader(method, path, body string) (int, map[string]any, http.Header) {
	a.e.t.Helper()
	var b any
	if body != "" {
		b = body
	}
	p := a.e.Bearer(a.e.t, method, path, a.token, b)
	return p.Status, p.JSON(), p.Header
}

func TestAccessTokenInURLQueryIsRefused(t *testing.T) {
	e := miniEnv(t, nil)
	tk := e.webRP(accountScopes...).login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	tok := tk.token.AccessToken
	for _, path := range []string{"/userinfo", "/api/v1/me"} {
		resp := e.newBrowser().get(e.issuer + path + "?access_token=" + url.QueryEscape(tok))
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		resp.Body.Close()
		if resp.StatusCode != 400 || m["error"] != "invalid_request" {
			t.Errorf("%s?access_token=: %d %v", path, resp.StatusCode, m)
		}
	}
	// The header works on both; the form body on userinfo (RFC 6750 §2.2).
	for _, path := range []string{"/userinfo", "/api/v1/me"} {
		if st, m := (apiClient{e: e, token: tok}).do("GET", path, ""); st != 200 {
			t.Errorf("%s with the header: %d %v", path, st, m)
		}
	}
	if resp, m := e.postForm("/userinfo", url.Values{"access_token": {tok}}, "", ""); resp.StatusCode != 200 || m["sub"] == nil {
		t.Errorf("POST /userinfo with the token in the body: %d %v", resp.StatusCode, m)
	}
}

func TestAccountAPIShowsProfilesOnlyWithProfileScope(t *testing.T) {
	e := miniEnv(t, nil)
	for _, tc := range []struct {
		scopes  []string
		profile bool
	}{
		{[]string{"openid", "account"}, false},
		{[]string{"openid", "profile", "account"}, true},
	} {
		tk := e.webRP(tc.scopes...).login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
		st, me := (apiClient{e: e, token: tk.token.AccessToken}).do("GET", "/api/v1/me", "")
		ids, _ := me["identities"].([]any)
		if st != 200 || len(ids) != 1 {
			t.Fatalf("%v: %d %v", tc.scopes, st, me)
		}
		id, _ := ids[0].(map[string]any)
		hasName := me["name"] != nil || me["picture"] != nil
		idProfile := id["display_name"] != "" || id["picture"] != ""
		if hasName != tc.profile || idProfile != tc.profile {
			t.Errorf("%v: profile shown = %v/%v, want %v: %v", tc.scopes, hasName, idProfile, tc.profile, me)
		}
	}
}

// TestUnbindRevokesSessionsAndTokensOfThatIdentity: what came through an
// unbound identity stops working at once; what came through another
// identity of the same user keeps working.
func TestUnbindRevokesSessionsAndTokensOfThatIdentity(t *testing.T) {
	e := miniEnv(t, nil)
	web := e.webRP(accountScopes...)
	viaAlpha := e.accountBrowser()
	alpha := web.login(viaAlpha.br, oauth2.SetAuthURLParam("connector_id", "alpha"))
	viaAlpha.get("/account")
	if b := viaAlpha.post("/account/bind", url.Values{"connector_id": {"beta"}}); !strings.Contains(b, `data-identity="beta"`) {
		t.Fatalf("bind beta:\n%s", b)
	}
	// SSO through the alpha session to another app: also through alpha.
	ssoAlpha := e.rp("second", "second-secret-0123456789abcdef0123456789", "https://second.example/cb").login(viaAlpha.br)
	viaBeta := e.accountBrowser()
	beta := web.login(viaBeta.br, oauth2.SetAuthURLParam("connector_id", "beta"))
	if beta.idToken.Subject != alpha.idToken.Subject {
		t.Fatal("beta is not the same user")
	}

	if st, m := (apiClient{e: e, token: beta.token.AccessToken}).do("DELETE", "/api/v1/me/identities/alpha", ""); st != 204 {
		t.Fatalf("unbind alpha: %d %v", st, m)
	}
	for name, tok := range map[string]string{"alpha access token": alpha.token.AccessToken, "SSO access token": ssoAlpha.token.AccessToken} {
		if st, _ := (apiClient{e: e, token: tok}).do("GET", "/userinfo", ""); st != 401 {
			t.Errorf("%s after unbinding alpha: %d, want 401", name, st)
		}
	}
	if _, err := web.refresh(alpha.token.RefreshToken); oauthErrorOf(err) != "invalid_grant" {
		t.Errorf("alpha refresh token after unbinding alpha: %v, want invalid_grant", err)
	}
	if b := viaAlpha.get("/account"); strings.Contains(b, "data-user-id") {
		t.Error("the browser session through alpha survived the unbind")
	}
	// Beta's session and tokens are untouched.
	if b := viaBeta.get("/account"); !strings.Contains(b, "data-user-id") {
		t.Error("the browser session through beta ended")
	}
	if st, _ := (apiClient{e: e, token: beta.token.AccessToken}).do("GET", "/userinfo", ""); st != 200 {
		t.Errorf("beta access token: %d", st)
	}
	if _, err := web.refresh(beta.token.RefreshToken); err != nil {
		t.Errorf("beta refresh token: %v", err)
	}
}

func TestSignOutEverywhere(t *testing.T) {
	e := miniEnv(t, nil)
	web := e.webRP(accountScopes...)
	check := func(what string, pages []*accountBrowser, toks []*tokens) {
		t.Helper()
		for i, p := range pages {
			if b := p.get("/account"); strings.Contains(b, "data-user-id") {
				t.Errorf("%s: browser %d still signed in", what, i)
			}
		}
		for i, tk := range toks {
			if st, _ := (apiClient{e: e, token: tk.token.AccessToken}).do("GET", "/userinfo", ""); st != 401 {
				t.Errorf("%s: access token %d still works: %d", what, i, st)
			}
			if _, err := web.refresh(tk.token.RefreshToken); err == nil {
				t.Errorf("%s: refresh token %d still works", what, i)
			}
		}
	}
	// On the page.
	p1, p2 := e.accountBrowser(), e.accountBrowser()
	t1, t2 := web.login(p1.br, oauth2.SetAuthURLParam("connector_id", "alpha")), web.login(p2.br, oauth2.SetAuthURLParam("connector_id", "alpha"))
	p1.get("/account")
	p1.post("/account/signout-everywhere", url.Values{"csrf": {"forged"}})
	if b := p1.get("/account"); !strings.Contains(b, "data-user-id") {
		t.Fatal("a forged sign-out-everywhere ended the session")
	}
	if st, _ := (apiClient{e: e, token: t1.token.AccessToken}).do("GET", "/userinfo", ""); st != 200 {
		t.Fatalf("a forged sign-out-everywhere revoked tokens: %d", st)
	}
	if b := p1.post("/account/signout-everywhere", url.Values{}); !strings.Contains(b, `data-status="signed_out_everywhere"`) {
		t.Fatalf("sign out everywhere:\n%s", b)
	}
	check("after the page's sign out everywhere", []*accountBrowser{p1, p2}, []*tokens{t1, t2})

	// Through the API.
	p3 := e.accountBrowser()
	t3, t4 := web.login(p3.br, oauth2.SetAuthURLParam("connector_id", "alpha")), web.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	if st, m := (apiClient{e: e, token: t4.token.AccessToken}).do("DELETE", "/api/v1/me/sessions", ""); st != 204 {
		t.Fatalf("DELETE /api/v1/me/sessions: %d %v", st, m)
	}
	check("after the API's sign out everywhere", []*accountBrowser{p3}, []*tokens{t3, t4})
}

// TestReauthAsAnotherPersonIsRefused: the fresh sign-in the account page
// asks for must be the same person; anyone else (an existing user or a
// new identity) is refused, the session stays, no user is created and the
// pending action is not done.
func TestReauthAsAnotherPersonIsRefused(t *testing.T) {
	clk := &clock{}
	e := miniEnv(t, clk.Now)
	// Bob exists.
	e.fakes["alpha"].setPerson("bob")
	e.webRP().login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	e.fakes["alpha"].setPerson("alice")
	a := e.accountBrowser()
	body := a.get("/account/login?connector_id=alpha")
	aliceID := qiaotest.Between(body, `data-user-id>`, `<`)
	if b := a.post("/account/bind", url.Values{"connector_id": {"beta"}}); !strings.Contains(b, `data-identity="beta"`) {
		t.Fatalf("bind beta:\n%s", b)
	}
	users := countUsers(t, e)

	clk.Advance(20 * time.Minute)
	for _, person := range []string{"bob", "newcomer"} {
		b := a.post("/account/unbind", url.Values{"connector_id": {"beta"}})
		if !strings.Contains(b, `data-reauth-with="alpha"`) {
			t.Fatalf("no re-authentication offered:\n%s", b)
		}
		e.fakes["alpha"].setPerson(person)
		b = a.post("/account/reauth", url.Values{"connector_id": {"alpha"}, "action": {"unbind"}, "target": {"beta"}})
		if !strings.Contains(b, `data-error="reauth_other_person"`) || strings.Contains(b, `data-confirm=`) || !strings.Contains(b, `data-reauth-with="alpha"`) {
			t.Fatalf("re-authentication as %s was not refused:\n%s", person, b)
		}
		if got := qiaotest.Between(b, `data-user-id>`, `<`); got != aliceID {
			t.Fatalf("after re-authentication as %s the page shows user %q, want alice %q", person, got, aliceID)
		}
		if !strings.Contains(b, `data-identity="beta"`) {
			t.Fatalf("the pending unbind happened after re-authentication as %s", person)
		}
		// The session is still alice's, and still old: unbinding still asks.
		if b := a.post("/account/unbind", url.Values{"connector_id": {"beta"}}); !strings.Contains(b, `data-error="reauth"`) {
			t.Fatalf("the refused re-authentication refreshed the session:\n%s", b)
		}
	}
	if got := countUsers(t, e); got != users {
		t.Fatalf("users: %d after refused re-authentications, want %d", got, users)
	}
}

// TestReauthOffersOnlyOwnConnectorsAndResumesBind: a bind with an old
// sign-in asks for a fresh one with the user's own identities only, then
// offers the same bind again.
func TestReauthOffersOnlyOwnConnectorsAndResumesBind(t *testing.T) {
	clk := &clock{}
	e := miniEnv(t, clk.Now)
	a := e.accountBrowser()
	a.get("/account/login?connector_id=alpha")
	clk.Advance(20 * time.Minute)
	b := a.post("/account/bind", url.Values{"connector_id": {"beta"}})
	if !strings.Contains(b, `data-error="reauth"`) || !strings.Contains(b, `data-reauth-with="alpha"`) || strings.Contains(b, `data-reauth-with="beta"`) {
		t.Fatalf("re-authentication before bind:\n%s", b)
	}
	calls := e.fakes["beta"].calls.Load()
	// beta is not one of the user's identities: it cannot be used to re-authenticate.
	if b := a.post("/account/reauth", url.Values{"connector_id": {"beta"}, "action": {"bind"}, "target": {"beta"}}); !strings.Contains(b, `data-error="unknown_connector"`) {
		t.Fatalf("re-authentication with a connector not bound to the user:\n%s", b)
	}
	if e.fakes["beta"].calls.Load() != calls {
		t.Fatal("re-authentication with an unbound connector reached the provider")
	}
	b = a.post("/account/reauth", url.Values{"connector_id": {"alpha"}, "action": {"bind"}, "target": {"beta"}})
	if !strings.Contains(b, `data-confirm="bind:beta"`) {
		t.Fatalf("the bind is not offered again after re-authentication:\n%s", b)
	}
	if b := a.post("/account/bind", url.Values{"connector_id": {"beta"}}); !strings.Contains(b, `data-status="bound_ok"`) || !strings.Contains(b, `data-identity="beta"`) {
		t.Fatalf("bind after re-authentication:\n%s", b)
	}
}

// countUsers counts the users in the env's SQLite file.
func countUsers(t *testing.T, e *env) int {
	t.Helper()
	store, err := sqlite.Open(context.Background(), e.dbPath())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	users, err := store.ListUsers(context.Background(), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return len(users)
}

// TestReauthOffersTheIdentityBeingUnboundWhenNoOtherCanSignIn: a person
// whose only other identity is a mini-program one can still re-authenticate
// (with the identity being unbound) rather than be stuck.
func TestReauthOffersTheIdentityBeingUnboundWhenNoOtherCanSignIn(t *testing.T) {
	clk := &clock{}
	e := miniEnv(t, clk.Now)
	a := e.accountBrowser()
	tk := e.webRP(accountScopes...).login(a.br, oauth2.SetAuthURLParam("connector_id", "alpha"))
	if st, m := (apiClient{e: e, token: tk.token.AccessToken}).do("POST", "/api/v1/me/identities", `{"connector_id":"mini","code":"alice:1"}`); st != 201 {
		t.Fatalf("bind mini: %d %v", st, m)
	}
	a.get("/account")
	clk.Advance(20 * time.Minute)
	b := a.post("/account/unbind", url.Values{"connector_id": {"alpha"}})
	if !strings.Contains(b, `data-reauth-with="alpha"`) || strings.Contains(b, `data-reauth-with="beta"`) {
		t.Fatalf("re-authentication before unbinding alpha (the only web identity):\n%s", b)
	}
}
