package e2e_test

import (
	"encoding/json"
	"image"
	_ "image/jpeg"
	_ "image/png"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// scanPage starts a scan login of a in br and returns the scene of the
// code page the browser landed on.
func scanPage(t *testing.T, s *qiaotest.World, br *qiaotest.Browser, a qiaotest.AuthRequest) (string, *qiaotest.Page) {
	t.Helper()
	p, err := br.Get(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	if p.Status != http.StatusOK || !strings.HasPrefix(p.URL.Path, "/scan/") {
		t.Fatalf("the scan login did not show the code page: HTTP %d at %s: %.400s", p.Status, p.URL, p.Body)
	}
	return strings.TrimPrefix(p.URL.Path, "/scan/"), p
}

// scanAPI posts body to the mini-program scan API of scene (step "",
// "/confirm" or "/refuse") and decodes the JSON answer.
func scanAPI(t *testing.T, s *qiaotest.World, scene, step string, body any) (int, map[string]any) {
	t.Helper()
	p := s.Bearer(t, http.MethodPost, "/api/v1/scan/"+url.PathEscape(scene)+step, "", body)
	if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("scan API%s: Content-Type %q", step, ct)
	}
	return p.Status, p.MustJSON(t)
}

// scanStatus reads the page's status endpoint in br.
func scanStatus(t *testing.T, br *qiaotest.Browser, issuer, scene string) string {
	t.Helper()
	p, err := br.Get(issuer + "/scan/" + scene + "/status")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(p.Body), &m); err != nil || p.Status != http.StatusOK {
		t.Fatalf("status: HTTP %d: %.200s", p.Status, p.Body)
	}
	st, _ := m["status"].(string)
	return st
}

// TestScanLoginEndToEnd: a relying party's authorization request with
// connector_id of the mini-program shows a code; alice scans it in the
// mini-program, which sends her wx.login code, and confirms; the
// browser then finishes with a code whose ID token's sub is the sub
// her mini-program token exchange gives.
func TestScanLoginEndToEnd(t *testing.T) {
	s := newWorld(t, scanLogin())
	rp := s.RP(qiaotest.WebClient)
	br := s.Browser("")
	a := rp.AuthRequest("wechat_miniprogram")
	scene, page := scanPage(t, s, br, a)
	for _, want := range []string{`data-status="waiting"`, "/scan/" + scene + "/code", "scan.js"} {
		if !strings.Contains(page.Body, want) {
			t.Errorf("the code page lacks %q", want)
		}
	}
	if csp := page.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "connect-src 'self'") {
		t.Errorf("CSP %q does not allow the page's own script and long poll", csp)
	}
	codes := s.WeChat.Codes()
	if len(codes) != 1 || codes[0].Scene != scene || codes[0].Page != "pages/scan/index" || codes[0].EnvVersion != "release" {
		t.Fatalf("codes made at WeChat = %+v, want one for scene %s and the configured page", codes, scene)
	}

	img, err := br.Get(s.Issuer + "/scan/" + scene + "/code")
	if err != nil {
		t.Fatal(err)
	}
	if _, format, err := image.Decode(strings.NewReader(img.Body)); err != nil || img.Header.Get("Content-Type") != "image/"+format {
		t.Errorf("code image: %v, format %q, Content-Type %q", err, format, img.Header.Get("Content-Type"))
	}
	if got := scanStatus(t, br, s.Issuer, scene); got != "waiting" {
		t.Errorf("status before the scan = %q, want waiting", got)
	}

	status, m := scanAPI(t, s, scene, "", map[string]string{"code": s.LoginCode(miniConnector, "alice")})
	if status != http.StatusOK || m["status"] != "scanned" || m["ticket"] == "" || m["client_id"] != qiaotest.WebClient {
		t.Fatalf("scan: HTTP %d %v", status, m)
	}
	if m["created_at"] == nil || m["expires_at"] == nil || m["client_name"] == nil {
		t.Errorf("the scan does not say what is being approved: %v", m)
	}
	if got := scanStatus(t, br, s.Issuer, scene); got != "scanned" {
		t.Errorf("status after the scan = %q, want scanned", got)
	}
	ticket := m["ticket"].(string)
	status, m = scanAPI(t, s, scene, "/confirm", map[string]string{"ticket": ticket, "code": s.LoginCode(miniConnector, "alice")})
	if status != http.StatusOK || m["status"] != "confirmed" {
		t.Fatalf("confirm: HTTP %d %v", status, m)
	}
	if got := scanStatus(t, br, s.Issuer, scene); got != "confirmed" {
		t.Errorf("status after confirm = %q, want confirmed", got)
	}

	p, err := br.Get(s.Issuer + "/scan/" + scene + "/finish")
	if err != nil {
		t.Fatal(err)
	}
	tk, err := rp.Finish(p, a)
	if err != nil {
		t.Fatalf("finishing the scan login: %v", err)
	}
	if tk.Claims["idp"] != "wechat_miniprogram" {
		t.Errorf("idp = %v", tk.Claims["idp"])
	}
	code, ex, body := s.PostToken(t, exchangeForm(s.LoginCode(miniConnector, "alice"), "openid"))
	if code != http.StatusOK {
		t.Fatalf("token exchange: %s", body)
	}
	if exSub := s.VerifyIDToken(t, ex["id_token"].(string), qiaotest.MiniClient)["sub"]; exSub != tk.Claims["sub"] || exSub == "" {
		t.Errorf("scan login sub %v != mini-program login sub %v", tk.Claims["sub"], exSub)
	}
	if v, ok := s.Metric(t, "qiao_logins_total", map[string]string{"connector": "wechat_miniprogram", "result": "success"}); !ok || v < 2 {
		t.Errorf("qiao_logins_total{wechat_miniprogram,success} = %v (%v), want the scan login and the exchange", v, ok)
	}

	// The browser's session now answers without a new scan, and the
	// finished scan cannot be finished twice.
	again, err := br.Get(s.Issuer + "/scan/" + scene + "/finish")
	if err != nil {
		t.Fatal(err)
	}
	if again.Status != http.StatusOK || strings.Contains(again.Location, "code=") {
		t.Errorf("a second finish: HTTP %d Location %q, want the page again", again.Status, again.Location)
	}
	a2 := rp.AuthRequest("wechat_miniprogram")
	p2, err := br.Get(a2.URL)
	if err != nil {
		t.Fatal(err)
	}
	tk2, err := rp.Finish(p2, a2)
	if err != nil {
		t.Fatalf("the session did not answer a second request: %v", err)
	}
	if tk2.Claims["sub"] != tk.Claims["sub"] {
		t.Errorf("SSO sub %v, want %v", tk2.Claims["sub"], tk.Claims["sub"])
	}
}

// TestScanLoginBadInputs: every wrong step of the mini-program gets a
// clear JSON error and changes nothing: the right steps still work
// afterwards.
func TestScanLoginBadInputs(t *testing.T) {
	s := newWorld(t, scanLogin())
	br := s.Browser("")
	scene, _ := scanPage(t, s, br, s.RP(qiaotest.WebClient).AuthRequest("wechat_miniprogram"))

	expect := func(what string, status int, m map[string]any, wantStatus int, wantErr string) {
		t.Helper()
		if status != wantStatus || m["error"] != wantErr || m["error_description"] == "" {
			t.Errorf("%s: HTTP %d %v, want %d %s with a description", what, status, m, wantStatus, wantErr)
		}
	}
	st, m := scanAPI(t, s, "AAAAAAAAAAAAAAAAAAAAAAAA", "", map[string]string{"code": s.LoginCode(miniConnector, "alice")})
	expect("unknown scene", st, m, http.StatusNotFound, "unknown_scene")
	st, m = scanAPI(t, s, "bad!scene'(x)", "", map[string]string{"code": s.LoginCode(miniConnector, "alice")})
	expect("malformed scene", st, m, http.StatusNotFound, "unknown_scene")
	st, m = scanAPI(t, s, scene, "/confirm", map[string]string{"ticket": "x", "code": s.LoginCode(miniConnector, "alice")})
	expect("confirm before any scan", st, m, http.StatusConflict, "not_scanned")
	st, m = scanAPI(t, s, scene, "", map[string]string{"code": "not-a-wechat-code"})
	expect("scan with a code WeChat does not know", st, m, http.StatusBadRequest, "invalid_grant")
	st, m = scanAPI(t, s, scene, "", map[string]string{})
	expect("scan without a code", st, m, http.StatusBadRequest, "invalid_request")
	st, m = scanAPI(t, s, scene, "", "not an object")
	expect("scan with a body that is not the JSON object", st, m, http.StatusBadRequest, "invalid_request")
	if got := scanStatus(t, br, s.Issuer, scene); got != "waiting" {
		t.Fatalf("after the bad scans the status is %q, want waiting", got)
	}

	st, m = scanAPI(t, s, scene, "", map[string]string{"code": s.LoginCode(miniConnector, "alice")})
	if st != http.StatusOK {
		t.Fatalf("scan: HTTP %d %v", st, m)
	}
	ticket := m["ticket"].(string)
	st, m = scanAPI(t, s, scene, "", map[string]string{"code": s.LoginCode(miniConnector, "bob")})
	expect("second scan", st, m, http.StatusConflict, "already_scanned")
	st, m = scanAPI(t, s, scene, "/confirm", map[string]string{"ticket": ticket + "x", "code": s.LoginCode(miniConnector, "alice")})
	expect("confirm with another ticket", st, m, http.StatusForbidden, "access_denied")
	st, m = scanAPI(t, s, scene, "/confirm", map[string]string{"ticket": ticket, "code": s.LoginCode(miniConnector, "bob")})
	expect("confirm by someone else than the scanner", st, m, http.StatusForbidden, "access_denied")
	st, m = scanAPI(t, s, scene, "/confirm", map[string]string{"ticket": ticket})
	expect("confirm without a wx.login code", st, m, http.StatusBadRequest, "invalid_request")
	st, m = scanAPI(t, s, scene, "/refuse", map[string]string{"ticket": "wrong"})
	expect("refuse with another ticket", st, m, http.StatusForbidden, "access_denied")
	if got := scanStatus(t, br, s.Issuer, scene); got != "scanned" {
		t.Fatalf("after the bad confirms the status is %q, want scanned", got)
	}
	// Nothing was stored for bob: his first mini-program login makes him.
	if _, ok := s.Metric(t, "qiao_logins_total", map[string]string{"connector": "wechat_miniprogram", "result": "success"}); ok {
		if v, _ := s.Metric(t, "qiao_logins_total", map[string]string{"connector": "wechat_miniprogram", "result": "success"}); v != 0 {
			t.Errorf("a login was counted before any confirm: %v", v)
		}
	}

	// The right confirm still works, once.
	st, m = scanAPI(t, s, scene, "/confirm", map[string]string{"ticket": ticket, "code": s.LoginCode(miniConnector, "alice")})
	if st != http.StatusOK {
		t.Fatalf("confirm after the bad ones: HTTP %d %v", st, m)
	}
	st, m = scanAPI(t, s, scene, "/confirm", map[string]string{"ticket": ticket, "code": s.LoginCode(miniConnector, "alice")})
	expect("second confirm", st, m, http.StatusConflict, "already_confirmed")
	st, m = scanAPI(t, s, scene, "/refuse", map[string]string{"ticket": ticket})
	expect("refuse after confirm", st, m, http.StatusConflict, "already_confirmed")

	// Another browser can neither see the page nor finish the login.
	other := s.Browser("")
	for _, path := range []string{"", "/status", "/finish", "/code"} {
		p, err := other.Get(s.Issuer + "/scan/" + scene + path)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != http.StatusForbidden || strings.Contains(p.Location, "code=") {
			t.Errorf("another browser at /scan/{scene}%s: HTTP %d Location %q, want 403", path, p.Status, p.Location)
		}
	}
}

// TestScanLoginWeChatRefusingTheAppIsTemporarilyUnavailable: when WeChat
// refuses the mini-program's own configuration (a wrong AppSecret) at the
// scan, the mini-program gets 503 temporarily_unavailable, as at the token
// exchange (never server_error), and the login counts as an error.
func TestScanLoginWeChatRefusingTheAppIsTemporarilyUnavailable(t *testing.T) {
	s := newWorld(t, scanLogin())
	br := s.Browser("")
	scene, _ := scanPage(t, s, br, s.RP(qiaotest.WebClient).AuthRequest("wechat_miniprogram"))
	code := s.LoginCode(miniConnector, "alice")
	s.WeChat.InjectFault(sandbox.Fault{Path: "/sns/jscode2session", Code: 40125, Times: 1})
	st, m := scanAPI(t, s, scene, "", map[string]string{"code": code})
	if st != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" || m["error_description"] == "" {
		t.Fatalf("scan with WeChat refusing the AppSecret: HTTP %d %v, want 503 temporarily_unavailable with a description", st, m)
	}
	if v, _ := s.Metric(t, "qiao_logins_total", map[string]string{"connector": "wechat_miniprogram", "result": "error"}); v != 1 {
		t.Errorf("qiao_logins_total{result=error} = %v, want 1", v)
	}
	if got := scanStatus(t, br, s.Issuer, scene); got != "waiting" {
		t.Errorf("after the refused scan the status is %q, want waiting", got)
	}
}

// TestScanLoginRefused: a refusal in the mini-program turns the page to
// "refused" with a way back to the app, which gets access_denied.
func TestScanLoginRefused(t *testing.T) {
	s := newWorld(t, scanLogin())
	rp := s.RP(qiaotest.WebClient)
	br := s.Browser("")
	a := rp.AuthRequest("wechat_miniprogram")
	scene, _ := scanPage(t, s, br, a)
	_, m := scanAPI(t, s, scene, "", map[string]string{"code": s.LoginCode(miniConnector, "alice")})
	st, m := scanAPI(t, s, scene, "/refuse", map[string]string{"ticket": m["ticket"].(string)})
	if st != http.StatusOK || m["status"] != "refused" {
		t.Fatalf("refuse: HTTP %d %v", st, m)
	}
	p, err := br.Get(s.Issuer + "/scan/" + scene)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.Body, `data-status="refused"`) || !strings.Contains(p.Body, "data-scan-back") || !strings.Contains(p.Body, "data-scan-new") {
		t.Fatalf("the refused page offers no way back: %.600s", p.Body)
	}
	back, err := br.Get(s.Issuer + "/scan/" + scene + "/back")
	if err != nil {
		t.Fatal(err)
	}
	q, err := back.RedirectQuery()
	if err != nil {
		t.Fatal(err)
	}
	if q.Get("error") != "access_denied" || q.Get("state") != a.State {
		t.Errorf("back to the app: %v, want access_denied with the state", q)
	}
	if v, ok := s.Metric(t, "qiao_logins_total", map[string]string{"connector": "wechat_miniprogram", "result": "denied"}); !ok || v != 1 {
		t.Errorf("qiao_logins_total{denied} = %v, want 1", v)
	}
	// The finish link of a refused scan gives no session.
	fin, err := br.Get(s.Issuer + "/scan/" + scene + "/finish")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(fin.Location, "code=") {
		t.Errorf("a refused scan finished with a code: %s", fin.Location)
	}
}

// TestScanLoginWeChatErrorsOfferOtherConnectors: when WeChat will not
// make the code (quota, page not released, busy), the person sees the
// other connectors and none of WeChat's words; the admin's log names
// WeChat's code. A stale app token is replaced and the code made.
func TestScanLoginWeChatErrorsOfferOtherConnectors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		errcode int
		times   int
		level   string
	}{
		{"daily quota", 45009, 1, "WARN"},
		{"page not released", 41030, 1, "ERROR"},
		{"busy twice", -1, 2, "WARN"},
		{"too frequent", 45011, 1, "WARN"},
	} {
		msg := map[string]string{"WARN": "mini-program code unavailable: scan login not offered",
			"ERROR": "mini-program code refused: check the connector's scan_login configuration"}[tc.level]
		t.Run(tc.name, func(t *testing.T) {
			s := newWorld(t, scanLogin())
			s.WeChat.InjectFault(sandbox.Fault{Path: "/wxa/getwxacodeunlimit", Code: tc.errcode, Times: tc.times})
			br := s.Browser("")
			p, err := br.Get(s.RP(qiaotest.WebClient).AuthRequest("wechat_miniprogram").URL)
			if err != nil {
				t.Fatal(err)
			}
			if p.Status != http.StatusServiceUnavailable {
				t.Errorf("HTTP %d, want 503", p.Status)
			}
			links, err := p.Links("data-connector-id")
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, l := range links {
				ids = append(ids, l.Attrs["data-connector-id"])
			}
			if len(ids) == 0 || strings.Contains(strings.Join(ids, ","), "wechat_miniprogram") {
				t.Errorf("offered %v: want the other connectors only", ids)
			}
			for _, bad := range []string{"errcode", "rid:", "45009", "41030", "quota", "invalid page"} {
				if strings.Contains(p.Body, bad) {
					t.Errorf("the page shows WeChat's words %q", bad)
				}
			}
			found := false
			for _, l := range s.LogLines(msg) {
				if l["endpoint"] == "wxa/getwxacodeunlimit" && l["code"] == float64(tc.errcode) && l["level"] == tc.level {
					found = true
				}
			}
			if !found {
				t.Errorf("no %s log line with WeChat's code %d:\n%s", tc.level, tc.errcode, s.Logs.String())
			}
		})
	}
	t.Run("stale token", func(t *testing.T) {
		s := newWorld(t, scanLogin())
		br := s.Browser("")
		scanPage(t, s, br, s.RP(qiaotest.WebClient).AuthRequest("wechat_miniprogram"))
		s.WeChat.RevokeAccessTokens(s.AppID(miniConnector))
		scanPage(t, s, br, s.RP(qiaotest.WebClient).AuthRequest("wechat_miniprogram"))
		if n := len(s.WeChat.Codes()); n != 2 {
			t.Errorf("%d codes made, want 2", n)
		}
	})
}

// TestScanLoginOfferedOnComputersOnly: the chooser offers the scan
// login on a computer and not on a phone or inside WeChat.
func TestScanLoginOfferedOnComputersOnly(t *testing.T) {
	s := newWorld(t, scanLogin())
	for _, tc := range []struct {
		ua   string
		want bool
	}{
		{"Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0", true},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148", false},
		{qiaotest.WeChatUA, false},
	} {
		br := s.Browser(tc.ua)
		p, err := br.Get(s.RP(qiaotest.WebClient).AuthRequest("").URL)
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(p.Body, `data-connector-id="wechat_miniprogram"`); got != tc.want {
			t.Errorf("UA %q: mini-program offered %v, want %v", tc.ua, got, tc.want)
		}
	}
}
