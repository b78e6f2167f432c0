package spectest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

func exchange(t *testing.T, s *stack, form url.Values) (int, map[string]any) {
	t.Helper()
	res := s.Post(t, "/token", form, "", "")
	return res.Status, res.MustJSON(t)
}

func exchangeForm(code, issuer, scope string) url.Values {
	return qiaotest.ExchangeForm(issuer, miniClient, code, scope)
}

// SPEC: "Mini-program login (token exchange, RFC 8693)" → 200 with
// access_token, issued_token_type, token_type Bearer, expires_in, id_token,
// refresh_token (with offline_access), scope; the refresh token then works
// at the same endpoint.
func TestTokenExchangeGivesTheSameKindOfTokens(t *testing.T) {
	s := shared
	code, _ := s.WeChat.LoginCode(wxMiniAppID, "p13")
	status, got := exchange(t, s, exchangeForm(code, "mini", "openid profile offline_access"))
	if status != 200 {
		t.Fatalf("token exchange: %d %v", status, got)
	}
	for _, k := range []string{"access_token", "issued_token_type", "token_type", "expires_in", "id_token", "refresh_token", "scope"} {
		if _, ok := got[k]; !ok {
			t.Errorf("answer lacks %q: %v", k, got)
		}
	}
	if got["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" || !strings.EqualFold(got["token_type"].(string), "Bearer") {
		t.Errorf("issued_token_type=%v token_type=%v", got["issued_token_type"], got["token_type"])
	}
	raw, _ := json.Marshal(got)
	if strings.Contains(string(raw), "session_key") || strings.Contains(string(raw), s.WeChat.SessionKey(wxMiniAppID, "p13")) {
		t.Errorf("the answer leaks the session_key: %s", raw)
	}
	c := claims(t, got["id_token"].(string))
	if c["idp"] != "mini" || c["sub"] == s.WeChat.OpenID(wxMiniAppID, "p13") || c["aud"] != miniClient && !containsAny(c["aud"], miniClient) {
		t.Errorf("ID token claims %v", c)
	}
	st, r := refresh(t, s, got["refresh_token"].(string), miniClient, "")
	if st != 200 || r.AccessToken == "" || r.RefreshToken == "" {
		t.Errorf("refresh of a token-exchange refresh token: %d %+v", st, r)
	}
	if r.IDToken == "" || claims(t, r.IDToken)["idp"] != "mini" {
		t.Errorf("refreshed ID token %q, want idp mini", r.IDToken)
	}
	t.Run("without offline_access no refresh token", func(t *testing.T) {
		code, _ := s.WeChat.LoginCode(wxMiniAppID, "p13")
		status, got := exchange(t, s, exchangeForm(code, "mini", "openid"))
		if status != 200 || got["refresh_token"] != nil {
			t.Errorf("%d %v, want 200 without refresh_token", status, got)
		}
	})
}

// SPEC: "A used, expired or invalid code → 400 `invalid_grant`; provider
// unreachable or busy → 503 `temporarily_unavailable`; never a 500." and
// "an unsupported `subject_token_type` or an unknown or disallowed
// `subject_issuer` → 400 `invalid_request`."
func TestTokenExchangeErrors(t *testing.T) {
	s := shared
	used, _ := s.WeChat.LoginCode(wxMiniAppID, "p14")
	if st, got := exchange(t, s, exchangeForm(used, "mini", "openid")); st != 200 {
		t.Fatalf("first use: %d %v", st, got)
	}
	fresh := func() string {
		c, err := s.WeChat.LoginCode(wxMiniAppID, "p14")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	tests := []struct {
		name   string
		form   func() url.Values
		setup  func(t *testing.T)
		status int
		err    string
	}{
		{name: "a used code is invalid_grant", form: func() url.Values { return exchangeForm(used, "mini", "openid") }, status: 400, err: "invalid_grant"},
		{name: "an invalid code is invalid_grant", form: func() url.Values { return exchangeForm("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "mini", "openid") }, status: 400, err: "invalid_grant"},
		{name: "another mini-program's code is invalid_grant", form: func() url.Values {
			c, _ := s.WeChat.LoginCode(wxMini2ID, "p14")
			return exchangeForm(c, "mini", "openid")
		}, status: 400, err: "invalid_grant"},
		{name: "an unsupported subject_token_type is invalid_request", form: func() url.Values {
			f := exchangeForm(fresh(), "mini", "openid")
			f.Set("subject_token_type", "urn:ietf:params:oauth:token-type:access_token")
			return f
		}, status: 400, err: "invalid_request"},
		{name: "an unknown subject_issuer is invalid_request", form: func() url.Values { return exchangeForm(fresh(), "nosuch", "openid") }, status: 400, err: "invalid_request"},
		{name: "a disallowed subject_issuer is invalid_request", form: func() url.Values { return exchangeForm(fresh(), "mini2", "openid") }, status: 400, err: "invalid_request"},
		{name: "a web connector as subject_issuer is invalid_request", form: func() url.Values { return exchangeForm(fresh(), "weibo", "openid") }, status: 400, err: "invalid_request"},
		{name: "WeChat busy is temporarily_unavailable", form: func() url.Values { return exchangeForm(fresh(), "mini", "openid") },
			setup: func(t *testing.T) {
				s.WeChat.InjectFault(sandbox.Fault{Path: "/sns/jscode2session", Code: -1})
				t.Cleanup(s.WeChat.ClearFaults)
			}, status: 503, err: "temporarily_unavailable"},
		{name: "WeChat unreachable is temporarily_unavailable", form: func() url.Values { return exchangeForm(fresh(), "mini", "openid") },
			setup: func(t *testing.T) {
				s.WeChat.InjectFault(sandbox.Fault{Path: "/sns/jscode2session", Kind: sandbox.FaultDown})
				t.Cleanup(s.WeChat.ClearFaults)
			}, status: 503, err: "temporarily_unavailable"},
		{name: "WeChat answering an HTML page is temporarily_unavailable", form: func() url.Values { return exchangeForm(fresh(), "mini", "openid") },
			setup: func(t *testing.T) {
				s.WeChat.InjectFault(sandbox.Fault{Path: "/sns/jscode2session", Kind: sandbox.FaultHTML})
				t.Cleanup(s.WeChat.ClearFaults)
			}, status: 503, err: "temporarily_unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form := tc.form()
			if tc.setup != nil {
				tc.setup(t)
			}
			status, got := exchange(t, s, form)
			if status != tc.status || got["error"] != tc.err {
				t.Errorf("%d %v, want %d %s", status, got, tc.status, tc.err)
			}
		})
	}
}

// SPEC: "With `phone_code` and scope `phone`, the broker fetches the
// verified phone number ... and sets `phone_number` and
// `phone_number_verified`." and "`phone_number` is E.164
// (`+8613800138000`), with `phone_number_verified: true`."
func TestTokenExchangePhoneNumberIsE164AndVerified(t *testing.T) {
	s := shared
	code, _ := s.WeChat.LoginCode(wxMiniAppID, "p15")
	phone, err := s.WeChat.PhoneCode(wxMiniAppID, "p15")
	if err != nil {
		t.Fatal(err)
	}
	form := exchangeForm(code, "mini", "openid phone")
	form.Set("phone_code", phone)
	status, got := exchange(t, s, form)
	if status != 200 {
		t.Fatalf("%d %v", status, got)
	}
	c := claims(t, got["id_token"].(string))
	want := "+86" + s.WeChat.PhoneNumber("p15")
	if strings.HasPrefix(s.WeChat.PhoneNumber("p15"), "+") {
		want = s.WeChat.PhoneNumber("p15")
	}
	if c["phone_number"] != want || c["phone_number_verified"] != true {
		t.Errorf("phone_number=%v verified=%v, want %s true", c["phone_number"], c["phone_number_verified"], want)
	}
	res := s.Bearer(t, http.MethodGet, "/userinfo", got["access_token"].(string), nil)
	u := res.MustJSON(t)
	if st := res.Status; st != 200 || u["phone_number"] != want || u["phone_number_verified"] != true {
		t.Errorf("userinfo %d %v, want phone_number %s verified", st, u, want)
	}
	t.Run("without scope phone no phone claims", func(t *testing.T) {
		code, _ := s.WeChat.LoginCode(wxMiniAppID, "p15")
		phone, _ := s.WeChat.PhoneCode(wxMiniAppID, "p15")
		form := exchangeForm(code, "mini", "openid")
		form.Set("phone_code", phone)
		status, got := exchange(t, s, form)
		if status != 200 {
			t.Fatalf("%d %v", status, got)
		}
		if v, ok := claims(t, got["id_token"].(string))["phone_number"]; ok {
			t.Errorf("phone_number %v without scope phone", v)
		}
	})
}
