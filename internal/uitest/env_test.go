package uitest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"html"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/syncbuf"

	"github.com/chromedp/chromedp"
	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/broker"
	"github.com/qiaoidp/qiao/cmd/qiao/registry"
	"github.com/qiaoidp/qiao/cmd/qiao/wire"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

// The apps registered at the simulators, and the broker's clients.
const (
	wechatWebAppID  = "wx00000000000000a1"
	wechatMPAppID   = "wx00000000000000a2"
	wechatMiniAppID = "wx00000000000000a3"
	qqAppID         = "101000777"
	weiboAppKey     = "1352000777"

	webClientID     = "web"
	webClientSecret = "web-client-secret-for-the-ui-tests"
	// limitedClientID may use QQ, Weibo and the mini-program.
	limitedClientID = "limited"
	// singleClientID has one web connector (QQ), and the mini-program.
	singleClientID = "single"
)

const configYAML = `
issuer: {{ISSUER}}
storage: { type: sqlite, sqlite: { path: "{{DB}}" } }
secret: "0123456789abcdef0123456789abcdef-ui-tests"
keys: { algorithm: ES256 }
connectors:
  - id: wechat
    type: wechat
    config: { client_id: ` + wechatWebAppID + `, client_secret: wechat-web-secret, auth_base_url: "{{WECHAT}}", api_base_url: "{{WECHAT}}" }
  - id: wechat_mp
    type: wechat_mp
    config: { client_id: ` + wechatMPAppID + `, client_secret: wechat-mp-secret, auth_base_url: "{{WECHAT}}", api_base_url: "{{WECHAT}}", scope: snsapi_userinfo }
  - id: wechat_mini
    type: wechat_miniprogram
    config: { client_id: ` + wechatMiniAppID + `, client_secret: wechat-mini-secret, auth_base_url: "{{WECHAT}}", api_base_url: "{{WECHAT}}" }
  - id: qq
    type: qq
    name: QQ
    config: { client_id: "` + qqAppID + `", client_secret: qq-secret, auth_base_url: "{{QQ}}", api_base_url: "{{QQ}}" }
  - id: weibo
    type: weibo
    config: { client_id: "` + weiboAppKey + `", client_secret: weibo-secret, auth_base_url: "{{WEIBO}}", api_base_url: "{{WEIBO}}" }
clients:
  - id: ` + webClientID + `
    secret: ` + webClientSecret + `
    name: Example Shop
    redirect_uris: ["{{RP}}/callback"]
  - id: ` + limitedClientID + `
    secret: limited-secret-0123456789abcdef0123456789
    name: QQ and Weibo
    redirect_uris: ["{{RP}}/callback"]
    connectors: [qq, weibo, wechat_mini]
  - id: ` + singleClientID + `
    secret: single-secret-0123456789abcdef0123456789
    name: QQ Only
    redirect_uris: ["{{RP}}/callback"]
    connectors: [qq, wechat_mini]
`

// env is a broker with the three simulated providers and a relying
// party, each on its own loopback server. The issuer has a path prefix.
type env struct {
	t                          *testing.T
	issuer                     string
	cfg                        *config.Config
	wechat                     *sandbox.WeChat
	qq                         *sandbox.QQ
	weibo                      *sandbox.Weibo
	wechatURL, qqURL, weiboURL string
	rp                         *relyingParty
	logs                       *syncBuffer
}

// newEnv starts the env; now, if given, is the broker's clock.
func newEnv(t *testing.T, now ...func() time.Time) *env {
	t.Helper()
	return newEnvYAML(t, configYAML, now...)
}

// newEnvYAML is newEnv with another configuration (configYAML changed).
func newEnvYAML(t *testing.T, configYAML string, now ...func() time.Time) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, issuer: "http://" + ln.Addr().String() + "/qiao", logs: &syncBuffer{}}
	callback := func(id string) string { return e.issuer + "/callback/" + id }

	e.wechat, err = sandbox.NewWeChat(sandbox.WeChatOptions{Apps: []sandbox.WeChatApp{
		{AppID: wechatWebAppID, Secret: "wechat-web-secret", Type: sandbox.WeChatWebsite, CallbackDomain: "127.0.0.1"},
		{AppID: wechatMPAppID, Secret: "wechat-mp-secret", Type: sandbox.WeChatMP, CallbackDomain: "127.0.0.1"},
		{AppID: wechatMiniAppID, Secret: "wechat-mini-secret", Type: sandbox.WeChatMiniProgram},
	}, ScanLoginAPI: e.issuer + "/api/v1/scan"})
	if err != nil {
		t.Fatal(err)
	}
	e.qq = sandbox.NewQQ(sandbox.QQOptions{Apps: []sandbox.QQApp{{ClientID: qqAppID, Secret: "qq-secret", RedirectURI: callback("qq")}}})
	e.weibo = sandbox.NewWeibo(sandbox.WeiboOptions{Apps: []sandbox.WeiboApp{{ClientID: weiboAppKey, Secret: "weibo-secret", RedirectURI: callback("weibo")}}})
	for _, s := range []struct {
		h   http.Handler
		url *string
	}{{e.wechat, &e.wechatURL}, {e.qq, &e.qqURL}, {e.weibo, &e.weiboURL}} {
		srv := httptest.NewServer(s.h)
		t.Cleanup(srv.Close)
		*s.url = srv.URL
	}
	e.rp = newRelyingParty(t)

	dbPath := filepath.Join(t.TempDir(), "qiao.db")
	y := strings.NewReplacer("{{ISSUER}}", e.issuer, "{{DB}}", dbPath,
		"{{WECHAT}}", e.wechatURL, "{{QQ}}", e.qqURL, "{{WEIBO}}", e.weiboURL, "{{RP}}", e.rp.url).Replace(configYAML)
	e.cfg, err = config.Parse([]byte(y), "uitest.yaml", nil, registry.Types())
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	for _, id := range []string{"qq", "weibo"} {
		if got := e.cfg.CallbackURL(id); got != callback(id) {
			t.Fatalf("callback URL of %s = %q; the simulator has %q", id, got, callback(id))
		}
	}

	ctx := context.Background()
	store, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	conns, err := wire.Connectors(e.cfg, wire.Deps{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	opts := wire.Options(e.cfg)
	opts.Store, opts.Connectors, opts.Logger = store, conns, log
	if len(now) > 0 {
		opts.Now = now[0]
	}
	b, err := broker.New(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(b.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		store.Close()
		if t.Failed() {
			t.Logf("broker log:\n%s", e.logs.String())
		}
	})
	return e
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

// authRequest is an authorization request of the web client.
type authRequest struct {
	url, state, nonce, verifier string
	oauth                       oauth2.Config
}

func (e *env) authRequest(clientID, secret string) authRequest {
	a := authRequest{state: randString(), nonce: randString(), verifier: oauth2.GenerateVerifier()}
	a.oauth = oauth2.Config{
		ClientID: clientID, ClientSecret: secret, RedirectURL: e.rp.url + "/callback",
		Endpoint: oauth2.Endpoint{AuthURL: e.issuer + "/auth", TokenURL: e.issuer + "/token"},
		Scopes:   []string{oidc.ScopeOpenID, "profile"},
	}
	a.url = a.oauth.AuthCodeURL(a.state, oidc.Nonce(a.nonce), oauth2.S256ChallengeOption(a.verifier))
	return a
}

// redeem checks the callback the relying party got for a and exchanges
// its code; it returns the verified ID token's claims.
func (e *env) redeem(a authRequest) map[string]any {
	t := e.t
	t.Helper()
	q := e.rp.last(t)
	if q.Get("error") != "" {
		t.Fatalf("the client got error %q: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != a.state {
		t.Fatalf("state = %q, want %q", q.Get("state"), a.state)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tok, err := a.oauth.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(a.verifier))
	if err != nil {
		t.Fatalf("exchanging the code: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	provider, err := oidc.NewProvider(oidc.InsecureIssuerURLContext(ctx, e.issuer), e.issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: a.oauth.ClientID}).Verify(ctx, raw)
	if err != nil {
		t.Fatalf("verifying the ID token: %v", err)
	}
	if idt.Nonce != a.nonce {
		t.Fatalf("nonce = %q, want %q", idt.Nonce, a.nonce)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func randString() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

type syncBuffer = syncbuf.Buffer

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
