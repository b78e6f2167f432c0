// Package qq is the QQ Connect (QQ互联) web connector: the browser goes to
// graph.qq.com/oauth2.0/authorize, comes back with a code, and the code is
// exchanged for an access token, the user's openid (and, when the app has
// the permission, unionid) and the profile from get_user_info.
//
// Wire behaviour (as QQ Connect really answers): every reply is HTTP 200;
// the token call answers form-encoded text unless fmt=json is sent, errors
// come as JSONP `callback( {...} );` or JSON with a numeric "error", and
// get_user_info answers JSON with ret/msg.
package qq

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/qiaoidp/qiao/connectors"
)

// Default hosts: QQ serves the browser pages and the API on one host.
const (
	DefaultAuthBaseURL = "https://graph.qq.com"
	DefaultAPIBaseURL  = "https://graph.qq.com"
)

// Endpoint names used in errors and metrics.
const (
	endpointToken    = "oauth2.0/token"
	endpointMe       = "oauth2.0/me"
	endpointUserInfo = "user/get_user_info"
)

// Config is a QQ Connect app.
type Config struct {
	ClientID     string `yaml:"client_id"`     // the app's APP ID
	ClientSecret string `yaml:"client_secret"` // the app's APP Key
	AuthBaseURL  string `yaml:"auth_base_url"` // browser-facing host; "" means DefaultAuthBaseURL
	APIBaseURL   string `yaml:"api_base_url"`  // server-to-server host; "" means DefaultAPIBaseURL
	// UnionID asks /oauth2.0/me for the unionid (unionid=1). QQ grants
	// this per developer account on request; without the permission
	// every login fails with an ErrConfig that says so.
	UnionID bool `yaml:"unionid"`
}

// Connector logs users in with QQ Connect. It is safe for concurrent use.
type Connector struct {
	cfg    Config
	caller *connectors.Caller
}

// New checks cfg and returns a connector that makes its provider calls
// through caller (nil: a Caller with ConnectorID "qq" and no observer).
func New(cfg Config, caller *connectors.Caller) (*Connector, error) {
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("qq: client_id is required: %w", connectors.ErrConfig)
	}
	if cfg.ClientSecret == "" {
		return nil, fmt.Errorf("qq: client_secret is required: %w", connectors.ErrConfig)
	}
	var err error
	if cfg.AuthBaseURL, err = connectors.BaseURL("auth_base_url", cfg.AuthBaseURL, DefaultAuthBaseURL); err != nil {
		return nil, fmt.Errorf("qq: %w", err)
	}
	if cfg.APIBaseURL, err = connectors.BaseURL("api_base_url", cfg.APIBaseURL, DefaultAPIBaseURL); err != nil {
		return nil, fmt.Errorf("qq: %w", err)
	}
	if caller == nil {
		caller = &connectors.Caller{ConnectorID: "qq"}
	}
	return &Connector{cfg: cfg, caller: caller}, nil
}

// LoginURL returns the authorize URL the browser is sent to. On phones
// (req.Mobile) QQ is asked for its mobile page with display=mobile.
func (c *Connector) LoginURL(ctx context.Context, req connectors.LoginRequest) (string, []byte, error) {
	if req.State == "" {
		return "", nil, fmt.Errorf("qq: login request without state: %w", connectors.ErrConfig)
	}
	if u, err := url.Parse(req.CallbackURL); err != nil || !u.IsAbs() || u.Host == "" {
		return "", nil, fmt.Errorf("qq: callback URL %q is not absolute: %w", req.CallbackURL, connectors.ErrConfig)
	}
	q := url.Values{
		"response_type": {"code"},
		"client_id":     {c.cfg.ClientID},
		"redirect_uri":  {req.CallbackURL},
		"state":         {req.State},
		"scope":         {"get_user_info"},
	}
	if req.Mobile {
		q.Set("display", "mobile")
	}
	return c.cfg.AuthBaseURL + "/oauth2.0/authorize?" + q.Encode(), nil, nil
}

// HandleCallback turns the callback's code into an Identity. A callback
// without a code means the user did not approve (QQ sends nothing back
// when the user cancels) and is ErrAccessDenied.
func (c *Connector) HandleCallback(ctx context.Context, req connectors.LoginRequest, query url.Values) (connectors.Identity, error) {
	code := query.Get("code")
	if code == "" {
		return connectors.Identity{}, &connectors.ProviderError{
			Provider: "qq", Endpoint: "oauth2.0/authorize",
			Message: "the callback carries no code: the user did not approve the login",
			Kind:    connectors.ErrAccessDenied,
		}
	}
	red := []string{c.cfg.ClientSecret, code}

	token, err := c.exchange(ctx, code, req.CallbackURL, red)
	if err != nil {
		return connectors.Identity{}, err
	}
	red = append(red, token.AccessToken, token.RefreshToken)

	me, err := c.me(ctx, token.AccessToken, red)
	if err != nil {
		return connectors.Identity{}, err
	}
	id := connectors.Identity{Subject: me.OpenID, UnionID: me.UnionID}

	profile, err := c.userInfo(ctx, token.AccessToken, me.OpenID, red)
	if err != nil {
		return connectors.Identity{}, err
	}
	id.DisplayName = profile.Nickname
	id.Picture = profile.picture()
	id = id.Clean()
	id.RealProfile = id.DisplayName != "" || id.Picture != ""
	return id, nil
}

// exchange redeems the code at /oauth2.0/token. fmt=json asks for JSON,
// but the form-encoded and JSONP replies QQ has always sent are understood
// too. need_openid is not sent: its official wording is unconfirmed, and
// /oauth2.0/me is called anyway (for the unionid and to check the app).
func (c *Connector) exchange(ctx context.Context, code, redirectURI string, red []string) (tokenReply, error) {
	q := url.Values{
		"grant_type":    {"authorization_code"},
		"client_id":     {c.cfg.ClientID},
		"client_secret": {c.cfg.ClientSecret},
		"code":          {code},
		"redirect_uri":  {redirectURI},
		"fmt":           {"json"},
	}
	var tok tokenReply
	err := c.call(ctx, endpointToken, "/oauth2.0/token", q, red, func(body []byte) error {
		var err error
		tok, err = parseTokenReply(body)
		return err
	})
	return tok, err
}

// me asks /oauth2.0/me whose token this is, with the unionid when
// configured, and checks the token belongs to this app.
func (c *Connector) me(ctx context.Context, accessToken string, red []string) (meReply, error) {
	q := url.Values{"access_token": {accessToken}, "fmt": {"json"}}
	if c.cfg.UnionID {
		q.Set("unionid", "1")
	}
	var me meReply
	err := c.call(ctx, endpointMe, "/oauth2.0/me", q, red, func(body []byte) error {
		var err error
		me, err = parseMeReply(body)
		return err
	})
	if err != nil {
		return meReply{}, err
	}
	if me.ClientID != "" && me.ClientID != c.cfg.ClientID {
		return meReply{}, fmt.Errorf("qq %s: the token belongs to app %q, not %q: %w", endpointMe, me.ClientID, c.cfg.ClientID, connectors.ErrConfig)
	}
	if c.cfg.UnionID && me.UnionID == "" {
		return meReply{}, &connectors.ProviderError{
			Provider: "qq", Endpoint: endpointMe,
			Message: "QQ returned no unionid although unionid=1 was asked: check that the app has QQ's unionid permission, or set unionid: false",
			Kind:    connectors.ErrConfig,
		}
	}
	return me, nil
}

// userInfo fetches the profile. A user who did not grant get_user_info
// (100030) logs in without a profile.
func (c *Connector) userInfo(ctx context.Context, accessToken, openID string, red []string) (userInfoReply, error) {
	q := url.Values{
		"access_token":       {accessToken},
		"oauth_consumer_key": {c.cfg.ClientID},
		"openid":             {openID},
	}
	var info userInfoReply
	err := c.call(ctx, endpointUserInfo, "/user/get_user_info", q, red, func(body []byte) error {
		var err error
		info, err = parseUserInfoReply(body)
		return err
	})
	var pe *connectors.ProviderError
	if errors.As(err, &pe) && pe.Code == codeNotAuthorized {
		return userInfoReply{}, nil
	}
	return info, err
}

// call GETs one API path and hands the body of an HTTP 200 to parse; the
// Caller reports the result and keeps the values in red out of errors.
func (c *Connector) call(ctx context.Context, endpoint, path string, q url.Values, red []string, parse func([]byte) error) error {
	build := func() (*http.Request, error) {
		return http.NewRequest(http.MethodGet, c.cfg.APIBaseURL+path+"?"+q.Encode(), nil)
	}
	return c.caller.Call(ctx, "qq", endpoint, build, red, func(reply connectors.Reply) error {
		if reply.Status != http.StatusOK {
			return fmt.Errorf("%w: HTTP %d", connectors.ErrUnavailable, reply.Status)
		}
		return parse(reply.Body)
	})
}
