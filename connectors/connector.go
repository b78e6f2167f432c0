// Package connectors holds what every provider connector shares: the
// identity a login yields, the errors a connector returns, and the HTTP
// plumbing for provider calls (timeouts, redaction, metrics). Each
// provider lives in its own sub-package and knows nothing of the broker.
package connectors

import (
	"errors"
	"fmt"
	"time"
)

// Identity is what a successful upstream login yields.
type Identity struct {
	// Subject is the provider's per-app subject: WeChat/QQ openid, Weibo uid.
	Subject string
	// UnionID is the provider's cross-app id (WeChat or QQ unionid), or "".
	UnionID string
	// DisplayName and Picture are the profile as the provider gave it.
	DisplayName string
	Picture     string
	// RealProfile is false when the provider returned a placeholder
	// (WeChat's "微信用户" and grey avatar) or no profile at all.
	RealProfile bool
	// Secret is provider data the broker must keep encrypted and never
	// return (a mini-program session_key). Nil for none.
	Secret []byte
}

// LoginRequest is what a web connector needs to build its authorization URL.
type LoginRequest struct {
	// State is the upstream state: 16–128 characters of [A-Za-z0-9].
	State string
	// CallbackURL is {issuer}/callback/{connector_id}.
	CallbackURL string
	// Mobile is true when the browser is a phone (QQ: display=mobile).
	Mobile bool
	// Data is the per-login data the connector's LoginURL returned for
	// this login (a nonce, a PKCE verifier), handed back to
	// HandleCallback; nil in LoginURL and for connectors that keep none.
	// The broker keeps it with the pending login, so it must stay small
	// (at most MaxLoginData bytes).
	Data []byte
}

// MaxLoginData is the most per-login data a web connector may keep.
const MaxLoginData = 512

// Errors a connector returns, wrapped in a *ProviderError where the
// provider said something. The broker maps them: ErrAccessDenied to
// access_denied, ErrInvalidCode to invalid_grant, ErrUnavailable to
// temporarily_unavailable, anything else to a clear error page.
var (
	// ErrAccessDenied: the user refused, or is not allowed (WeChat
	// snapshot user).
	ErrAccessDenied = errors.New("access denied")
	// ErrInvalidCode: the code is unknown, used or expired.
	ErrInvalidCode = errors.New("invalid or expired code")
	// ErrUnavailable: the provider is busy, unreachable, slower than the
	// timeout, or answered with something that cannot be parsed.
	ErrUnavailable = errors.New("provider unavailable")
	// ErrConfig: the provider refused the app's credentials or
	// permissions (bad secret, bad redirect, missing unionid permission):
	// the admin must act.
	ErrConfig = errors.New("provider refused the app configuration")
)

// ProviderError is an error the provider returned. Code is the provider's
// own code (WeChat errcode, QQ ret/error, Weibo error_code).
type ProviderError struct {
	Provider string // wechat, qq, weibo
	Endpoint string // a short name: sns/oauth2/access_token, oauth2.0/me, ...
	Code     int
	Message  string // the provider's message, for the admin's log
	Kind     error  // one of the Err* values above
}

func (e *ProviderError) Error() string {
	return fmt.Sprintf("%s %s: error %d: %s", e.Provider, e.Endpoint, e.Code, e.Message)
}

// Unwrap lets errors.Is(err, ErrInvalidCode) and the like work.
func (e *ProviderError) Unwrap() error { return e.Kind }

// Observer is told about every provider call, for metrics. result is "ok",
// "error" (the provider answered with an error) or "unavailable".
type Observer func(connectorID, endpoint, result string, d time.Duration)

// Timeout is the longest a single provider call may take.
const Timeout = 5 * time.Second
