package broker_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
	"golang.org/x/oauth2"
)

// tabBrowser is one browser (one cookie jar) that does not follow
// redirects, so that several sign-ins can be interleaved in it.
type tabBrowser struct {
	*qiaotest.Browser
	t *testing.T
}

func newTabBrowser(t *testing.T, e *env) *tabBrowser {
	return &tabBrowser{Browser: e.Browser(), t: t}
}

// get loads u without following a redirect: its status and headers, and
// its body.
func (b *tabBrowser) get(u string) (*http.Response, string) {
	b.t.Helper()
	p := b.StepGet(b.t, u)
	return &http.Response{StatusCode: p.Status, Header: p.Header}, p.Body
}

// start sends an authorization request and returns the callback the
// (fake) provider sends the browser to.
func (b *tabBrowser) start(r *rp, extra ...oauth2.AuthCodeOption) string {
	b.t.Helper()
	resp, _ := b.get(r.authURL(append([]oauth2.AuthCodeOption{oauth2.SetAuthURLParam("connector_id", "alpha")}, extra...)...).url)
	callback := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.Contains(callback, "/callback/alpha?") {
		b.t.Fatalf("authorize: %d %q, want a redirect to the provider", resp.StatusCode, callback)
	}
	return callback
}

// cookieHeader is the size of the Cookie header the browser sends to u.
func (b *tabBrowser) cookieHeader(u string) int {
	b.t.Helper()
	p, err := url.Parse(u)
	if err != nil {
		b.t.Fatal(err)
	}
	n := 0
	for i, c := range b.Jar().Cookies(p) {
		if i > 0 {
			n += len("; ")
		}
		n += len(c.Name) + len("=") + len(c.Value)
	}
	return n
}

// finished reports whether a callback answered with the application's
// redirect carrying a code.
func finished(resp *http.Response) bool {
	loc, err := url.Parse(resp.Header.Get("Location"))
	return err == nil && (resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther) && loc.Query().Get("code") != ""
}

// TestConcurrentSignInsInOneBrowser: two sign-ins started in one browser
// (two tabs, two applications) both finish, in either order.
func TestConcurrentSignInsInOneBrowser(t *testing.T) {
	for _, tc := range []struct {
		name  string
		order []int
	}{{"first started finishes first", []int{0, 1}}, {"last started finishes first", []int{1, 0}}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			r := e.webRP()
			b := newTabBrowser(t, e)
			callbacks := []string{b.start(r), b.start(r)}
			for _, i := range tc.order {
				if resp, body := b.get(callbacks[i]); !finished(resp) {
					t.Fatalf("sign-in %d: %d %q\n%s", i, resp.StatusCode, resp.Header.Get("Location"), body)
				}
			}
		})
	}
}

// TestOldestConcurrentSignInIsEvicted: a browser keeps keptSignIns
// sign-ins; one more evicts the oldest, whose callback then gets the
// dead-end page (a 400 that says to start again), while the others
// finish.
func TestOldestConcurrentSignInIsEvicted(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()
	b := newTabBrowser(t, e)
	var callbacks []string
	for range keptSignIns + 1 {
		callbacks = append(callbacks, b.start(r))
	}
	resp, body := b.get(callbacks[0])
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, `role="alert"`) {
		t.Fatalf("evicted sign-in: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	for i, cb := range callbacks[1:] {
		if resp, body := b.get(cb); !finished(resp) {
			t.Fatalf("sign-in %d: %d %q\n%s", i+1, resp.StatusCode, resp.Header.Get("Location"), body)
		}
	}
}

// keptSignIns is how many sign-ins in flight a browser keeps
// (docs/security.md).
const keptSignIns = 4

// maxCookieHeader is the Cookie header a browser sends the broker during
// a sign-in, at most (docs/security.md).
const maxCookieHeader = 4608

// TestSignInCookieHeaderStaysSmall: with maximal authorization requests
// in as many tabs as a browser keeps, the Cookie header of every callback
// stays under maxCookieHeader, and the newest sign-in always finishes.
func TestSignInCookieHeaderStaysSmall(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()
	b := newTabBrowser(t, e)
	// A signed-in browser: the session cookie is sent too.
	if resp, _ := b.get(b.start(r)); !finished(resp) {
		t.Fatal("first sign-in did not finish")
	}
	// Close to the largest request a login keeps (1800 bytes of query).
	hint := oauth2.SetAuthURLParam("login_hint", strings.Repeat("h", 1350))
	again := oauth2.SetAuthURLParam("prompt", "login")
	var callbacks []string
	for range keptSignIns {
		callbacks = append(callbacks, b.start(r, hint, again))
		if n := b.cookieHeader(callbacks[len(callbacks)-1]); n > maxCookieHeader {
			t.Fatalf("Cookie header of %d bytes after %d maximal sign-ins, want at most %d", n, len(callbacks), maxCookieHeader)
		}
	}
	for i := len(callbacks) - 1; i >= 0; i-- {
		n := b.cookieHeader(callbacks[i])
		if n > maxCookieHeader {
			t.Fatalf("Cookie header of %d bytes on callback %d, want at most %d", n, i, maxCookieHeader)
		}
		resp, body := b.get(callbacks[i])
		if i == len(callbacks)-1 && !finished(resp) {
			t.Fatalf("the newest maximal sign-in: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
		}
		t.Logf("callback %d: Cookie header %d bytes, status %d", i, n, resp.StatusCode)
	}
}

// TestEvictedSignInOffersAWayForward: the callback of a sign-in evicted
// by newer ones is no dead end: in a browser without a session it says
// the browser no longer has it, with "Try again" (its own request) and
// "Back to <app>", as an expired sign-in does; once another tab has
// signed in, it finishes through the session with the app's own state.
func TestEvictedSignInOffersAWayForward(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()
	issuer, _ := url.Parse(e.issuer)
	for _, signedIn := range []bool{false, true} {
		b := newTabBrowser(t, e)
		b.Jar().SetCookies(issuer, []*http.Cookie{{Name: "qiao_lang", Value: "en", Path: "/"}})
		first := r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha"))
		resp, _ := b.get(first.url)
		evicted := resp.Header.Get("Location")
		var callbacks []string
		for range keptSignIns {
			callbacks = append(callbacks, b.start(r))
		}
		if signedIn {
			if resp, body := b.get(callbacks[len(callbacks)-1]); !finished(resp) {
				t.Fatalf("the newest sign-in: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
			}
		}
		resp, body := b.get(evicted)
		next := resp.Header.Get("Location")
		if !signedIn {
			if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Your browser no longer has this sign-in") {
				t.Fatalf("evicted sign-in: %d %q\n%s", resp.StatusCode, next, body)
			}
			if !strings.Contains(body, `href="http://127.0.0.1:9/" data-link="back">Back to Web App</a>`) || !strings.Contains(body, `data-link="retry">Try again</a>`) {
				t.Fatalf("evicted sign-in offers no Try again and Back to the app:\n%s", body)
			}
			retry, _ := b.get(html.UnescapeString(qiaotest.Between(body, `<a class="button primary" href="`, `"`)))
			next = retry.Header.Get("Location") // the provider, then the callback
		}
		resp, body = b.get(next)
		loc, _ := url.Parse(resp.Header.Get("Location"))
		if !finished(resp) || loc.Query().Get("state") != first.state {
			t.Errorf("signed in %v: the evicted sign-in's way forward ended on %d %q, want the app with its own state\n%s", signedIn, resp.StatusCode, resp.Header.Get("Location"), body)
		}
	}
}
