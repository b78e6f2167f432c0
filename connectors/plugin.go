package connectors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"
)

// This file is what a provider package needs to be a plug-in: the
// dependencies it is opened with, the browser it may be offered in, and
// the errors its Validate reports. A provider package exports a Config
// (yaml tags, Validate, Open) and the registry in cmd/qiao maps its type
// name to it; the broker then asks the opened connector what it can do
// (LoginURL, ExchangeCode, OfferedIn, DisplayName, ...) with type
// assertions and never names a provider.

// Deps is what a connector is opened with.
type Deps struct {
	// Caller makes every provider call: per-call timeout, error kinds,
	// metrics labelled with the connector id.
	Caller *Caller
	// Tokens shares provider app tokens between replicas; nil: each
	// process keeps its own.
	Tokens TokenCache
	// Logger receives warnings that do not fail a login. nil:
	// slog.Default().
	Logger *slog.Logger
}

// ErrCacheMiss is what a TokenCache wraps when it holds no token for a key.
var ErrCacheMiss = errors.New("token not in cache")

// TokenCache shares a provider's app access token between replicas. The
// broker implements it on its store, sealed.
type TokenCache interface {
	// GetToken returns the token under key and the time it stops being
	// usable, or an error wrapping ErrCacheMiss.
	GetToken(ctx context.Context, key string) (token string, expiresAt time.Time, err error)
	// PutToken stores the token under key until expiresAt.
	PutToken(ctx context.Context, key, token string, expiresAt time.Time) error
}

// Browser is where a sign-in page is being shown.
type Browser struct {
	// WeChat is the WeChat in-app browser (User-Agent MicroMessenger).
	WeChat bool
	// Mobile is a phone (User-Agent with Mobile, Android or iPhone).
	Mobile bool
}

// Languages the broker's pages speak; a connector's DisplayName gets one
// of them.
const (
	LangEnglish = "en"
	LangChinese = "zh-CN"
)

// FieldError is a problem with one key of a connector's config: block.
// Field is relative to the block ("client_secret", "claims.name"); the
// configuration reader turns it into FILE:LINE: connectors[2].config.FIELD.
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

// ConfigField and ConfigMessage let the configuration reader place the
// problem without importing this package.
func (e *FieldError) ConfigField() string   { return e.Field }
func (e *FieldError) ConfigMessage() string { return e.Message }

// Problems collects the problems a Validate finds.
type Problems []error

// Add records a problem with field.
func (p *Problems) Add(field, format string, args ...any) {
	*p = append(*p, &FieldError{Field: field, Message: fmt.Sprintf(format, args...)})
}

// Required records field as missing when value is empty.
func (p *Problems) Required(field, value string) {
	if strings.TrimSpace(value) == "" {
		p.Add(field, "required field is missing")
	}
}

// URL records a problem when value is set and is not an absolute http(s)
// URL without query or fragment (a provider base URL or issuer).
func (p *Problems) URL(field, value string) {
	if value == "" {
		return
	}
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(value, "?#") {
		p.Add(field, "must be an absolute http or https URL without query or fragment")
	}
}

// App checks the keys every app registered at a provider has: its
// client_id and client_secret (required) and the optional
// auth_base_url and api_base_url.
func (p *Problems) App(clientID, clientSecret, authBaseURL, apiBaseURL string) {
	p.Required("client_id", clientID)
	p.Required("client_secret", clientSecret)
	p.URL("auth_base_url", authBaseURL)
	p.URL("api_base_url", apiBaseURL)
}

// Err is every problem joined, or nil.
func (p Problems) Err() error { return errors.Join(p...) }
