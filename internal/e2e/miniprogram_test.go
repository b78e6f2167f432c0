package e2e_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// TestMiniProgramTokenExchangeGivesTheSameTokens: a wx.login code, POSTed
// to the token endpoint, gives an access token, a verifiable ID token and
// a refresh token that then works like any other.
func TestMiniProgramTokenExchangeGivesTheSameTokens(t *testing.T) {
	s := newWorld(t)
	status, m, body := s.PostToken(t, exchangeForm(s.LoginCode(miniConnector, "alice"), "openid profile offline_access"))
	if status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", status, body)
	}
	for _, k := range []string{"access_token", "id_token", "refresh_token", "expires_in"} {
		if m[k] == nil || m[k] == "" {
			t.Errorf("no %s in %s", k, body)
		}
	}
	if m["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" {
		t.Errorf("issued_token_type = %v", m["issued_token_type"])
	}
	if m["token_type"] != "bearer" && m["token_type"] != "Bearer" {
		t.Errorf("token_type = %v, want Bearer", m["token_type"])
	}
	if !sameScopes(m["scope"], "openid profile offline_access") {
		t.Errorf("scope = %v, want openid profile offline_access", m["scope"])
	}
	claims := s.VerifyIDToken(t, m["id_token"].(string), qiaotest.MiniClient)
	sub, _ := claims["sub"].(string)
	if sub == "" || sub == s.WeChat.OpenID(s.AppID(miniConnector), "alice") {
		t.Errorf("sub = %q: want the broker's own id, not the openid", sub)
	}
	if claims["idp"] != "wechat_miniprogram" {
		t.Errorf("idp = %v, want wechat_miniprogram", claims["idp"])
	}
	bodies := []string{body}

	// The refresh token at the same endpoint.
	status, rm, rbody := s.PostToken(t, url.Values{
		"grant_type":    {"refresh_token"},
		"refresh_token": {m["refresh_token"].(string)},
		"client_id":     {qiaotest.MiniClient},
	})
	if status != http.StatusOK {
		t.Fatalf("refresh: HTTP %d: %s", status, rbody)
	}
	bodies = append(bodies, rbody)
	if rm["refresh_token"] == m["refresh_token"] || rm["refresh_token"] == nil {
		t.Errorf("the refresh token was not rotated")
	}
	rclaims := s.VerifyIDToken(t, rm["id_token"].(string), qiaotest.MiniClient)
	if rclaims["sub"] != sub || rclaims["idp"] != "wechat_miniprogram" {
		t.Errorf("refreshed ID token: sub %v idp %v, want %s wechat_miniprogram", rclaims["sub"], rclaims["idp"], sub)
	}
	ui, uibody := s.UserInfo(t, rm["access_token"].(string))
	bodies = append(bodies, uibody)
	if ui["sub"] != sub {
		t.Errorf("userinfo sub = %v, want %s", ui["sub"], sub)
	}

	// The session_key never leaves the broker.
	key := s.WeChat.SessionKey(s.AppID(miniConnector), "alice")
	if key == "" {
		t.Fatal("the simulator has no session_key for alice")
	}
	for _, b := range bodies {
		if strings.Contains(b, "session_key") || strings.Contains(b, key) {
			t.Errorf("a response carries the session_key: %s", b)
		}
	}
	if strings.Contains(s.Logs.String(), key) {
		t.Error("the session_key reached the broker log")
	}

	// Without offline_access, no refresh token.
	_, m2, body2 := s.PostToken(t, exchangeForm(s.LoginCode(miniConnector, "alice"), "openid"))
	if m2["refresh_token"] != nil {
		t.Errorf("a refresh token without offline_access: %s", body2)
	}
}

func sameScopes(v any, want string) bool {
	got, _ := v.(string)
	a, b := strings.Fields(got), strings.Fields(want)
	if len(a) != len(b) {
		return false
	}
	set := map[string]bool{}
	for _, x := range a {
		set[x] = true
	}
	for _, x := range b {
		if !set[x] {
			return false
		}
	}
	return true
}

// TestMiniProgramExchangeErrors: bad codes are invalid_grant, a busy or
// unreachable WeChat is 503 temporarily_unavailable, a malformed request
// invalid_request; never a 500.
func TestMiniProgramExchangeErrors(t *testing.T) {
	s := newWorld(t)
	const jscode = "/sns/jscode2session"
	used := s.LoginCode(miniConnector, "bob")
	if status, _, body := s.PostToken(t, exchangeForm(used, "openid")); status != http.StatusOK {
		t.Fatalf("first use of the code: HTTP %d: %s", status, body)
	}
	tests := []struct {
		name       string
		form       func() url.Values
		fault      *sandbox.Fault
		wantStatus int
		wantError  string
	}{
		{"replayed code", func() url.Values { return exchangeForm(used, "openid") }, nil, 400, "invalid_grant"},
		{"garbage code", func() url.Values { return exchangeForm("not-a-code-at-all", "openid") }, nil, 400, "invalid_grant"},
		{"busy twice (-1)", func() url.Values { return exchangeForm(s.LoginCode(miniConnector, "alice"), "openid") }, &sandbox.Fault{Path: jscode, Code: -1, Times: 2}, 503, "temporarily_unavailable"},
		{"quota (45011)", func() url.Values { return exchangeForm(s.LoginCode(miniConnector, "alice"), "openid") }, &sandbox.Fault{Path: jscode, Code: 45011, Times: 1}, 503, "temporarily_unavailable"},
		{"down", func() url.Values { return exchangeForm(s.LoginCode(miniConnector, "alice"), "openid") }, &sandbox.Fault{Path: jscode, Kind: sandbox.FaultDown}, 503, "temporarily_unavailable"},
		{"HTML from a proxy", func() url.Values { return exchangeForm(s.LoginCode(miniConnector, "alice"), "openid") }, &sandbox.Fault{Path: jscode, Kind: sandbox.FaultHTML, Times: 1}, 503, "temporarily_unavailable"},
		{"blocked user (40226)", func() url.Values { return exchangeForm(s.LoginCode(miniConnector, "alice"), "openid") }, &sandbox.Fault{Path: jscode, Code: 40226, Times: 1}, 400, "invalid_grant"},
		// A refused AppSecret is the admin's to fix; the app is told to
		// retry later, not handed a 500.
		{"bad AppSecret (40125)", func() url.Values { return exchangeForm(s.LoginCode(miniConnector, "alice"), "openid") }, &sandbox.Fault{Path: jscode, Code: 40125, Times: 1}, 503, "temporarily_unavailable"},
		{"unsupported subject_token_type", func() url.Values {
			f := exchangeForm(s.LoginCode(miniConnector, "alice"), "openid")
			f.Set("subject_token_type", "urn:ietf:params:oauth:token-type:access_token")
			return f
		}, nil, 400, "invalid_request"},
		{"unknown subject_issuer", func() url.Values {
			f := exchangeForm(s.LoginCode(miniConnector, "alice"), "openid")
			f.Set("subject_issuer", "nosuch")
			return f
		}, nil, 400, "invalid_request"},
		{"subject_issuer of a web connector", func() url.Values {
			f := exchangeForm(s.LoginCode(miniConnector, "alice"), "openid")
			f.Set("subject_issuer", "wechat")
			return f
		}, nil, 400, "invalid_request"},
		{"no subject_token", func() url.Values {
			f := exchangeForm("", "openid")
			f.Del("subject_token")
			return f
		}, nil, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Cleanup(s.WeChat.ClearFaults)
			form := tt.form()
			if tt.fault != nil {
				s.WeChat.InjectFault(*tt.fault)
			}
			status, m, body := s.PostToken(t, form)
			if status != tt.wantStatus || m["error"] != tt.wantError {
				t.Fatalf("HTTP %d %v, want %d %s; body %s", status, m["error"], tt.wantStatus, tt.wantError, body)
			}
			if m["access_token"] != nil || m["id_token"] != nil {
				t.Errorf("tokens with an error: %s", body)
			}
		})
	}
	// WeChat is back: the exchange works again.
	if status, _, body := s.PostToken(t, exchangeForm(s.LoginCode(miniConnector, "alice"), "openid")); status != http.StatusOK {
		t.Fatalf("after the faults: HTTP %d: %s", status, body)
	}
}

// TestMiniProgramPhoneNumber: with phone_code and scope phone, the ID
// token and userinfo carry the verified E.164 phone number.
func TestMiniProgramPhoneNumber(t *testing.T) {
	s := newWorld(t)
	phoneCode, err := s.WeChat.PhoneCode(s.AppID(miniConnector), "carol")
	if err != nil {
		t.Fatal(err)
	}
	form := exchangeForm(s.LoginCode(miniConnector, "carol"), "openid phone")
	form.Set("phone_code", phoneCode)
	status, m, body := s.PostToken(t, form)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d: %s", status, body)
	}
	want := "+86" + s.WeChat.PhoneNumber("carol")
	claims := s.VerifyIDToken(t, m["id_token"].(string), qiaotest.MiniClient)
	if claims["phone_number"] != want || claims["phone_number_verified"] != true {
		t.Errorf("ID token phone_number %v verified %v, want %s true", claims["phone_number"], claims["phone_number_verified"], want)
	}
	ui, _ := s.UserInfo(t, m["access_token"].(string))
	if ui["phone_number"] != want || ui["phone_number_verified"] != true {
		t.Errorf("userinfo phone_number %v verified %v, want %s true", ui["phone_number"], ui["phone_number_verified"], want)
	}

	// Without the phone scope, the phone code is not used and no number is given.
	phoneCode2, _ := s.WeChat.PhoneCode(s.AppID(miniConnector), "carol")
	form = exchangeForm(s.LoginCode(miniConnector, "carol"), "openid")
	form.Set("phone_code", phoneCode2)
	_, m, body = s.PostToken(t, form)
	claims = s.VerifyIDToken(t, m["id_token"].(string), qiaotest.MiniClient)
	if _, ok := claims["phone_number"]; ok {
		t.Errorf("phone_number without scope phone: %s", body)
	}
}

// TestMalformedJSCodeNeverReachesWeChat: a wx.login code that cannot be
// one (too long, or characters no code has) is invalid_grant at once,
// without a jscode2session call spending the app's quota.
func TestMalformedJSCodeNeverReachesWeChat(t *testing.T) {
	s := newWorld(t)
	for _, code := range []string{strings.Repeat("a", 129), "a b", "a/b", "码", "x%00y", strings.Repeat("0", 300)} {
		status, m, body := s.PostToken(t, exchangeForm(code, "openid"))
		if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("code %.12q: HTTP %d %v, want 400 invalid_grant; body %s", code, status, m["error"], body)
		}
	}
	if n := s.WeChat.Calls("/sns/jscode2session"); n != 0 {
		t.Fatalf("WeChat saw %d jscode2session calls for malformed codes, want 0", n)
	}
}
