// Package spectest checks the qiao binary against the product contract
// (the behaviour docs/endpoints.md describes) as a black box:
// it builds cmd/qiao, runs `qiao serve` against the sandbox simulators on
// loopback servers, and talks to it over HTTP only (plus go-oidc as a
// relying party). Each test is named after the SPEC sentence it checks.
package spectest

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/syncbuf"
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

	weChatUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.49(0x18003137) NetType/WIFI Language/zh_CN"
	desktopUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"

	tokenExGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
	jsCodeType   = "urn:qiao:params:oauth:token-type:wechat-js-code"
)

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

const stackYAML = `
issuer: ISSUER
http: { listen: "LISTEN" }
secret: "${QIAO_SECRET}"
storage: { type: sqlite, sqlite: { path: "DBPATH" } }
log: { level: debug, format: json }
connectors:
  - id: wechat
    type: wechat
    name: WeChat
    config: { client_id: ` + wxWebAppID + `, client_secret: "${WECHAT_WEB_SECRET}", auth_base_url: "WXURL", api_base_url: "WXURL" }
  - id: wechat_mp
    type: wechat_mp
    name: WeChat OA
    config: { client_id: ` + wxMPAppID + `, client_secret: "${WECHAT_MP_SECRET}", auth_base_url: "WXURL", api_base_url: "WXURL" }
  - id: mini
    type: wechat_miniprogram
    name: Mini-program
    config: { client_id: ` + wxMiniAppID + `, client_secret: "${WECHAT_MINI_SECRET}", auth_base_url: "WXURL", api_base_url: "WXURL" }
  - id: mini2
    type: wechat_miniprogram
    name: Other mini-program
    config: { client_id: ` + wxMini2ID + `, client_secret: "${WECHAT_MINI2_SECRET}", auth_base_url: "WXURL", api_base_url: "WXURL" }
  - id: qq
    type: qq
    name: QQ
    config: { client_id: "` + qqAppID + `", client_secret: "${QQ_SECRET}", auth_base_url: "QQURL", api_base_url: "QQURL" }
  - id: weibo
    type: weibo
    name: Weibo
    config: { client_id: "` + weiboAppKey + `", client_secret: "${WEIBO_SECRET}", auth_base_url: "WEIBOURL", api_base_url: "WEIBOURL" }
  - id: qqu
    type: qq
    name: QQ unionid without permission
    config: { client_id: "` + qqNoPermID + `", client_secret: "${QQ_SECRET}", auth_base_url: "QQURL", api_base_url: "QQURL", unionid: true }
clients:
  - id: ` + webClient + `
    secret: "` + webSecret + `"
    redirect_uris: ["` + rpRedirect + `"]
    post_logout_redirect_uris: ["` + rpLogout + `"]
    connectors: [wechat, wechat_mp, qq, weibo, mini]
    account_api: true
  - id: ` + web2Client + `
    secret: "` + web2Secret + `"
    redirect_uris: ["` + rp2Redirect + `"]
    post_logout_redirect_uris: ["https://rp2.example.com/bye"]
  - id: ` + spaClient + `
    public: true
    redirect_uris: ["` + spaRedirect + `"]
    connectors: [wechat, qq, weibo]
  - id: ` + miniClient + `
    public: true
    connectors: [mini]
    account_api: true
  - id: native
    public: true
    redirect_uris: ["http://127.0.0.1/native", "http://[::1]/cb"]
    connectors: [weibo, qq]
  - id: qqclient
    secret: "` + webSecret + `"
    redirect_uris: ["` + rpRedirect + `"]
    connectors: [qqu]
  - id: ` + weiboClient + `
    secret: "` + weiboSecret2 + `"
    redirect_uris: ["https://weibo-only.example.com/cb"]
    connectors: [weibo]
`

// qiaoBin is the binary TestMain builds.
var qiaoBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "qiao-spectest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	qiaoBin = filepath.Join(dir, "qiao")
	build := exec.Command("go", "build", "-o", qiaoBin, "github.com/qiaoidp/qiao/cmd/qiao")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building qiao:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	mt := &mainTB{dir: dir}
	code := func() (code int) {
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
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

// shared is the stack most tests use: issuer with the path prefix /sso.
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

// freeAddr returns a loopback host:port nobody listens on right now.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// persons are the simulated people: every test uses its own, so that
// tests sharing a stack do not see each other's users.
func persons() []sandbox.Person {
	var l []sandbox.Person
	for i := 1; i <= 45; i++ {
		id := fmt.Sprintf("p%02d", i)
		l = append(l, sandbox.Person{ID: id, Name: "Person " + id, Avatar: "https://avatars.example/" + id + ".png"})
	}
	return l
}

// stack is the three simulators (in process) and one `qiao serve` process.
type stack struct {
	t                          testing.TB
	wechat                     *sandbox.WeChat
	qq                         *sandbox.QQ
	weibo                      *sandbox.Weibo
	wxURL, qqURL, weiboURL     string
	root, issuer               string // root: http://listen; issuer: root + prefix
	dir, cfgPath, dbPath, yaml string
	proc                       *process
	weiboCalls                 atomic.Int64 // requests the Weibo simulator got
}

// process is one running qiao command.
type process struct {
	cmd  *exec.Cmd
	out  *syncbuf.Buffer // stdout and stderr together
	done chan struct{}
	err  error
}

func startProcess(t testing.TB, args ...string) *process {
	t.Helper()
	p := &process{out: &syncbuf.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(qiaoBin, args...)
	p.cmd.Env = append(os.Environ(), envList()...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	return p
}

// stop sends SIGTERM and returns the exit code (-1 if it had to be killed).
func (p *process) stop(t testing.TB) int {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
		t.Errorf("qiao did not exit within 15 s of SIGTERM; output:\n%s", p.out.String())
		return -1
	}
}

func envList() []string {
	var l []string
	for k, v := range env {
		l = append(l, k+"="+v)
	}
	return l
}

func serveHandler(t testing.TB, h http.Handler) string {
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// newStack starts the simulators and `qiao serve` with the issuer path
// prefix (e.g. "/sso" or "").
func newStack(t testing.TB, prefix string) *stack {
	t.Helper()
	s := &stack{t: t, dir: t.TempDir()}
	listen := freeAddr(t)
	s.root = "http://" + listen
	s.issuer = s.root + prefix
	var err error
	s.wechat, err = sandbox.NewWeChat(sandbox.WeChatOptions{Persons: persons(), Apps: []sandbox.WeChatApp{
		{AppID: wxWebAppID, Secret: env["WECHAT_WEB_SECRET"], Type: sandbox.WeChatWebsite, CallbackDomain: "127.0.0.1"},
		{AppID: wxMPAppID, Secret: env["WECHAT_MP_SECRET"], Type: sandbox.WeChatMP, CallbackDomain: "127.0.0.1"},
		{AppID: wxMiniAppID, Secret: env["WECHAT_MINI_SECRET"], Type: sandbox.WeChatMiniProgram},
		{AppID: wxMini2ID, Secret: env["WECHAT_MINI2_SECRET"], Type: sandbox.WeChatMiniProgram},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.qq = sandbox.NewQQ(sandbox.QQOptions{Persons: persons(), Apps: []sandbox.QQApp{
		{ClientID: qqAppID, Secret: env["QQ_SECRET"], RedirectURI: s.issuer + "/callback/qq"},
		{ClientID: qqNoPermID, Secret: env["QQ_SECRET"], RedirectURI: s.issuer + "/callback/qqu"},
	}})
	s.weibo = sandbox.NewWeibo(sandbox.WeiboOptions{Persons: persons(), Apps: []sandbox.WeiboApp{
		{ClientID: weiboAppKey, Secret: env["WEIBO_SECRET"], RedirectURI: s.issuer + "/callback/weibo"},
	}})
	s.wxURL = serveHandler(t, s.wechat)
	s.qqURL = serveHandler(t, s.qq)
	s.weiboURL = serveHandler(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.weiboCalls.Add(1)
		s.weibo.ServeHTTP(w, r)
	}))
	s.dbPath = filepath.Join(s.dir, "qiao.db")
	s.yaml = strings.NewReplacer(
		"ISSUER", s.issuer, "LISTEN", listen, "DBPATH", s.dbPath,
		"WXURL", s.wxURL, "QQURL", s.qqURL, "WEIBOURL", s.weiboURL,
	).Replace(stackYAML)
	s.cfgPath = filepath.Join(s.dir, "qiao.yaml")
	if err := os.WriteFile(s.cfgPath, []byte(s.yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	s.start()
	return s
}

// start runs `qiao serve` and waits for /healthz.
func (s *stack) start() {
	t := s.t
	t.Helper()
	s.proc = startProcess(t, "serve", "--config", s.cfgPath)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(s.root + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case <-s.proc.done:
			t.Fatalf("qiao serve exited: %v\n%s", s.proc.err, s.proc.out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("qiao serve not up after 20 s:\n%s", s.proc.out.String())
		}
	}
}

// browser is a cookie-keeping user agent that does not follow redirects.
type browser struct {
	t  testing.TB
	c  *http.Client
	ua string
}

func newBrowser(t testing.TB, ua string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, ua: ua, c: &http.Client{
		Jar: jar, Timeout: 20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

type page struct {
	status   int
	location string
	body     string
	header   http.Header
}

func (b *browser) do(method, u string, form url.Values) page {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		b.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if b.ua != "" {
		req.Header.Set("User-Agent", b.ua)
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	loc := resp.Header.Get("Location")
	if loc != "" {
		if lu, err := resp.Request.URL.Parse(loc); err == nil {
			loc = lu.String()
		}
	}
	return page{status: resp.StatusCode, location: loc, body: string(data), header: resp.Header}
}

func (b *browser) get(u string) page { b.t.Helper(); return b.do(http.MethodGet, u, nil) }

func isRedirect(status int) bool {
	return status == http.StatusFound || status == http.StatusSeeOther || status == http.StatusTemporaryRedirect
}

// isSimAuthorize reports whether u is a simulator's login page.
func (s *stack) isSimAuthorize(u string) bool {
	for _, base := range []string{s.wxURL, s.qqURL, s.weiboURL} {
		if strings.HasPrefix(u, base+"/") {
			return true
		}
	}
	return false
}

// follow follows redirects from u; at a simulator's login page it picks
// person ("deny" refuses). It stops at a URL outside the broker and the
// simulators (the relying party) or at a page that is not a redirect.
func (s *stack) follow(b *browser, u, person string) page {
	b.t.Helper()
	for i := 0; i < 20; i++ {
		if s.isSimAuthorize(u) && !strings.Contains(u, "sandbox_") {
			// before WeChat's #wechat_redirect fragment
			base, frag, _ := strings.Cut(u, "#")
			if person == "deny" {
				u = base + "&sandbox_deny=1"
			} else {
				u = base + "&sandbox_person=" + person
			}
			if frag != "" {
				u += "#" + frag
			}
		}
		p := b.get(u)
		if !isRedirect(p.status) {
			return p
		}
		if !strings.HasPrefix(p.location, s.root) && !s.isSimAuthorize(p.location) {
			return p
		}
		u = p.location
	}
	b.t.Fatalf("too many redirects from %s", u)
	return page{}
}

// authURL builds an authorization request of client with PKCE S256.
type authReq struct {
	client, redirect, scope, state, nonce, connector, verifier string
	extra                                                      url.Values
}

func newAuthReq(client, redirect, connector string) *authReq {
	return &authReq{client: client, redirect: redirect, connector: connector,
		scope: "openid profile offline_access", state: randString(20), nonce: randString(20), verifier: randString(50)}
}

func (a *authReq) url(issuer string) string {
	v := url.Values{
		"response_type": {"code"}, "client_id": {a.client}, "redirect_uri": {a.redirect},
		"scope": {a.scope}, "state": {a.state}, "nonce": {a.nonce},
		"code_challenge": {pkceChallenge(a.verifier)}, "code_challenge_method": {"S256"},
	}
	if a.connector != "" {
		v.Set("connector_id", a.connector)
	}
	for k, vs := range a.extra {
		v[k] = vs
	}
	return issuer + "/auth?" + v.Encode()
}

func pkceChallenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func randString(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
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

// post sends a form to u, with HTTP Basic when user is set.
func post(t testing.TB, u string, form url.Values, user, pass string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return doReq(t, req)
}

func doReq(t testing.TB, req *http.Request) (int, []byte, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header
}

// bearer sends method u with an access token and an optional JSON body.
func bearer(t testing.TB, method, u, token string, body any) (int, []byte, http.Header) {
	t.Helper()
	var r io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		r = strings.NewReader(string(data))
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return doReq(t, req)
}

// redeem trades the code in the callback URL cb for tokens.
func (s *stack) redeem(t testing.TB, a *authReq, cb string, secret string) tokens {
	t.Helper()
	u, err := url.Parse(cb)
	if err != nil {
		t.Fatal(err)
	}
	code := u.Query().Get("code")
	if code == "" {
		t.Fatalf("no code in %s", cb)
	}
	if got := u.Query().Get("state"); got != a.state {
		t.Fatalf("callback state %q, want %q", got, a.state)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {a.redirect}, "code_verifier": {a.verifier}}
	user := ""
	if secret == "" {
		form.Set("client_id", a.client)
	} else {
		user = a.client
	}
	status, body, _ := post(t, s.issuer+"/token", form, user, secret)
	var tk tokens
	if err := json.Unmarshal(body, &tk); err != nil || status != 200 {
		t.Fatalf("code redemption: %d %s", status, body)
	}
	return tk
}

// webLogin signs person in at connector for the web client and returns
// the tokens and the browser (with its SSO session).
func (s *stack) webLogin(t testing.TB, connector, person string) (tokens, *browser) {
	t.Helper()
	b := newBrowser(t, desktopUA)
	a := newAuthReq(webClient, rpRedirect, connector)
	p := s.follow(b, a.url(s.issuer), person)
	if !isRedirect(p.status) || !strings.HasPrefix(p.location, rpRedirect) {
		t.Fatalf("login at %s as %s: %d %s %s", connector, person, p.status, p.location, p.body)
	}
	return s.redeem(t, a, p.location, webSecret), b
}

// accountLogin is webLogin with the account scope, which the account API
// needs (the web client has account_api).
func (s *stack) accountLogin(t testing.TB, connector, person string) tokens {
	t.Helper()
	b := newBrowser(t, desktopUA)
	a := newAuthReq(webClient, rpRedirect, connector)
	a.scope += " account"
	p := s.follow(b, a.url(s.issuer), person)
	if !isRedirect(p.status) || !strings.HasPrefix(p.location, rpRedirect) {
		t.Fatalf("login at %s as %s: %d %s %s", connector, person, p.status, p.location, p.body)
	}
	return s.redeem(t, a, p.location, webSecret)
}

// miniLogin trades a wx.login code of person at the mini app for tokens.
func (s *stack) miniLogin(t testing.TB, person, scope string) tokens {
	t.Helper()
	code, err := s.wechat.LoginCode(wxMiniAppID, person)
	if err != nil {
		t.Fatal(err)
	}
	status, body, _ := post(t, s.issuer+"/token", url.Values{
		"grant_type": {tokenExGrant}, "subject_token": {code}, "subject_token_type": {jsCodeType},
		"subject_issuer": {"mini"}, "client_id": {miniClient}, "scope": {scope},
	}, "", "")
	var tk tokens
	if err := json.Unmarshal(body, &tk); err != nil || status != 200 {
		t.Fatalf("token exchange: %d %s", status, body)
	}
	return tk
}

// claims decodes a JWT's payload without verifying it (go-oidc verifies
// where it matters).
func claims(t testing.TB, jwt string) map[string]any {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", jwt)
	}
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func jsonMap(t testing.TB, data []byte) map[string]any {
	t.Helper()
	m := map[string]any{}
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("not a JSON object: %s", data)
	}
	return m
}

// runCLI runs qiao with args and returns its exit code, stdout and stderr.
func runCLI(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, qiaoBin, args...)
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
