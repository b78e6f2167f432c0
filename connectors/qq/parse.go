package qq

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/qiaoidp/qiao/connectors"
)

// QQ's public return codes the connector treats specially (upstream-apis §6.6).
const (
	codeBadCode       = 100019 // exchanging the code failed: bad, expired or foreign code
	codeReusedCode    = 100020 // the code was already used
	codeBadSecret     = 100009 // client_secret (APP Key) invalid
	codeBadRedirect   = 100010 // redirect_uri does not match the registered callback
	codeNotAuthorized = 100030 // the user did not grant this API
	codeNoUnionID     = 100048 // "companyid not set": no unionid permission
)

// kindOf sorts a QQ error code into the errors the broker understands.
func kindOf(code int) error {
	switch code {
	case codeBadCode, codeReusedCode, 100005:
		return connectors.ErrInvalidCode
	case 100013, 100014, 100015, 100016:
		// The token QQ has just issued is refused: the login must start again.
		return connectors.ErrInvalidCode
	case 100000, 100001, 100002, 100003, 100004, 100008, codeBadSecret, codeBadRedirect,
		100011, 100012, 100031, codeNoUnionID:
		return connectors.ErrConfig
	case codeNotAuthorized:
		return connectors.ErrAccessDenied
	default:
		return connectors.ErrUnavailable
	}
}

// explain adds, for the codes an admin must act on, what to do.
func explain(code int) string {
	switch code {
	case codeNoUnionID:
		return "the app lacks QQ's unionid permission (request it from connect@qq.com for this APP ID, or set unionid: false)"
	case codeBadSecret:
		return "QQ refused the client_secret (APP Key): check the connector's client_secret"
	case codeBadRedirect:
		return "QQ refused the redirect_uri: register the broker's callback URL for this app at QQ Connect"
	case 100008:
		return "QQ does not know this client_id (APP ID)"
	case 100011:
		return "the QQ app is not online"
	case codeBadCode:
		return "the code is unknown, expired or for another app"
	case codeReusedCode:
		return "the code was already used"
	}
	return ""
}

func providerError(code number, description string) *connectors.ProviderError {
	msg := strings.TrimSpace(description)
	if msg == "" && code.n == 0 {
		msg = code.text
	}
	if e := explain(code.n); e != "" {
		if msg == "" {
			msg = e
		} else {
			msg += ": " + e
		}
	}
	return &connectors.ProviderError{Provider: "qq", Code: code.n, Message: connectors.Truncate(msg), Kind: kindOf(code.n)}
}

// number is a JSON value QQ sends as a number or as a string of digits.
type number struct {
	set  bool
	n    int
	text string
}

func (v *number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	v.set = true
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = numberFromString(s)
		v.set = true
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return errors.New("a code that is not an integer")
	}
	v.n, v.text = int(n), string(b)
	return nil
}

// numberFromString reads a code QQ sent as text.
func numberFromString(s string) number {
	v := number{set: true, text: s}
	if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil {
		v.n = n
	}
	return v
}

// isError says whether an "error" or "ret" field reports a failure.
func (v number) isError() bool {
	return v.set && (v.n != 0 || (v.text != "" && v.text != "0"))
}

// jsonObject returns the JSON object in b: b itself, or what a JSONP
// wrapper `callback( {...} );` holds. A trailing comma before the closing
// brace (QQ's own error sample has one) is dropped.
func jsonObject(b []byte) ([]byte, error) {
	b = bytes.TrimSpace(b)
	if bytes.HasPrefix(b, []byte("callback")) {
		open := bytes.IndexByte(b, '(')
		end := bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			return nil, connectors.Unparseable("a JSONP reply without its parentheses")
		}
		if rest := bytes.TrimSpace(b[end+1:]); len(rest) > 1 || (len(rest) == 1 && rest[0] != ';') {
			return nil, connectors.Unparseable("text after the JSONP call")
		}
		b = bytes.TrimSpace(b[open+1 : end])
	}
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, connectors.Unparseable("a reply that is not a JSON object")
	}
	inner := bytes.TrimRight(b[:len(b)-1], " \t\r\n")
	if len(inner) > 1 && inner[len(inner)-1] == ',' {
		b = append(append([]byte{}, inner[:len(inner)-1]...), '}')
	}
	return b, nil
}

func decodeObject(body []byte, v any) error {
	obj, err := jsonObject(body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(obj, v); err != nil {
		return connectors.Unparseable("malformed JSON: %v", err)
	}
	return nil
}

// tokenReply is what /oauth2.0/token answers, whatever its shape.
type tokenReply struct {
	AccessToken      string `json:"access_token"`
	RefreshToken     string `json:"refresh_token"`
	Error            number `json:"error"`
	ErrorDescription string `json:"error_description"`
}

// parseTokenReply understands the three shapes of a token reply: the
// default `access_token=..&expires_in=..&refresh_token=..` text, JSON
// (fmt=json), and JSONP errors `callback( {"error":100019,...} );`. The
// old form-encoded error `code=..&msg=..` is understood too.
func parseTokenReply(body []byte) (tokenReply, error) {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return tokenReply{}, connectors.Unparseable("an empty reply")
	}
	var r tokenReply
	if b[0] == '{' || bytes.HasPrefix(b, []byte("callback")) {
		if err := decodeObject(b, &r); err != nil {
			return tokenReply{}, err
		}
		if r.Error.isError() {
			return tokenReply{}, providerError(r.Error, r.ErrorDescription)
		}
	} else {
		form, err := url.ParseQuery(string(b))
		if err != nil {
			return tokenReply{}, connectors.Unparseable("a reply that is neither JSON nor form-encoded")
		}
		if form.Get("access_token") == "" && form.Has("code") {
			return tokenReply{}, providerError(numberFromString(form.Get("code")), form.Get("msg"))
		}
		r.AccessToken, r.RefreshToken = form.Get("access_token"), form.Get("refresh_token")
	}
	if r.AccessToken == "" {
		return tokenReply{}, connectors.Unparseable("a token reply without access_token")
	}
	return r, nil
}

// meReply is who a token belongs to.
type meReply struct{ ClientID, OpenID, UnionID string }

// meWire is what /oauth2.0/me answers.
type meWire struct {
	ClientID         connectors.ID `json:"client_id"` // QQ might send it as a bare number
	OpenID           connectors.ID `json:"openid"`
	UnionID          connectors.ID `json:"unionid"`
	Error            number        `json:"error"`
	ErrorDescription string        `json:"error_description"`
}

func parseMeReply(body []byte) (me meReply, err error) {
	var r meWire
	if err := decodeObject(body, &r); err != nil {
		return me, err
	}
	if r.Error.isError() {
		return me, providerError(r.Error, r.ErrorDescription)
	}
	if r.OpenID == "" {
		return me, connectors.Unparseable("an /oauth2.0/me reply without openid")
	}
	me.ClientID, me.OpenID, me.UnionID = string(r.ClientID), string(r.OpenID), string(r.UnionID)
	return me, nil
}

// userInfoReply is the part of get_user_info the broker uses.
type userInfoReply struct {
	Ret          number `json:"ret"`
	Msg          string `json:"msg"`
	Nickname     string `json:"nickname"`
	Figureurl1   string `json:"figureurl_1"`
	Figureurl2   string `json:"figureurl_2"`
	FigureurlQQ1 string `json:"figureurl_qq_1"`
	FigureurlQQ2 string `json:"figureurl_qq_2"`
}

func parseUserInfoReply(body []byte) (userInfoReply, error) {
	var r userInfoReply
	if err := decodeObject(body, &r); err != nil {
		return userInfoReply{}, err
	}
	if !r.Ret.set {
		return userInfoReply{}, connectors.Unparseable("a get_user_info reply without ret")
	}
	if r.Ret.isError() {
		return userInfoReply{}, providerError(r.Ret, r.Msg)
	}
	return r, nil
}

// picture is the best avatar QQ gave: the 100 px QQ avatar, which may be
// missing, then the 40 px one, then the Qzone ones. URLs are kept as QQ
// gave them (QQ serves http:// URLs; Identity carries the profile as the
// provider gave it). Anything that is not an http(s) URL is dropped.
func (r userInfoReply) picture() string {
	for _, u := range []string{r.FigureurlQQ2, r.FigureurlQQ1, r.Figureurl2, r.Figureurl1} {
		if p, err := url.Parse(u); err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != "" {
			return u
		}
	}
	return ""
}
