package weibo

import (
	"errors"
	"testing"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/internal/conntest"
)

func TestParseKeepsUIDsExact(t *testing.T) {
	tok, err := parseTokenReply([]byte(`{"access_token":"2.00a","remind_in":"142153","expires_in":142153,"uid":"9007199254740993","isRealName":"true"}`))
	if err != nil || tok.UID != "9007199254740993" {
		t.Errorf("token: %+v, %v", tok, err)
	}
	tok, err = parseTokenReply([]byte(`{"access_token":"2.00a","expires_in":"7200","uid":9007199254740993}`))
	if err != nil || tok.UID != "9007199254740993" {
		t.Errorf("numeric uid: %+v, %v", tok, err)
	}
	info, err := parseTokenInfoReply([]byte(`{"uid":9007199254740993,"appkey":1352222456,"scope":null,"create_at":1352267591,"expire_in":157679471}`))
	if err != nil || info.UID != "9007199254740993" || info.AppKey != "1352222456" {
		t.Errorf("token info: %+v, %v", info, err)
	}
	user, err := parseUserReply([]byte(`{"id":9007199254740993,"screen_name":"S","name":"N","avatar_large":"http://tp3.sinaimg.cn/1/180/0/1"}`))
	if err != nil || user.uid() != "9007199254740993" || user.displayName() != "S" || user.picture() != "http://tp3.sinaimg.cn/1/180/0/1" {
		t.Errorf("user without idstr: %+v, %v", user, err)
	}
}

func TestParseErrorReplyReadsNumberOrStringCodes(t *testing.T) {
	tests := []struct {
		name string
		body string
		kind error
		code int
	}{
		{"number", `{"error":"invalid_grant","error_code":21325,"request":"/oauth2/access_token"}`, connectors.ErrInvalidCode, 21325},
		{"string", `{"request":"/statuses/home_timeline.json","error_code":"20502","error":"Need you follow uid."}`, connectors.ErrUnavailable, 20502},
		{"rate limit", `{"error":"User requests out of rate limit!","error_code":10023}`, connectors.ErrUnavailable, 10023},
		{"no app permission", `{"error":"Insufficient app permissions!","error_code":10014}`, connectors.ErrConfig, 10014},
		{"access denied", `{"error":"access_denied","error_code":21330}`, connectors.ErrAccessDenied, 21330},
		{"only the OAuth error", `{"error":"invalid_client"}`, connectors.ErrConfig, 0},
		{"HTML", `<html>`, connectors.ErrUnavailable, -1},
		{"empty object", `{}`, connectors.ErrUnavailable, -1},
		{"code too big", `{"error":"x","error_code":99999999999}`, connectors.ErrUnavailable, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := parseErrorReply(400, []byte(tt.body))
			if !errors.Is(err, tt.kind) {
				t.Fatalf("err = %v, want %v", err, tt.kind)
			}
			var pe *connectors.ProviderError
			if got := errors.As(err, &pe); got != (tt.code >= 0) || (got && pe.Code != tt.code) {
				t.Errorf("err = %#v, want provider code %d", err, tt.code)
			}
		})
	}
}

// FuzzParsers feeds any body to every parser: none may panic, and each
// returns either a usable value or an error the broker understands. The
// seeds run in every `go test`.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{
		`{"access_token":"2.00a","expires_in":86400,"uid":"2583117564"}`,
		`{"access_token":"2.00a","uid":9007199254740993}`,
		`{"uid":1073880650,"appkey":1352222456,"scope":null,"create_at":1352267591,"expire_in":157679471}`,
		`{"id":2094216050,"idstr":"2094216050","screen_name":"鱼","avatar_hd":"http://tp3.sinaimg.cn/1"}`,
		`{"error":"invalid_grant","error_code":21325,"request":"/oauth2/access_token"}`,
		`{"error_code":"20502"}`, `{"error_code":null}`, `{"error_code":1e400}`, `{"uid":-1}`, `{"id":1.5}`,
		"", "null", "[]", "{", "<html>", "\xff", `{"a":`, `callback( {} );`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if tok, err := parseTokenReply(body); err == nil && (tok.AccessToken == "" || tok.UID == "") {
			t.Errorf("token reply accepted without token or uid")
		} else if err != nil {
			conntest.IsKind(t, err)
		}
		if info, err := parseTokenInfoReply(body); err == nil && (info.UID == "" || info.AppKey == "") {
			t.Errorf("token info accepted without uid or appkey")
		} else if err != nil {
			conntest.IsKind(t, err)
		}
		if user, err := parseUserReply(body); err == nil {
			if user.uid() == "" {
				t.Errorf("profile accepted without id")
			}
			_, _ = user.displayName(), user.picture()
		} else {
			conntest.IsKind(t, err)
		}
		_ = hasErrorCode(body)
		conntest.IsKind(t, parseErrorReply(400, body))
	})
}
