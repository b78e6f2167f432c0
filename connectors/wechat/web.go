package wechat

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/qiaoidp/qiao/connectors"
)

// Endpoint names, as the metrics and the errors show them.
const (
	endpointOAuthToken  = "sns/oauth2/access_token"
	endpointUserInfo    = "sns/userinfo"
	endpointJSCode      = "sns/jscode2session"
	endpointStableToken = "cgi-bin/stable_token"
	endpointPhoneNumber = "wxa/business/getuserphonenumber"
)

// stateRE is WeChat's rule for state, which the broker follows too.
var stateRE = regexp.MustCompile(`^[A-Za-z0-9]{16,128}$`)

// Web is the Open Platform website-app connector: the QR-code login at
// /connect/qrconnect (scope snsapi_login).
type Web struct {
	oauth oauthFlow
}

// NewWeb returns the website QR-code login connector. caller makes every
// provider call; nil means a default Caller with connector id "wechat".
func NewWeb(cfg Config, caller *connectors.Caller) (*Web, error) {
	c, err := newClient(cfg, caller, "wechat")
	if err != nil {
		return nil, err
	}
	return &Web{oauth: oauthFlow{c: c, path: "/connect/qrconnect", scope: scopeLogin}}, nil
}

// LoginURL returns the QR-code page URL the browser is sent to.
func (w *Web) LoginURL(ctx context.Context, req connectors.LoginRequest) (string, []byte, error) {
	return w.oauth.loginURL(req)
}

// HandleCallback redeems the code of the callback and fetches the profile.
func (w *Web) HandleCallback(ctx context.Context, req connectors.LoginRequest, query url.Values) (connectors.Identity, error) {
	return w.oauth.callback(ctx, query)
}

// MP is the Official Account connector: web authorization inside the
// WeChat browser at /connect/oauth2/authorize.
type MP struct {
	oauth oauthFlow
}

// NewMP returns the Official Account connector. cfg.Scope is
// ScopeUserInfo (default) or ScopeBase (silent, openid only, no
// profile). caller nil means a default Caller with connector id
// "wechat_mp".
func NewMP(cfg Config, caller *connectors.Caller) (*MP, error) {
	scope := cfg.Scope
	switch scope {
	case "":
		scope = ScopeUserInfo
	case ScopeUserInfo, ScopeBase:
	default:
		return nil, fmt.Errorf("wechat: scope %q is neither %s nor %s: %w", scope, ScopeUserInfo, ScopeBase, connectors.ErrConfig)
	}
	c, err := newClient(cfg, caller, "wechat_mp")
	if err != nil {
		return nil, err
	}
	return &MP{oauth: oauthFlow{c: c, path: "/connect/oauth2/authorize", scope: scope}}, nil
}

// LoginURL returns the authorize URL, its parameters in the order WeChat
// insists on, with the #wechat_redirect fragment.
func (m *MP) LoginURL(ctx context.Context, req connectors.LoginRequest) (string, []byte, error) {
	return m.oauth.loginURL(req)
}

// HandleCallback redeems the code of the callback and, with
// snsapi_userinfo, fetches the profile. Snapshot-mode users are refused.
func (m *MP) HandleCallback(ctx context.Context, req connectors.LoginRequest, query url.Values) (connectors.Identity, error) {
	return m.oauth.callback(ctx, query)
}

// oauthFlow is what the website and Official Account logins share.
type oauthFlow struct {
	c     *client
	path  string // authorize page path under the auth host
	scope string
}

func (f *oauthFlow) loginURL(req connectors.LoginRequest) (string, []byte, error) {
	if !stateRE.MatchString(req.State) {
		return "", nil, fmt.Errorf("wechat: state must be 16-128 characters of [A-Za-z0-9]")
	}
	cb, err := url.Parse(req.CallbackURL)
	if err != nil || (cb.Scheme != "http" && cb.Scheme != "https") || cb.Host == "" {
		return "", nil, fmt.Errorf("wechat: callback URL %q is not an absolute http(s) URL", req.CallbackURL)
	}
	// Built by hand: url.Values.Encode sorts the keys, and the Official
	// Account page refuses any order but this one.
	var b strings.Builder
	b.WriteString(f.c.authURL + f.path)
	b.WriteString("?appid=" + url.QueryEscape(f.c.appID))
	b.WriteString("&redirect_uri=" + url.QueryEscape(req.CallbackURL))
	b.WriteString("&response_type=code")
	b.WriteString("&scope=" + f.scope)
	b.WriteString("&state=" + req.State)
	b.WriteString("#wechat_redirect")
	return b.String(), nil, nil
}

// oauthToken is the /sns/oauth2/access_token reply.
type oauthToken struct {
	AccessToken    string     `json:"access_token"`
	ExpiresIn      flexString `json:"expires_in"`
	RefreshToken   string     `json:"refresh_token"`
	OpenID         string     `json:"openid"`
	Scope          string     `json:"scope"`
	UnionID        string     `json:"unionid"`
	IsSnapshotUser flexString `json:"is_snapshotuser"`
}

func (t *oauthToken) missing() string {
	switch {
	case t.AccessToken == "":
		return "access_token"
	case t.OpenID == "":
		return "openid"
	}
	return ""
}

// userInfo is the /sns/userinfo reply.
type userInfo struct {
	OpenID     string `json:"openid"`
	Nickname   string `json:"nickname"`
	HeadImgURL string `json:"headimgurl"`
	UnionID    string `json:"unionid"`

	want string // the token's openid, which the profile must carry
}

func (u *userInfo) missing() string {
	if u.OpenID == "" || u.OpenID != u.want {
		return "openid of the token's user"
	}
	return ""
}

func (f *oauthFlow) callback(ctx context.Context, query url.Values) (connectors.Identity, error) {
	code := query.Get("code")
	if code == "" {
		return connectors.Identity{}, fmt.Errorf("wechat: the user did not authorize the login: %w", connectors.ErrAccessDenied)
	}
	if !validCode(code) {
		return connectors.Identity{}, fmt.Errorf("wechat: the callback code is malformed: %w", connectors.ErrInvalidCode)
	}
	var tok oauthToken
	err := f.c.get(ctx, endpointOAuthToken, "/sns/oauth2/access_token", url.Values{
		"appid":      {f.c.appID},
		"secret":     {f.c.secret},
		"code":       {code},
		"grant_type": {"authorization_code"},
	}, []string{code}, &tok)
	if err != nil {
		return connectors.Identity{}, err
	}
	if tok.IsSnapshotUser == "1" || tok.IsSnapshotUser == "true" {
		return connectors.Identity{}, fmt.Errorf("wechat: %w: the user is in WeChat snapshot mode (is_snapshotuser=1), "+
			"so their openid and profile are virtual; they must tap \"使用完整服务\" and authorize fully", connectors.ErrAccessDenied)
	}
	id := connectors.Identity{Subject: tok.OpenID, UnionID: tok.UnionID}
	if !f.wantsProfile(tok.Scope) {
		return id.Clean(), nil
	}
	info := userInfo{want: tok.OpenID}
	err = f.c.get(ctx, endpointUserInfo, "/sns/userinfo", url.Values{
		"access_token": {tok.AccessToken},
		"openid":       {tok.OpenID},
		"lang":         {"zh_CN"},
	}, []string{code, tok.AccessToken, tok.RefreshToken}, &info)
	if err != nil {
		return connectors.Identity{}, err
	}
	if id.UnionID == "" {
		id.UnionID = info.UnionID
	}
	id.DisplayName = info.Nickname
	id.Picture = info.HeadImgURL
	id = id.Clean()
	id.RealProfile = realProfile(id.DisplayName, id.Picture)
	return id, nil
}

// wantsProfile reports whether /sns/userinfo may be called: the
// configured scope asks for the profile and the granted one (when WeChat
// says) includes it.
func (f *oauthFlow) wantsProfile(granted string) bool {
	if f.scope == ScopeBase {
		return false
	}
	if granted == "" {
		return true
	}
	for _, s := range strings.Split(granted, ",") {
		if s = strings.TrimSpace(s); s == scopeLogin || s == ScopeUserInfo {
			return true
		}
	}
	return false
}

// realProfile is false for WeChat's placeholder profile or none.
func realProfile(nickname, avatar string) bool {
	return nickname != "" && nickname != PlaceholderNickname && avatar != PlaceholderAvatar
}
