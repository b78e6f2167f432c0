package qq

import (
	"errors"
	"testing"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/internal/conntest"
)

func TestParseTokenReplyUnderstandsEveryShapeQQSends(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		token string
		kind  error
		code  int
	}{
		{"form-encoded success", "access_token=FE04AA&expires_in=7776000&refresh_token=88E4BB", "FE04AA", nil, 0},
		{"form-encoded success with newline", "access_token=FE04AA&expires_in=7776000&refresh_token=88E4BB\n", "FE04AA", nil, 0},
		{"JSON success, expires_in a string", `{"access_token":"T1","expires_in":"7776000","refresh_token":"R1","openid":"O"}`, "T1", nil, 0},
		{"JSON success, expires_in a number", `{"access_token":"T1","expires_in":7776000,"refresh_token":"R1"}`, "T1", nil, 0},
		{"JSONP error", `callback( {"error":100019,"error_description":"code to access token error"} );` + "\n", "", connectors.ErrInvalidCode, 100019},
		{"JSONP error with a trailing comma", `callback( {"error":100020,"error_description":"code is reused error",} );`, "", connectors.ErrInvalidCode, 100020},
		{"JSON error", `{"error":100009,"error_description":"client secret is illegal"}`, "", connectors.ErrConfig, 100009},
		{"JSON error as a string", `{"error":"100010","error_description":"redirect uri is illegal"}`, "", connectors.ErrConfig, 100010},
		{"old form-encoded error", "code=100019&msg=code+to+access+token+error", "", connectors.ErrInvalidCode, 100019},
		{"empty", "", "", connectors.ErrUnavailable, 0},
		{"blank", " \r\n", "", connectors.ErrUnavailable, 0},
		{"HTML", "<html><body>502 Bad Gateway</body></html>", "", connectors.ErrUnavailable, 0},
		{"JSON null", "null", "", connectors.ErrUnavailable, 0},
		{"JSON without token", `{"expires_in":"1"}`, "", connectors.ErrUnavailable, 0},
		{"JSONP without parentheses", "callback", "", connectors.ErrUnavailable, 0},
		{"JSONP with text after it", `callback( {"error":1} ); alert(1)`, "", connectors.ErrUnavailable, 0},
		{"JSONP reversed parentheses", `callback) {"error":1} (`, "", connectors.ErrUnavailable, 0},
		{"JSON error not an integer", `{"error":1.5}`, "", connectors.ErrUnavailable, 0},
		{"bad form encoding", "access_token=%zz", "", connectors.ErrUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseTokenReply([]byte(tt.body))
			if tt.kind == nil {
				if err != nil || got.AccessToken != tt.token {
					t.Fatalf("got %+v, %v; want token %q", got, err, tt.token)
				}
				return
			}
			conntest.WantError(t, err, tt.kind, tt.code)
		})
	}
}

func TestParseMeReplyTakesWhatLiesBetweenTheParentheses(t *testing.T) {
	got, err := parseMeReply([]byte(`callback( {"client_id":"101364207","openid":"805CFCB3AFEA40CA7CE4B6D8A8668793","unionid":"UID_1"} );` + "\n"))
	if err != nil || got.ClientID != "101364207" || got.OpenID != "805CFCB3AFEA40CA7CE4B6D8A8668793" || got.UnionID != "UID_1" {
		t.Errorf("got %+v, %v", got, err)
	}
	got, err = parseMeReply([]byte(`{"client_id":101364207,"openid":"A"}`))
	if err != nil || got.ClientID != "101364207" {
		t.Errorf("numeric client_id: got %+v, %v", got, err)
	}
	_, err = parseMeReply([]byte(`callback( {"error":100048,"error_description":"companyid not set"} );`))
	var pe *connectors.ProviderError
	if !errors.Is(err, connectors.ErrConfig) || !errors.As(err, &pe) || pe.Code != 100048 {
		t.Errorf("100048: %v", err)
	}
	if _, err := parseMeReply([]byte(`callback( {"client_id":"1"} );`)); !errors.Is(err, connectors.ErrUnavailable) {
		t.Errorf("no openid: %v", err)
	}
}

func TestParseUserInfoReplyChecksRet(t *testing.T) {
	got, err := parseUserInfoReply([]byte(`{"ret":0,"msg":"","nickname":"N","figureurl_qq_1":"http://q/40","figureurl_2":"http:\/\/qz\/100"}`))
	if err != nil || got.Nickname != "N" || got.picture() != "http://q/40" {
		t.Errorf("got %+v (picture %q), %v", got, got.picture(), err)
	}
	if _, err := parseUserInfoReply([]byte(`{"ret":-1,"msg":"client request's parameters are invalid"}`)); !errors.Is(err, connectors.ErrUnavailable) {
		t.Errorf("ret -1: %v", err)
	}
	if _, err := parseUserInfoReply([]byte(`{"nickname":"N"}`)); !errors.Is(err, connectors.ErrUnavailable) {
		t.Errorf("no ret: %v", err)
	}
	got, err = parseUserInfoReply([]byte(`{"ret":0,"figureurl_qq_2":"javascript:alert(1)","figureurl_qq_1":"https://q/40"}`))
	if err != nil || got.picture() != "https://q/40" {
		t.Errorf("a non-http avatar was not skipped: %q, %v", got.picture(), err)
	}
}

// FuzzParsers feeds any body to every parser: none may panic, and each
// returns either a usable value or an error the broker understands. The
// seeds run in every `go test`.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{
		"access_token=A&expires_in=7776000&refresh_token=R",
		`{"access_token":"A","expires_in":"7776000"}`,
		`callback( {"error":100019,"error_description":"x"} );` + "\n",
		`callback( {"client_id":"1","openid":"O",} );`,
		`callback( {"openid": ); garbage`,
		`callback(`, `callback)(`, `callback( "x" );`, `callback( {} ) ;;`,
		`{"ret":0,"nickname":"N","figureurl_qq_1":"http://x/"}`,
		`{"ret":"1","msg":"m"}`, `{"error":99999999999999999999}`, `{"error":null}`,
		"code=1&msg=x", "code=abc", "", "null", "[]", "{", "}", "{,}", `{"a":1,}`, "<html>", "\xff\xfe",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if tok, err := parseTokenReply(body); err == nil && tok.AccessToken == "" {
			t.Errorf("token reply accepted without a token")
		} else if err != nil {
			conntest.IsKind(t, err)
		}
		if me, err := parseMeReply(body); err == nil && me.OpenID == "" {
			t.Errorf("/me reply accepted without an openid")
		} else if err != nil {
			conntest.IsKind(t, err)
		}
		if info, err := parseUserInfoReply(body); err == nil {
			_ = info.picture()
		} else {
			conntest.IsKind(t, err)
		}
	})
}
