package wechat

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/qiaoidp/qiao/connectors"
)

// ErrCacheMiss is what a TokenCache wraps when it holds no token for a key.
var ErrCacheMiss = connectors.ErrCacheMiss

// TokenCache shares the app access token between replicas. The broker
// implements it on its store; nil means the token lives in this process
// only.
type TokenCache = connectors.TokenCache

// tokenMargin is how long before WeChat's expiry a cached access token is
// replaced.
const tokenMargin = 5 * time.Minute

// MiniProgram is the mini-program connector: wx.login codes through
// jscode2session, and phone numbers through getuserphonenumber.
type MiniProgram struct {
	c      *client
	tokens *tokenSource
	scan   *ScanLogin // nil: no scan login
}

// NewMiniProgram returns the mini-program connector. caller nil means a
// default Caller with connector id "wechat_miniprogram"; tokens nil
// means the app access token is cached in this process only.
func NewMiniProgram(cfg Config, caller *connectors.Caller, tokens TokenCache) (*MiniProgram, error) {
	c, err := newClient(cfg, caller, "wechat_miniprogram")
	if err != nil {
		return nil, err
	}
	m := &MiniProgram{c: c}
	if cfg.ScanLogin.on() {
		s := cfg.ScanLogin
		m.scan = &s
	}
	m.tokens = &tokenSource{
		cache: tokens,
		key:   "wechat/stable_token/" + cfg.ClientID,
		now:   time.Now,
		fetch: m.stableToken,
		log:   c.log,
	}
	return m, nil
}

// session is the /sns/jscode2session reply.
type session struct {
	OpenID     string `json:"openid"`
	SessionKey string `json:"session_key"`
	UnionID    string `json:"unionid"`
}

func (s *session) missing() string {
	switch {
	case s.OpenID == "":
		return "openid"
	case s.SessionKey == "":
		return "session_key"
	}
	return ""
}

// ExchangeCode redeems a wx.login code. The identity carries no profile
// (the mini-program gives no trustworthy one) and its Secret is the
// session_key as WeChat gave it (base64 text).
func (m *MiniProgram) ExchangeCode(ctx context.Context, code string) (connectors.Identity, error) {
	if !validAppCode(code) {
		return connectors.Identity{}, fmt.Errorf("wechat: the wx.login code is empty or malformed: %w", connectors.ErrInvalidCode)
	}
	var s session
	err := m.c.get(ctx, endpointJSCode, "/sns/jscode2session", url.Values{
		"appid":      {m.c.appID},
		"secret":     {m.c.secret},
		"js_code":    {code},
		"grant_type": {"authorization_code"},
	}, []string{code}, &s)
	if err != nil {
		return connectors.Identity{}, err
	}
	return connectors.Identity{Subject: s.OpenID, UnionID: s.UnionID, Secret: []byte(s.SessionKey)}.Clean(), nil
}

// phoneReply is the getuserphonenumber reply.
type phoneReply struct {
	PhoneInfo *struct {
		PhoneNumber     string     `json:"phoneNumber"`
		PurePhoneNumber string     `json:"purePhoneNumber"`
		CountryCode     flexString `json:"countryCode"`
		Watermark       struct {
			AppID string `json:"appid"`
		} `json:"watermark"`
	} `json:"phone_info"`
}

func (p *phoneReply) missing() string {
	switch {
	case p.PhoneInfo == nil:
		return "phone_info"
	case p.PhoneInfo.PurePhoneNumber == "" && p.PhoneInfo.PhoneNumber == "":
		return "phone_info.purePhoneNumber"
	case p.PhoneInfo.CountryCode == "":
		return "phone_info.countryCode"
	}
	return ""
}

// PhoneNumber turns the code of the getPhoneNumber button into the
// WeChat-checked phone number, in E.164 form ("+8613800138000").
func (m *MiniProgram) PhoneNumber(ctx context.Context, phoneCode string) (string, error) {
	if !validAppCode(phoneCode) {
		return "", fmt.Errorf("wechat: the phone code is empty or malformed: %w", connectors.ErrInvalidCode)
	}
	token, err := m.tokens.get(ctx, "")
	if err != nil {
		return "", err
	}
	var p phoneReply
	for attempt := 0; ; attempt++ {
		p = phoneReply{}
		err = m.c.postJSON(ctx, endpointPhoneNumber, "/wxa/business/getuserphonenumber",
			url.Values{"access_token": {token}}, map[string]string{"code": phoneCode},
			[]string{phoneCode, token}, &p)
		var pe *connectors.ProviderError
		if attempt == 0 && errors.As(err, &pe) && (pe.Code == 40001 || pe.Code == 42001 || pe.Code == 40014) {
			// The access token is stale: replace it (once, for every
			// caller that saw this one fail) and try again once.
			if token, err = m.tokens.get(ctx, token); err != nil {
				return "", err
			}
			continue
		}
		break
	}
	if err != nil {
		return "", err
	}
	if wm := p.PhoneInfo.Watermark.AppID; wm != "" && wm != m.c.appID {
		return "", fmt.Errorf("wechat %s: %w: the phone number was issued for another app", endpointPhoneNumber, connectors.ErrUnavailable)
	}
	return e164(string(p.PhoneInfo.CountryCode), p.PhoneInfo.PurePhoneNumber, p.PhoneInfo.PhoneNumber)
}

// e164 builds "+<country code><national number>" from phone_info:
// purePhoneNumber lacks the country code; phoneNumber carries it for
// numbers outside mainland China.
func e164(cc, pure, full string) (string, error) {
	cc = strings.TrimPrefix(cc, "+")
	national := pure
	if national == "" {
		national = strings.TrimPrefix(full, "+")
		if cc != "86" {
			national = strings.TrimPrefix(national, cc)
		}
	}
	n := "+" + cc + national
	if !digits(cc) || !digits(national) || len(n) < 8 || len(n) > 16 {
		return "", fmt.Errorf("wechat %s: %w: the phone number is not understood", endpointPhoneNumber, connectors.ErrUnavailable)
	}
	return n, nil
}

func digits(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// stableReply is the /cgi-bin/stable_token reply.
type stableReply struct {
	AccessToken string     `json:"access_token"`
	ExpiresIn   flexString `json:"expires_in"`
}

func (s *stableReply) missing() string {
	switch {
	case s.AccessToken == "":
		return "access_token"
	case s.ExpiresIn == "":
		return "expires_in"
	}
	return ""
}

// stableToken fetches the app access token. force asks WeChat to
// replace the current one (after it was refused).
func (m *MiniProgram) stableToken(ctx context.Context, force bool) (string, time.Duration, error) {
	var s stableReply
	err := m.c.postJSON(ctx, endpointStableToken, "/cgi-bin/stable_token", nil, map[string]any{
		"grant_type":    "client_credential",
		"appid":         m.c.appID,
		"secret":        m.c.secret,
		"force_refresh": force,
	}, nil, &s)
	if err != nil {
		return "", 0, err
	}
	secs, err := strconv.Atoi(string(s.ExpiresIn))
	if err != nil || secs <= 0 {
		return "", 0, fmt.Errorf("wechat %s: %w: expires_in is not a positive number", endpointStableToken, connectors.ErrUnavailable)
	}
	return s.AccessToken, time.Duration(secs) * time.Second, nil
}

// tokenSource keeps the app access token: in memory, in the shared
// cache, and fetched once for all concurrent callers when both lack a
// usable one.
type tokenSource struct {
	cache TokenCache
	key   string
	now   func() time.Time
	fetch func(ctx context.Context, force bool) (string, time.Duration, error)
	log   interface {
		Warn(msg string, args ...any)
	}

	mu     sync.Mutex
	token  string
	until  time.Time // when the token stops being used
	flight *tokenFlight
}

type tokenFlight struct {
	done  chan struct{}
	token string
	err   error
}

// get returns a usable token other than stale ("" for none refused).
func (s *tokenSource) get(ctx context.Context, stale string) (string, error) {
	s.mu.Lock()
	if s.token != "" && s.token != stale && s.now().Before(s.until) {
		t := s.token
		s.mu.Unlock()
		return t, nil
	}
	f := s.flight
	if f == nil {
		f = &tokenFlight{done: make(chan struct{})}
		s.flight = f
		// The fetch outlives the caller that started it: the others wait
		// for it too. connectors.Caller bounds it with its timeout.
		go s.run(context.WithoutCancel(ctx), f, stale)
	}
	s.mu.Unlock()
	select {
	case <-f.done:
		return f.token, f.err
	case <-ctx.Done():
		return "", fmt.Errorf("wechat %s: %w: %v", endpointStableToken, connectors.ErrUnavailable, ctx.Err())
	}
}

func (s *tokenSource) run(ctx context.Context, f *tokenFlight, stale string) {
	token, until, err := s.load(ctx, stale)
	s.mu.Lock()
	if err == nil {
		s.token, s.until = token, until
	}
	s.flight = nil
	s.mu.Unlock()
	f.token, f.err = token, err
	close(f.done)
}

func (s *tokenSource) load(ctx context.Context, stale string) (string, time.Time, error) {
	if s.cache != nil {
		cctx, cancel := context.WithTimeout(ctx, connectors.Timeout)
		token, until, err := s.cache.GetToken(cctx, s.key)
		cancel()
		switch {
		case err == nil && token != "" && token != stale && s.now().Before(until):
			return token, until, nil
		case err != nil && !errors.Is(err, ErrCacheMiss):
			s.log.Warn("wechat: access token cache unreadable; fetching a token", "key", s.key, "err", err)
		}
	}
	token, life, err := s.fetch(ctx, stale != "")
	if err != nil {
		return "", time.Time{}, err
	}
	margin := tokenMargin
	if life <= 2*margin {
		margin = life / 2
	}
	until := s.now().Add(life - margin)
	if s.cache != nil {
		cctx, cancel := context.WithTimeout(ctx, connectors.Timeout)
		if err := s.cache.PutToken(cctx, s.key, token, until); err != nil {
			s.log.Warn("wechat: access token cache unwritable", "key", s.key, "err", err)
		}
		cancel()
	}
	return token, until, nil
}

// maxAppCodeLen bounds a wx.login or phone code: they are 32 and 64
// characters today; 128 leaves room for a longer format.
const maxAppCodeLen = 128

// validAppCode reports whether a code that a mini-program sent (wx.login
// or getPhoneNumber) could be one WeChat issued, so that junk never costs
// a call with the AppSecret against the app's quota. Today's codes are
// hexadecimal or [A-Za-z0-9]; to stay open to a future format only what
// clearly cannot be a code is refused: empty, over maxAppCodeLen bytes, or
// a character outside the URL-safe set [A-Za-z0-9._~-] (RFC 3986
// "unreserved"; WeChat carries codes in URLs).
func validAppCode(code string) bool {
	if code == "" || len(code) > maxAppCodeLen {
		return false
	}
	for i := 0; i < len(code); i++ {
		switch c := code[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}
