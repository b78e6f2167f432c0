package wechat_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/internal/conntest"
	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/connectors/wechat"
)

const (
	appWeb   = "wxweb0000000001"
	appOA    = "wxoa00000000001"
	appMini  = "wxmini000000001"
	secret   = "TopSecretAppSecret0123456789abcd"
	callback = "https://rp.example/callback/wechat"
	state    = "State0123456789abcdef"
)

type env struct {
	sim    *sandbox.WeChat
	srv    *httptest.Server
	clock  *conntest.Clock
	obs    *conntest.Observed
	caller *connectors.Caller
}

func newEnv(t *testing.T, mutate func(*sandbox.WeChatOptions)) *env {
	t.Helper()
	c := conntest.NewClock(time.Now())
	opts := sandbox.WeChatOptions{
		Apps: []sandbox.WeChatApp{
			{AppID: appWeb, Secret: secret, Type: sandbox.WeChatWebsite, CallbackDomain: "rp.example"},
			{AppID: appOA, Secret: secret, Type: sandbox.WeChatMP, CallbackDomain: "rp.example"},
			{AppID: appMini, Secret: secret, Type: sandbox.WeChatMiniProgram},
		},
		Clock: c.Now,
	}
	if mutate != nil {
		mutate(&opts)
	}
	sim, err := sandbox.NewWeChat(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	obs := &conntest.Observed{}
	return &env{
		sim: sim, srv: srv, clock: c, obs: obs,
		caller: &connectors.Caller{HTTP: &http.Client{Timeout: 2 * time.Second}, ConnectorID: "wechat", Observe: obs.Observe},
	}
}

func (e *env) cfg(appid string) wechat.Config {
	return wechat.Config{ClientID: appid, ClientSecret: secret, AuthBaseURL: e.srv.URL, APIBaseURL: e.srv.URL}
}

func (e *env) web(t *testing.T) *wechat.Web {
	t.Helper()
	w, err := wechat.NewWeb(e.cfg(appWeb), e.caller)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func (e *env) mp(t *testing.T, scope string) *wechat.MP {
	t.Helper()
	cfg := e.cfg(appOA)
	cfg.Scope = scope
	m, err := wechat.NewMP(cfg, e.caller)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func (e *env) mini(t *testing.T, cache wechat.TokenCache) *wechat.MiniProgram {
	t.Helper()
	m, err := wechat.NewMiniProgram(e.cfg(appMini), e.caller, cache)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// browse opens loginURL like a browser, picks person on the picker page
// ("" follows the deny link) and returns the callback's query.
func (e *env) browse(t *testing.T, loginURL, person string) url.Values {
	t.Helper()
	page, ok := strings.CutSuffix(loginURL, "#wechat_redirect")
	if !ok {
		t.Fatalf("login URL %q lacks #wechat_redirect", loginURL)
	}
	attr := `data-person="` + person + `"`
	if person == "" {
		attr = "data-deny"
	}
	q := conntest.Browse(t, page, attr, callback)
	if q.Get("state") != state {
		t.Fatalf("state %q came back, want %q", q.Get("state"), state)
	}
	return q
}

var loginReq = connectors.LoginRequest{State: state, CallbackURL: callback}

// webLogin runs the website flow for person up to the callback query.
func (e *env) webLogin(t *testing.T, w *wechat.Web, person string) url.Values {
	t.Helper()
	u, _, err := w.LoginURL(t.Context(), loginReq)
	if err != nil {
		t.Fatal(err)
	}
	return e.browse(t, u, person)
}

func (e *env) mpLogin(t *testing.T, m *wechat.MP, person string) url.Values {
	t.Helper()
	u, _, err := m.LoginURL(t.Context(), loginReq)
	if err != nil {
		t.Fatal(err)
	}
	return e.browse(t, u, person)
}

// assertClean fails if err's text holds a secret.
func assertClean(t *testing.T, err error, secrets ...string) {
	t.Helper()
	conntest.AssertNoLeak(t, err, append(secrets, secret)...)
}

func providerCode(err error) int {
	var pe *connectors.ProviderError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return 0
}
