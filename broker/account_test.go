package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/broker"
	"github.com/qiaoidp/qiao/connectors"
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
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, a.e.issuer+path, rd)
	if a.token != "" {
		req.Header.Set("Authorization", "Bearer "+a.token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	if resp.StatusCode == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
		a.e.t.Errorf("401 without WWW-Authenticate")
	}
	return resp.StatusCode, m
}

func TestAccountAPI(t *testing.T) {
	code := &fakeCode{used: map[string]bool{}}
	e := newEnv(t, envOptions{yaml: miniConfig, extra: []broker.Connector{{ID: "mini", Type: "wechat_miniprogram", Name: "Mini", Impl: code}}})
	r := e.rp("web", "web-secret", "http://127.0.0.1:9/callback")
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
	// Alice unbinds alpha (she has mini too now); then mini is the last.
	if st, _ := api.do("DELETE", "/api/v1/me/identities/alpha", ""); st != 204 {
		t.Fatalf("unbind: %d", st)
	}
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

var miniConfig = strings.Replace(testConfig, "connectors:\n",
	"connectors:\n  - { id: mini, type: wechat_miniprogram, name: Mini, config: { client_id: wxmini, client_secret: s } }\n", 1)

func TestConcurrentBindsOneWins(t *testing.T) {
	code := &fakeCode{used: map[string]bool{}}
	e := newEnv(t, envOptions{yaml: miniConfig, extra: []broker.Connector{{ID: "mini", Type: "wechat_miniprogram", Name: "Mini", Impl: code}}})
	r := e.rp("web", "web-secret", "http://127.0.0.1:9/callback")
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

// TestAccountPageBindAndUnbind drives the self-service page with plain
// HTTP: sign in with alpha, bind beta, see both, unbind alpha.
func TestAccountPageBindAndUnbind(t *testing.T) {
	e := newEnv(t, envOptions{})
	br := e.newBrowser()
	page := func(u string) string {
		resp := br.get(u)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", u, resp.StatusCode)
		}
		return string(b)
	}
	body := page(e.issuer + "/account")
	if !strings.Contains(body, `data-connector-id="alpha"`) {
		t.Fatal("signed-out account page offers no sign-in")
	}
	body = page(e.issuer + "/account/login?connector_id=alpha")
	if !strings.Contains(body, `data-identity="alpha"`) || !strings.Contains(body, `data-bind="beta"`) || strings.Contains(body, `data-unbind=`) {
		t.Fatalf("account page after sign-in is wrong:\n%s", body)
	}
	csrf := between(body, `name="csrf" value="`, `"`)
	post := func(path string, form url.Values) string {
		req, _ := http.NewRequest("POST", e.issuer+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := br.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	// A bind without the CSRF token is refused.
	if b := post("/account/bind", url.Values{"connector_id": {"beta"}}); strings.Contains(b, `data-identity="beta"`) {
		t.Fatal("bind without CSRF token went through")
	}
	body = post("/account/bind", url.Values{"connector_id": {"beta"}, "csrf": {csrf}})
	if !strings.Contains(body, `data-identity="beta"`) || !strings.Contains(body, `data-status="bound_ok"`) {
		t.Fatalf("after bind:\n%s", body)
	}
	body = post("/account/unbind", url.Values{"connector_id": {"alpha"}, "csrf": {csrf}})
	if strings.Contains(body, `data-identity="alpha"`) || !strings.Contains(body, `data-status="unbound_ok"`) {
		t.Fatalf("after unbind:\n%s", body)
	}
	// Binding an identity that belongs to someone else is refused.
	e.fakes["alpha"].setPerson("bob")
	e.rp("web", "web-secret", "http://127.0.0.1:9/callback").login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	body = post("/account/bind", url.Values{"connector_id": {"alpha"}, "csrf": {csrf}})
	if !strings.Contains(body, `data-error="already_bound"`) || strings.Contains(body, `data-identity="alpha"`) {
		t.Fatalf("conflicting bind:\n%s", body)
	}
	// Sign in later with beta: the same user.
	r := e.rp("web", "web-secret", "http://127.0.0.1:9/callback")
	tk := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "beta"))
	if !strings.Contains(body, tk.idToken.Subject) {
		t.Fatalf("beta login gave sub %s, not the account's user", tk.idToken.Subject)
	}
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	j := strings.Index(s, b)
	if j < 0 {
		return ""
	}
	return s[:j]
}

func TestUnbindNeedsRecentSignIn(t *testing.T) {
	var mu sync.Mutex
	offset := time.Duration(0)
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(offset)
	}
	e := newEnv(t, envOptions{now: now})
	br := e.newBrowser()
	get := func(u string) string {
		resp := br.get(u)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	body := get(e.issuer + "/account/login?connector_id=alpha")
	csrf := between(body, `name="csrf" value="`, `"`)
	post := func(path string, form url.Values) string {
		form.Set("csrf", csrf)
		req, _ := http.NewRequest("POST", e.issuer+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := br.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if b := post("/account/bind", url.Values{"connector_id": {"beta"}}); !strings.Contains(b, `data-identity="beta"`) {
		t.Fatal("bind failed")
	}
	mu.Lock()
	offset = 20 * time.Minute
	mu.Unlock()
	b := post("/account/unbind", url.Values{"connector_id": {"beta"}})
	if !strings.Contains(b, `data-error="reauth"`) || !strings.Contains(b, `data-identity="beta"`) || !strings.Contains(b, `data-reauth`) {
		t.Fatalf("stale sign-in unbound anyway:\n%s", b)
	}
	// Signing in again (same user) makes the unbind possible.
	b = get(e.issuer + "/account/login?connector_id=alpha")
	csrf = between(b, `name="csrf" value="`, `"`)
	if b := post("/account/unbind", url.Values{"connector_id": {"beta"}}); !strings.Contains(b, `data-status="unbound_ok"`) {
		t.Fatalf("unbind after re-sign-in:\n%s", b)
	}
}
