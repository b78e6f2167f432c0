package sandbox

import (
	"encoding/json"
	"errors"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors/internal/conntest"
)

const (
	weiboTestApp      = "1352222456"
	weiboTestEmailApp = "1352222457"
	weiboTestSecret   = "weibo-test-secret-0123456789"
	weiboTestRedirect = "https://rp.example/callback/weibo"
)

type weiboTestEnv struct {
	sim    *Weibo
	srv    *httptest.Server
	clock  *conntest.Clock
	client *http.Client // does not follow redirects
}

func newWeiboTestEnv(t *testing.T) *weiboTestEnv {
	t.Helper()
	clock := conntest.NewClock(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))
	sim := NewWeibo(WeiboOptions{
		Apps: []WeiboApp{
			{ClientID: weiboTestApp, Secret: weiboTestSecret, RedirectURI: weiboTestRedirect},
			{ClientID: weiboTestEmailApp, Secret: weiboTestSecret, RedirectURI: weiboTestRedirect, Email: true},
		},
		Clock: clock.Now,
	})
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	client := conntest.NoRedirect()
	return &weiboTestEnv{sim: sim, srv: srv, clock: clock, client: client}
}

func (e *weiboTestEnv) do(t *testing.T, method, path string, q url.Values) (*http.Response, string) {
	t.Helper()
	var resp *http.Response
	var err error
	if method == http.MethodPost {
		resp, err = e.client.PostForm(e.srv.URL+path, q)
	} else {
		resp, err = e.client.Get(e.srv.URL + path + "?" + q.Encode())
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func weiboAuthorizeQuery(clientID, redirectURI string) url.Values {
	return url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "response_type": {"code"}, "state": {"st4te0123456789ab"}}
}

// callback follows the picker link attr and returns the callback query.
func (e *weiboTestEnv) callback(t *testing.T, q url.Values, attr string) url.Values {
	t.Helper()
	_, page := e.do(t, http.MethodGet, WeiboPathAuthorize, q)
	return conntest.Follow(t, conntest.PickLink(t, e.srv.URL+WeiboPathAuthorize, page, attr), weiboTestRedirect)
}

func (e *weiboTestEnv) code(t *testing.T, clientID, person, scope string) string {
	t.Helper()
	q := weiboAuthorizeQuery(clientID, weiboTestRedirect)
	if scope != "" {
		q.Set("scope", scope)
	}
	return e.callback(t, q, `data-person="`+person+`"`).Get("code")
}

func (e *weiboTestEnv) token(t *testing.T, clientID, code string) (*http.Response, map[string]any) {
	t.Helper()
	resp, body := e.do(t, http.MethodPost, WeiboPathToken, url.Values{
		"client_id": {clientID}, "client_secret": {weiboTestSecret}, "grant_type": {"authorization_code"},
		"code": {code}, "redirect_uri": {weiboTestRedirect},
	})
	return resp, qqDecode(t, body)
}

func (e *weiboTestEnv) accessToken(t *testing.T, clientID, person, scope string) string {
	t.Helper()
	_, m := e.token(t, clientID, e.code(t, clientID, person, scope))
	tok, ok := m["access_token"].(string)
	if !ok {
		t.Fatalf("no access token: %v", m)
	}
	return tok
}

// weiboWantError checks a reply is Weibo's error: the status, text/plain
// JSON and error_code as a JSON number.
func weiboWantError(t *testing.T, resp *http.Response, body string, status int, code string) map[string]any {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "text/plain;charset=UTF-8" {
		t.Errorf("Content-Type %q, want text/plain;charset=UTF-8", ct)
	}
	m := qqDecode(t, body)
	if n, ok := m["error_code"].(json.Number); !ok || n.String() != code {
		t.Errorf("error_code %#v, want the number %s (body %s)", m["error_code"], code, body)
	}
	if _, ok := m["error"].(string); !ok {
		t.Errorf("no error string in %s", body)
	}
	return m
}

func TestWeiboAuthorizeShowsEveryPersonAndADenyLink(t *testing.T) {
	e := newWeiboTestEnv(t)
	_, page := e.do(t, http.MethodGet, WeiboPathAuthorize, weiboAuthorizeQuery(weiboTestApp, weiboTestRedirect))
	for _, p := range DefaultPersons() {
		conntest.PickLink(t, "", page, `data-person="`+p.ID+`"`)
	}
	conntest.PickLink(t, "", page, "data-deny")
	q := weiboAuthorizeQuery(weiboTestApp, weiboTestRedirect)
	q.Set("display", "mobile")
	if _, page := e.do(t, http.MethodPost, WeiboPathAuthorize, q); !strings.Contains(page, `data-display="mobile"`) {
		t.Errorf("POST with display=mobile did not give the mobile page:\n%s", page)
	}
}

func TestWeiboPickedPersonRedirectsWithCodeAndState(t *testing.T) {
	e := newWeiboTestEnv(t)
	q := e.callback(t, weiboAuthorizeQuery(weiboTestApp, weiboTestRedirect), `data-person="alice"`)
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(q.Get("code")) || q.Get("state") != "st4te0123456789ab" {
		t.Errorf("callback query %v", q)
	}
}

func TestWeiboDenyRedirectsWithAccessDenied21330(t *testing.T) {
	e := newWeiboTestEnv(t)
	q := e.callback(t, weiboAuthorizeQuery(weiboTestApp, weiboTestRedirect), "data-deny")
	if q.Get("error") != "access_denied" || q.Get("error_code") != "21330" || q.Get("state") != "st4te0123456789ab" || q.Has("code") {
		t.Errorf("deny callback %v", q)
	}
}

func TestWeiboAuthorizeShowsItsOwnErrorPageForUnknownAppOrRedirect(t *testing.T) {
	e := newWeiboTestEnv(t)
	tests := []struct {
		name     string
		clientID string
		redirect string
		code     string
	}{
		{"unknown app", "999", weiboTestRedirect, "21324"},
		{"redirect not the registered one", weiboTestApp, weiboTestRedirect + "/x", "21322"},
		{"no redirect", weiboTestApp, "", "21322"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := weiboAuthorizeQuery(tt.clientID, tt.redirect)
			q.Set(personParam, "alice")
			resp, page := e.do(t, http.MethodGet, WeiboPathAuthorize, q)
			if resp.Header.Get("Location") != "" || !strings.Contains(page, `data-error-code="`+tt.code+`"`) {
				t.Errorf("status %d, Location %q, page:\n%s", resp.StatusCode, resp.Header.Get("Location"), page)
			}
		})
	}
}

func TestWeiboTokenIsTextPlainJSONWithStringUID(t *testing.T) {
	e := newWeiboTestEnv(t)
	code := e.code(t, weiboTestApp, "bob", "")
	resp, body := e.do(t, http.MethodPost, WeiboPathToken, url.Values{
		"client_id": {weiboTestApp}, "client_secret": {weiboTestSecret}, "grant_type": {"authorization_code"},
		"code": {code}, "redirect_uri": {weiboTestRedirect},
	})
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain;charset=UTF-8" {
		t.Errorf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	m := qqDecode(t, body)
	if m["uid"] != e.sim.UID("bob") {
		t.Errorf("uid %#v, want the string %q", m["uid"], e.sim.UID("bob"))
	}
	if _, ok := m["expires_in"].(json.Number); !ok {
		t.Errorf("expires_in %#v is not a number", m["expires_in"])
	}
	if _, ok := m["remind_in"].(string); !ok {
		t.Errorf("remind_in %#v is not a string", m["remind_in"])
	}
	if tok, _ := m["access_token"].(string); !strings.HasPrefix(tok, "2.00") {
		t.Errorf("access_token %q", tok)
	}
}

func TestWeiboTokenErrorsAre4xxJSON(t *testing.T) {
	e := newWeiboTestEnv(t)
	used := e.code(t, weiboTestApp, "alice", "")
	e.token(t, weiboTestApp, used)
	form := func(code string) url.Values {
		return url.Values{"client_id": {weiboTestApp}, "client_secret": {weiboTestSecret},
			"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {weiboTestRedirect}}
	}
	tests := []struct {
		name   string
		method string
		form   func() url.Values
		status int
		code   string
	}{
		{"reused code", http.MethodPost, func() url.Values { return form(used) }, 400, "21325"},
		{"expired code", http.MethodPost, func() url.Values {
			f := form(e.code(t, weiboTestApp, "alice", ""))
			e.clock.Advance(weiboDefaultCodeTTL + time.Second)
			return f
		}, 400, "21325"},
		{"code of another app", http.MethodPost, func() url.Values { return form(e.code(t, weiboTestEmailApp, "alice", "")) }, 400, "21325"},
		{"bad secret", http.MethodPost, func() url.Values {
			f := form(e.code(t, weiboTestApp, "alice", ""))
			f.Set("client_secret", "wrong")
			return f
		}, 401, "21324"},
		{"redirect differs", http.MethodPost, func() url.Values {
			f := form(e.code(t, weiboTestApp, "alice", ""))
			f.Set("redirect_uri", weiboTestRedirect+"/x")
			return f
		}, 400, "21322"},
		{"bad grant_type", http.MethodPost, func() url.Values {
			f := form("x")
			f.Set("grant_type", "password")
			return f
		}, 400, "21328"},
		{"GET", http.MethodGet, func() url.Values { return form(e.code(t, weiboTestApp, "alice", "")) }, 405, "10021"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.form()
			resp, body := e.do(t, tt.method, WeiboPathToken, f)
			m := weiboWantError(t, resp, body, tt.status, tt.code)
			if m["request"] != WeiboPathToken {
				t.Errorf("request %v", m["request"])
			}
			if tt.code == "21325" && !strings.Contains(body, "invalid authorization code:"+f.Get("code")) {
				t.Errorf("21325 does not echo the code as Weibo does: %s", body)
			}
		})
	}
}

func TestWeiboUIDsAreStringsAndIDsDefeatFloatParsing(t *testing.T) {
	e := newWeiboTestEnv(t)
	token := e.accessToken(t, weiboTestApp, "alice", "")
	seen := map[string]bool{}
	var beyondFloat bool
	for _, p := range DefaultPersons() {
		uid := e.sim.UID(p.ID)
		if !regexp.MustCompile(`^[1-9][0-9]{6,18}$`).MatchString(uid) || seen[uid] {
			t.Errorf("uid %q of %s is not a distinct numeric string", uid, p.ID)
		}
		seen[uid] = true
		_, body := e.do(t, http.MethodGet, WeiboPathUsersShow, url.Values{"access_token": {token}, "uid": {uid}})
		if !strings.Contains(body, `"id":`+uid+`,"idstr":"`+uid+`"`) {
			t.Errorf("profile of %s does not have id %s as a number and idstr as a string: %s", p.ID, uid, body)
		}
		m := qqDecode(t, body)
		if m["screen_name"] != p.Name || m["gender"] != "n" || m["avatar_hd"] != AvatarURL(e.srv.URL, p.ID) {
			t.Errorf("profile of %s: %v", p.ID, m)
		}
		var asFloat struct{ ID float64 }
		if err := json.Unmarshal([]byte(body), &asFloat); err != nil {
			t.Fatal(err)
		}
		exact, _ := new(big.Float).SetString(uid)
		if big.NewFloat(asFloat.ID).Cmp(exact) != 0 {
			beyondFloat = true
		}
	}
	if !beyondFloat {
		t.Errorf("no person has an id that a float64 cannot hold")
	}
}

func TestWeiboTokenInfoHasNumbersAndExpireIn(t *testing.T) {
	e := newWeiboTestEnv(t)
	token := e.accessToken(t, weiboTestApp, "bob", "")
	e.clock.Advance(time.Hour)
	_, body := e.do(t, http.MethodPost, WeiboPathTokenInfo, url.Values{"access_token": {token}})
	if !strings.Contains(body, `"uid":`+e.sim.UID("bob")+`,`) && !strings.Contains(body, `"uid":`+e.sim.UID("bob")+`}`) {
		t.Errorf("uid is not the exact number %s: %s", e.sim.UID("bob"), body)
	}
	m := qqDecode(t, body)
	if n, _ := m["appkey"].(json.Number); n.String() != weiboTestApp {
		t.Errorf("appkey %#v", m["appkey"])
	}
	if n, _ := m["expire_in"].(json.Number); n.String() != "82800" {
		t.Errorf("expire_in %#v, want 82800", m["expire_in"])
	}
	if v, ok := m["scope"]; !ok || v != nil {
		t.Errorf("scope %#v, want null", v)
	}
	resp, body := e.do(t, http.MethodGet, WeiboPathTokenInfo, url.Values{"access_token": {token}})
	weiboWantError(t, resp, body, 405, "10021")
}

func TestWeiboAPIsRefuseBadTokens(t *testing.T) {
	e := newWeiboTestEnv(t)
	token := e.accessToken(t, weiboTestApp, "alice", "")
	uid := e.sim.UID("alice")

	resp, body := e.do(t, http.MethodGet, WeiboPathUsersShow, url.Values{"uid": {uid}})
	weiboWantError(t, resp, body, 400, "10006")
	resp, body = e.do(t, http.MethodGet, WeiboPathUsersShow, url.Values{"access_token": {"2.00nope"}, "uid": {uid}})
	m := weiboWantError(t, resp, body, 401, "21332")
	if m["request"] != WeiboPathUsersShow {
		t.Errorf("request %v", m["request"])
	}
	resp, body = e.do(t, http.MethodGet, WeiboPathUsersShow, url.Values{"access_token": {token}, "uid": {"42"}})
	weiboWantError(t, resp, body, 400, "20003")

	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+WeiboPathUsersShow+"?uid="+uid, nil)
	req.Header.Set("Authorization", "OAuth2 "+token)
	hresp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	hresp.Body.Close()
	if hresp.StatusCode != 200 {
		t.Errorf("Authorization: OAuth2 header: status %d", hresp.StatusCode)
	}

	e.clock.Advance(weiboDefaultTokenTTL + time.Second)
	resp, body = e.do(t, http.MethodGet, WeiboPathUsersShow, url.Values{"access_token": {token}, "uid": {uid}})
	weiboWantError(t, resp, body, 401, "21327")
}

func TestWeiboEmailNeedsTheAppPermissionAndTheUserScope(t *testing.T) {
	e := newWeiboTestEnv(t)
	resp, body := e.do(t, http.MethodGet, WeiboPathEmail, url.Values{"access_token": {e.accessToken(t, weiboTestApp, "alice", "email")}})
	weiboWantError(t, resp, body, 403, "10014")
	resp, body = e.do(t, http.MethodGet, WeiboPathEmail, url.Values{"access_token": {e.accessToken(t, weiboTestEmailApp, "alice", "")}})
	weiboWantError(t, resp, body, 403, "21330")
	resp, body = e.do(t, http.MethodGet, WeiboPathEmail, url.Values{"access_token": {e.accessToken(t, weiboTestEmailApp, "alice", "email")}})
	if resp.StatusCode != 200 || qqDecode(t, body)["email"] == nil {
		t.Errorf("granted email: %d %s", resp.StatusCode, body)
	}
}

func TestWeiboRevokeEndsTheToken(t *testing.T) {
	e := newWeiboTestEnv(t)
	token := e.accessToken(t, weiboTestApp, "carol", "")
	if _, body := e.do(t, http.MethodPost, WeiboPathRevoke, url.Values{"access_token": {token}}); body != `{"result":"true"}` {
		t.Errorf("revoke: %s", body)
	}
	resp, body := e.do(t, http.MethodPost, WeiboPathTokenInfo, url.Values{"access_token": {token}})
	weiboWantError(t, resp, body, 401, "21332")
}

func TestWeiboFaultsHitOnlyTheNextCalls(t *testing.T) {
	e := newWeiboTestEnv(t)
	token := e.accessToken(t, weiboTestApp, "alice", "")
	show := url.Values{"access_token": {token}, "uid": {e.sim.UID("alice")}}

	e.sim.InjectFault(Fault{Path: WeiboPathUsersShow, Code: 10023, Times: 2})
	for range 2 {
		resp, body := e.do(t, http.MethodGet, WeiboPathUsersShow, show)
		weiboWantError(t, resp, body, 403, "10023")
	}
	if resp, _ := e.do(t, http.MethodGet, WeiboPathUsersShow, show); resp.StatusCode != 200 {
		t.Errorf("after the rate limit: status %d", resp.StatusCode)
	}

	e.sim.InjectFault(Fault{Path: WeiboPathUsersShow, Code: 21327, Times: 1})
	resp, body := e.do(t, http.MethodGet, WeiboPathUsersShow, show)
	weiboWantError(t, resp, body, 401, "21327")

	e.sim.InjectFault(Fault{Path: WeiboPathTokenInfo, Kind: FaultBusy, Times: 1})
	if resp, _ := e.do(t, http.MethodPost, WeiboPathTokenInfo, url.Values{"access_token": {token}}); resp.StatusCode != 503 {
		t.Errorf("busy: status %d", resp.StatusCode)
	}

	e.sim.InjectFault(Fault{Path: WeiboPathAuthorize, Code: 21331, Times: 1})
	if _, page := e.do(t, http.MethodGet, WeiboPathAuthorize, weiboAuthorizeQuery(weiboTestApp, weiboTestRedirect)); !strings.Contains(page, `data-error-code="21331"`) {
		t.Errorf("authorize fault: %s", page)
	}

	e.sim.InjectFault(Fault{Path: WeiboPathToken, Kind: FaultRaw, Status: 200, ContentType: "text/html", Body: "<html>", Times: 1})
	if resp, body := e.do(t, http.MethodPost, WeiboPathToken, nil); resp.StatusCode != 200 || body != "<html>" {
		t.Errorf("raw: %d %q", resp.StatusCode, body)
	}

	e.sim.InjectFault(Fault{Kind: FaultDown})
	if _, err := e.client.Get(e.srv.URL + WeiboPathUsersShow); err == nil {
		t.Errorf("a call while down got an answer")
	}
	e.sim.ClearFaults()

	e.sim.InjectFault(Fault{Path: WeiboPathToken, Kind: FaultTimeout, Times: 1})
	_, err := (&http.Client{Timeout: 100 * time.Millisecond}).PostForm(e.srv.URL+WeiboPathToken, nil)
	var ne interface{ Timeout() bool }
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("stalled call: %v, want a client timeout", err)
	}
}
