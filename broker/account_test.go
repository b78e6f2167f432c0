package broker_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// fakeCode is a mini-program connector for the tests: code "person:N"
// belongs to person, any code works once, "busy" is a provider outage.
type fakeCode struct {
	mu   sync.Mutex
	used map[string]bool
}

// SubjectTokenType: the token exchange takes wx.login codes for it.
func (f *fakeCode) SubjectTokenType() string {
	return "urn:qiao:params:oauth:token-type:wechat-js-code"
}

func (f *fakeCode) ExchangeCode(_ context.Context, code string) (connectors.Identity, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if code == "busy" {
		return connectors.Identity{}, fmt.Errorf("wechat -1: %w", connectors.ErrUnavailable)
	}
	person, _, ok := strings.Cut(code, ":")
	if !ok || f.used[code] {
		return connectors.Identity{}, fmt.Errorf("40029: %w", connectors.ErrInvalidCode)
	}
	f.used[code] = true
	return connectors.Identity{Subject: "mp-openid-" + person, DisplayName: "微信用户", Secret: []byte("session-key-" + person)}, nil
}

type apiClient struct {
	e     *env
	token string
}

func (a apiClient) do(method, path, body string) (int, map[string]any) {
	a.e.t.Helper()
	status, m, header := a.doHeader(method, path, body)
	if status == http.StatusUnauthorized && header.Get("WWW-Authenticate") == "" {
		a.e.t.Errorf("401 without WWW-Authenticate")
	}
	return status, m
}

// accountScopes are what a first-party app asks for to use the account API.
var accountScopes = []string{"openid", "profile", "offline_access", "account"}

// miniToken signs in through the mini-program token exchange and returns
// the access token.
func (e *env) miniToken(clientID, secret, code, scope string) string {
	e.t.Helper()
	resp, m := e.exchange(clientID, secret, code, scope)
	tok, _ := m["access_token"].(string)
	if resp.StatusCode != 200 || tok == "" {
		e.t.Fatalf("token exchange: %d %v", resp.StatusCode, m)
	}
	return tok
}

// TestAccountAPI is the account API's whole contract for a first-party
// app (changed: its token now asks for the account scope, and unbinding
// the identity the token came through revokes that token).
func TestAccountAPI(t *testing.T) {
	code := &fakeCode{used: map[string]bool{}}
	e := newEnv(t, mini(code))
	r := e.webRP(accountScopes...)
	alice := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	api := apiClient{e: e, token: alice.token.AccessToken}

	st, me := api.do("GET", "/api/v1/me", "")
	if st != 200 || me["sub"] != alice.idToken.Subject || me["name"] != "Nick alice" {
		t.Fatalf("me: %d %v", st, me)
	}
	if ids, _ := me["identities"].([]any); len(ids) != 1 {
		t.Fatalf("identities: %v", me["identities"])
	}
	// Unbinding the only identity is refused.
	if st, m := api.do("DELETE", "/api/v1/me/identities/alpha", ""); st != 409 || m["error"] != "last_identity" {
		t.Fatalf("last identity: %d %v", st, m)
	}
	// Bind a mini-program identity: 201 with the identity object.
	st, m := api.do("POST", "/api/v1/me/identities", `{"connector_id":"mini","code":"alice:1"}`)
	if st != 201 || m["connector_id"] != "mini" || m["type"] != "wechat_miniprogram" || m["bound_at"] == nil {
		t.Fatalf("bind: %d %v", st, m)
	}
	if strings.Contains(fmt.Sprint(m), "session-key") {
		t.Fatal("session_key leaked")
	}
	// Binding it again to the same user: 200.
	if st, _ := api.do("POST", "/api/v1/me/identities", `{"connector_id":"mini","code":"alice:2"}`); st != 200 {
		t.Fatalf("rebind: %d", st)
	}
	// A second mini-program identity for alice (a user has at most one
	// per connector): 409, nothing bound.
	if st, m := api.do("POST", "/api/v1/me/identities", `{"connector_id":"mini","code":"carol:1"}`); st != 409 || m["error"] != "connector_already_bound" {
		t.Fatalf("second identity of a connector: %d %v", st, m)
	}
	// Bob cannot take alice's mini-program identity.
	e.fakes["alpha"].setPerson("bob")
	bob := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	bapi := apiClient{e: e, token: bob.token.AccessToken}
	if st, m := bapi.do("POST", "/api/v1/me/identities", `{"connector_id":"mini","code":"alice:3"}`); st != 409 || m["error"] != "identity_already_bound" {
		t.Fatalf("conflict: %d %v", st, m)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		err        string
	}{
		{"not a mini-program connector", `{"connector_id":"beta","code":"x:1"}`, 400, "invalid_request"},
		{"unknown connector", `{"connector_id":"nope","code":"x:1"}`, 400, "invalid_request"},
		{"bad code", `{"connector_id":"mini","code":"garbage"}`, 400, "invalid_grant"},
		{"provider busy", `{"connector_id":"mini","code":"busy"}`, 503, "temporarily_unavailable"},
		{"malformed JSON", `{"connector_id":`, 400, "invalid_request"},
	} {
		if st, m := bapi.do("POST", "/api/v1/me/identities", tc.body); st != tc.status || m["error"] != tc.err {
			t.Errorf("%s: %d %v", tc.name, st, m)
		}
	}
	// Alice unbinds alpha (she has mini too now). Her token came through
	// alpha, so it is revoked with it.
	if st, _ := api.do("DELETE", "/api/v1/me/identities/alpha", ""); st != 204 {
		t.Fatalf("unbind: %d", st)
	}
	if st, _ := api.do("GET", "/api/v1/me", ""); st != 401 {
		t.Fatalf("the token that came through the unbound identity still works: %d", st)
	}
	// Signed in again through the mini-program: alpha is gone, mini is the last.
	api = apiClient{e: e, token: e.miniToken("web", "web-secret-0123456789abcdef0123456789", "alice:4", "openid account")}
	if st, m := api.do("DELETE", "/api/v1/me/identities/alpha", ""); st != 404 || m["error"] != "not_found" {
		t.Fatalf("unbind again: %d %v", st, m)
	}
	if st, m := api.do("DELETE", "/api/v1/me/identities/mini", ""); st != 409 || m["error"] != "last_identity" {
		t.Fatalf("last: %d %v", st, m)
	}
	// Without or with a bad token: 401 with WWW-Authenticate.
	for _, tok := range []string{"", "garbage"} {
		if st, _ := (apiClient{e: e, token: tok}).do("GET", "/api/v1/me", ""); st != 401 {
			t.Errorf("token %q: %d", tok, st)
		}
	}
}

func TestConcurrentBindsOneWins(t *testing.T) {
	code := &fakeCode{used: map[string]bool{}}
	e := newEnv(t, mini(code))
	r := e.webRP(accountScopes...)
	const n = 8
	var tokens []string
	for i := 0; i < n; i++ {
		e.fakes["alpha"].setPerson(fmt.Sprintf("user%d", i))
		tokens = append(tokens, r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha")).token.AccessToken)
	}
	var wg sync.WaitGroup
	statuses := make(chan int, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			st, _ := apiClient{e: e, token: tokens[i]}.do("POST", "/api/v1/me/identities", fmt.Sprintf(`{"connector_id":"mini","code":"carol:%d"}`, i))
			statuses <- st
		}(i)
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[201] != 1 || count[409] != n-1 {
		t.Fatalf("statuses %v: want one 201 and %d 409", count, n-1)
	}
}

// accountBrowser drives the account page with plain HTTP; csrf is the
// form token of the last page that showed one.
type accountBrowser struct {
	t    testing.TB
	e    *env
	br   *browser
	csrf string
}

func (e *env) accountBrowser() *accountBrowser {
	return &accountBrowser{t: e.t, e: e, br: e.newBrowser()}
}

func (a *accountBrowser) read(resp *http.Response) string {
	a.t.Helper()
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if c := accountCSRF(string(b)); c != "" {
		a.csrf = c
	}
	return string(b)
}

// accountCSRF is the CSRF token of the first form of page that posts to
// an /account/ address (the sign-out form carries another token).
func accountCSRF(page string) string {
	for rest := page; ; {
		i := strings.Index(rest, `name="csrf" value="`)
		if i < 0 {
			return ""
		}
		form := rest[:i]
		if j := strings.LastIndex(form, `action="`); j >= 0 && strings.Contains(form[j:], "/account/") {
			return qiaotest.Between(rest[i:], `name="csrf" value="`, `"`)
		}
		rest = rest[i+1:]
	}
}

func (a *accountBrowser) get(path string) string {
	a.t.Helper()
	return a.read(a.br.get(a.e.issuer + path))
}

// post sends form with the current CSRF token unless form has one.
func (a *accountBrowser) post(path string, form url.Values) string {
	a.t.Helper()
	if !form.Has("csrf") {
		form.Set("csrf", a.csrf)
	}
	req := qiaotest.FormRequest(a.t, a.e.issuer+path, form, "", "")
	resp, err := a.br.Client.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	return a.read(resp)
}

// TestAccountPageBindAndUnbind drives the self-service page with plain
// HTTP: sign in with alpha, bind beta, see both, unbind alpha (changed:
// that ends the session, which came through alpha).
func TestAccountPageBindAndUnbind(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.accountBrowser()
	body := a.get("/account")
	if !strings.Contains(body, `data-connector-id="alpha"`) {
		t.Fatal("signed-out account page offers no sign-in")
	}
	body = a.get("/account/login?connector_id=alpha")
	if !strings.Contains(body, `data-identity="alpha"`) || !strings.Contains(body, `data-bind="beta"`) || strings.Contains(body, `data-unbind=`) {
		t.Fatalf("account page after sign-in is wrong:\n%s", body)
	}
	userID := qiaotest.Between(body, `data-user-id>`, `<`)
	// A bind without the CSRF token is refused.
	if b := a.post("/account/bind", url.Values{"connector_id": {"beta"}, "csrf": {""}}); strings.Contains(b, `data-identity="beta"`) {
		t.Fatal("bind without CSRF token went through")
	}
	body = a.post("/account/bind", url.Values{"connector_id": {"beta"}})
	if !strings.Contains(body, `data-identity="beta"`) || !strings.Contains(body, `data-status="bound_ok"`) {
		t.Fatalf("after bind:\n%s", body)
	}
	body = a.post("/account/unbind", url.Values{"connector_id": {"alpha"}})
	if strings.Contains(body, `data-identity="alpha"`) || !strings.Contains(body, `data-status="unbound_ok"`) {
		t.Fatalf("after unbind:\n%s", body)
	}
	if strings.Contains(body, `data-user-id`) {
		t.Fatalf("the session that came through the unbound alpha is still signed in:\n%s", body)
	}
	// Signed in again with beta: the same user.
	body = a.get("/account/login?connector_id=beta")
	if got := qiaotest.Between(body, `data-user-id>`, `<`); got != userID {
		t.Fatalf("beta sign-in is user %q, want %q", got, userID)
	}
	// Binding an identity that belongs to someone else changes nothing:
	// bob has no other identity, so the page offers a merge to confirm.
	e.fakes["alpha"].setPerson("bob")
	e.webRP().login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	body = a.post("/account/bind", url.Values{"connector_id": {"alpha"}})
	if !strings.Contains(body, `data-confirm-merge`) || strings.Contains(body, `data-identity="alpha"`) {
		t.Fatalf("conflicting bind:\n%s", body)
	}
	if acct := a.get("/account"); strings.Contains(acct, `data-identity="alpha"`) {
		t.Fatalf("conflicting bind changed the account:\n%s", acct)
	}
	// Sign in later with beta through an app: the same user.
	r := e.webRP()
	tk := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "beta"))
	if tk.idToken.Subject != userID {
		t.Fatalf("beta login gave sub %s, not the account's user %s", tk.idToken.Subject, userID)
	}
}

// clock is the broker's clock in a test, moved ahead by Advance: the
// wall time (a zero start), or a clock stopped at start.
type clock struct {
	mu     sync.Mutex
	start  time.Time
	offset time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.start.IsZero() {
		return time.Now().Add(c.offset)
	}
	return c.start.Add(c.offset)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// TestUnbindNeedsRecentSignIn: with an old sign-in the page asks for a
// fresh one, and then asks once more to confirm the unbind it remembered
// (changed: the fresh sign-in is a POST with the pending action, offering
// only the user's own other identities, instead of a plain sign-in link).
func TestUnbindNeedsRecentSignIn(t *testing.T) {
	clk := &clock{}
	e := newEnv(t, envOptions{now: clk.Now})
	a := e.accountBrowser()
	a.get("/account/login?connector_id=alpha")
	if b := a.post("/account/bind", url.Values{"connector_id": {"beta"}}); !strings.Contains(b, `data-identity="beta"`) {
		t.Fatal("bind failed")
	}
	clk.Advance(20 * time.Minute)
	b := a.post("/account/unbind", url.Values{"connector_id": {"beta"}})
	if !strings.Contains(b, `data-error="reauth"`) || !strings.Contains(b, `data-identity="beta"`) || !strings.Contains(b, `data-reauth`) {
		t.Fatalf("stale sign-in unbound anyway:\n%s", b)
	}
	// Only alpha is offered: beta is the one being unbound.
	if !strings.Contains(b, `data-reauth-with="alpha"`) || strings.Contains(b, `data-reauth-with="beta"`) {
		t.Fatalf("re-authentication offers the wrong connectors:\n%s", b)
	}
	// Signing in again (same user) resumes the unbind at a confirm step.
	b = a.post("/account/reauth", url.Values{"connector_id": {"alpha"}, "action": {"unbind"}, "target": {"beta"}})
	if !strings.Contains(b, `data-confirm="unbind:beta"`) || !strings.Contains(b, `data-identity="beta"`) {
		t.Fatalf("after re-authentication the unbind is not offered again:\n%s", b)
	}
	if b := a.post("/account/unbind", url.Values{"connector_id": {"beta"}}); !strings.Contains(b, `data-status="unbound_ok"`) || strings.Contains(b, `data-identity="beta"`) {
		t.Fatalf("unbind after re-sign-in:\n%s", b)
	}
}

// A hand-crafted bind POST for a connector the user already has (the page
// offers only Unbind there) binds nothing: a user has at most one
// identity per connector.
func TestBindOfASecondIdentityOfAConnectorIsRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.accountBrowser()
	body := a.get("/account/login?connector_id=alpha")
	userID := qiaotest.Between(body, `data-user-id>`, `<`)
	if userID == "" {
		t.Fatalf("no user after sign-in:\n%s", body)
	}
	e.fakes["alpha"].setPerson("carol") // an alpha account nobody has yet
	body = a.post("/account/bind", url.Values{"connector_id": {"alpha"}})
	if !strings.Contains(body, `data-error="connector_taken"`) || strings.Contains(body, `data-confirm-merge`) {
		t.Fatalf("second alpha bind:\n%s", body)
	}
	ids, err := e.Store.ListIdentities(t.Context(), userID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 1 {
		t.Fatalf("user has %d identities after the refused bind, want 1: %+v", len(ids), ids)
	}
}
