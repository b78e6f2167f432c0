package uitest

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// The broker's clients.
const (
	webClientID = qiaotest.WebClient
	// limitedClientID may use QQ, Weibo and the mini-program.
	limitedClientID = "limited"
	// singleClientID has one web connector (QQ), and the mini-program.
	singleClientID = "single"
)

// uiConfig is the configuration of the UI tests: ES256 keys; the five
// connectors with their providers' own display names (only QQ's is set),
// the Official Account asking for the profile, the mini-program as
// wechat_mini; three clients redirecting to the served relying party at
// rpURL: web (every connector), limited and single.
func uiConfig(rpURL string) qiaotest.Option {
	return qiaotest.WithConfig(func(c *qiaotest.Config) {
		c.Keys = &qiaotest.Keys{Algorithm: "ES256"}
		mp := qiaotest.WeChatMP("wechat_mp", "")
		mp.Config["scope"] = "snsapi_userinfo"
		c.Connectors = []qiaotest.Connector{
			qiaotest.WeChat("wechat", ""),
			mp,
			qiaotest.MiniProgram("wechat_mini", ""),
			qiaotest.QQ("qq", "QQ"),
			qiaotest.Weibo("weibo", ""),
		}
		cb := []string{rpURL + "/callback"}
		c.Clients = []qiaotest.Client{
			{ID: webClientID, Secret: qiaotest.WebSecret, Name: "Example Shop", RedirectURIs: cb},
			{ID: limitedClientID, Secret: "limited-secret-0123456789abcdef0123456789", Name: "QQ and Weibo", RedirectURIs: cb, Connectors: []string{"qq", "weibo", "wechat_mini"}},
			{ID: singleClientID, Secret: "single-secret-0123456789abcdef0123456789", Name: "QQ Only", RedirectURIs: cb, Connectors: []string{"qq", "wechat_mini"}},
		}
	})
}

// env is a qiaotest world (the broker in process under the path /qiao,
// the three simulators) with the clients' redirect URI served, so that
// Chromium lands on a page there.
type env struct {
	*qiaotest.World
	t  *testing.T
	rp *relyingParty
}

// newEnv starts the env with the UI configuration changed by opts (e.g.
// qiaotest.WithNow for the broker's clock).
func newEnv(t *testing.T, opts ...qiaotest.Option) *env {
	t.Helper()
	rp := newRelyingParty(t)
	w := qiaotest.Start(t, append([]qiaotest.Option{qiaotest.WithIssuerPath("/qiao"), uiConfig(rp.url)}, opts...)...)
	return &env{World: w, t: t, rp: rp}
}

// relyingParty is the client's redirect URI: it records what arrives and
// shows it on a page, so the browser stops there.
type relyingParty struct {
	url      string
	mu       sync.Mutex
	received []url.Values
}

func newRelyingParty(t *testing.T) *relyingParty {
	rp := &relyingParty{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		rp.mu.Lock()
		rp.received = append(rp.received, q)
		rp.mu.Unlock()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!DOCTYPE html><html lang="en"><head><title>RP</title></head><body><p data-rp-callback data-code="%s" data-error="%s">back at the client</p></body></html>`,
			html.EscapeString(q.Get("code")), html.EscapeString(q.Get("error")))
	}))
	t.Cleanup(srv.Close)
	rp.url = srv.URL
	return rp
}

// last is the query of the most recent callback.
func (rp *relyingParty) last(t *testing.T) url.Values {
	t.Helper()
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if len(rp.received) == 0 {
		t.Fatal("the relying party received no callback")
	}
	return rp.received[len(rp.received)-1]
}

// authRequest is an authorization request of a client: state, nonce
// and PKCE S256, scopes openid and profile, no connector (the chooser).
type authRequest struct {
	qiaotest.AuthRequest
	rp *qiaotest.RP
}

func (e *env) authRequest(clientID string) authRequest {
	rp := e.RP(clientID, oidc.ScopeOpenID, "profile")
	return authRequest{AuthRequest: rp.AuthRequest(""), rp: rp}
}

// redeem checks the callback the relying party got for a (no error, its
// state) and exchanges its code; it returns the verified ID token's
// claims (nonce and at_hash checked).
func (e *env) redeem(a authRequest) map[string]any {
	t := e.t
	t.Helper()
	tk, err := a.rp.FinishQuery(e.rp.last(t), a.AuthRequest)
	if err != nil {
		t.Fatalf("the client's callback: %v", err)
	}
	return tk.Claims
}

// ------------------------------------------------------------ browser

// do runs the actions, failing the test with what the browser shows.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		loc, _ := chromedp.Run(lctx, chromedp.Location())
		cancel()
		t.Fatalf("%s: %v (page: %s)", what, err, loc)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// attrs returns the values of the attribute on every element that has it,
// in document order.
func attrs(t *testing.T, ctx context.Context, attr string) []string {
	t.Helper()
	return eval[[]string](t, ctx, fmt.Sprintf(`Array.from(document.querySelectorAll('[%[1]s]'), e => e.getAttribute('%[1]s'))`, attr))
}

// location is the tab's URL.
func location(t *testing.T, ctx context.Context) string {
	t.Helper()
	u, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// click clicks the element and waits for the next page to show want.
// The current page is marked first, so that an element of it that
// matches want does not count.
func click(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	var next []string
	for _, part := range strings.Split(want, ",") {
		next = append(next, "html:not([data-uitest-old]) "+strings.TrimSpace(part))
	}
	do(t, ctx, "clicking "+sel,
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](`document.documentElement.setAttribute('data-uitest-old', '')`),
		chromedp.Click(chromedp.CSS(sel)),
		chromedp.WaitVisible(chromedp.CSS(strings.Join(next, ", "))))
}
