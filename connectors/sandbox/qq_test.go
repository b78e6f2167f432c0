package sandbox

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors/internal/conntest"
)

type qqTestEnv struct {
	sim    *QQ
	srv    *httptest.Server
	clock  *conntest.Clock
	client *http.Client // does not follow redirects
}

const (
	qqTestApp      = "101364207"
	qqTestSecret   = "qq-test-secret-0123456789"
	qqTestRedirect = "https://rp.example/callback/qq"
	qqTestUnionApp = "101888888"
	qqTestOtherApp = "101999999"
)

func newQQTestEnv(t *testing.T, opts QQOptions) *qqTestEnv {
	t.Helper()
	clock := conntest.NewClock(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))
	if opts.Apps == nil {
		opts.Apps = []QQApp{
			{ClientID: qqTestApp, Secret: qqTestSecret, RedirectURI: qqTestRedirect},
			{ClientID: qqTestUnionApp, Secret: qqTestSecret, RedirectURI: qqTestRedirect, UnionID: true},
			{ClientID: qqTestOtherApp, Secret: qqTestSecret, RedirectURI: qqTestRedirect, UnionID: true},
		}
	}
	opts.Clock = clock.Now
	sim := NewQQ(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	client := conntest.NoRedirect()
	return &qqTestEnv{sim: sim, srv: srv, clock: clock, client: client}
}

func (e *qqTestEnv) get(t *testing.T, path string, q url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := e.client.Get(e.srv.URL + path + "?" + q.Encode())
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s: %v", path, err)
	}
	return resp, string(b)
}

func qqAuthorizeQuery(clientID, redirectURI string) url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"state": {"abcdefghijklmnop1234"}, "scope": {"get_user_info"},
	}
}

// code runs the browser part for person and returns the code.
func (e *qqTestEnv) code(t *testing.T, clientID, person string) string {
	t.Helper()
	_, page := e.get(t, QQPathAuthorize, qqAuthorizeQuery(clientID, qqTestRedirect))
	link := conntest.PickLink(t, e.srv.URL+QQPathAuthorize, page, `data-person="`+person+`"`)
	resp, err := e.client.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("picking %s: status %d, Location %q", person, resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("code")
}

func (e *qqTestEnv) token(t *testing.T, code string, extra url.Values) (*http.Response, string) {
	t.Helper()
	q := url.Values{
		"grant_type": {"authorization_code"}, "client_id": {qqTestApp}, "client_secret": {qqTestSecret},
		"code": {code}, "redirect_uri": {qqTestRedirect},
	}
	for k, v := range extra {
		q[k] = v
	}
	return e.get(t, QQPathToken, q)
}

// qqUnwrapJSONP checks the exact JSONP shape and returns the object.
func qqUnwrapJSONP(t *testing.T, body string) map[string]any {
	t.Helper()
	inner, ok := strings.CutPrefix(body, "callback( ")
	if !ok {
		t.Fatalf("body %q does not start with %q", body, "callback( ")
	}
	inner, ok = strings.CutSuffix(inner, " );\n")
	if !ok {
		t.Fatalf("body %q does not end with %q", body, " );\\n")
	}
	return qqDecode(t, inner)
}

func qqDecode(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", s, err)
	}
	return m
}

func TestQQAuthorizeShowsEveryPersonAndADenyLink(t *testing.T) {
	e := newQQTestEnv(t, QQOptions{})
	resp, page := e.get(t, QQPathAuthorize, qqAuthorizeQuery(qqTestApp, qqTestRedirect))
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	for _, p := range DefaultPersons() {
		conntest.PickLink(t, "", page, `data-person="`+p.ID+`"`)
		if !strings.Contains(page, p.Name) {
			t.Errorf("page does not show %s's name %q", p.ID, p.Name)
		}
	}
	conntest.PickLink(t, "", page, "data-deny")
	if !strings.Contains(page, `data-display="pc"`) {
		t.Errorf("page without display=mobile is not the PC page")
	}
	_, mobile := e.get(t, QQPathAuthorize, func() url.Values {
		q := qqAuthorizeQuery(qqTestApp, qqTestRedirect)
		q.Set("display", "mobile")
		return q
	}())
	if !strings.Contains(mobile, `data-display="mobile"`) {
		t.Errorf("display=mobile did not give the mobile page")
	}
}

func TestQQPickedPersonRedirectsWithCodeAndStateKeepingTheQuery(t *testing.T) {
	e := newQQTestEnv(t, QQOptions{})
	redirect := qqTestRedirect + "/sub?keep=1"
	_, page := e.get(t, QQPathAuthorize, qqAuthorizeQuery(qqTestApp, redirect))
	resp, err := e.client.Get(conntest.PickLink(t, e.srv.URL+QQPathAuthorize, page, `data-person="bob"`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != qqTestRedirect+"/sub" {
		t.Errorf("redirected to %s", got)
	}
	q := loc.Query()
	if q.Get("keep") != "1" || q.Get("state") != "abcdefghijklmnop1234" || q.Get("code") == "" {
		t.Errorf("callback query %v: want keep=1, the state and a code", q)
	}
}

func TestQQAuthorizeRefusesWithAnErrorPageAndNoRedirect(t *testing.T) {
	e := newQQTestEnv(t, QQOptions{})
	tests := []struct {
		name string
		edit func(url.Values)
		code string
	}{
		{"missing response_type", func(q url.Values) { q.Del("response_type") }, "100000"},
		{"missing client_id", func(q url.Values) { q.Del("client_id") }, "100001"},
		{"unknown client_id", func(q url.Values) { q.Set("client_id", "999") }, "100008"},
		{"redirect on another host", func(q url.Values) { q.Set("redirect_uri", "https://evil.example/callback/qq") }, "100010"},
		{"redirect outside the registered path", func(q url.Values) { q.Set("redirect_uri", "https://rp.example/callback/qqx") }, "100010"},
		{"missing state", func(q url.Values) { q.Del("state") }, "100029"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := qqAuthorizeQuery(qqTestApp, qqTestRedirect)
			tt.edit(q)
			q.Set(personParam, "alice")
			resp, page := e.get(t, QQPathAuthorize, q)
			if resp.StatusCode != 200 || resp.Header.Get("Location") != "" {
				t.Fatalf("status %d, Location %q: want an error page", resp.StatusCode, resp.Header.Get("Location"))
			}
			if !strings.Contains(page, `data-error-code="`+tt.code+`"`) {
				t.Errorf("page does not show error %s:\n%s", tt.code, page)
			}
		})
	}
}

func TestQQDenyClosesThePageAndSendsNothingBack(t *testing.T) {
	e := newQQTestEnv(t, QQOptions{})
	_, page := e.get(t, QQPathAuthorize, qqAuthorizeQuery(qqTestApp, qqTestRedirect))
	resp, err := e.client.Get(conntest.PickLink(t, e.srv.URL+QQPathAuthorize, page, "data-deny"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Location") != "" {
		t.Errorf("deny: status %d, Location %q; QQ sends nothing back", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestQQTokenIsFormEncodedByDefault(t *testing.T) {
	e := newQQTestEnv(t, QQOptions{})
	resp, body := e.token(t, e.code(t, qqTestApp, "alice"), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if strings.HasPrefix(body, "{") || strings.HasPrefix(body, "callback") {
		t.Fatalf("default token body %q is not form-encoded", body)
	}
	if !regexp.MustCompile(`^access_token=[0-9A-F]{32}&expires_in=7776000&refresh_token=[0-9A-F]{32}$`).MatchString(body) {
		t.Errorf("token body %q is not QQ's access_token=..&expires_in=7776000&refresh_token=..", body)
	}
}

func TestQQTokenIsJSONWithStringExpiresInWithFmtJSON(t *testing.T) {
	e := newQQTestEnv(t, QQOptions{})
	_, body := e.token(t, e.code(t, qqTestApp, "alice"), url.Values{"fmt": {"json"}, "need_openid": {"1"}})
	m := qqDecode(t, body)
	if m["expires_in"] != "7776000" {
		t.Errorf("expires_in = %#v, want the string \"7776000\"", m["expires_in"])
	}
	if m["openid"] != e.sim.OpenID(qqTestApp, "alice") {
		t.Errorf("need_openid=1: openid = %v", m["openid"])
	}
	if m["access_token"] == "" || m["refresh_token"] == "" {
		t.Errorf("tokens missing in %v", m)
	}
}

func TestQQTokenErrorsAreHTTP200JSONPOrJSON(t *testing.T) {
	e := newQQTestEnv(t, QQOptions{})
	used := e.code(t, qqTestApp, "alice")
	e.token(t, used, nil)
	tests := []struct {
		name  string
		code  func() string
		extra url.Values
		want  string
	}{
		{"reused code", func() string { return used }, nil, "100020"},
		{"unknown code", func() string { return "0123456789ABCDEF0123456789ABCDEF" }, nil, "100019"},
		{"code of another app", func() string { return e.code(t, qqTestUnionApp, "alice") }, nil, "100019"},
		{"expired code", func() string {
			c := e.code(t, qqTestApp, "bob")
			e.clock.Advance(qqCodeTTL + time.Second)
			return c
		}, nil, "100019"},
		{"bad secret", func() string { return e.code(t, qqTestApp, "bob") }, url.Values{"client_secret": {"wrong"}}, "100009"},
		{"redirect differs from authorize", func() string { return e.code(t, qqTestApp, "bob") }, url.Values{"redirect_uri": {qqTestRedirect + "/other"}}, "100010"},
		{"missing code", func() string { return "" }, nil, "100005"},
		{"bad grant_type", func() string { return "x" }, url.Values{"grant_type": {"password"}}, "100004"},
	}
	for _, tt := range tests {
		for _, format := range []string{"", "json"} {
			t.Run(tt.name+"/fmt="+format, func(t *testing.T) {
				extra := url.Values{}
				for k, v := range tt.extra {
					extra[k] = v
				}
				if format != "" {
					extra.Set("fmt", format)
				}
				resp, body := e.token(t, tt.code(), extra)
				if resp.StatusCode != 200 {
					t.Errorf("status %d, QQ answers errors with 200", resp.StatusCode)
				}
				var m map[string]any
				if format == "" {
					m = qqUnwrapJSONP(t, body)
				} else {
					m = qqDecode(t, body)
				}
				if n, ok := m["error"].(json.Number); !ok || n.String() != tt.want {
					t.Errorf("error = %#v, want the number %s (body %q)", m["error"], tt.want, body)
				}
			})
		}
	}
}

func TestQQMeIsJSONPTextHTMLByDefaultAndJSONWithFmtJSON(t *testing.T) {
	e := newQQTestEnv(t, QQOptions{})
	_, body := e.token(t, e.code(t, qqTestApp, "alice"), url.Values{"fmt": {"json"}})
	token, _ := qqDecode(t, body)["access_token"].(string)

	resp, body := e.get(t, QQPathMe, url.Values{"access_token": {token}})
	if ct := resp.Header.Get("Content-Type"); ct != "text/html" {
		t.Errorf("Content-Type %q, want text/html", ct)
	}
	m := qqUnwrapJSONP(t, body)
	if m["client_id"] != qqTestApp || m["openid"] != e.sim.OpenID(qqTestApp, "alice") {
		t.Errorf("/me = %v", m)
	}
	if _, ok := m["unionid"]; ok {
		t.Errorf("unionid given without unionid=1")
	}
	_, body = e.get(t, QQPathMe, url.Values{"access_token": {token}, "fmt": {"json"}})
	if qqDecode(t, body)["openid"] != e.sim.OpenID(qqTestApp, "alice") {
		t.Errorf("fmt=json /me = %s", body)
	}
	_, body = e.get(t, QQPathMe, url.Values{"access_token": {"nope"}})
	if n, _ := qqUnwrapJSONP(t, body)["error"].(json.Number); n.String() != "100016" {
		t.Errorf("bad token: %s, want error 100016", body)
	}
	e.clock.Advance(qqTokenTTL + time.Second)
	_, body = e.get(t, QQPathMe, url.Values{"access_token": {token}})
	if n, _ := qqUnwrapJSONP(t, body)["error"].(json.Number); n.String() != "100014" {
		t.Errorf("expired token: %s, want error 100014", body)
	}
}

func TestQQOpenIDsDifferPerAppAndUnionIDsOnlyWithPermission(t *testing.T) {
	e := newQQTestEnv(t, QQOptions{})
	me := func(app, person string, unionid bool) map[string]any {
		q := url.Values{"grant_type": {"authorization_code"}, "client_id": {app}, "client_secret": {qqTestSecret},
			"code": {e.code(t, app, person)}, "redirect_uri": {qqTestRedirect}, "fmt": {"json"}}
		_, body := e.get(t, QQPathToken, q)
		mq := url.Values{"access_token": {qqDecode(t, body)["access_token"].(string)}, "fmt": {"json"}}
		if unionid {
			mq.Set("unionid", "1")
		}
		_, body = e.get(t, QQPathMe, mq)
		return qqDecode(t, body)
	}
	a, b := me(qqTestUnionApp, "alice", true), me(qqTestOtherApp, "alice", true)
	if a["openid"] == b["openid"] {
		t.Errorf("the same openid %v in two apps", a["openid"])
	}
	if !regexp.MustCompile(`^[0-9A-F]{32}$`).MatchString(a["openid"].(string)) {
		t.Errorf("openid %v is not 32 uppercase hex", a["openid"])
	}
	if a["unionid"] == nil || a["unionid"] != b["unionid"] {
		t.Errorf("unionids %v and %v: want the same for one person", a["unionid"], b["unionid"])
	}
	if c := me(qqTestUnionApp, "bob", true); c["unionid"] == a["unionid"] {
		t.Errorf("two persons share unionid %v", c["unionid"])
	}
	refused := me(qqTestApp, "alice", true)
	if n, _ := refused["error"].(json.Number); n.String() != "100048" || refused["unionid"] != nil {
		t.Errorf("app without the permission: %v, want error 100048", refused)
	}
}

func TestQQUserInfoHasRetHTTPAvatarsAndDefaultGender(t *testing.T) {
	for _, omit := range []bool{false, true} {
		e := newQQTestEnv(t, QQOptions{OmitFigureQQ2: omit})
		_, body := e.token(t, e.code(t, qqTestApp, "carol"), url.Values{"fmt": {"json"}})
		token := qqDecode(t, body)["access_token"].(string)
		openID := e.sim.OpenID(qqTestApp, "carol")

		_, body = e.get(t, QQPathUserInfo, url.Values{"access_token": {token}, "oauth_consumer_key": {qqTestApp}, "openid": {openID}})
		m := qqDecode(t, body)
		if n, _ := m["ret"].(json.Number); n.String() != "0" || m["nickname"] != "卡罗尔" || m["gender"] != "男" {
			t.Errorf("get_user_info = %v", m)
		}
		if !strings.Contains(body, `"figureurl":"http:\/\/qzapp.qlogo.cn\/qzapp\/`) {
			t.Errorf("figureurl is not an escaped http URL: %s", body)
		}
		if s, _ := m["figureurl_qq_1"].(string); !strings.HasPrefix(s, "http://") {
			t.Errorf("figureurl_qq_1 %q is not http://", s)
		}
		if _, has := m["figureurl_qq_2"]; has == omit {
			t.Errorf("OmitFigureQQ2=%v but figureurl_qq_2 present=%v", omit, has)
		}
		if _, ok := m["vip"].(string); !ok {
			t.Errorf("vip flag %#v is not a string", m["vip"])
		}

		_, body = e.get(t, QQPathUserInfo, url.Values{"access_token": {token}, "oauth_consumer_key": {qqTestApp}, "openid": {"0000"}})
		if n, _ := qqDecode(t, body)["ret"].(json.Number); n.String() != "100016" {
			t.Errorf("wrong openid: %s, want ret 100016", body)
		}
	}
}

func TestQQRefreshTokenGrant(t *testing.T) {
	e := newQQTestEnv(t, QQOptions{})
	_, body := e.token(t, e.code(t, qqTestApp, "alice"), nil)
	form, err := url.ParseQuery(body)
	if err != nil {
		t.Fatal(err)
	}
	q := url.Values{"grant_type": {"refresh_token"}, "client_id": {qqTestApp}, "client_secret": {qqTestSecret},
		"refresh_token": {form.Get("refresh_token")}}
	_, body = e.get(t, QQPathToken, q)
	again, err := url.ParseQuery(body)
	if err != nil || again.Get("access_token") == "" || again.Get("access_token") == form.Get("access_token") {
		t.Errorf("refresh gave %q", body)
	}
}

func TestQQFaultsHitOnlyTheNextCalls(t *testing.T) {
	e := newQQTestEnv(t, QQOptions{})
	e.sim.InjectFault(Fault{Path: QQPathMe, Code: 100016, Times: 2})
	for i := range 3 {
		_, body := e.get(t, QQPathMe, url.Values{"access_token": {"x"}, "fmt": {"json"}})
		if n, _ := qqDecode(t, body)["error"].(json.Number); n.String() != "100016" {
			t.Errorf("call %d: %s", i, body)
		}
	}
	e.sim.InjectFault(Fault{Path: QQPathUserInfo, Code: 100030, Times: 1})
	if _, body := e.get(t, QQPathUserInfo, nil); !strings.Contains(body, `"ret":100030`) {
		t.Errorf("get_user_info fault: %s, want ret 100030", body)
	}

	e.sim.InjectFault(Fault{Path: QQPathToken, Kind: FaultBusy, Times: 1})
	if resp, _ := e.get(t, QQPathToken, nil); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("busy: status %d", resp.StatusCode)
	}
	if resp, body := e.get(t, QQPathToken, nil); resp.StatusCode != 200 || !strings.Contains(body, "100004") {
		t.Errorf("after the busy call: status %d, %q", resp.StatusCode, body)
	}

	e.sim.InjectFault(Fault{Path: QQPathToken, Kind: FaultRaw, Status: 200, ContentType: "text/html", Times: 1})
	if resp, body := e.get(t, QQPathToken, nil); resp.StatusCode != 200 || body != "" {
		t.Errorf("raw: status %d body %q", resp.StatusCode, body)
	}

	e.sim.InjectFault(Fault{Kind: FaultDown})
	if _, err := e.client.Get(e.srv.URL + QQPathMe); err == nil {
		t.Errorf("a call while down got an answer")
	}
	e.sim.ClearFaults()
	if _, err := e.client.Get(e.srv.URL + QQPathMe); err != nil {
		t.Errorf("a call after down: %v", err)
	}

	e.sim.InjectFault(Fault{Path: QQPathMe, Kind: FaultTimeout, Times: 1})
	stalled := &http.Client{Timeout: 100 * time.Millisecond}
	_, err := stalled.Get(e.srv.URL + QQPathMe)
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("stalled call: %v, want a client timeout", err)
	}
}

func TestQQAndWeiboPickersWorkUnderAPathPrefix(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/qq/", http.StripPrefix("/qq", NewQQ(QQOptions{Apps: []QQApp{{ClientID: qqTestApp, Secret: qqTestSecret, RedirectURI: qqTestRedirect}}})))
	mux.Handle("/weibo/", http.StripPrefix("/weibo", NewWeibo(WeiboOptions{Apps: []WeiboApp{{ClientID: weiboTestApp, Secret: weiboTestSecret, RedirectURI: weiboTestRedirect}}})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	client := conntest.NoRedirect()
	for _, tc := range []struct{ authorize, redirect string }{
		{srv.URL + "/qq" + QQPathAuthorize + "?" + qqAuthorizeQuery(qqTestApp, qqTestRedirect).Encode(), qqTestRedirect},
		{srv.URL + "/weibo" + WeiboPathAuthorize + "?" + weiboAuthorizeQuery(weiboTestApp, weiboTestRedirect).Encode(), weiboTestRedirect},
	} {
		resp, err := client.Get(tc.authorize)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp, err = client.Get(conntest.PickLink(t, tc.authorize, string(page), `data-person="alice"`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, tc.redirect+"?code=") {
			t.Errorf("%s: status %d, Location %q", tc.authorize, resp.StatusCode, loc)
		}
	}
}
