package broker_test

import (
	"html"
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

// english makes the broker's pages speak English to br.
func (br *browser) english(issuer string) {
	u, _ := url.Parse(issuer)
	br.Client.Jar.SetCookies(u, []*http.Cookie{{Name: "qiao_lang", Value: "en", Path: "/"}})
}

// startLogin sends br to the authorization endpoint and returns the
// provider callback URL it was sent to, without following it.
func startLoginAt(t *testing.T, e *env, br *browser, a authRequest) string {
	t.Helper()
	keep := br.Client.CheckRedirect
	br.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	defer func() { br.Client.CheckRedirect = keep }()
	resp := br.get(a.url)
	resp.Body.Close()
	cb := resp.Header.Get("Location")
	if !strings.HasPrefix(cb, e.issuer+"/callback/") {
		t.Fatalf("authorization request went to %q, want the provider's callback", cb)
	}
	return cb
}

// TestReloadedCallbackFinishesTheRequestWithTheSession: a callback used a
// second time (reload, Back) in a browser that is signed in now finishes
// the original request through SSO: the app gets a code for its own
// state, and the provider is not called again.
func TestReloadedCallbackFinishesTheRequestWithTheSession(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()
	br := e.newBrowser()
	a := r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha"))
	cb := startLoginAt(t, e, br, a)
	first := br.get(cb)
	first.Body.Close()
	if loc, _ := url.Parse(first.Header.Get("Location")); loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("first callback: %d %q", first.StatusCode, first.Header.Get("Location"))
	}
	calls := e.fakes["alpha"].calls.Load()
	again := br.get(cb) // follows the broker's redirects up to the app
	again.Body.Close()
	loc, _ := url.Parse(again.Header.Get("Location"))
	if again.StatusCode != http.StatusSeeOther && again.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("state") != a.state || loc.Query().Get("code") == "" {
		t.Fatalf("reloaded callback: %d %q; want the app with a code and its state", again.StatusCode, again.Header.Get("Location"))
	}
	if n := e.fakes["alpha"].calls.Load(); n != calls {
		t.Fatalf("the reload reached the provider again")
	}
	if _, err := r.exchange(loc.Query().Get("code"), a.verifier); err != nil {
		t.Fatalf("the code of the finished request: %v", err)
	}
	// After a browser restart the sign-in cookie (a session cookie) is
	// gone while the SSO session lives on: the reload still finishes.
	u, _ := url.Parse(e.issuer)
	br.Client.Jar.SetCookies(u, []*http.Cookie{{Name: "qiao_login", Value: "x", Path: u.Path + "/", MaxAge: -1}})
	again = br.get(cb)
	again.Body.Close()
	if loc, _ := url.Parse(again.Header.Get("Location")); loc == nil || loc.Query().Get("state") != a.state || loc.Query().Get("code") == "" {
		t.Fatalf("reloaded callback without the sign-in cookie: %d %q", again.StatusCode, again.Header.Get("Location"))
	}
}

// TestExpiredLoginOffersTryAgainAndBackToTheApp: a provider page left
// open past the login's lifetime, in a browser without a session, ends on
// a page with "Try again" (the original request) and "Back to <app>"
// (the client's home_url); trying again signs in.
func TestExpiredLoginOffersTryAgainAndBackToTheApp(t *testing.T) {
	var mu sync.Mutex
	offset := -11 * time.Minute // the login starts 11 minutes "ago"
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(offset)
	}
	e := newEnv(t, envOptions{now: now})
	r := e.webRP()
	br := e.newBrowser()
	br.english(e.issuer)
	a := r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha"))
	cb := startLoginAt(t, e, br, a)
	mu.Lock()
	offset = 0
	mu.Unlock()

	st, body := br.getPage(cb)
	if st != http.StatusBadRequest || !strings.Contains(body, "This sign-in has expired or was already completed") {
		t.Fatalf("expired login: %d\n%s", st, body)
	}
	if !strings.Contains(body, `href="http://127.0.0.1:9/" data-link="back">Back to Web App</a>`) {
		t.Errorf("no way back to the app:\n%s", body)
	}
	u := html.UnescapeString(qiaotest.Between(body, `<a class="button primary" href="`, `"`))
	if !strings.HasPrefix(u, e.issuer+"/auth?") || !strings.Contains(body, `data-link="retry">Try again</a>`) {
		t.Fatalf("no Try again with the original request:\n%s", body)
	}
	q := r.authorize(br, authRequest{url: u})
	if q.Get("code") == "" || q.Get("state") != a.state {
		t.Fatalf("trying again: %v", q)
	}
}

// TestErrorPagesAlwaysOfferAWayForward: a callback this browser knows
// nothing about, and every other error page, offers a link.
func TestErrorPagesAlwaysOfferAWayForward(t *testing.T) {
	e := newEnv(t, envOptions{})
	br := e.newBrowser()
	br.english(e.issuer)
	for _, tc := range []struct {
		name, url string
		want      []string
	}{
		{"unknown callback", e.issuer + "/callback/alpha?state=AAAAAAAAAAAAAAAAAAAAAAAA&code=x", []string{`data-link="account"`}},
		{"not found", e.issuer + "/nowhere", []string{`data-link="account"`}},
		{"bad redirect of a known client", e.issuer + "/auth?client_id=web&response_type=code&redirect_uri=https://evil.example/cb&scope=openid&state=abcdefgh",
			[]string{`href="http://127.0.0.1:9/" data-link="back">Back to Web App`, `data-link="account"`}},
		{"unknown client", e.issuer + "/auth?client_id=nobody&response_type=code&redirect_uri=https://evil.example/cb", []string{`data-link="account"`}},
	} {
		_, body := br.getPage(tc.url)
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: page lacks %s:\n%s", tc.name, w, body)
			}
		}
		if strings.Contains(body, "evil.example") && strings.Contains(body, `href="https://evil.example`) {
			t.Errorf("%s: a link points where the request said", tc.name)
		}
	}
	// The sign-in cookie missing is not a dead end either.
	if _, body := e.newBrowser().getPage(e.issuer + "/callback/alpha?state=AAAAAAAAAAAAAAAAAAAAAAAA&code=x"); !strings.Contains(body, `data-link="account"`) {
		t.Errorf("no cookie: no link:\n%s", body)
	}
}

// TestProviderRefusalReadsTheSameForEveryProvider: a refusal at the
// provider says "The sign-in was cancelled at <provider>." to the app,
// on the broker's page and on the account page, with the provider's own
// code under "Technical details".
func TestProviderRefusalReadsTheSameForEveryProvider(t *testing.T) {
	e := newEnv(t, envOptions{})
	refusal := &connectors.ProviderError{Provider: "weibo", Endpoint: "oauth2/authorize", Code: 21330, Message: "user denied", Kind: connectors.ErrAccessDenied}
	r := e.webRP()

	// The app hears it in error_description.
	e.fakes["beta"].mu.Lock()
	e.fakes["beta"].fail = refusal
	e.fakes["beta"].mu.Unlock()
	q := r.authorize(e.newBrowser(), r.authURL(oauth2.SetAuthURLParam("connector_id", "beta")))
	if q.Get("error") != "access_denied" || !strings.Contains(q.Get("error_description"), "The sign-in was cancelled at Beta.") || !strings.Contains(q.Get("error_description"), "21330") {
		t.Fatalf("the app got %v", q)
	}

	// Signing in to the account page: the broker's page says it.
	br := e.newBrowser()
	br.english(e.issuer)
	st, body := br.getPage(e.issuer + "/account/login?connector_id=beta")
	if st != http.StatusBadGateway || !strings.Contains(body, "The sign-in was cancelled at Beta.") ||
		!strings.Contains(body, "<summary>Technical details</summary><p>weibo oauth2/authorize: error code 21330 (access_denied)</p>") ||
		!strings.Contains(body, `data-link="retry"`) || strings.Contains(body, "user denied") {
		t.Fatalf("refusal page: %d\n%s", st, body)
	}
	// In Chinese too, the same sentence for every provider.
	zh := e.newBrowser()
	if _, body := zh.getPage(e.issuer + "/account/login?connector_id=beta"); !strings.Contains(body, "已在Beta取消登录。") {
		t.Fatalf("zh-CN refusal page:\n%s", body)
	}

	// Binding: the account page says it.
	_, body = br.getPage(e.issuer + "/account/login?connector_id=alpha")
	csrf := qiaotest.Between(body, `name="csrf" value="`, `"`)
	_, body = br.postPage(e.issuer+"/account/bind", url.Values{"connector_id": {"beta"}, "csrf": {csrf}})
	if !strings.Contains(body, `data-error="cancelled_at">The sign-in was cancelled at Beta.</p>`) || !strings.Contains(body, "weibo: error code 21330 (access_denied)") {
		t.Fatalf("account page after a refused bind:\n%s", body)
	}
	// A forged query cannot make the account page name anything else.
	_, body = br.getPage(e.issuer + "/account?error=cancelled_at&connector=%3Cscript%3E&code=1%3Cb%3E")
	if strings.Contains(body, "<script>") || !strings.Contains(body, `data-error="provider_failed"`) {
		t.Fatalf("forged error query:\n%s", body)
	}
}

// TestAccountPageOpenedFromAnAppLeadsBack: /account?client_id=X shows
// "Back to <app>" with the app's home_url, keeps it across the page's own
// round trips, and an unknown client_id gives no link (never an open
// redirect).
func TestAccountPageOpenedFromAnAppLeadsBack(t *testing.T) {
	e := newEnv(t, envOptions{config: func(c *qiaotest.Config) { c.Client("spa").HomeURL = "https://spa.example/start" }})
	br := e.newBrowser()
	br.english(e.issuer)
	_, body := br.getPage(e.issuer + "/account?client_id=spa")
	if !strings.Contains(body, `<a href="https://spa.example/start" data-link="back">← Back to SPA</a>`) {
		t.Fatalf("account page from the app:\n%s", body)
	}
	// Signing in on the page keeps the way back.
	_, body = br.getPage(e.issuer + "/account/login?connector_id=alpha")
	if !strings.Contains(body, "data-user-id") || !strings.Contains(body, `href="https://spa.example/start" data-link="back"`) {
		t.Fatalf("after signing in the way back is lost:\n%s", body)
	}
	// The default home_url is the origin of the first redirect URI.
	if _, body := br.getPage(e.issuer + "/account?client_id=web"); !strings.Contains(body, `href="http://127.0.0.1:9/" data-link="back">← Back to Web App`) {
		t.Fatalf("default home_url:\n%s", body)
	}
	// An unknown client gives no link, whatever else the query says.
	other := e.newBrowser()
	if _, body := other.getPage(e.issuer + "/account?client_id=evil&home_url=https://evil.example/"); strings.Contains(body, `data-link="back"`) || strings.Contains(body, `href="https://evil.example`) {
		t.Fatalf("unknown client:\n%s", body)
	}
}
