// Package weibo is the Sina Weibo web connector: the browser goes to
// api.weibo.com/oauth2/authorize, comes back with a code, the code is
// POSTed to /oauth2/access_token, the token is checked with
// /oauth2/get_token_info (it must belong to this app, as Weibo's docs ask)
// and the profile comes from /2/users/show.json.
//
// Wire behaviour (as Weibo really answers): errors are real 4xx replies
// with a JSON body whose error_code is a number or a string, JSON comes
// as text/plain, and the uid is a string (idstr): the int64 id can exceed
// 2^53 and is never passed through a float.
package weibo

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/qiaoidp/qiao/connectors"
)

// Default hosts. Weibo's mobile (H5) authorize page lives on open.weibo.cn.
const (
	DefaultAuthBaseURL       = "https://api.weibo.com"
	DefaultMobileAuthBaseURL = "https://open.weibo.cn"
	DefaultAPIBaseURL        = "https://api.weibo.com"
)

// Endpoint names used in errors and metrics.
const (
	endpointToken     = "oauth2/access_token"
	endpointTokenInfo = "oauth2/get_token_info"
	endpointShow      = "2/users/show.json"
)

// Config is a Weibo app.
type Config struct {
	ClientID     string `yaml:"client_id"`     // the App Key
	ClientSecret string `yaml:"client_secret"` // the App Secret
	AuthBaseURL  string `yaml:"auth_base_url"` // browser-facing host; "" means DefaultAuthBaseURL
	// MobileAuthBaseURL is the host of the mobile authorize page. ""
	// means DefaultMobileAuthBaseURL when AuthBaseURL is the default, and
	// AuthBaseURL otherwise (a simulator or proxy serves both).
	MobileAuthBaseURL string
	APIBaseURL        string `yaml:"api_base_url"` // server-to-server host; "" means DefaultAPIBaseURL
}

// Connector logs users in with Weibo. It is safe for concurrent use.
type Connector struct {
	cfg    Config
	caller *connectors.Caller
}

// New checks cfg and returns a connector that makes its provider calls
// through caller (nil: a Caller with ConnectorID "weibo" and no observer).
func New(cfg Config, caller *connectors.Caller) (*Connector, error) {
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("weibo: client_id is required: %w", connectors.ErrConfig)
	}
	if cfg.ClientSecret == "" {
		return nil, fmt.Errorf("weibo: client_secret is required: %w", connectors.ErrConfig)
	}
	if cfg.MobileAuthBaseURL == "" && cfg.AuthBaseURL != "" {
		cfg.MobileAuthBaseURL = cfg.AuthBaseURL
	}
	var err error
	if cfg.AuthBaseURL, err = connectors.BaseURL("auth_base_url", cfg.AuthBaseURL, DefaultAuthBaseURL); err != nil {
		return nil, fmt.Errorf("weibo: %w", err)
	}
	if cfg.MobileAuthBaseURL, err = connectors.BaseURL("mobile_auth_base_url", cfg.MobileAuthBaseURL, DefaultMobileAuthBaseURL); err != nil {
		return nil, fmt.Errorf("weibo: %w", err)
	}
	if cfg.APIBaseURL, err = connectors.BaseURL("api_base_url", cfg.APIBaseURL, DefaultAPIBaseURL); err != nil {
		return nil, fmt.Errorf("weibo: %w", err)
	}
	if caller == nil {
		caller = &connectors.Caller{ConnectorID: "weibo"}
	}
	return &Connector{cfg: cfg, caller: caller}, nil
}

// LoginURL returns the authorize URL the browser is sent to; phones get
// Weibo's mobile page (display=mobile on the mobile host).
func (c *Connector) LoginURL(ctx context.Context, req connectors.LoginRequest) (string, []byte, error) {
	if req.State == "" {
		return "", nil, fmt.Errorf("weibo: login request without state: %w", connectors.ErrConfig)
	}
	if u, err := url.Parse(req.CallbackURL); err != nil || !u.IsAbs() || u.Host == "" {
		return "", nil, fmt.Errorf("weibo: callback URL %q is not absolute: %w", req.CallbackURL, connectors.ErrConfig)
	}
	q := url.Values{
		"client_id":     {c.cfg.ClientID},
		"redirect_uri":  {req.CallbackURL},
		"response_type": {"code"},
		"state":         {req.State},
	}
	base := c.cfg.AuthBaseURL
	if req.Mobile {
		base = c.cfg.MobileAuthBaseURL
		q.Set("display", "mobile")
	}
	return base + "/oauth2/authorize?" + q.Encode(), nil, nil
}

// HandleCallback turns the callback into an Identity. Weibo reports a
// refusal on the callback (error=access_denied, error_code=21330):
// ErrAccessDenied, as is a callback with neither code nor error.
func (c *Connector) HandleCallback(ctx context.Context, req connectors.LoginRequest, query url.Values) (connectors.Identity, error) {
	if query.Has("error") || query.Has("error_code") {
		e := errorReply{
			Error:       query.Get("error"),
			Code:        numberFromString(query.Get("error_code")),
			Description: query.Get("error_description"),
		}
		err := e.providerError()
		err.Endpoint = "oauth2/authorize"
		return connectors.Identity{}, err
	}
	code := query.Get("code")
	if code == "" {
		return connectors.Identity{}, &connectors.ProviderError{
			Provider: "weibo", Endpoint: "oauth2/authorize",
			Message: "the callback carries no code: the user did not approve the login",
			Kind:    connectors.ErrAccessDenied,
		}
	}
	red := []string{c.cfg.ClientSecret, code}

	var tok tokenReply
	err := c.call(ctx, endpointToken, c.post("/oauth2/access_token", url.Values{
		"client_id":     {c.cfg.ClientID},
		"client_secret": {c.cfg.ClientSecret},
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"redirect_uri":  {req.CallbackURL},
	}), red, func(b []byte) (err error) { tok, err = parseTokenReply(b); return err })
	if err != nil {
		return connectors.Identity{}, err
	}
	red = append(red, tok.AccessToken)

	var info tokenInfoReply
	err = c.call(ctx, endpointTokenInfo, c.post("/oauth2/get_token_info", url.Values{
		"access_token": {tok.AccessToken},
	}), red, func(b []byte) (err error) { info, err = parseTokenInfoReply(b); return err })
	if err != nil {
		return connectors.Identity{}, err
	}
	if string(info.AppKey) != c.cfg.ClientID {
		return connectors.Identity{}, fmt.Errorf("weibo %s: the token was issued to app %q, not %q: %w", endpointTokenInfo, info.AppKey, c.cfg.ClientID, connectors.ErrConfig)
	}
	if string(info.UID) != tok.UID {
		return connectors.Identity{}, fmt.Errorf("weibo %s: the token's uid differs from the one the token call gave: %w", endpointTokenInfo, connectors.ErrUnavailable)
	}

	var user userReply
	err = c.call(ctx, endpointShow, c.get("/2/users/show.json", url.Values{
		"access_token": {tok.AccessToken},
		"uid":          {tok.UID},
	}), red, func(b []byte) (err error) { user, err = parseUserReply(b); return err })
	if err != nil {
		return connectors.Identity{}, err
	}
	if user.uid() != tok.UID {
		return connectors.Identity{}, fmt.Errorf("weibo %s: the profile is not the token's user: %w", endpointShow, connectors.ErrUnavailable)
	}
	id := connectors.Identity{
		Subject:     tok.UID,
		DisplayName: user.displayName(),
		Picture:     user.picture(),
	}.Clean()
	id.RealProfile = id.DisplayName != "" || id.Picture != ""
	return id, nil
}

// post and get return builders of requests to the API host.
func (c *Connector) post(path string, form url.Values) func() (*http.Request, error) {
	return func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, c.cfg.APIBaseURL+path, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return req, nil
	}
}

func (c *Connector) get(path string, q url.Values) func() (*http.Request, error) {
	return func() (*http.Request, error) {
		return http.NewRequest(http.MethodGet, c.cfg.APIBaseURL+path+"?"+q.Encode(), nil)
	}
}

// call sends one request and sorts the reply into success (handed to
// parse) or a Weibo error; the Caller reports the result and keeps the
// values in red out of errors.
func (c *Connector) call(ctx context.Context, endpoint string, build func() (*http.Request, error), red []string, parse func([]byte) error) error {
	return c.caller.Call(ctx, "weibo", endpoint, build, red, func(reply connectors.Reply) error {
		switch {
		case reply.Status >= 400:
			return parseErrorReply(reply.Status, reply.Body)
		case reply.Status < 200 || reply.Status > 299:
			return connectors.Unparseable("HTTP %d", reply.Status)
		case hasErrorCode(reply.Body):
			return parseErrorReply(reply.Status, reply.Body)
		default:
			return parse(reply.Body)
		}
	})
}
