// Package spectest checks the qiao binary against the product contract
// (the behaviour docs/endpoints.md describes) as a black box: it runs
// `qiao serve` (internal/qiaotest's world in binary mode) against the
// sandbox simulators, and talks to it over HTTP only (plus go-oidc as a
// relying party). Each test is named after the SPEC sentence it checks.
package spectest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// The apps registered at the simulators and the broker's clients.
const (
	wxWebAppID  = "wx5bec00000000001a"
	wxMPAppID   = "wx5bec00000000002b"
	wxMiniAppID = "wx5bec00000000003c"
	wxMini2ID   = "wx5bec00000000004d"
	qqAppID     = "101555001"
	qqNoPermID  = "101555002"
	weiboAppKey = "1352555001"

	webClient    = "web"
	webSecret    = "web-client-secret-for-the-spec-tests-0001"
	web2Client   = "web2"
	web2Secret   = "web2-client-secret-for-the-spec-tests-002"
	spaClient    = "spa"
	miniClient   = "mini"
	weiboClient  = "weiboonly"
	weiboSecret2 = "weibo-only-client-secret-for-spec-tests03"
	rpRedirect   = "http://127.0.0.1:9/cb"
	rpLogout     = "http://127.0.0.1:9/bye"
	rp2Redirect  = "https://rp2.example.com/cb"
	spaRedirect  = "https://spa.example.com/cb"

	weChatUA  = qiaotest.WeChatUA
	desktopUA = qiaotest.DesktopUA

	tokenExGrant = qiaotest.TokenExchangeGrant
	jsCodeType   = qiaotest.WeChatJSCodeType
)

// env is the environment of the qiao commands the CLI tests run (their
// configuration files name these variables).
var env = map[string]string{
	"QIAO_SECRET":         "spec-broker-secret-0123456789abcdef0123456789",
	"WECHAT_WEB_SECRET":   "specwebsecret00000000000000000001",
	"WECHAT_MP_SECRET":    "specmpsecret000000000000000000002",
	"WECHAT_MINI_SECRET":  "specminisecret0000000000000000003",
	"WECHAT_MINI2_SECRET": "specmini2secret000000000000000004",
	"QQ_SECRET":           "specqqsecret000000000000000000005",
	"WEIBO_SECRET":        "specweibosecret00000000000000006",
	"EXTRA_SECRET":        "spec-extra-client-secret-000000000000007",
}

// withApp is connector k with the app id appID at its provider.
func withApp(k qiaotest.Connector, appID string) qiaotest.Connector {
	k.Config["client_id"] = appID
	return k
}

// specConfig is the configuration of the contract tests: two
// mini-programs, a QQ connector asking for unionids its app may not have
// (qqu), and clients of every kind.
func specConfig(c *qiaotest.Config) {
	qqu := withApp(qiaotest.QQ("qqu", "QQ unionid without permission"), qqNoPermID)
	qqu.Config["unionid"] = true
	c.Connectors = []qiaotest.Connector{
		withApp(qiaotest.WeChat("wechat", "WeChat"), wxWebAppID),
		withApp(qiaotest.WeChatMP("wechat_mp", "WeChat OA"), wxMPAppID),
		withApp(qiaotest.MiniProgram("mini", "Mini-program"), wxMiniAppID),
		withApp(qiaotest.MiniProgram("mini2", "Other mini-program"), wxMini2ID),
		withApp(qiaotest.QQ("qq", "QQ"), qqAppID),
		withApp(qiaotest.Weibo("weibo", "Weibo"), weiboAppKey),
		qqu,
	}
	c.Clients = []qiaotest.Client{
		{ID: webClient, Secret: webSecret, RedirectURIs: []string{rpRedirect}, PostLogoutRedirectURIs: []string{rpLogout},
			Connectors: []string{"wechat", "wechat_mp", "qq", "weibo", "mini"}, AccountAPI: true},
		{ID: web2Client, Secret: web2Secret, RedirectURIs: []string{rp2Redirect}, PostLogoutRedirectURIs: []string{"https://rp2.example.com/bye"}},
		{ID: spaClient, Public: true, RedirectURIs: []string{spaRedirect}, Connectors: []string{"wechat", "qq", "weibo"}},
		{ID: miniClient, Public: true, Connectors: []string{"mini"}, AccountAPI: true},
		{ID: "native", Public: true, RedirectURIs: []string{"http://127.0.0.1/native", "http://[::1]/cb"}, Connectors: []string{"weibo", "qq"}},
		{ID: weiboClient, Secret: weiboSecret2, RedirectURIs: []string{"https://weibo-only.example.com/cb"}, Connectors: []string{"weibo"}},
	}
}

// stack is a qiaotest world in binary mode with the contract tests'
// configuration and persons.
type stack struct{ *qiaotest.World }

// newStack starts the simulators and `qiao serve` with the issuer path
// prefix (e.g. "/sso" or "").
func newStack(t testing.TB, prefix string) *stack {
	t.Helper()
	return &stack{qiaotest.Start(t, qiaotest.WithBinary(), qiaotest.WithIssuerPath(prefix),
		qiaotest.WithConfig(specConfig), qiaotest.WithPersons(qiaotest.Persons(45)))}
}

// dbPath is the broker's SQLite file.
func (s *stack) dbPath() string { return s.Config.Storage.SQLite.Path }

func TestMain(m *testing.M) { os.Exit(qiaotest.Main(sharedRun{m})) }

// sharedRun starts the shared stack around the tests.
type sharedRun struct{ m *testing.M }

func (r sharedRun) Run() (code int) {
	dir, err := os.MkdirTemp("", "qiao-spectest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	mt := &mainTB{dir: dir}
	defer mt.cleanup()
	defer func() {
		if r := recover(); r != nil {
			code = 1
		}
	}()
	shared = newStack(mt, "/sso")
	if mt.failed {
		return 1
	}
	return r.m.Run()
}

// shared is the stack most tests use: issuer with the path prefix /sso.
// Every test uses its own persons (p01..p45), so that tests sharing it
// do not see each other's users.
var shared *stack

// mainTB lets TestMain start the shared stack with the helpers tests use.
// Only the methods below are called on it.
type mainTB struct {
	testing.TB
	dir      string
	n        int
	cleanups []func()
	failed   bool
}

func (m *mainTB) Helper() {}
func (m *mainTB) Cleanup(f func()) {
	m.cleanups = append(m.cleanups, f)
}
func (m *mainTB) cleanup() {
	for i := len(m.cleanups) - 1; i >= 0; i-- {
		m.cleanups[i]()
	}
}
func (m *mainTB) Failed() bool { return m.failed }
func (m *mainTB) TempDir() string {
	m.n++
	d := filepath.Join(m.dir, fmt.Sprintf("tmp%d", m.n))
	_ = os.MkdirAll(d, 0o700)
	return d
}
func (m *mainTB) Errorf(format string, args ...any) {
	m.failed = true
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}
func (m *mainTB) Fatal(args ...any) {
	m.failed = true
	fmt.Fprintln(os.Stderr, args...)
	panic(errSetup)
}
func (m *mainTB) Fatalf(format string, args ...any) {
	m.Fatal(fmt.Sprintf(format, args...))
}
func (m *mainTB) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

var errSetup = errors.New("shared stack setup failed")

func envList() []string {
	var l []string
	for k, v := range env {
		l = append(l, k+"="+v)
	}
	return l
}

// startProcess runs the qiao binary with args and the CLI tests'
// environment.
func startProcess(t testing.TB, args ...string) *qiaotest.Process {
	t.Helper()
	return qiaotest.StartProcess(t, envList(), nil, args...)
}

func isRedirect(status int) bool {
	return status == http.StatusFound || status == http.StatusSeeOther || status == http.StatusTemporaryRedirect
}

// follow follows redirects from u; at a simulator's login page it picks
// person (qiaotest.RefusePick refuses). It stops at a URL outside the
// broker and the simulators (the relying party) or at a page that is not
// a redirect.
func (s *stack) follow(t testing.TB, b *qiaotest.Browser, u, person string) *qiaotest.Page {
	t.Helper()
	p, err := b.Through(u, person)
	if err != nil {
		t.Fatalf("from %s as %s: %v", u, person, err)
	}
	return p
}

// tokens is a token endpoint answer.
type tokens struct {
	AccessToken     string `json:"access_token"`
	IDToken         string `json:"id_token"`
	RefreshToken    string `json:"refresh_token"`
	TokenType       string `json:"token_type"`
	ExpiresIn       int    `json:"expires_in"`
	Scope           string `json:"scope"`
	IssuedTokenType string `json:"issued_token_type"`
	Error           string `json:"error"`
}

// redeem trades the code of the redirect back to the client cb for
// tokens.
func (s *stack) redeem(t testing.TB, a qiaotest.RawAuth, cb *qiaotest.Page, secret string) tokens {
	t.Helper()
	form := a.CodeForm(a.Code(t, cb))
	user := ""
	if secret == "" {
		form.Set("client_id", a.Get("client_id"))
	} else {
		user = a.Get("client_id")
	}
	r := s.Post(t, "/token", form, user, secret)
	var tk tokens
	if err := json.Unmarshal([]byte(r.Body), &tk); err != nil || r.Status != 200 {
		t.Fatalf("code redemption: %d %s", r.Status, r.Body)
	}
	return tk
}

// webLogin signs person in at connector for the web client and returns
// the tokens and the browser (with its SSO session).
func (s *stack) webLogin(t testing.TB, connector, person string) (tokens, *qiaotest.Browser) {
	t.Helper()
	return s.loginWith(t, connector, person, "")
}

// accountLogin is webLogin with the account scope, which the account API
// needs (the web client has account_api).
func (s *stack) accountLogin(t testing.TB, connector, person string) tokens {
	t.Helper()
	tk, _ := s.loginWith(t, connector, person, "account")
	return tk
}

// loginWith is webLogin asking for the scopes extra too.
func (s *stack) loginWith(t testing.TB, connector, person, extra string) (tokens, *qiaotest.Browser) {
	t.Helper()
	b := s.Browser(desktopUA)
	a := qiaotest.NewRawAuth(webClient, rpRedirect, connector)
	if extra != "" {
		a.Set("scope", a.Get("scope")+" "+extra)
	}
	return s.redeem(t, a, s.follow(t, b, a.URL(s.Issuer), person), webSecret), b
}

// miniLogin trades a wx.login code of person at the mini app for tokens.
func (s *stack) miniLogin(t testing.TB, person, scope string) tokens {
	t.Helper()
	code, err := s.WeChat.LoginCode(wxMiniAppID, person)
	if err != nil {
		t.Fatal(err)
	}
	r := s.Post(t, "/token", qiaotest.ExchangeForm("mini", miniClient, code, scope), "", "")
	var tk tokens
	if err := json.Unmarshal([]byte(r.Body), &tk); err != nil || r.Status != 200 {
		t.Fatalf("token exchange: %d %s", r.Status, r.Body)
	}
	return tk
}

// claims are a JWT's claims, not verified (go-oidc verifies where it
// matters).
func claims(t testing.TB, jwt string) map[string]any {
	t.Helper()
	_, c := qiaotest.JWT(t, jwt)
	return c
}

// runCLI runs qiao with args and returns its exit code, stdout and stderr.
func runCLI(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qiaotest.Binary(t), args...)
	cmd.Env = append(os.Environ(), envList()...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("qiao %v: %v", args, err)
		}
	}
	return cmd.ProcessState.ExitCode(), out.String(), errb.String()
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var l []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			l = append(l, sc.Text())
		}
	}
	return l
}
