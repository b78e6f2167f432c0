// Package wechat holds the three WeChat connectors: the Open Platform
// website QR-code login (Web), the Official Account login inside the
// WeChat browser (MP) and the mini-program wx.login code exchange
// (MiniProgram). They share the wire code in this file: every
// api.weixin.qq.com reply is HTTP 200 with a JSON body (whatever the
// Content-Type says) that carries an errcode on failure.
package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/qiaoidp/qiao/connectors"
)

// The real hosts, used when Config leaves a base URL empty.
const (
	DefaultAuthBaseURL = "https://open.weixin.qq.com"
	DefaultAPIBaseURL  = "https://api.weixin.qq.com"
)

// The placeholder profile WeChat hands out instead of the real one: the
// nickname "微信用户" and the grey default avatar.
const (
	PlaceholderNickname = "微信用户"
	PlaceholderAvatar   = "https://thirdwx.qlogo.cn/mmopen/vi_32/POgEwh4mIHO4nibH0KlMECNjjGxQUq24ZEaGT4poC6icRiccVGKSyXwibcPq4BWmiaIGuG1icwxaQX6grC9VemZoJ8rg/132"
)

// Official Account scopes.
const (
	ScopeUserInfo = "snsapi_userinfo"
	ScopeBase     = "snsapi_base"
	scopeLogin    = "snsapi_login"
)

// retryDelay is the pause before the one retry after WeChat's -1
// ("system busy").
const retryDelay = 100 * time.Millisecond

// maxCodeLen bounds a code we accept from a browser or a mini-program
// before sending it to WeChat.
const maxCodeLen = 512

// Config is what every WeChat connector needs.
type Config struct {
	ClientID     string `yaml:"client_id"`     // the AppID
	ClientSecret string `yaml:"client_secret"` // the AppSecret
	AuthBaseURL  string `yaml:"auth_base_url"` // browser-facing host; "" = DefaultAuthBaseURL
	APIBaseURL   string `yaml:"api_base_url"`  // server-to-server host; "" = DefaultAPIBaseURL
	// Scope is for the Official Account only: ScopeUserInfo (the default)
	// or ScopeBase. The other connectors ignore it.
	Scope string `yaml:"scope"`
	// ScanLogin lets a mini-program sign people in on a computer: the
	// broker shows a mini-program code they scan with WeChat. Mini-program
	// only; on when the block sets any key (then page is required).
	ScanLogin ScanLogin `yaml:"scan_login"`
	// Logger receives warnings that do not fail a login (a token cache
	// that cannot be reached). nil: slog.Default().
	Logger *slog.Logger

	typ string // the connector type read from a configuration file (see NewConfig)
}

// client makes the api.weixin.qq.com calls of one app.
type client struct {
	appID   string
	secret  string
	authURL string
	apiURL  string
	caller  *connectors.Caller
	log     *slog.Logger
}

func newClient(cfg Config, caller *connectors.Caller, connectorID string) (*client, error) {
	if strings.TrimSpace(cfg.ClientID) == "" {
		return nil, fmt.Errorf("wechat: client_id (AppID) is required: %w", connectors.ErrConfig)
	}
	if strings.TrimSpace(cfg.ClientSecret) == "" {
		return nil, fmt.Errorf("wechat: client_secret (AppSecret) is required: %w", connectors.ErrConfig)
	}
	authURL, err := baseURL("auth_base_url", cfg.AuthBaseURL, DefaultAuthBaseURL)
	if err != nil {
		return nil, err
	}
	apiURL, err := baseURL("api_base_url", cfg.APIBaseURL, DefaultAPIBaseURL)
	if err != nil {
		return nil, err
	}
	if caller == nil {
		caller = &connectors.Caller{ConnectorID: connectorID}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &client{appID: cfg.ClientID, secret: cfg.ClientSecret, authURL: authURL, apiURL: apiURL, caller: caller, log: log}, nil
}

// baseURL is connectors.BaseURL in WeChat's words.
func baseURL(name, s, def string) (string, error) {
	u, err := connectors.BaseURL(name, s, def)
	if err != nil {
		return "", fmt.Errorf("wechat: %s: %q is not an http(s) base URL: %w", name, s, connectors.ErrConfig)
	}
	return u, nil
}

// checked is a reply type that can say which required field it lacks.
type checked interface {
	missing() string // the name of a required field that is absent, or ""
}

// get calls GET {api}{path}?query, see call.
func (c *client) get(ctx context.Context, endpoint, path string, query url.Values, sensitive []string, out checked) error {
	return c.call(ctx, endpoint, sensitive, func() (*http.Request, error) {
		return http.NewRequest(http.MethodGet, c.apiURL+path+"?"+query.Encode(), nil)
	}, out)
}

// postJSON calls POST {api}{path}?query with a JSON body, see call.
func (c *client) postJSON(ctx context.Context, endpoint, path string, query url.Values, body any, sensitive []string, out checked) error {
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("wechat %s: encoding request: %w", endpoint, err)
	}
	u := c.apiURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return c.call(ctx, endpoint, sensitive, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(data))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}, out)
}

// call sends the request that build makes and decodes the reply into out.
// WeChat's -1 ("system busy") is retried once. sensitive lists values
// (codes, tokens) that must never appear in an error; the app secret is
// always one of them.
func (c *client) call(ctx context.Context, endpoint string, sensitive []string, build func() (*http.Request, error), out checked) error {
	secrets := append([]string{c.secret}, sensitive...)
	return c.callRaw(ctx, endpoint, sensitive, build, func(rep connectors.Reply) error { return decode(endpoint, rep, secrets, out) })
}

// callRaw is call with a parser of its own (a reply that may be an
// image). WeChat's -1 is retried once, and a quota error leaves an error
// line for the admin.
func (c *client) callRaw(ctx context.Context, endpoint string, sensitive []string, build func() (*http.Request, error), parse func(connectors.Reply) error) error {
	secrets := append([]string{c.secret}, sensitive...)
	for attempt := 0; ; attempt++ {
		err := c.caller.Call(ctx, "wechat", endpoint, build, secrets, parse)
		var pe *connectors.ProviderError
		if errors.As(err, &pe) && (pe.Code == 45011 || pe.Code == 45009) {
			// The app's quota is everyone's: the admin must hear of it.
			c.log.Error("wechat: API quota reached; logins through this app fail until it resets",
				"appid", c.appID, "endpoint", endpoint, "errcode", pe.Code, "errmsg", pe.Message,
				"resets", map[int]string{45011: "next minute", 45009: "next day"}[pe.Code])
		}
		if attempt == 0 && errors.As(err, &pe) && pe.Code == -1 {
			t := time.NewTimer(retryDelay)
			select {
			case <-ctx.Done():
				t.Stop()
				return err
			case <-t.C:
			}
			continue
		}
		return err
	}
}

// decode parses one reply into out: an errcode is a *ProviderError,
// anything else that is not a complete reply makes WeChat unavailable.
func decode(endpoint string, rep connectors.Reply, secrets []string, out checked) error {
	body := bytes.TrimSpace(bytes.TrimPrefix(rep.Body, []byte("\xef\xbb\xbf")))
	if len(body) == 0 {
		return connectors.Unparseable("empty reply (HTTP %d, Content-Type %q)", rep.Status, rep.ContentType)
	}
	var env struct {
		Errcode flexString `json:"errcode"`
		Errmsg  string     `json:"errmsg"`
	}
	if body[0] != '{' || json.Unmarshal(body, &env) != nil {
		return connectors.Unparseable("reply is not a JSON object (HTTP %d, Content-Type %q, %d bytes)", rep.Status, rep.ContentType, len(body))
	}
	if env.Errcode != "" && env.Errcode != "0" {
		code, err := strconv.Atoi(string(env.Errcode))
		if err != nil {
			return connectors.Unparseable("errcode %q is not a number", connectors.Redact(string(env.Errcode), secrets...))
		}
		return &connectors.ProviderError{Provider: "wechat", Code: code, Message: env.Errmsg, Kind: kindOf(endpoint, code)}
	}
	if rep.Status != http.StatusOK {
		return connectors.Unparseable("HTTP %d without an errcode", rep.Status)
	}
	if err := json.Unmarshal(body, out); err != nil {
		return connectors.Unparseable("malformed reply: %s", connectors.Redact(err.Error(), secrets...))
	}
	if m := out.missing(); m != "" {
		return connectors.Unparseable("reply has no %s", m)
	}
	return nil
}

// kindOf maps a WeChat errcode to a connector error.
func kindOf(endpoint string, code int) error {
	switch code {
	case 40029, 40163, 42003, 41008, 40030, 42002:
		// Unknown, used or expired code (or refresh token), or none.
		return connectors.ErrInvalidCode
	case 40226, 50002:
		// High-risk user blocked; account frozen or cancelled.
		return connectors.ErrAccessDenied
	case 40125, 40013, 40002, 40164, 40243, 41002, 41004, 43003, 48001,
		41030, 40097, 40129, 40169: // getwxacodeunlimit: page not released, bad arguments, bad scene
		// Bad secret or appid, IP whitelist, frozen secret, missing
		// credentials, http instead of https, API not granted.
		return connectors.ErrConfig
	case 40001:
		if endpoint == endpointStableToken {
			// On the token call itself 40001 means the AppSecret is wrong.
			return connectors.ErrConfig
		}
		return connectors.ErrUnavailable
	default:
		// -1 busy, 45009/45011 quota, 42001 expired token and anything
		// this code does not know: try again later.
		return connectors.ErrUnavailable
	}
}

// flexString decodes a JSON string, number or boolean as its text:
// WeChat sends countryCode as "86" or 86, and the like.
type flexString string

func (f *flexString) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		*f = ""
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*f = flexString(s)
	case len(b) > 0 && (b[0] == '-' || (b[0] >= '0' && b[0] <= '9')):
		var n json.Number
		if err := json.Unmarshal(b, &n); err != nil {
			return err
		}
		*f = flexString(n.String())
	case bytes.Equal(b, []byte("true")), bytes.Equal(b, []byte("false")):
		*f = flexString(b)
	default:
		return fmt.Errorf("expected a string or a number, got %.20q", b)
	}
	return nil
}

// validCode reports whether a code from a browser or a mini-program is
// worth sending to WeChat.
func validCode(code string) bool {
	if code == "" || len(code) > maxCodeLen {
		return false
	}
	for _, r := range code {
		if r <= ' ' || r > '~' {
			return false
		}
	}
	return true
}
