package wechat

import (
	"embed"
	"fmt"

	"github.com/qiaoidp/qiao/connectors"
)

// The connector types of this package, as a configuration file names them.
const (
	TypeWeb         = "wechat"             // Open Platform website app, QR-code login
	TypeMP          = "wechat_mp"          // Official Account login in the WeChat browser
	TypeMiniProgram = "wechat_miniprogram" // mini-program wx.login code, token endpoint only
)

// UnionNamespace is the namespace of WeChat unionids: one per Open
// Platform account, shared by the three connector types.
const UnionNamespace = "wechat"

// TokenTypeJSCode is the RFC 8693 subject_token_type of a wx.login code.
const TokenTypeJSCode = "urn:qiao:params:oauth:token-type:wechat-js-code"

//go:embed icons/*.svg
var icons embed.FS

func icon(typ string) []byte {
	b, _ := icons.ReadFile("icons/" + typ + ".svg")
	return b
}

// NewConfig returns an empty configuration of the connector type typ (one
// of the Type* constants), for a configuration file's config: block.
func NewConfig(typ string) *Config { return &Config{typ: typ} }

// Validate reports every problem of a configuration read by NewConfig,
// each as a *connectors.FieldError.
func (c *Config) Validate() error {
	var p connectors.Problems
	p.App(c.ClientID, c.ClientSecret, c.AuthBaseURL, c.APIBaseURL)
	switch {
	case c.Scope == "":
	case c.typ != TypeMP:
		p.Add("scope", "only allowed for type %s", TypeMP)
	case c.Scope != ScopeUserInfo && c.Scope != ScopeBase:
		p.Add("scope", "%q is not one of %s, %s", c.Scope, ScopeUserInfo, ScopeBase)
	}
	if c.ScanLogin.on() {
		c.ScanLogin.validate(c.typ, &p)
	}
	return p.Err()
}

// TokenEndpointOnly reports whether the connector signs in at the token
// endpoint only (the mini-program), with no browser and no callback URL.
func (c *Config) TokenEndpointOnly() bool { return c.typ == TypeMiniProgram }

// Open builds the connector of the configuration's type.
func (c *Config) Open(id string, deps connectors.Deps) (any, error) {
	cfg := *c
	cfg.Logger = deps.Logger
	switch c.typ {
	case TypeWeb:
		return NewWeb(cfg, deps.Caller)
	case TypeMP:
		return NewMP(cfg, deps.Caller)
	case TypeMiniProgram:
		return NewMiniProgram(cfg, deps.Caller, deps.Tokens)
	}
	return nil, fmt.Errorf("wechat: connector %s: unknown type %q: %w", id, c.typ, connectors.ErrConfig)
}

// names are the connectors' display names in each language.
var names = map[string][2]string{ // type -> {English, Chinese}
	TypeWeb:         {"WeChat", "微信"},
	TypeMP:          {"WeChat Official Account", "微信公众号"},
	TypeMiniProgram: {"WeChat Mini Program", "微信小程序"},
}

func displayName(typ, lang string) string {
	if lang == connectors.LangChinese {
		return names[typ][1]
	}
	return names[typ][0]
}

// OfferedIn: the QR code is offered on a computer outside WeChat only (a
// phone cannot scan its own screen; inside WeChat the Official Account
// login is the one that works).
func (w *Web) OfferedIn(b connectors.Browser) bool { return !b.WeChat && !b.Mobile }

// DisplayName is "WeChat" or "微信".
func (w *Web) DisplayName(lang string) string { return displayName(TypeWeb, lang) }

// Icon is the WeChat logo (SVG).
func (w *Web) Icon() []byte { return icon(TypeWeb) }

// UnionNamespace: WeChat unionids link identities unless configured otherwise.
func (w *Web) UnionNamespace() (string, bool) { return UnionNamespace, true }

// OfferedIn: the Official Account login works inside the WeChat browser only.
func (m *MP) OfferedIn(b connectors.Browser) bool { return b.WeChat }

// DisplayName is "WeChat Official Account" or "微信公众号".
func (m *MP) DisplayName(lang string) string { return displayName(TypeMP, lang) }

// Icon is the Official Account logo (SVG).
func (m *MP) Icon() []byte { return icon(TypeMP) }

// UnionNamespace: WeChat unionids link identities unless configured otherwise.
func (m *MP) UnionNamespace() (string, bool) { return UnionNamespace, true }

// DisplayName is "WeChat Mini Program" or "微信小程序".
func (m *MiniProgram) DisplayName(lang string) string { return displayName(TypeMiniProgram, lang) }

// Icon is the mini-program logo (SVG).
func (m *MiniProgram) Icon() []byte { return icon(TypeMiniProgram) }

// UnionNamespace: WeChat unionids link identities unless configured otherwise.
func (m *MiniProgram) UnionNamespace() (string, bool) { return UnionNamespace, true }

// SubjectTokenType is the token type the token exchange accepts for
// ExchangeCode: a wx.login code.
func (m *MiniProgram) SubjectTokenType() string { return TokenTypeJSCode }
