package spectest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
	"golang.org/x/oauth2"
)

// SPEC: "only for a registered loopback URI (`http://127.0.0.1/…`,
// `http://[::1]/…`) may the port differ (RFC 8252)" — registered without a
// port, used with one.
func TestRegisteredLoopbackURIWithoutPortMatchesAnyPort(t *testing.T) {
	s := shared
	tests := []struct {
		redirect string
		ok       bool
	}{
		{"http://127.0.0.1/native", true},
		{"http://127.0.0.1:43210/native", true},
		{"http://[::1]/cb", true},
		{"http://[::1]:43210/cb", true},
		{"http://[::1]:43210/other", false},
		{"http://127.0.0.1:43210/cb", false},
	}
	for _, tc := range tests {
		t.Run(tc.redirect, func(t *testing.T) {
			b := s.Browser(desktopUA)
			p := b.StepGet(t, qiaotest.NewRawAuth("native", tc.redirect, "weibo").URL(s.Issuer))
			if tc.ok && (!isRedirect(p.Status) || !strings.HasPrefix(p.Location, s.WeiboURL)) {
				t.Errorf("%d %q, want a redirect to Weibo", p.Status, p.Location)
			}
			if !tc.ok && p.Status != http.StatusBadRequest {
				t.Errorf("%d %q, want 400", p.Status, p.Location)
			}
		})
	}
}

// README: "With exactly one usable connector the chooser is skipped."
func TestChooserSkippedWithOneUsableConnector(t *testing.T) {
	s := shared
	p := s.Browser(desktopUA).StepGet(t, qiaotest.NewRawAuth(weiboClient, "https://weibo-only.example.com/cb", "").URL(s.Issuer))
	if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, s.WeiboURL) {
		t.Errorf("%d %q, want a redirect to Weibo", p.Status, p.Location)
	}
}

// SPEC: "`&client_id=<client id>` (public client; or HTTP Basic for a
// confidential one)" at the token exchange.
func TestTokenExchangeByAConfidentialClientWithHTTPBasic(t *testing.T) {
	s := shared
	code, _ := s.WeChat.LoginCode(wxMiniAppID, "p33")
	form := exchangeForm(code, "mini", "openid")
	form.Del("client_id")
	res := s.Post(t, "/token", form, webClient, webSecret)
	got := res.MustJSON(t)
	if res.Status != 200 || got["id_token"] == nil {
		t.Fatalf("%d %v", res.Status, got)
	}
	if c := claims(t, got["id_token"].(string)); c["aud"] != webClient && !containsAny(c["aud"], webClient) {
		t.Errorf("aud %v, want %s", c["aud"], webClient)
	}
}

// SPEC: "OAuth errors are RFC 6749 JSON at the token endpoint" and the
// code flow with PKCE and exact redirect_uri matching.
func TestTokenEndpointErrorsAreRFC6749JSON(t *testing.T) {
	s := shared
	b := s.Browser(desktopUA)
	a := qiaotest.NewRawAuth(webClient, rpRedirect, "weibo")
	p := s.follow(t, b, a.URL(s.Issuer), "p34")
	cb, _ := url.Parse(p.Location)
	code := cb.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %d %q", p.Status, p.Location)
	}
	tests := []struct {
		name       string
		form       url.Values
		user, pass string
		status     int
		err        string
	}{
		{"wrong PKCE verifier", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {oauth2.GenerateVerifier()}}, webClient, webSecret, 400, "invalid_grant"},
		{"another redirect_uri", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"http://127.0.0.1:9/other"}, "code_verifier": {a.Verifier}}, webClient, webSecret, 400, "invalid_grant"},
		{"wrong client secret", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {a.Verifier}}, webClient, "wrong-wrong-wrong-wrong-wrong-wrong", 401, "invalid_client"},
		{"another client's code", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {a.Verifier}}, web2Client, web2Secret, 400, "invalid_grant"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := s.Post(t, "/token", tc.form, tc.user, tc.pass)
			if res.Status != tc.status || res.MustJSON(t)["error"] != tc.err || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
				t.Errorf("%d %s (%s), want %d %s JSON", res.Status, res.Body, res.Header.Get("Content-Type"), tc.status, tc.err)
			}
		})
	}
	// Requests the OAuth layer never parses get the same JSON shape, at
	// each endpoint programs call.
	for _, path := range []string{"/token", "/revoke", "/introspect"} {
		for _, tc := range []struct {
			name, method, body string
			status             int
		}{
			{"malformed percent-encoding", http.MethodPost, "grant_type=%zz&code=x", http.StatusBadRequest},
			{"body too large", http.MethodPost, "code=" + strings.Repeat("a", 70<<10), http.StatusRequestEntityTooLarge},
			{"GET", http.MethodGet, "", http.StatusMethodNotAllowed},
			{"unknown grant", http.MethodPost, "grant_type=password", http.StatusBadRequest},
		} {
			if tc.name == "unknown grant" && path != "/token" {
				continue
			}
			t.Run(path+" "+tc.name, func(t *testing.T) {
				req, err := http.NewRequest(tc.method, s.Issuer+path, strings.NewReader(tc.body))
				if err != nil {
					t.Fatal(err)
				}
				if tc.method == http.MethodPost {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				res := s.Do(t, req)
				var e struct {
					Error string `json:"error"`
				}
				if res.Status != tc.status || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") || json.Unmarshal([]byte(res.Body), &e) != nil || e.Error == "" {
					t.Errorf("%d %q %.200s, want %d with an RFC 6749 JSON error", res.Status, res.Header.Get("Content-Type"), res.Body, tc.status)
				}
			})
		}
	}
	t.Run("the code still works once, then never again", func(t *testing.T) {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {a.Verifier}}
		first := s.Post(t, "/token", form, webClient, webSecret)
		second := s.Post(t, "/token", form, webClient, webSecret)
		if second.Status != 400 || second.MustJSON(t)["error"] != "invalid_grant" {
			t.Errorf("second redemption: %d %s, want 400 invalid_grant (first: %d %s)", second.Status, second.Body, first.Status, first.Body)
		}
	})
}

// README: "Clients without `secret` are public and must use PKCE S256."
// A public client's request without S256 never yields a code.
func TestPublicClientsMustUsePKCES256(t *testing.T) {
	s := shared
	for name, params := range map[string]url.Values{
		"no code_challenge":    {"code_challenge": nil, "code_challenge_method": nil},
		"plain code_challenge": {"code_challenge": {oauth2.GenerateVerifier()}, "code_challenge_method": {"plain"}},
	} {
		t.Run(name, func(t *testing.T) {
			a := qiaotest.NewRawAuth(spaClient, spaRedirect, "weibo")
			u, _ := url.Parse(a.URL(s.Issuer))
			q := u.Query()
			for k, v := range params {
				if v == nil {
					q.Del(k)
				} else {
					q[k] = v
				}
			}
			u.RawQuery = q.Encode()
			p := s.follow(t, s.Browser(desktopUA), u.String(), "p39")
			lu, _ := url.Parse(p.Location)
			if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, spaRedirect) || lu.Query().Get("error") != "invalid_request" ||
				lu.Query().Get("code") != "" || lu.Query().Get("state") != a.State() {
				t.Errorf("%d %q, want an invalid_request redirect to %s with state and no code", p.Status, p.Location, spaRedirect)
			}
		})
	}
	t.Run("with S256 the public client signs in", func(t *testing.T) {
		a := qiaotest.NewRawAuth(spaClient, spaRedirect, "weibo")
		p := s.follow(t, s.Browser(desktopUA), a.URL(s.Issuer), "p39")
		if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, spaRedirect+"?") {
			t.Fatalf("%d %q, want a redirect to %s", p.Status, p.Location, spaRedirect)
		}
		if tk := s.redeem(t, a, p, ""); tk.IDToken == "" {
			t.Error("no id_token for the public client")
		}
	})
}

// SPEC: "An unknown connector, a forged or replayed `state`, an expired
// login, an oversized or malformed request: a clear error, 4xx, never a 500".
func TestBadCallbacksAndOversizedRequestsAre4xx(t *testing.T) {
	s := shared
	b := s.Browser(desktopUA)
	a := qiaotest.NewRawAuth(webClient, rpRedirect, "weibo")
	cb := b.CallbackOf(t, a.URL(s.Issuer), "p35")
	if !strings.HasPrefix(cb, s.Issuer+"/callback/weibo?") {
		t.Fatalf("Weibo sent the browser to %q", cb)
	}
	t.Run("a callback in another browser", func(t *testing.T) {
		if got := s.Browser(desktopUA).StepGet(t, cb); got.Status != 400 {
			t.Errorf("%d %q, want 400", got.Status, got.Location)
		}
	})
	first := b.StepGet(t, cb)
	if !isRedirect(first.Status) || !strings.HasPrefix(first.Location, rpRedirect) {
		t.Fatalf("the real callback: %d %q", first.Status, first.Location)
	}
	// Issue 11: a replayed state in the browser that is now signed in (a
	// reload, Back) is no dead end: it never reaches the provider again,
	// the original request is answered through the SSO session.
	t.Run("a replayed state in the signed-in browser", func(t *testing.T) {
		got := b.StepGet(t, cb)
		if !isRedirect(got.Status) || !strings.HasPrefix(got.Location, s.Issuer+"/auth?") || !strings.Contains(got.Location, "state="+a.State()) {
			t.Errorf("%d %q, want a redirect to the authorization endpoint with the original request", got.Status, got.Location)
		}
	})
	bad := map[string]string{
		"a forged state":     s.Issuer + "/callback/weibo?code=abc&state=" + qiaotest.RandString(),
		"no state":           s.Issuer + "/callback/weibo?code=abc",
		"unknown connector":  s.Issuer + "/callback/nosuch?code=abc&state=" + qiaotest.RandString(),
		"an oversized query": s.Issuer + "/auth?client_id=web&x=" + strings.Repeat("a", 70<<10),
	}
	for name, u := range bad {
		t.Run(name, func(t *testing.T) {
			got := b.StepGet(t, u)
			if got.Status < 400 || got.Status >= 500 {
				t.Errorf("%d %q, want 4xx", got.Status, got.Location)
			}
		})
	}
	t.Run("an oversized token request", func(t *testing.T) {
		status := s.Post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {strings.Repeat("a", 100<<10)}}, webClient, webSecret).Status
		if status != http.StatusRequestEntityTooLarge {
			t.Errorf("%d, want 413", status)
		}
	})
	t.Run("malformed JSON at the account API", func(t *testing.T) {
		tk := s.accountLogin(t, "weibo", "p35")
		res := s.Bearer(t, http.MethodPost, "/api/v1/me/identities", tk.AccessToken, "{not json")
		if res.Status != 400 || res.MustJSON(t)["error"] != "invalid_request" {
			t.Errorf("%d %s, want 400 invalid_request", res.Status, res.Body)
		}
	})
}

// README: "/logout: RP-initiated logout: `id_token_hint` (expired hints
// accepted) or `client_id`": without either, an unverifiable
// post_logout_redirect_uri is not followed.
func TestLogoutWithoutHintOrClientDoesNotRedirect(t *testing.T) {
	s := shared
	p := s.Browser(desktopUA).StepGet(t, s.Issuer+"/logout?"+url.Values{"post_logout_redirect_uri": {rpLogout}, "state": {"x"}}.Encode())
	if isRedirect(p.Status) && strings.HasPrefix(p.Location, rpLogout) {
		t.Errorf("redirected to %s without id_token_hint or client_id", p.Location)
	}
	if p.Status >= 500 {
		t.Errorf("status %d", p.Status)
	}
}
