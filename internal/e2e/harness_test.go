package e2e_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/syncbuf"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/cmd/qiao/registry"
	"github.com/qiaoidp/qiao/cmd/qiao/wire"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/e2e/browser"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

// The apps registered at the simulators, and the broker's clients.
const (
	wxWebAppID  = "wx1e2e000000000001"
	wxMPAppID   = "wx1e2e000000000002"
	wxMiniAppID = "wx1e2e000000000003"
	qqAppID     = "101777001"
	weiboAppKey = "1352777001"

	webClient    = "web"
	webSecret    = "web-client-secret-for-the-e2e-tests"
	miniClient   = "mini"
	rpHost       = "127.0.0.1:9" // the RP's redirect URIs: the browser stops there
	rpRedirect   = "http://" + rpHost + "/cb"
	weChatUA     = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.49(0x18003137) NetType/WIFI Language/zh_CN"
	tokenExGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
	jsCodeType   = "urn:qiao:params:oauth:token-type:wechat-js-code"
)

// secrets of the simulated apps; the broker gets them as variables.
var appSecrets = map[string]string{
	"QIAO_SECRET":        "e2e-broker-secret-0123456789abcdef0123456789",
	"WECHAT_WEB_SECRET":  "e2ewebsecret000000000000000000001",
	"WECHAT_MP_SECRET":   "e2empsecret0000000000000000000002",
	"WECHAT_MINI_SECRET": "e2eminisecret00000000000000000003",
	"QQ_SECRET":          "e2eqqsecret0000000000000000000004",
	"WEIBO_SECRET":       "e2eweibosecret000000000000000005",
}

const stackYAML = `
issuer: ISSUER
secret: "${QIAO_SECRET}"
storage: { type: sqlite, sqlite: { path: "DBPATH" } }
log: { level: debug }
linking: { wechat_unionid: LINKWECHAT, qq_unionid: false }
connectors:
  - id: wechat
    type: wechat
    name: WeChat
    config: { client_id: ` + wxWebAppID + `, client_secret: "${WECHAT_WEB_SECRET}", auth_base_url: "WXURL", api_base_url: "WXURL" }
  - id: wechat_mp
    type: wechat_mp
    name: WeChat OA
    config: { client_id: ` + wxMPAppID + `, client_secret: "${WECHAT_MP_SECRET}", auth_base_url: "WXURL", api_base_url: "WXURL" }
  - id: wechat_miniprogram
    type: wechat_miniprogram
    name: Mini-program
    config: { client_id: ` + wxMiniAppID + `, client_secret: "${WECHAT_MINI_SECRET}", auth_base_url: "WXURL", api_base_url: "WXURL"MINISCAN }
  - id: qq
    type: qq
    name: QQ
    config: { client_id: "` + qqAppID + `", client_secret: "${QQ_SECRET}", auth_base_url: "QQURL", api_base_url: "QQURL", unionid: QQUNIONID }
  - id: weibo
    type: weibo
    name: Weibo
    config: { client_id: "` + weiboAppKey + `", client_secret: "${WEIBO_SECRET}", auth_base_url: "WEIBOURL", api_base_url: "WEIBOURL" }
clients:
  - id: ` + webClient + `
    secret: "` + webSecret + `"
    redirect_uris: ["` + rpRedirect + `"]
    post_logout_redirect_uris: ["http://` + rpHost + `/bye"]
    connectors: [wechat, wechat_mp, qq, weibo WEBSCAN]
  - id: ` + miniClient + `
    public: true
    redirect_uris: ["http://` + rpHost + `/unused"]
    connectors: [wechat_miniprogram]
EXTRACLIENTS`

// stackOptions vary the stack.
type stackOptions struct {
	linkWeChat   bool // linking.wechat_unionid
	qqUnionID    bool // the qq connector asks for unionids
	qqPermission bool // the QQ app has the unionid permission
	mpNoUnionID  bool // the Official Account is not bound to the Open Platform account
	// extraClients is YAML appended to the clients list.
	extraClients string
	// scanLogin turns on the mini-program's scan_login and lets the web
	// client use it.
	scanLogin bool
}

// stack is the three simulators and the broker, each on a loopback server.
type stack struct {
	t         *testing.T
	wechat    *sandbox.WeChat
	qq        *sandbox.QQ
	weibo     *sandbox.Weibo
	wechatURL string
	qqURL     string
	weiboURL  string
	issuer    string
	cfg       *config.Config
	logs      *syncBuffer
	provider  *oidc.Provider
	httpc     *http.Client // for the RP's back-channel calls
}

type syncBuffer = syncbuf.Buffer

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func serve(t *testing.T, ln net.Listener, h http.Handler) {
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
}

func newStack(t *testing.T, o stackOptions) *stack {
	t.Helper()
	brokerLn, wxLn, qqLn, weiboLn := listen(t), listen(t), listen(t), listen(t)
	s := &stack{
		t:         t,
		issuer:    "http://" + brokerLn.Addr().String(),
		wechatURL: "http://" + wxLn.Addr().String(),
		qqURL:     "http://" + qqLn.Addr().String(),
		weiboURL:  "http://" + weiboLn.Addr().String(),
		logs:      &syncBuffer{},
		httpc:     &http.Client{Timeout: 30 * time.Second},
	}
	y := strings.NewReplacer(
		"ISSUER", s.issuer,
		"DBPATH", filepath.Join(t.TempDir(), "qiao.db"),
		"LINKWECHAT", strconv.FormatBool(o.linkWeChat),
		"QQUNIONID", strconv.FormatBool(o.qqUnionID),
		"WXURL", s.wechatURL, "QQURL", s.qqURL, "WEIBOURL", s.weiboURL,
		"EXTRACLIENTS", o.extraClients,
		"MINISCAN", map[bool]string{true: ", scan_login: { page: pages/scan/index }"}[o.scanLogin],
		"WEBSCAN", map[bool]string{true: ", wechat_miniprogram"}[o.scanLogin],
	).Replace(stackYAML)
	cfg, err := config.Parse([]byte(y), "e2e.yaml", func(k string) (string, bool) {
		v, ok := appSecrets[k]
		return v, ok
	}, registry.Types())
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	s.cfg = cfg

	s.wechat, err = sandbox.NewWeChat(sandbox.WeChatOptions{Apps: []sandbox.WeChatApp{
		{AppID: wxWebAppID, Secret: appSecrets["WECHAT_WEB_SECRET"], Type: sandbox.WeChatWebsite, CallbackDomain: "127.0.0.1"},
		{AppID: wxMPAppID, Secret: appSecrets["WECHAT_MP_SECRET"], Type: sandbox.WeChatMP, CallbackDomain: "127.0.0.1", NoUnionID: o.mpNoUnionID},
		{AppID: wxMiniAppID, Secret: appSecrets["WECHAT_MINI_SECRET"], Type: sandbox.WeChatMiniProgram, Pages: []string{"pages/index/index", "pages/scan/index"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	s.qq = sandbox.NewQQ(sandbox.QQOptions{Apps: []sandbox.QQApp{
		{ClientID: qqAppID, Secret: appSecrets["QQ_SECRET"], RedirectURI: cfg.CallbackURL("qq"), UnionID: o.qqPermission},
	}})
	s.weibo = sandbox.NewWeibo(sandbox.WeiboOptions{Apps: []sandbox.WeiboApp{
		{ClientID: weiboAppKey, Secret: appSecrets["WEIBO_SECRET"], RedirectURI: cfg.CallbackURL("weibo")},
	}})
	serve(t, wxLn, s.wechat)
	serve(t, qqLn, s.qq)
	serve(t, weiboLn, s.weibo)

	// The broker, wired as `qiao serve` wires it.
	ctx := context.Background()
	store, err := sqlite.Open(ctx, cfg.Storage.SQLite.Path)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewJSONHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	b, err := wire.New(ctx, cfg, store, wire.Deps{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	serve(t, brokerLn, b.Handler())
	t.Cleanup(func() { store.Close() })
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", s.logs.String())
		}
	})
	s.provider, err = oidc.NewProvider(oidc.InsecureIssuerURLContext(ctx, s.issuer), s.issuer)
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}
	return s
}

// newBrowser is a browser that stops at the RP.
func (s *stack) newBrowser(ua string) *browser.Browser {
	b := browser.New(func(u *url.URL) bool { return u.Host == rpHost })
	b.UserAgent = ua
	return b
}

// rp is the relying party "web", on go-oidc and x/oauth2.
type rp struct {
	s        *stack
	oauth    oauth2.Config
	verifier *oidc.IDTokenVerifier
}

func (s *stack) rp() *rp {
	return &rp{
		s: s,
		oauth: oauth2.Config{
			ClientID: webClient, ClientSecret: webSecret, RedirectURL: rpRedirect,
			Endpoint: s.provider.Endpoint(),
			Scopes:   []string{oidc.ScopeOpenID, "profile", oidc.ScopeOfflineAccess},
		},
		verifier: s.provider.Verifier(&oidc.Config{ClientID: webClient}),
	}
}

// authRequest is one authorization request in flight.
type authRequest struct {
	url, state, nonce, verifier string
}

func randString() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (r *rp) authRequest(connectorID string) authRequest {
	a := authRequest{state: randString(), nonce: randString(), verifier: oauth2.GenerateVerifier()}
	opts := []oauth2.AuthCodeOption{oidc.Nonce(a.nonce), oauth2.S256ChallengeOption(a.verifier)}
	if connectorID != "" {
		opts = append(opts, oauth2.SetAuthURLParam("connector_id", connectorID))
	}
	a.url = r.oauth.AuthCodeURL(a.state, opts...)
	return a
}

// tokens is a verified token response.
type tokens struct {
	token  *oauth2.Token
	raw    string
	claims map[string]any
}

func (r *rp) ctx() context.Context {
	return context.WithValue(context.Background(), oauth2.HTTPClient, r.s.httpc)
}

// finish checks the redirect the browser stopped at, exchanges the code
// and verifies the ID token.
func (r *rp) finish(p *browser.Page, a authRequest) (*tokens, error) {
	q, err := p.RedirectQuery()
	if err != nil {
		return nil, err
	}
	if e := q.Get("error"); e != "" {
		return nil, fmt.Errorf("authorization error %s: %s", e, q.Get("error_description"))
	}
	if q.Get("state") != a.state {
		return nil, fmt.Errorf("state = %q, want %q", q.Get("state"), a.state)
	}
	tok, err := r.oauth.Exchange(r.ctx(), q.Get("code"), oauth2.VerifierOption(a.verifier))
	if err != nil {
		return nil, fmt.Errorf("exchange: %w", err)
	}
	t, err := r.verify(tok)
	if err != nil {
		return nil, err
	}
	if t.claims["nonce"] != a.nonce {
		return nil, fmt.Errorf("nonce = %v, want %q", t.claims["nonce"], a.nonce)
	}
	return t, nil
}

func (r *rp) verify(tok *oauth2.Token) (*tokens, error) {
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, fmt.Errorf("no id_token in the token response")
	}
	idt, err := r.verifier.Verify(r.ctx(), raw)
	if err != nil {
		return nil, fmt.Errorf("verifying the ID token: %w", err)
	}
	if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
		return nil, fmt.Errorf("at_hash: %w", err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, err
	}
	return &tokens{token: tok, raw: raw, claims: claims}, nil
}

// login runs a whole web login of person through connectorID.
func (r *rp) login(br *browser.Browser, connectorID, person string) (*tokens, error) {
	a := r.authRequest(connectorID)
	p, err := br.Login(a.url, person)
	if err != nil {
		return nil, err
	}
	return r.finish(p, a)
}

// mustLogin is login that must succeed.
func (r *rp) mustLogin(t *testing.T, br *browser.Browser, connectorID, person string) *tokens {
	t.Helper()
	tk, err := r.login(br, connectorID, person)
	if err != nil {
		t.Fatalf("login of %s through %s: %v", person, connectorID, err)
	}
	return tk
}

// loginError runs a login that must come back to the RP with an error,
// and returns the redirect's query (whose state it checks).
func (r *rp) loginError(t *testing.T, br *browser.Browser, connectorID, person string) url.Values {
	t.Helper()
	return r.loginErrorAfter(t, br, connectorID, person, nil)
}

// loginErrorAfter is loginError that calls atCallback when the provider
// sends the browser back to the broker's callback, so that it can break
// the provider's server-to-server calls that follow.
func (r *rp) loginErrorAfter(t *testing.T, br *browser.Browser, connectorID, person string, atCallback func()) url.Values {
	t.Helper()
	a := r.authRequest(connectorID)
	if atCallback != nil {
		br.OnRedirect = func(u *url.URL) {
			if strings.HasPrefix(u.Path, "/callback/") {
				atCallback()
			}
		}
	}
	p, err := br.Login(a.url, person)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	q, err := p.RedirectQuery()
	if err != nil {
		t.Fatalf("the login did not come back to the RP: %v", err)
	}
	if q.Get("state") != a.state {
		t.Errorf("state = %q, want %q", q.Get("state"), a.state)
	}
	if q.Get("code") != "" {
		t.Errorf("a code came with the error %q", q.Get("error"))
	}
	return q
}

// tokenCall posts a form to the token endpoint and decodes the JSON.
func (s *stack) tokenCall(t *testing.T, form url.Values) (int, map[string]any, string) {
	t.Helper()
	resp, err := s.httpc.PostForm(s.provider.Endpoint().TokenURL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("token endpoint: HTTP %d, not JSON: %.300s", resp.StatusCode, body)
	}
	return resp.StatusCode, m, string(body)
}

// loginCode is what wx.login() gives the person in the mini-program.
func (s *stack) loginCode(t *testing.T, person string) string {
	t.Helper()
	code, err := s.wechat.LoginCode(wxMiniAppID, person)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func exchangeForm(code, scope string) url.Values {
	return url.Values{
		"grant_type":         {tokenExGrant},
		"subject_token":      {code},
		"subject_token_type": {jsCodeType},
		"subject_issuer":     {"wechat_miniprogram"},
		"client_id":          {miniClient},
		"scope":              {scope},
	}
}

// verifyIDToken verifies an ID token issued to clientID.
func (s *stack) verifyIDToken(t *testing.T, raw, clientID string) map[string]any {
	t.Helper()
	idt, err := s.provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("verifying the ID token: %v", err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// userinfo calls the userinfo endpoint with an access token.
func (s *stack) userinfo(t *testing.T, accessToken string) (map[string]any, string) {
	t.Helper()
	var meta struct {
		UserInfo string `json:"userinfo_endpoint"`
	}
	if err := s.provider.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, meta.UserInfo, nil)
	req.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := s.httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("userinfo: HTTP %d: %s", resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m, string(body)
}

// metric returns the value of a sample of /metrics whose name is name and
// whose labels include labels, and whether there is one.
func (s *stack) metric(t *testing.T, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	resp, err := s.httpc.Get(s.issuer + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		sampleName, lbls, value, ok := parseSample(line)
		if !ok || sampleName != name {
			continue
		}
		match := true
		for k, v := range labels {
			if lbls[k] != v {
				match = false
			}
		}
		if match {
			return value, true
		}
	}
	return 0, false
}

// parseSample parses a Prometheus text sample `name{a="x",b="y"} 12`.
func parseSample(line string) (string, map[string]string, float64, bool) {
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", nil, 0, false
	}
	head := line[:sp]
	name, rest, hasLabels := strings.Cut(head, "{")
	labels := map[string]string{}
	if hasLabels {
		rest = strings.TrimSuffix(rest, "}")
		for rest != "" {
			k, after, ok := strings.Cut(rest, `="`)
			if !ok {
				return "", nil, 0, false
			}
			var val strings.Builder
			i := 0
			for ; i < len(after); i++ {
				c := after[i]
				if c == '\\' && i+1 < len(after) {
					i++
					val.WriteByte(after[i])
					continue
				}
				if c == '"' {
					break
				}
				val.WriteByte(c)
			}
			if i >= len(after) {
				return "", nil, 0, false
			}
			labels[k] = val.String()
			rest = strings.TrimPrefix(after[i+1:], ",")
		}
	}
	return name, labels, v, true
}

// logLines returns the broker's log records whose msg is msg.
func (s *stack) logLines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(s.logs.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

func person(t *testing.T, id string) sandbox.Person {
	t.Helper()
	for _, p := range sandbox.DefaultPersons() {
		if p.ID == id {
			return p
		}
	}
	t.Fatalf("no sandbox person %q", id)
	return sandbox.Person{}
}
