package wechat

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/connectors"
)

const fuzzSecret = "FuzzAppSecret0123456789abcdef0123"

// FuzzDecode feeds arbitrary replies, with any status and content type,
// to the decoder of every api.weixin.qq.com reply the connectors read.
// Whatever arrives: no panic; an accepted reply has every required
// field; a refusal is a connector error; the AppSecret never appears in
// an error the decoder writes itself (provider messages are redacted by
// connectors.Caller).
func FuzzDecode(f *testing.F) {
	for _, s := range []string{
		`{"openid":"o1","session_key":"c2Vzc2lvbmtleTE2Ynl0ZQ==","unionid":"u1"}`,
		`{"access_token":"AT","expires_in":7200,"refresh_token":"RT","openid":"o1","scope":"snsapi_login","unionid":"u1","is_snapshotuser":1}`,
		`{"openid":"o1","nickname":"微信用户","headimgurl":"https://thirdwx.qlogo.cn/x/132","unionid":"u1"}`,
		`{"access_token":"AT","expires_in":"7200"}`,
		`{"errcode":0,"errmsg":"ok","phone_info":{"phoneNumber":"+8613800138000","purePhoneNumber":"13800138000","countryCode":86,"watermark":{"appid":"wx1"}}}`,
		`{"errcode":40029,"errmsg":"invalid code, rid: 1"}`, `{"errcode":45011,"errmsg":"api minute-quota reach limit"}`,
		`{"errcode":"-1","errmsg":"system error"}`, `{"errcode":1e99}`, `{"errcode":"x` + fuzzSecret + `"}`,
		`{"errcode":true}`, `{"errcode":null,"openid":"o"}`, `{"openid":["o"]}`, `{"expires_in":{}}`,
		"\xef\xbb\xbf{\"openid\":\"o\",\"session_key\":\"k\"}", "", " ", "null", "[]", "{", "<html>busy</html>",
		`{"openid":"o","session_key":"k"} trailing`, `{"a":"` + fuzzSecret + `"`,
	} {
		f.Add([]byte(s), 200, "text/plain")
	}
	f.Add([]byte(`{"errcode":40001}`), 502, "application/json")
	f.Add([]byte(`{"openid":"o","session_key":"k"}`), 500, "text/html; charset=gbk")
	f.Fuzz(func(t *testing.T, body []byte, status int, contentType string) {
		rep := connectors.Reply{Status: status, ContentType: contentType, Body: body}
		for _, c := range []struct {
			endpoint string
			out      checked
		}{
			{endpointJSCode, &session{}},
			{endpointOAuthToken, &oauthToken{}},
			{endpointUserInfo, &userInfo{want: "o1"}},
			{endpointStableToken, &stableReply{}},
			{endpointPhoneNumber, &phoneReply{}},
		} {
			err := decode(c.endpoint, rep, []string{fuzzSecret}, c.out)
			if err == nil {
				if m := c.out.missing(); m != "" {
					t.Fatalf("%s: accepted a reply without %s: %q", c.endpoint, m, body)
				}
				continue
			}
			var pe *connectors.ProviderError
			if errors.As(err, &pe) {
				if pe.Kind == nil {
					t.Fatalf("%s: provider error %d without a kind", c.endpoint, pe.Code)
				}
				continue
			}
			if !errors.Is(err, connectors.ErrUnavailable) {
				t.Fatalf("%s: error %v is not ErrUnavailable", c.endpoint, err)
			}
			if strings.Contains(err.Error(), fuzzSecret) {
				t.Fatalf("%s: the AppSecret in an error: %v", c.endpoint, err)
			}
		}
	})
}

var e164Form = regexp.MustCompile(`^\+[0-9]{7,15}$`)

// FuzzE164 checks the phone number built from WeChat's phone_info: an
// accepted number is always E.164.
func FuzzE164(f *testing.F) {
	for _, s := range [][3]string{
		{"86", "13800138000", "13800138000"}, {"852", "61234567", "+85261234567"}, {"+1", "", "+12025550123"},
		{"86", "", ""}, {"", "1", "1"}, {"8６", "1380013800０", ""}, {"86", "138-0013-8000", ""},
		{"999999999999", "1", ""}, {"1", "2", "3"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	f.Fuzz(func(t *testing.T, cc, pure, full string) {
		n, err := e164(cc, pure, full)
		if err == nil && !e164Form.MatchString(n) {
			t.Fatalf("e164(%q, %q, %q) = %q, not E.164", cc, pure, full, n)
		}
		if err != nil && !errors.Is(err, connectors.ErrUnavailable) {
			t.Fatalf("e164 error %v is not ErrUnavailable", err)
		}
	})
}

// FuzzAppCode checks the local check of mini-program codes: what it
// accepts is 1..128 URL-safe characters, so it can be sent as it is.
func FuzzAppCode(f *testing.F) {
	for _, s := range []string{"0a3Xyz9B8c7D6e5F4g3H2i1J0kLmNoPq", "", "a b", "码", strings.Repeat("x", 129), "a%2Fb", "-._~"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, code string) {
		if !validAppCode(code) {
			return
		}
		if code == "" || len(code) > maxAppCodeLen || strings.Trim(code, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~") != "" {
			t.Fatalf("accepted %q", code)
		}
	})
}
