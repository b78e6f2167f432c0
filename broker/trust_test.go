package broker_test

import (
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

func TestLoginCookieIsNeverAdoptedFromTheBrowser(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()
	u, _ := url.Parse(e.issuer + "/")
	// The attacker planted a login cookie whose value they know.
	planted := strings.Repeat("P", 32)
	victim := e.newBrowser()
	victim.Jar().SetCookies(u, []*http.Cookie{{Name: "qiao_login_PPPPPPPP", Value: planted, Path: "/qiao/"}})
	// The victim starts a sign-in (one request at a time); the fake
	// provider sends the browser straight to the callback, which the
	// attacker learns.
	resp := victim.StepGet(t, r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha")).url)
	callback := resp.Header.Get("Location")
	if !strings.Contains(callback, "/callback/alpha?") {
		t.Fatalf("no provider redirect: %d %q", resp.Status, callback)
	}
	// With only the planted value, the attacker cannot finish it.
	attacker := e.newBrowser()
	// The attacker names it after the state (the login cookie's name).
	cb, _ := url.Parse(callback)
	attacker.Jar().SetCookies(u, []*http.Cookie{{Name: "qiao_login_" + cb.Query().Get("state")[:8], Value: planted, Path: "/qiao/"}})
	resp = attacker.StepGet(t, callback)
	if resp.Status != http.StatusBadRequest {
		t.Fatalf("the planted login cookie finished the victim's sign-in: %d %q", resp.Status, resp.Header.Get("Location"))
	}
	// The victim's own browser finishes it.
	resp = victim.StepGet(t, callback)
	if loc, _ := url.Parse(resp.Header.Get("Location")); resp.Status != http.StatusFound && resp.Status != http.StatusSeeOther || loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("the victim's sign-in: %d %q", resp.Status, resp.Header.Get("Location"))
	}
}

// newHandler is the handler of a broker for issuer, called in process.
func newHandler(t *testing.T, issuer string) http.Handler {
	t.Helper()
	return newEnv(t, envOptions{opts: []qiaotest.Option{qiaotest.WithIssuer(issuer)}}).Broker.Handler()
}

func TestHSTSOnEveryAnswerOfAnHTTPSIssuer(t *testing.T) {
	h := newHandler(t, "https://id.example/qiao")
	for _, path := range []string{"/qiao/.well-known/openid-configuration", "/qiao/keys", "/qiao/auth", "/qiao/nope", "/healthz", "/metrics"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://id.example"+path, nil))
		v := rec.Header().Get("Strict-Transport-Security")
		var age int
		if _, err := fmt.Sscanf(v, "max-age=%d", &age); err != nil || age < 31536000 {
			t.Errorf("%s (%d): Strict-Transport-Security %q, want max-age of at least a year", path, rec.Code, v)
		}
	}
	plain := newHandler(t, "http://127.0.0.1:9/qiao")
	rec := httptest.NewRecorder()
	plain.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9/qiao/keys", nil))
	if v := rec.Header().Get("Strict-Transport-Security"); v != "" {
		t.Errorf("an http issuer sends Strict-Transport-Security %q", v)
	}
}

func TestConsentAfterPromptLoginCompletes(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.rp("consent", "consent-secret-0123456789abcdef0123456789", "https://consent.example/cb")
	br := e.newBrowser()
	a := r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha"), oauth2.SetAuthURLParam("prompt", "login"))
	resp := br.get(a.url)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `data-consent="allow"`) {
		t.Fatalf("expected the consent page, got %d", resp.StatusCode)
	}
	form := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(body), -1) {
		form.Add(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	form.Set("consent_action", "allow")
	calls := e.fakes["alpha"].calls.Load()
	req := qiaotest.FormRequest(t, e.issuer+"/auth", form, "", "")
	resp, err := br.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Host != "consent.example" || loc.Query().Get("code") == "" {
		t.Fatalf("after allow: %d %q, want a code for the client", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := e.fakes["alpha"].calls.Load(); n != calls {
		t.Errorf("allow went back to the provider (%d more logins)", n-calls)
	}
	if _, err := r.exchange(loc.Query().Get("code"), a.verifier); err != nil {
		t.Fatalf("redeeming the code: %v", err)
	}
}

func TestTokenExchangeRefusesUnknownScopes(t *testing.T) {
	code := &fakeCode{used: map[string]bool{}}
	e := newEnv(t, mini(code))
	exchange := func(scope, jsCode string) (*http.Response, map[string]any) {
		return e.exchange("web", "web-secret-0123456789abcdef0123456789", jsCode, scope)
	}
	resp, m := exchange("openid admin", "alice:1")
	if resp.StatusCode != http.StatusBadRequest || m["error"] != "invalid_scope" {
		t.Fatalf("unknown scope: %d %v, want 400 invalid_scope", resp.StatusCode, m)
	}
	if code.used["alice:1"] {
		t.Error("the code was spent at WeChat for a request that was refused")
	}
	// A known scope (email is accepted, never granted, as at /auth) works.
	if resp, m := exchange("openid email", "alice:2"); resp.StatusCode != http.StatusOK || m["id_token"] == nil {
		t.Fatalf("known scopes: %d %v", resp.StatusCode, m)
	}
}

func TestIntrospectionAnswersOnlyAboutTheClientsOwnTokens(t *testing.T) {
	for _, anyToken := range []bool{false, true} {
		t.Run(fmt.Sprintf("introspect_any %v", anyToken), func(t *testing.T) {
			e := newEnv(t, envOptions{config: func(c *qiaotest.Config) { c.Client("second").IntrospectAny = anyToken }})
			r := e.webRP()
			tk := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
			for _, tu := range []struct{ token, hint string }{{tk.token.AccessToken, ""}, {tk.token.RefreshToken, "refresh_token"}} {
				resp, m := e.postForm("/introspect", url.Values{"token": {tu.token}, "token_type_hint": {tu.hint}}, "second", "second-secret-0123456789abcdef0123456789")
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("introspect: %d %v", resp.StatusCode, m)
				}
				if !anyToken {
					if len(m) != 1 || m["active"] != false {
						t.Fatalf("another client's token: %v, want only active:false", m)
					}
					continue
				}
				if aud, _ := m["aud"].([]any); m["active"] != true || m["client_id"] != "web" || len(aud) != 1 || aud[0] != "web" {
					t.Fatalf("with introspect_any: %v, want active with client_id and aud web", m)
				}
			}
			// The token's own client always gets the answer, with aud.
			resp, m := e.postForm("/introspect", url.Values{"token": {tk.token.AccessToken}}, "web", "web-secret-0123456789abcdef0123456789")
			if aud, _ := m["aud"].([]any); resp.StatusCode != http.StatusOK || m["active"] != true || m["client_id"] != "web" || len(aud) != 1 || aud[0] != "web" {
				t.Fatalf("own token: %d %v", resp.StatusCode, m)
			}
		})
	}
}
