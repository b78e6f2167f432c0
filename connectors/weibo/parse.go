package weibo

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"

	"github.com/qiaoidp/qiao/connectors"
)

// Weibo error codes the connector treats specially (upstream-apis §7.2, §7.6).
const (
	codeRedirectMismatch = 21322
	codeInvalidClient    = 21324
	codeInvalidGrant     = 21325 // code invalid, expired, revoked or already used
	codeExpiredToken     = 21327
	codeAccessDenied     = 21330
	codeInvalidToken     = 21332
	codeNoAppPermission  = 10014
)

// kindOf sorts a Weibo error into the errors the broker understands, by
// error_code, or by the OAuth error string when there is no code.
func kindOf(code int, oauthError string) error {
	switch code {
	case codeInvalidGrant, codeExpiredToken, codeInvalidToken:
		return connectors.ErrInvalidCode
	case codeAccessDenied, 10032:
		return connectors.ErrAccessDenied
	case codeRedirectMismatch, 21323, codeInvalidClient, 21326, 21328, 21329, 21337,
		10005, 10006, codeNoAppPermission:
		return connectors.ErrConfig
	case 0:
	default:
		return connectors.ErrUnavailable // 10001-10004, 10009, 10022-10024, 21331 and the unknown
	}
	switch oauthError {
	case "access_denied":
		return connectors.ErrAccessDenied
	case "invalid_grant", "expired_token", "invalid_access_token":
		return connectors.ErrInvalidCode
	case "invalid_client", "redirect_uri_mismatch", "unauthorized_client", "invalid_request",
		"unsupported_grant_type", "unsupported_response_type":
		return connectors.ErrConfig
	}
	return connectors.ErrUnavailable
}

// explain adds, for the codes an admin must act on, what to do.
func explain(code int) string {
	switch code {
	case codeInvalidClient:
		return "Weibo refused the client_id or client_secret: check the connector's credentials"
	case codeRedirectMismatch:
		return "Weibo refused the redirect_uri: set the app's callback URL at open.weibo.com to the broker's callback URL"
	case codeNoAppPermission:
		return "the Weibo app lacks the permission for this API"
	case 10022, 10023, 10024:
		return "Weibo's rate limit was hit; try again later"
	}
	return ""
}

// number is error_code: a JSON number in OAuth errors, a string in the
// generic API error doc.
type number struct {
	set bool
	n   int
}

func numberFromString(s string) number {
	s = strings.TrimSpace(s)
	if s == "" {
		return number{}
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 1<<31 {
		return number{set: true}
	}
	return number{set: true, n: n}
}

func (v *number) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*v = numberFromString(s)
		return nil
	}
	n, err := strconv.ParseInt(string(b), 10, 32)
	if err != nil {
		return errors.New("an error_code that is not an integer")
	}
	*v = number{set: true, n: int(n)}
	return nil
}

// decodeObject decodes a JSON object, whatever the Content-Type said
// (Weibo sends JSON as text/plain).
func decodeObject(body []byte, v any) error {
	b := bytes.TrimSpace(body)
	if len(b) == 0 {
		return connectors.Unparseable("an empty reply")
	}
	if b[0] != '{' {
		return connectors.Unparseable("a reply that is not a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		return connectors.Unparseable("malformed JSON: %v", err)
	}
	return nil
}

// errorReply is Weibo's error shape:
// {"error":"invalid_grant","error_code":21325,"request":"/oauth2/access_token","error_description":"..."}.
type errorReply struct {
	Error       string `json:"error"`
	Code        number `json:"error_code"`
	Description string `json:"error_description"`
}

func (e errorReply) providerError() *connectors.ProviderError {
	msg := strings.TrimSpace(e.Error)
	if d := strings.TrimSpace(e.Description); d != "" && d != msg {
		if msg != "" {
			msg += ": "
		}
		msg += d
	}
	if x := explain(e.Code.n); x != "" {
		msg += " (" + x + ")"
	}
	return &connectors.ProviderError{Provider: "weibo", Code: e.Code.n, Message: connectors.Truncate(msg), Kind: kindOf(e.Code.n, e.Error)}
}

// hasErrorCode tells a 2xx reply that is an error in disguise.
func hasErrorCode(body []byte) bool {
	var probe struct {
		Code json.RawMessage `json:"error_code"`
	}
	return json.Unmarshal(body, &probe) == nil && len(probe.Code) > 0 && string(probe.Code) != "null"
}

// parseErrorReply reads an error reply; one that cannot be read is the
// provider being unavailable.
func parseErrorReply(status int, body []byte) error {
	var e errorReply
	if err := decodeObject(body, &e); err != nil || (!e.Code.set && e.Error == "") {
		return connectors.Unparseable("HTTP %d without a Weibo error body", status)
	}
	return e.providerError()
}

// tokenReply is the part of the /oauth2/access_token reply the broker
// uses: {"access_token":"2.00...","expires_in":86400,"uid":"2583117564"}.
type tokenReply struct {
	AccessToken string `json:"access_token"`
	UID         string `json:"-"`
}

func parseTokenReply(body []byte) (tokenReply, error) {
	var w struct {
		AccessToken string        `json:"access_token"`
		UID         connectors.ID `json:"uid"`
	}
	if err := decodeObject(body, &w); err != nil {
		return tokenReply{}, err
	}
	if w.AccessToken == "" || w.UID == "" {
		return tokenReply{}, connectors.Unparseable("a token reply without access_token or uid")
	}
	return tokenReply{AccessToken: w.AccessToken, UID: string(w.UID)}, nil
}

// tokenInfoReply is /oauth2/get_token_info: {"uid":..,"appkey":..,"scope":null,"create_at":..,"expire_in":..}.
type tokenInfoReply struct {
	UID    connectors.ID `json:"uid"`
	AppKey connectors.ID `json:"appkey"`
}

func parseTokenInfoReply(body []byte) (tokenInfoReply, error) {
	var r tokenInfoReply
	if err := decodeObject(body, &r); err != nil {
		return tokenInfoReply{}, err
	}
	if r.UID == "" || r.AppKey == "" {
		return tokenInfoReply{}, connectors.Unparseable("a token info reply without uid or appkey")
	}
	return r, nil
}

// userReply is the part of /2/users/show.json the broker uses.
type userReply struct {
	ID              connectors.ID `json:"id"`
	IDStr           string        `json:"idstr"`
	ScreenName      string        `json:"screen_name"`
	Name            string        `json:"name"`
	AvatarHD        string        `json:"avatar_hd"`
	AvatarLarge     string        `json:"avatar_large"`
	ProfileImageURL string        `json:"profile_image_url"`
}

func parseUserReply(body []byte) (userReply, error) {
	var r userReply
	if err := decodeObject(body, &r); err != nil {
		return userReply{}, err
	}
	if r.uid() == "" {
		return userReply{}, connectors.Unparseable("a profile without id")
	}
	return r, nil
}

// uid is idstr, or the exact digits of id when idstr is missing.
func (r userReply) uid() string {
	if r.IDStr != "" {
		return r.IDStr
	}
	return string(r.ID)
}

func (r userReply) displayName() string {
	if r.ScreenName != "" {
		return r.ScreenName
	}
	return r.Name
}

// picture is the largest avatar Weibo gave, kept as Weibo gave it;
// anything that is not an http(s) URL is dropped.
func (r userReply) picture() string {
	for _, u := range []string{r.AvatarHD, r.AvatarLarge, r.ProfileImageURL} {
		if p, err := url.Parse(u); err == nil && (p.Scheme == "http" || p.Scheme == "https") && p.Host != "" {
			return u
		}
	}
	return ""
}
