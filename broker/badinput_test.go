package broker_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestBadInputNeverServerError sends malformed, oversized, forged and
// replayed requests: each gets a clear 4xx, never a 5xx.
func TestBadInputNeverServerError(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()
	long := strings.Repeat("a", 70<<10)
	for _, tc := range []struct {
		name, method, path, body, ctype string
		want                            int
	}{
		{"unknown client", "GET", "/auth?client_id=nobody&response_type=code&redirect_uri=http://127.0.0.1:9/callback&scope=openid&state=abcdefghij", "", "", 400},
		{"unregistered redirect", "GET", "/auth?client_id=web&response_type=code&redirect_uri=https://evil.example/&scope=openid&state=abcdefghij", "", "", 400},
		{"no params", "GET", "/auth", "", "", 400},
		{"oversized query", "GET", "/auth?x=" + long, "", "", 414},
		{"oversized token body", "POST", "/token", "grant_type=authorization_code&code=" + long, "application/x-www-form-urlencoded", 413},
		{"garbage token body", "POST", "/token", "%%%", "application/x-www-form-urlencoded", 400},
		{"unknown grant", "POST", "/token", "grant_type=password&username=a&password=b&client_id=spa", "application/x-www-form-urlencoded", 400},
		{"token without grant", "POST", "/token", "client_id=spa", "application/x-www-form-urlencoded", 400},
		{"bad code", "POST", "/token", "grant_type=authorization_code&code=nope&client_id=spa&redirect_uri=http://127.0.0.1:9/spa&code_verifier=" + strings.Repeat("v", 50), "application/x-www-form-urlencoded", 400},
		{"bad refresh", "POST", "/token", "grant_type=refresh_token&refresh_token=nope.nope&client_id=spa", "application/x-www-form-urlencoded", 400},
		{"callback without state", "GET", "/callback/alpha?code=x", "", "", 400},
		{"callback with short state", "GET", "/callback/alpha?code=x&state=abc", "", "", 400},
		{"callback forged state", "GET", "/callback/alpha?code=x&state=" + strings.Repeat("Z", 32), "", "", 400},
		{"callback unknown connector", "GET", "/callback/nope?code=x&state=" + strings.Repeat("Z", 32), "", "", 404},
		{"unknown path", "GET", "/nope", "", "", 404},
		{"userinfo without token", "GET", "/userinfo", "", "", 401},
		{"userinfo token in the query", "GET", "/userinfo?access_token=x", "", "", 400},
		{"revoke garbage", "POST", "/revoke", "token=x", "application/x-www-form-urlencoded", 400},
		{"account api without token", "GET", "/api/v1/me", "", "", 401},
		{"bind api garbage", "POST", "/api/v1/me/identities", "{", "application/json", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req, _ := http.NewRequest(tc.method, e.issuer+tc.path, body)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
				t.Errorf("security headers missing: %v", resp.Header)
			}
		})
	}
	if strings.Contains(e.Logs.String(), "panic") {
		t.Error("a panic was logged")
	}
	_ = r
}

func TestUpstreamStateIsSingleUseAndBoundToBrowser(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()
	br := e.newBrowser()
	// Stop at the provider redirect to capture the callback URL.
	br.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp := br.get(r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha")).url)
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	u, _ := url.Parse(cb)
	state := u.Query().Get("state")
	if len(state) < 16 || len(state) > 128 || strings.Trim(state, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") != "" {
		t.Fatalf("upstream state %q breaks WeChat's rule", state)
	}
	// A browser without the login cookie is refused.
	other := e.newBrowser()
	other.Client.CheckRedirect = br.Client.CheckRedirect
	resp = other.get(cb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("browser without cookie: status %d", resp.StatusCode)
	}
	// A browser with a login cookie of its own is refused too, without
	// spending the rightful browser's login.
	resp = other.get(r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha")).url)
	resp.Body.Close()
	resp = other.get(cb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("foreign browser: status %d", resp.StatusCode)
	}
	// The right browser completes its login, once.
	resp = br.get(cb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		t.Fatalf("good callback: status %d", resp.StatusCode)
	}
	// A second use never reaches the provider again: the browser, signed
	// in now, is sent to finish its original request through SSO.
	calls := e.fakes["alpha"].calls.Load()
	resp = br.get(cb)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), e.issuer+"/auth?") {
		t.Fatalf("second use of a state: status %d, Location %q; want 303 to the authorization endpoint", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := e.fakes["alpha"].calls.Load(); n != calls {
		t.Fatalf("second use of a state reached the provider: %d callbacks, want %d", n, calls)
	}
}
