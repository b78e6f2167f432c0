package sandbox_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors/internal/conntest"
	"github.com/qiaoidp/qiao/connectors/sandbox"
)

type wxEnv struct {
	sim   *sandbox.WeChat
	srv   *httptest.Server
	clock *conntest.Clock
}

const (
	wxWeb    = "wxweb0000000001"
	wxOA     = "wxoa00000000001"
	wxMini   = "wxmini000000001"
	wxLoose  = "wxweb0000000002" // a website app not bound to the Open Platform account
	wxSecret = "s3cr3t-app-secret-value"
)

func newWXEnv(t *testing.T, mutate func(*sandbox.WeChatOptions)) *wxEnv {
	t.Helper()
	clock := conntest.NewClock(time.Date(2025, 3, 1, 10, 0, 0, 0, time.UTC))
	opts := sandbox.WeChatOptions{
		Apps: []sandbox.WeChatApp{
			{AppID: wxWeb, Secret: wxSecret, Type: sandbox.WeChatWebsite, CallbackDomain: "rp.example"},
			{AppID: wxOA, Secret: wxSecret, Type: sandbox.WeChatMP, CallbackDomain: "rp.example"},
			{AppID: wxMini, Secret: wxSecret, Type: sandbox.WeChatMiniProgram},
			{AppID: wxLoose, Secret: wxSecret, Type: sandbox.WeChatWebsite, NoUnionID: true},
		},
		Clock: clock.Now,
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
	return &wxEnv{sim: sim, srv: srv, clock: clock}
}

var noRedirect = conntest.NoRedirect()

// authorizeURL builds an authorize URL in WeChat's parameter order.
func authorizeURL(base, path, appid, redirect, scope, state string) string {
	return base + path + "?appid=" + appid + "&redirect_uri=" + url.QueryEscape(redirect) +
		"&response_type=code&scope=" + scope + "&state=" + state
}

// approve follows the picker link of a person and returns the redirect.
func (e *wxEnv) approve(t *testing.T, authURL, person string) *url.URL {
	t.Helper()
	resp, err := noRedirect.Get(authURL + "&sandbox_person=" + person)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("authorize: HTTP %d, want 302", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func (e *wxEnv) webCode(t *testing.T, person string) string {
	t.Helper()
	return e.approve(t, authorizeURL(e.srv.URL, "/connect/qrconnect", wxWeb, "https://rp.example/callback/wechat", "snsapi_login", "abcdefghijklmnop"), person).Query().Get("code")
}

func (e *wxEnv) oaCode(t *testing.T, person, scope string) string {
	t.Helper()
	return e.approve(t, authorizeURL(e.srv.URL, "/connect/oauth2/authorize", wxOA, "https://rp.example/callback/wechat_mp", scope, "abcdefghijklmnop"), person).Query().Get("code")
}

type wxReply struct {
	status      int
	contentType string
	raw         string
	json        map[string]any
}

func (r wxReply) errcode() int {
	if v, ok := r.json["errcode"].(float64); ok {
		return int(v)
	}
	return 0
}

func (r wxReply) str(k string) string {
	s, _ := r.json[k].(string)
	return s
}

func (e *wxEnv) get(t *testing.T, path string, q url.Values) wxReply {
	t.Helper()
	resp, err := http.Get(e.srv.URL + path + "?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	return readWX(t, resp)
}

func (e *wxEnv) postJSON(t *testing.T, path string, q url.Values, body any) wxReply {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(e.srv.URL+path+"?"+q.Encode(), "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return readWX(t, resp)
}

func readWX(t *testing.T, resp *http.Response) wxReply {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := wxReply{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), raw: string(b)}
	if len(b) > 0 {
		if err := json.Unmarshal(b, &r.json); err != nil {
			t.Fatalf("reply is not JSON: %q", b)
		}
	}
	return r
}

func (e *wxEnv) exchange(t *testing.T, appid, code string) wxReply {
	t.Helper()
	return e.get(t, "/sns/oauth2/access_token", url.Values{"appid": {appid}, "secret": {wxSecret}, "code": {code}, "grant_type": {"authorization_code"}})
}

var ridRE = regexp.MustCompile(`, rid: [0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{8}$`)

func TestWeChatErrorsAreHTTP200TextPlainWithRid(t *testing.T) {
	e := newWXEnv(t, nil)
	cases := []struct {
		name string
		q    url.Values
		want int
		msg  string
	}{
		{"unknown code", url.Values{"appid": {wxWeb}, "secret": {wxSecret}, "code": {"nope"}, "grant_type": {"authorization_code"}}, 40029, "invalid code"},
		{"missing code", url.Values{"appid": {wxWeb}, "secret": {wxSecret}, "grant_type": {"authorization_code"}}, 41008, "missing code"},
		{"bad secret", url.Values{"appid": {wxWeb}, "secret": {"wrong"}, "code": {"x"}, "grant_type": {"authorization_code"}}, 40125, "invalid appsecret"},
		{"unknown appid", url.Values{"appid": {"wxnope"}, "secret": {wxSecret}, "code": {"x"}, "grant_type": {"authorization_code"}}, 40013, "invalid appid"},
		{"bad grant_type", url.Values{"appid": {wxWeb}, "secret": {wxSecret}, "code": {"x"}, "grant_type": {"client_credential"}}, 40002, "invalid grant_type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.get(t, "/sns/oauth2/access_token", c.q)
			if r.status != http.StatusOK || r.contentType != "text/plain" {
				t.Errorf("HTTP %d %q, want 200 text/plain", r.status, r.contentType)
			}
			if r.errcode() != c.want {
				t.Errorf("errcode %d, want %d", r.errcode(), c.want)
			}
			if m := r.str("errmsg"); !strings.HasPrefix(m, c.msg) || !ridRE.MatchString(m) {
				t.Errorf("errmsg %q, want %q with a rid suffix", m, c.msg)
			}
		})
	}
}

func TestWeChatContentTypeSwitch(t *testing.T) {
	e := newWXEnv(t, func(o *sandbox.WeChatOptions) { o.ContentType = "application/json; encoding=utf-8" })
	r := e.exchange(t, wxWeb, "nope")
	if r.contentType != "application/json; encoding=utf-8" || r.errcode() != 40029 {
		t.Errorf("got %q errcode %d", r.contentType, r.errcode())
	}
}

func TestWeChatCodeIsSingleUseAndExpires(t *testing.T) {
	cases := []struct {
		name    string
		code    func(e *wxEnv) string
		appid   string
		wait    time.Duration
		first   int
		errcode int // of the second redemption
	}{
		{"website code reused", func(e *wxEnv) string { return e.webCode(t, "alice") }, wxWeb, 0, 0, 40163},
		{"website code alive at 9m59s", func(e *wxEnv) string { return e.webCode(t, "alice") }, wxWeb, 10*time.Minute - time.Second, 0, 40163},
		{"website code expired at 10m", func(e *wxEnv) string { return e.webCode(t, "alice") }, wxWeb, 10 * time.Minute, 42003, 42003},
		{"OA code expired at 5m", func(e *wxEnv) string { return e.oaCode(t, "bob", "snsapi_userinfo") }, wxOA, 5 * time.Minute, 42003, 42003},
		{"OA code alive at 4m59s", func(e *wxEnv) string { return e.oaCode(t, "bob", "snsapi_userinfo") }, wxOA, 5*time.Minute - time.Second, 0, 40163},
		{"code of another app", func(e *wxEnv) string { return e.webCode(t, "alice") }, wxLoose, 0, 40029, 40029},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newWXEnv(t, nil)
			code := c.code(e)
			if code == "" {
				t.Fatal("no code in the redirect")
			}
			e.clock.Advance(c.wait)
			if got := e.exchange(t, c.appid, code).errcode(); got != c.first {
				t.Fatalf("first redemption: errcode %d, want %d", got, c.first)
			}
			if got := e.exchange(t, c.appid, code).errcode(); got != c.errcode {
				t.Errorf("second redemption: errcode %d, want %d", got, c.errcode)
			}
		})
	}
}

func TestWeChatExpiredCodeErrcodeConfigurable(t *testing.T) {
	e := newWXEnv(t, func(o *sandbox.WeChatOptions) { o.ExpiredCodeErrcode = 40029 })
	code, err := e.sim.LoginCode(wxMini, "alice")
	if err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(5 * time.Minute)
	r := e.get(t, "/sns/jscode2session", url.Values{"appid": {wxMini}, "secret": {wxSecret}, "js_code": {code}, "grant_type": {"authorization_code"}})
	if r.errcode() != 40029 {
		t.Errorf("errcode %d, want 40029", r.errcode())
	}
}

func TestWeChatAuthorizePageRefusesBadRequests(t *testing.T) {
	e := newWXEnv(t, func(o *sandbox.WeChatOptions) { o.StrictParamOrder = true })
	good := "https://rp.example/callback/x"
	cases := []struct {
		name, url, code string
	}{
		{"qrconnect foreign domain", authorizeURL(e.srv.URL, "/connect/qrconnect", wxWeb, "https://evil.example/cb", "snsapi_login", "abcdefghijklmnop"), "10003"},
		{"qrconnect OA scope", authorizeURL(e.srv.URL, "/connect/qrconnect", wxWeb, good, "snsapi_userinfo", "abcdefghijklmnop"), "scope"},
		{"qrconnect OA appid", authorizeURL(e.srv.URL, "/connect/qrconnect", wxOA, good, "snsapi_login", "abcdefghijklmnop"), "40013"},
		{"OA website appid", authorizeURL(e.srv.URL, "/connect/oauth2/authorize", wxWeb, good, "snsapi_base", "abcdefghijklmnop"), "10016"},
		{"OA foreign domain", authorizeURL(e.srv.URL, "/connect/oauth2/authorize", wxOA, "https://evil.example/cb", "snsapi_base", "abcdefghijklmnop"), "10003"},
		{"OA unknown scope", authorizeURL(e.srv.URL, "/connect/oauth2/authorize", wxOA, good, "snsapi_login", "abcdefghijklmnop"), "10005"},
		{"OA state not alphanumeric", authorizeURL(e.srv.URL, "/connect/oauth2/authorize", wxOA, good, "snsapi_base", "abc-def"), "10013"},
		{"OA state before scope", e.srv.URL + "/connect/oauth2/authorize?appid=" + wxOA + "&redirect_uri=" + url.QueryEscape(good) + "&response_type=code&state=abcdefghijklmnop&scope=snsapi_base", "param-order"},
		{"OA redirect_uri first", e.srv.URL + "/connect/oauth2/authorize?redirect_uri=" + url.QueryEscape(good) + "&appid=" + wxOA + "&response_type=code&scope=snsapi_base&state=abcdefghijklmnop", "param-order"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, err := noRedirect.Get(c.url + "&sandbox_person=alice")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Location") != "" {
				t.Errorf("HTTP %d Location %q, want an error page and no redirect", resp.StatusCode, resp.Header.Get("Location"))
			}
			if !strings.Contains(string(body), `data-wechat-error="`+c.code+`"`) {
				t.Errorf("page lacks error %s:\n%s", c.code, body)
			}
		})
	}
	t.Run("OA params in WeChat's order", func(t *testing.T) {
		loc := e.approve(t, authorizeURL(e.srv.URL, "/connect/oauth2/authorize", wxOA, good, "snsapi_base", "abcdefghijklmnop"), "alice")
		if loc.Query().Get("code") == "" {
			t.Errorf("redirect %s has no code", loc)
		}
	})
}

func TestWeChatPickerListsPersonsAndDeny(t *testing.T) {
	e := newWXEnv(t, nil)
	u := authorizeURL(e.srv.URL, "/connect/qrconnect", wxWeb, "https://rp.example/cb?x=1", "snsapi_login", "abcdefghijklmnop")
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, p := range sandbox.DefaultPersons() {
		if !strings.Contains(string(body), `data-person="`+p.ID+`"`) {
			t.Errorf("picker lacks %s", p.ID)
		}
	}
	m := regexp.MustCompile(`<a class="deny" data-deny href="([^"]+)"`).FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("picker lacks a deny link:\n%s", body)
	}
	resp, err = noRedirect.Get(e.srv.URL + strings.ReplaceAll(m[1], "&amp;", "&"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Location"), "https://rp.example/cb?x=1&state=abcdefghijklmnop"; got != want {
		t.Errorf("deny redirects to %q, want %q", got, want)
	}
	loc := e.approve(t, u, "carol")
	if loc.Query().Get("x") != "1" || loc.Query().Get("state") != "abcdefghijklmnop" || loc.Query().Get("code") == "" {
		t.Errorf("approve redirects to %s, want the original query, code and state", loc)
	}
}

func TestWeChatTokenAndProfileWireShape(t *testing.T) {
	e := newWXEnv(t, nil)
	tok := e.exchange(t, wxWeb, e.webCode(t, "alice"))
	if tok.errcode() != 0 || tok.str("scope") != "snsapi_login" || tok.json["expires_in"] != float64(7200) {
		t.Fatalf("token reply %s", tok.raw)
	}
	if tok.str("openid") != e.sim.OpenID(wxWeb, "alice") || tok.str("unionid") != e.sim.UnionID("alice") {
		t.Errorf("token ids %s", tok.raw)
	}
	info := e.get(t, "/sns/userinfo", url.Values{"access_token": {tok.str("access_token")}, "openid": {tok.str("openid")}})
	// The simulator's own avatar, on its own host; slashes escaped as WeChat does.
	if want := strings.ReplaceAll(sandbox.AvatarURL(e.srv.URL, "alice"), "/", `\/`); !strings.Contains(info.raw, `"headimgurl":"`+want+`"`) {
		t.Errorf("headimgurl is not the simulator's avatar %s with slashes escaped: %s", want, info.raw)
	}
	if !strings.Contains(info.raw, `"sex":0`) || !strings.Contains(info.raw, `"province":""`) || !strings.Contains(info.raw, `"country":""`) {
		t.Errorf("sex/region not blanked: %s", info.raw)
	}
	if info.str("nickname") != "爱丽丝" || info.str("unionid") != e.sim.UnionID("alice") {
		t.Errorf("profile %s", info.raw)
	}
	auth := e.get(t, "/sns/auth", url.Values{"access_token": {tok.str("access_token")}, "openid": {tok.str("openid")}})
	if auth.errcode() != 0 || auth.str("errmsg") != "ok" {
		t.Errorf("sns/auth %s", auth.raw)
	}
	wrong := e.get(t, "/sns/auth", url.Values{"access_token": {tok.str("access_token")}, "openid": {e.sim.OpenID(wxWeb, "bob")}})
	if wrong.errcode() != 40003 {
		t.Errorf("sns/auth with another openid: %s", wrong.raw)
	}
	e.clock.Advance(7200 * time.Second)
	if got := e.get(t, "/sns/userinfo", url.Values{"access_token": {tok.str("access_token")}, "openid": {tok.str("openid")}}).errcode(); got != 42001 {
		t.Errorf("expired token: errcode %d, want 42001", got)
	}
}

func TestWeChatUnionIDRules(t *testing.T) {
	e := newWXEnv(t, nil)
	web := e.exchange(t, wxWeb, e.webCode(t, "bob"))
	oa := e.exchange(t, wxOA, e.oaCode(t, "bob", "snsapi_userinfo"))
	base := e.exchange(t, wxOA, e.oaCode(t, "bob", "snsapi_base"))
	if web.str("unionid") == "" || web.str("unionid") != oa.str("unionid") {
		t.Errorf("unionid not shared across the account's apps: %q %q", web.str("unionid"), oa.str("unionid"))
	}
	if web.str("openid") == oa.str("openid") {
		t.Error("openid is the same in two apps")
	}
	if base.str("unionid") != "" {
		t.Errorf("snsapi_base token carries a unionid: %s", base.raw)
	}
	loose := e.approve(t, authorizeURL(e.srv.URL, "/connect/qrconnect", wxLoose, "https://any.example/cb", "snsapi_login", "abcdefghijklmnop"), "bob")
	if r := e.exchange(t, wxLoose, loose.Query().Get("code")); r.str("unionid") != "" || r.str("openid") == "" {
		t.Errorf("unbound app: %s", r.raw)
	}
	if err := e.sim.SetUnionID(wxWeb, false); err != nil {
		t.Fatal(err)
	}
	if r := e.exchange(t, wxWeb, e.webCode(t, "bob")); r.str("unionid") != "" {
		t.Errorf("unionid switched off but sent: %s", r.raw)
	}
}

func TestWeChatSnapshotAndPlaceholderSwitches(t *testing.T) {
	e := newWXEnv(t, nil)
	e.sim.SetSnapshotUser("carol", true)
	snap := e.exchange(t, wxOA, e.oaCode(t, "carol", "snsapi_userinfo"))
	if snap.json["is_snapshotuser"] != float64(1) {
		t.Fatalf("no is_snapshotuser: %s", snap.raw)
	}
	if snap.str("openid") == e.sim.OpenID(wxOA, "carol") || snap.str("unionid") == e.sim.UnionID("carol") {
		t.Errorf("snapshot ids are the real ones: %s", snap.raw)
	}
	if r := e.get(t, "/sns/userinfo", url.Values{"access_token": {snap.str("access_token")}, "openid": {snap.str("openid")}}); r.errcode() != 48001 {
		t.Errorf("userinfo with a snapshot token: %s", r.raw)
	}
	e.sim.SetSnapshotUser("carol", false)
	if r := e.exchange(t, wxOA, e.oaCode(t, "carol", "snsapi_userinfo")); strings.Contains(r.raw, "is_snapshotuser") {
		t.Errorf("snapshot switched off but sent: %s", r.raw)
	}

	e.sim.SetPlaceholderProfile("alice", true)
	tok := e.exchange(t, wxOA, e.oaCode(t, "alice", "snsapi_userinfo"))
	info := e.get(t, "/sns/userinfo", url.Values{"access_token": {tok.str("access_token")}, "openid": {tok.str("openid")}})
	if info.str("nickname") != "微信用户" || !strings.Contains(info.str("headimgurl"), "thirdwx.qlogo.cn") {
		t.Errorf("placeholder profile: %s", info.raw)
	}
	base := e.exchange(t, wxOA, e.oaCode(t, "alice", "snsapi_base"))
	if r := e.get(t, "/sns/userinfo", url.Values{"access_token": {base.str("access_token")}, "openid": {base.str("openid")}}); r.errcode() != 48001 {
		t.Errorf("userinfo with an snsapi_base token: %s", r.raw)
	}
}

func TestWeChatRefreshRenewsInPlace(t *testing.T) {
	e := newWXEnv(t, nil)
	tok := e.exchange(t, wxWeb, e.webCode(t, "alice"))
	refresh := func() wxReply {
		return e.get(t, "/sns/oauth2/refresh_token", url.Values{"appid": {wxWeb}, "grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}})
	}
	if r := refresh(); r.str("access_token") != tok.str("access_token") || r.str("unionid") != "" {
		t.Errorf("refresh before expiry: %s", r.raw)
	}
	e.clock.Advance(3 * time.Hour)
	if r := refresh(); r.str("access_token") == tok.str("access_token") || r.str("access_token") == "" {
		t.Errorf("refresh after expiry: %s", r.raw)
	}
	e.clock.Advance(30 * 24 * time.Hour)
	if r := refresh(); r.errcode() != 42002 {
		t.Errorf("refresh after 30 days: %s", r.raw)
	}
}

func TestWeChatMiniProgramSessionAndPhone(t *testing.T) {
	e := newWXEnv(t, nil)
	code, err := e.sim.LoginCode(wxMini, "bob")
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"appid": {wxMini}, "secret": {wxSecret}, "js_code": {code}, "grant_type": {"authorization_code"}}
	s := e.get(t, "/sns/jscode2session", q)
	if s.str("openid") != e.sim.OpenID(wxMini, "bob") || s.str("unionid") != e.sim.UnionID("bob") || len(s.str("session_key")) != 24 {
		t.Fatalf("jscode2session %s", s.raw)
	}
	if !strings.Contains(s.raw, strings.ReplaceAll(e.sim.SessionKey(wxMini, "bob"), "/", `\/`)) {
		t.Errorf("session_key is not the current one")
	}
	if r := e.get(t, "/sns/jscode2session", q); r.errcode() != 40163 {
		t.Errorf("reused js_code: %s", r.raw)
	}

	st := e.postJSON(t, "/cgi-bin/stable_token", nil, map[string]any{"grant_type": "client_credential", "appid": wxMini, "secret": wxSecret})
	token := st.str("access_token")
	if token == "" || st.json["expires_in"] != float64(7200) {
		t.Fatalf("stable_token %s", st.raw)
	}
	again := e.postJSON(t, "/cgi-bin/stable_token", nil, map[string]any{"grant_type": "client_credential", "appid": wxMini, "secret": wxSecret})
	if again.str("access_token") != token {
		t.Errorf("stable_token changed the token without force_refresh")
	}
	phone, err := e.sim.PhoneCode(wxMini, "bob")
	if err != nil {
		t.Fatal(err)
	}
	p := e.postJSON(t, "/wxa/business/getuserphonenumber", url.Values{"access_token": {token}}, map[string]string{"code": phone})
	info, _ := p.json["phone_info"].(map[string]any)
	if p.errcode() != 0 || info["phoneNumber"] != "13800138002" || info["purePhoneNumber"] != "13800138002" || info["countryCode"] != "86" {
		t.Errorf("phone reply %s", p.raw)
	}
	if r := e.postJSON(t, "/wxa/business/getuserphonenumber", url.Values{"access_token": {token}}, map[string]string{"code": phone}); r.errcode() != 40163 {
		t.Errorf("reused phone code: %s", r.raw)
	}
	login, _ := e.sim.LoginCode(wxMini, "bob")
	if r := e.postJSON(t, "/wxa/business/getuserphonenumber", url.Values{"access_token": {token}}, map[string]string{"code": login}); r.errcode() != 40029 {
		t.Errorf("wx.login code as phone code: %s", r.raw)
	}

	mac := hmac.New(sha256.New, []byte(e.sim.SessionKey(wxMini, "bob")))
	sig := hex.EncodeToString(mac.Sum(nil))
	cs := e.get(t, "/wxa/checksession", url.Values{"access_token": {token}, "openid": {e.sim.OpenID(wxMini, "bob")}, "signature": {sig}, "sig_method": {"hmac_sha256"}})
	if cs.errcode() != 0 {
		t.Errorf("checksession %s", cs.raw)
	}
	bad := e.get(t, "/wxa/checksession", url.Values{"access_token": {token}, "openid": {e.sim.OpenID(wxMini, "bob")}, "signature": {strings.Repeat("0", 64)}, "sig_method": {"hmac_sha256"}})
	if bad.errcode() != 87009 {
		t.Errorf("checksession with a bad signature %s", bad.raw)
	}

	forced := e.postJSON(t, "/cgi-bin/stable_token", nil, map[string]any{"grant_type": "client_credential", "appid": wxMini, "secret": wxSecret, "force_refresh": true})
	if forced.str("access_token") == token {
		t.Errorf("force_refresh kept the token")
	}
	phone, _ = e.sim.PhoneCode(wxMini, "bob")
	if r := e.postJSON(t, "/wxa/business/getuserphonenumber", url.Values{"access_token": {token}}, map[string]string{"code": phone}); r.errcode() != 40001 {
		t.Errorf("old token after force_refresh: %s", r.raw)
	}
	e.clock.Advance(10 * time.Second)
	if r := e.postJSON(t, "/cgi-bin/stable_token", nil, map[string]any{"grant_type": "client_credential", "appid": wxMini, "secret": wxSecret, "force_refresh": true}); r.str("access_token") != forced.str("access_token") {
		t.Errorf("a second force_refresh within 30 s replaced the token")
	}
	resp, err := http.Get(e.srv.URL + "/cgi-bin/stable_token")
	if err != nil {
		t.Fatal(err)
	}
	if r := readWX(t, resp); r.errcode() != 43002 {
		t.Errorf("GET stable_token: %s", r.raw)
	}
}

func TestWeChatStableTokenRenewedInItsLastFiveMinutes(t *testing.T) {
	e := newWXEnv(t, nil)
	get := func() wxReply {
		return e.postJSON(t, "/cgi-bin/stable_token", nil, map[string]any{"grant_type": "client_credential", "appid": wxMini, "secret": wxSecret})
	}
	first := get()
	e.clock.Advance(7200*time.Second - 10*time.Minute)
	if r := get(); r.str("access_token") != first.str("access_token") || r.json["expires_in"] != float64(600) {
		t.Errorf("10 min before expiry: %s", r.raw)
	}
	e.clock.Advance(6 * time.Minute)
	second := get()
	if second.str("access_token") == first.str("access_token") {
		t.Errorf("4 min before expiry the token was not renewed")
	}
	phone, _ := e.sim.PhoneCode(wxMini, "alice")
	if r := e.postJSON(t, "/wxa/business/getuserphonenumber", url.Values{"access_token": {first.str("access_token")}}, map[string]string{"code": phone}); r.errcode() != 0 {
		t.Errorf("the old token stopped working before its expiry: %s", r.raw)
	}
}

func TestWeChatCountryCodeAsNumber(t *testing.T) {
	e := newWXEnv(t, func(o *sandbox.WeChatOptions) { o.CountryCodeAsNumber = true })
	st := e.postJSON(t, "/cgi-bin/stable_token", nil, map[string]any{"grant_type": "client_credential", "appid": wxMini, "secret": wxSecret})
	phone, _ := e.sim.PhoneCode(wxMini, "alice")
	p := e.postJSON(t, "/wxa/business/getuserphonenumber", url.Values{"access_token": {st.str("access_token")}}, map[string]string{"code": phone})
	if !strings.Contains(p.raw, `"countryCode":86`) {
		t.Errorf("countryCode not a number: %s", p.raw)
	}
}

func TestWeChatFaultInjection(t *testing.T) {
	e := newWXEnv(t, nil)
	e.sim.InjectFault(sandbox.Fault{Path: "/sns/jscode2session", Code: -1, Times: 2})
	q := url.Values{"appid": {wxMini}, "secret": {wxSecret}, "js_code": {"x"}, "grant_type": {"authorization_code"}}
	for i, want := range []int{-1, -1, 40029} {
		if got := e.get(t, "/sns/jscode2session", q).errcode(); got != want {
			t.Errorf("call %d: errcode %d, want %d", i+1, got, want)
		}
	}
	if got := e.sim.Calls("/sns/jscode2session"); got != 3 {
		t.Errorf("Calls = %d, want 3", got)
	}
	e.sim.InjectFault(sandbox.Fault{Path: "/cgi-bin/token", Kind: sandbox.FaultEmpty, Times: 1})
	r := e.get(t, "/cgi-bin/token", url.Values{"grant_type": {"client_credential"}, "appid": {wxMini}, "secret": {wxSecret}})
	if r.status != 200 || r.raw != "" || r.contentType != "text/html; charset=gbk" {
		t.Errorf("empty fault: %d %q %q", r.status, r.contentType, r.raw)
	}
	e.sim.InjectFault(sandbox.Fault{Code: 45011})
	if got := e.get(t, "/sns/userinfo", nil).errcode(); got != 45011 {
		t.Errorf("45011 on every path: got %d", got)
	}
	e.sim.ClearFaults()
	e.sim.InjectFault(sandbox.Fault{Kind: sandbox.FaultDown})
	if _, err := http.Get(e.srv.URL + "/sns/userinfo"); err == nil {
		t.Error("down: the call succeeded")
	}
	e.sim.ClearFaults()
	if got := e.get(t, "/sns/userinfo", nil).errcode(); got != 41001 {
		t.Errorf("after ClearFaults: errcode %d, want 41001", got)
	}
}

func TestWeChatSandboxLoginRoute(t *testing.T) {
	e := newWXEnv(t, nil)
	resp, err := http.Post(e.srv.URL+"/sandbox/wx.login?appid="+wxMini+"&person=alice", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&got)
	resp.Body.Close()
	s := e.get(t, "/sns/jscode2session", url.Values{"appid": {wxMini}, "secret": {wxSecret}, "js_code": {got["code"]}, "grant_type": {"authorization_code"}})
	if s.str("openid") != e.sim.OpenID(wxMini, "alice") {
		t.Errorf("code from /sandbox/wx.login did not log alice in: %s", s.raw)
	}
	resp, err = http.Post(e.srv.URL+"/sandbox/wx.login?appid="+wxWeb+"&person=alice", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("wx.login for a website app: HTTP %d, want 400", resp.StatusCode)
	}
}

func TestNewWeChatRefusesBadOptions(t *testing.T) {
	cases := map[string]sandbox.WeChatOptions{
		"no secret":      {Apps: []sandbox.WeChatApp{{AppID: "a", Type: sandbox.WeChatWebsite}}},
		"unknown type":   {Apps: []sandbox.WeChatApp{{AppID: "a", Secret: "s", Type: "app"}}},
		"duplicate app":  {Apps: []sandbox.WeChatApp{{AppID: "a", Secret: "s", Type: sandbox.WeChatMP}, {AppID: "a", Secret: "s", Type: sandbox.WeChatMP}}},
		"duplicate user": {Persons: []sandbox.Person{{ID: "x"}, {ID: "x"}}},
	}
	for name, o := range cases {
		if _, err := sandbox.NewWeChat(o); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestWeChatSandboxFaultRoute: POST /sandbox/fault injects a WeChat
// errcode for the next calls of a path over HTTP, refuses what it cannot
// do, and clear=1 ends every fault.
func TestWeChatSandboxFaultRoute(t *testing.T) {
	e := newWXEnv(t, nil)
	post := func(form url.Values) int {
		t.Helper()
		resp, err := http.PostForm(e.srv.URL+"/sandbox/fault", form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for name, form := range map[string]url.Values{
		"no path":        {"errcode": {"-1"}, "times": {"1"}},
		"a sandbox path": {"path": {"/sandbox/wx.login"}, "errcode": {"-1"}, "times": {"1"}},
		"no errcode":     {"path": {"/sns/jscode2session"}, "times": {"1"}},
		"zero times":     {"path": {"/sns/jscode2session"}, "errcode": {"-1"}, "times": {"0"}},
	} {
		if st := post(form); st != http.StatusBadRequest {
			t.Errorf("%s: HTTP %d, want 400", name, st)
		}
	}
	if resp, err := http.Get(e.srv.URL + "/sandbox/fault"); err != nil || resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /sandbox/fault: %v %v", resp, err)
	}
	session := url.Values{"appid": {wxMini}, "secret": {wxSecret}, "js_code": {"nope"}, "grant_type": {"authorization_code"}}
	if st := post(url.Values{"path": {"/sns/jscode2session"}, "errcode": {"-1"}, "times": {"2"}}); st != 200 {
		t.Fatalf("inject: HTTP %d", st)
	}
	for i := 0; i < 2; i++ {
		if got := e.get(t, "/sns/jscode2session", session).errcode(); got != -1 {
			t.Errorf("call %d after the fault: errcode %d, want -1", i+1, got)
		}
	}
	if got := e.get(t, "/sns/jscode2session", session).errcode(); got == -1 {
		t.Error("the fault outlived its two calls")
	}
	post(url.Values{"path": {"/sns/jscode2session"}, "errcode": {"45011"}, "times": {"5"}})
	if st := post(url.Values{"clear": {"1"}}); st != 200 {
		t.Fatalf("clear: HTTP %d", st)
	}
	if got := e.get(t, "/sns/jscode2session", session).errcode(); got == 45011 {
		t.Error("clear=1 left the fault in place")
	}
}
