package securitytest

import (
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// firstSetCookies is setCookies keeping the first value each cookie got.
func firstSetCookies(rs []*qiaotest.Page) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, r := range rs {
		for _, c := range (&http.Response{Header: r.Header}).Cookies() {
			if out[c.Name] == nil {
				out[c.Name] = c
			}
		}
	}
	return out
}

func setCookies(rs []*qiaotest.Page) map[string]*http.Cookie {
	out := map[string]*http.Cookie{}
	for _, r := range rs {
		for _, c := range (&http.Response{Header: r.Header}).Cookies() {
			out[c.Name] = c
		}
	}
	return out
}

func TestCookieFlags(t *testing.T) {
	for _, issuer := range []string{"", "https://sso.example.test/qiao"} {
		name := "http issuer"
		if issuer != "" {
			name = "https issuer"
		}
		t.Run(name, func(t *testing.T) {
			var opts []qiaotest.Option
			if issuer != "" {
				opts = append(opts, qiaotest.WithIssuer(issuer))
			}
			e := newEnv(t, opts...)
			secure := strings.HasPrefix(e.issuer, "https://")
			br := e.newBrowser()
			p := e.authParams("web", "https://app.example/cb")
			rs := br.walk(e.issuer + "/auth?" + p.Encode() + "&lang=en")
			if last := rs[len(rs)-1]; !strings.HasPrefix(location(last), "https://app.example/cb?code=") {
				t.Fatalf("login ended at %d %q", last.Status, location(last))
			}
			// The login cookie is set at /auth and removed once the sign-in
			// is written (the callback): check the flags it was set with.
			cookies := firstSetCookies(rs)
			// One login cookie per sign-in, named after its state.
			loginName := ""
			for n := range cookies {
				if strings.HasPrefix(n, map[bool]string{false: "", true: "__Host-"}[secure]+"qiao_login_") {
					loginName = n
				}
			}
			if gone := setCookies(rs)[loginName]; gone == nil || gone.MaxAge >= 0 {
				t.Errorf("the login cookie was not removed after the sign-in: %+v", gone)
			}
			// Under https the cookies carry the __Host- prefix (no planting
			// from sibling subdomains), which requires Path=/.
			prefix, path := "", "/qiao/"
			if secure {
				prefix, path = "__Host-", "/"
			}
			for _, n := range []string{loginName, prefix + "qiao_session"} {
				c := cookies[n]
				if c == nil {
					t.Fatalf("no %s cookie set; got %v", n, cookies)
				}
				if !c.HttpOnly {
					t.Errorf("%s is not HttpOnly", n)
				}
				if c.SameSite != http.SameSiteLaxMode && c.SameSite != http.SameSiteStrictMode {
					t.Errorf("%s SameSite = %v", n, c.SameSite)
				}
				if c.Secure != secure {
					t.Errorf("%s Secure = %v under %s", n, c.Secure, e.issuer)
				}
				// The login cookies too: a sign-in's start reads the other
				// sign-ins' cookies (at most four kept); two brokers on one
				// host keep theirs apart by name.
				if c.Path != path {
					t.Errorf("%s Path = %q, want %s", n, c.Path, path)
				}
				if c.Domain != "" {
					t.Errorf("%s Domain = %q, want host-only", n, c.Domain)
				}
				if len(c.Value) < 32 {
					t.Errorf("%s value has %d characters", n, len(c.Value))
				}
			}
			lang := setCookies([]*qiaotest.Page{br.walk(e.issuer + "/account?lang=en")[0]})["qiao_lang"]
			if lang == nil || lang.Secure != secure || lang.Path != "/qiao/" {
				t.Errorf("qiao_lang cookie %+v", lang)
			}
			// Logout (confirmed: client_id alone asks first) clears the
			// session cookie with the same attributes.
			out := setCookies(br.confirmLogout(url.Values{"client_id": {"web"}}))[prefix+"qiao_session"]
			if out == nil || out.MaxAge >= 0 || out.Path != path || out.Secure != secure {
				t.Errorf("logout cookie %+v", out)
			}
		})
	}
}

func TestSessionFixation(t *testing.T) {
	e := newEnv(t)
	br := e.newBrowser()
	u, _ := url.Parse(e.issuer + "/")
	planted := strings.Repeat("A", 43)
	br.Jar().SetCookies(u, []*http.Cookie{{Name: "qiao_session", Value: planted, Path: "/qiao/"}})
	e.accountLogin(br, "alpha", "alice")
	got := br.cookie("qiao_session")
	if got == "" || got == planted {
		t.Fatalf("session cookie after login = %q (planted %q)", got, planted)
	}

	t.Run("a new login replaces the session id and kills the old one", func(t *testing.T) {
		old := got
		e.accountLogin(br, "beta", "alice")
		if now := br.cookie("qiao_session"); now == old {
			t.Fatal("the session id did not change on a new login")
		}
		other := e.newBrowser()
		other.Jar().SetCookies(u, []*http.Cookie{{Name: "qiao_session", Value: old, Path: "/qiao/"}})
		if signedIn(t, e, other) {
			t.Fatal("the old session id still signs in")
		}
	})
	t.Run("a logged-out session id is dead", func(t *testing.T) {
		id := br.cookie("qiao_session")
		br.confirmLogout(url.Values{"client_id": {"web"}})
		other := e.newBrowser()
		other.Jar().SetCookies(u, []*http.Cookie{{Name: "qiao_session", Value: id, Path: "/qiao/"}})
		if signedIn(t, e, other) {
			t.Fatal("the session id survived logout")
		}
	})
}

func TestStateChangingRoutesNeedCSRFTokens(t *testing.T) {
	e := newEnv(t)
	victim := e.newBrowser()
	e.accountLogin(victim, "alpha", "alice")
	attacker := e.newBrowser()
	e.accountLogin(attacker, "alpha", "mallory")
	csrfOf := func(br *browser) string {
		r := br.get(e.issuer + "/account?lang=en")
		return parsePage(t, r.Body).hiddenInputs().Get("csrf")
	}
	victimCSRF, attackerCSRF := csrfOf(victim), csrfOf(attacker)
	if victimCSRF == "" || attackerCSRF == "" || victimCSRF == attackerCSRF {
		t.Fatalf("csrf tokens %q %q", victimCSRF, attackerCSRF)
	}
	// Bind beta first so that an unbind has something to remove.
	if r := victim.pick(victim.postForm(e.issuer+"/account/bind", url.Values{"csrf": {victimCSRF}, "connector_id": {"beta"}}), "alice"); !strings.Contains(r.Body, `data-identity="beta"`) {
		t.Fatalf("bind with the right token failed: %d", r.Status)
	}
	tests := []struct {
		name, path string
		form       url.Values
	}{
		{"bind without token", "/account/bind", url.Values{"connector_id": {"beta"}}},
		{"bind with another session's token", "/account/bind", url.Values{"connector_id": {"beta"}, "csrf": {attackerCSRF}}},
		{"bind with an empty token", "/account/bind", url.Values{"connector_id": {"beta"}, "csrf": {""}}},
		{"unbind without token", "/account/unbind", url.Values{"connector_id": {"beta"}}},
		{"unbind with another session's token", "/account/unbind", url.Values{"connector_id": {"beta"}, "csrf": {attackerCSRF}}},
		{"unbind with a truncated token", "/account/unbind", url.Values{"connector_id": {"beta"}, "csrf": {victimCSRF[:len(victimCSRF)-1]}}},
		{"re-authentication without token", "/account/reauth", url.Values{"connector_id": {"alpha"}, "action": {"unbind"}, "target": {"beta"}}},
		{"re-authentication with another session's token", "/account/reauth", url.Values{"connector_id": {"alpha"}, "action": {"unbind"}, "target": {"beta"}, "csrf": {attackerCSRF}}},
		{"sign out everywhere without token", "/account/signout-everywhere", url.Values{}},
		{"sign out everywhere with another session's token", "/account/signout-everywhere", url.Values{"csrf": {attackerCSRF}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := qiaotest.FormRequest(t, e.issuer+tc.path, tc.form, "", "")
			req.Header.Set("Origin", "https://evil.example")
			r := do(t, victim, req)
			if r.Status != http.StatusForbidden || location(r) != "" {
				t.Fatalf("status %d location %q, want 403", r.Status, location(r))
			}
			if !strings.Contains(victim.get(e.issuer+"/account?lang=en").Body, `data-identity="beta"`) {
				t.Fatal("beta was unbound")
			}
		})
	}
	t.Run("bind and unbind refuse GET", func(t *testing.T) {
		for _, path := range []string{"/account/bind", "/account/unbind"} {
			r := victim.StepGet(t, e.issuer+path+"?csrf="+victimCSRF+"&connector_id=beta")
			if r.Status != http.StatusMethodNotAllowed && r.Status != http.StatusNotFound {
				t.Fatalf("GET %s: %d", path, r.Status)
			}
		}
	})
	t.Run("the account API ignores the session cookie", func(t *testing.T) {
		for _, m := range []struct{ method, path string }{{"GET", "/api/v1/me"}, {"DELETE", "/api/v1/me/identities/beta"}, {"POST", "/api/v1/me/identities"}} {
			req, _ := http.NewRequest(m.method, e.issuer+m.path, strings.NewReader(`{"connector_id":"mini","code":"alice:1"}`))
			req.Header.Set("Content-Type", "application/json")
			r := do(t, victim, req)
			if r.Status != http.StatusUnauthorized || !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("%s %s with only a cookie: %d", m.method, m.path, r.Status)
			}
		}
	})

	t.Run("consent", func(t *testing.T) {
		p := e.authParams("consent", "https://consent.example/cb")
		r := victim.get(e.issuer + "/auth?" + p.Encode())
		form := parsePage(t, r.Body).hiddenInputs()
		if form.Get("consent_csrf") == "" {
			t.Fatalf("no consent form: %.300s", r.Body)
		}
		ap := e.authParams("consent", "https://consent.example/cb")
		attackerForm := parsePage(t, attacker.get(e.issuer+"/auth?"+ap.Encode()).Body).hiddenInputs()
		cases := []struct {
			name  string
			token string
		}{
			{"allow without token", ""},
			{"allow with another session's token", attackerForm.Get("consent_csrf")},
			{"allow with the account page token", victimCSRF},
		}
		for _, c := range cases {
			f := url.Values{}
			for k, v := range form {
				f[k] = v
			}
			f.Set("consent_action", "allow")
			if c.token == "" {
				f.Del("consent_csrf")
			} else {
				f.Set("consent_csrf", c.token)
			}
			req := qiaotest.FormRequest(t, e.issuer+"/auth", f, "", "")
			r := do(t, victim, req)
			if strings.Contains(location(r), "code=") || r.Status < 400 {
				t.Errorf("%s: status %d location %q", c.name, r.Status, location(r))
			}
		}
		// The real token works, so the refusals above were the token's.
		form.Set("consent_action", "allow")
		req := qiaotest.FormRequest(t, e.issuer+"/auth", form, "", "")
		if r := do(t, victim, req); !strings.Contains(location(r), "code=") {
			t.Fatalf("consent with the right token: %d %q", r.Status, location(r))
		}
	})
}

// TestBareLogoutAsksFirst: a logout with neither id_token_hint nor
// client_id (a link any page could carry) shows a confirmation; only its
// POST with the page's token ends the session.
func TestBareLogoutAsksFirst(t *testing.T) {
	e := newEnv(t)
	br := e.newBrowser()
	e.accountLogin(br, "alpha", "alice")
	page := br.get(e.issuer + "/logout")
	if page.Status != http.StatusOK || !strings.Contains(page.Body, "data-confirm-logout") {
		t.Fatalf("bare logout: %d, no confirmation form", page.Status)
	}
	if !signedIn(t, e, br) {
		t.Fatal("a bare GET /logout ended the session")
	}
	for _, token := range []string{"", "forged"} {
		br.postForm(e.issuer+"/logout", url.Values{"csrf": {token}})
		if !signedIn(t, e, br) {
			t.Fatalf("POST /logout with token %q ended the session", token)
		}
	}
	token := qiaotest.Between(page.Body, `name="csrf" value="`, `"`)
	br.postForm(e.issuer+"/logout", url.Values{"csrf": {token}})
	if signedIn(t, e, br) {
		t.Fatal("the confirmed logout kept the session")
	}
}

// confirmLogout asks for /logout with q and answers its confirmation page
// ("sign out"), as a person would; it returns every response on the way.
func (br *browser) confirmLogout(q url.Values) []*qiaotest.Page {
	br.e.t.Helper()
	page := br.walk(br.e.issuer + "/logout?" + q.Encode())
	last := page[len(page)-1]
	if last.Status != http.StatusOK || !strings.Contains(last.Body, "data-confirm-logout") {
		br.e.t.Fatalf("logout?%s: %d, no confirmation page", q.Encode(), last.Status)
	}
	form := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(last.Body, -1) {
		form.Add(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return append(page, br.walkPost(br.e.issuer+"/logout", form)...)
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)
