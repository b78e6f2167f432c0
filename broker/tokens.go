package broker

import (
	"context"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/token/hmac"
)

// tokenStrategy issues fosite's opaque HMAC-SHA256 codes and tokens with
// Qiao's own prefixes (qiao_at_, qiao_rt_, qiao_ac_) rather than fosite's
// ory_ ones, so that a leaked token says where it comes from. Only the
// HMAC signature after the dot is stored.
type tokenStrategy struct {
	*oauth2.HMACSHAStrategyUnPrefixed
}

func newTokenStrategy(conf *fosite.Config) *tokenStrategy {
	return &tokenStrategy{oauth2.NewHMACSHAStrategyUnPrefixed(&hmac.HMACStrategy{Config: conf}, conf)}
}

func prefixed(part, token string, err error) string {
	if token == "" || err != nil {
		return token
	}
	return "qiao_" + part + "_" + token
}

func unprefixed(part, token string) string {
	return strings.TrimPrefix(token, "qiao_"+part+"_")
}

func (s *tokenStrategy) GenerateAccessToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	t, sig, err := s.HMACSHAStrategyUnPrefixed.GenerateAccessToken(ctx, r)
	return prefixed("at", t, err), sig, err
}

func (s *tokenStrategy) ValidateAccessToken(ctx context.Context, r fosite.Requester, token string) error {
	return s.HMACSHAStrategyUnPrefixed.ValidateAccessToken(ctx, r, unprefixed("at", token))
}

func (s *tokenStrategy) GenerateRefreshToken(ctx context.Context, r fosite.Requester) (string, string, error) {
	t, sig, err := s.HMACSHAStrategyUnPrefixed.GenerateRefreshToken(ctx, r)
	return prefixed("rt", t, err), sig, err
}

func (s *tokenStrategy) ValidateRefreshToken(ctx context.Context, r fosite.Requester, token string) error {
	return s.HMACSHAStrategyUnPrefixed.ValidateRefreshToken(ctx, r, unprefixed("rt", token))
}

func (s *tokenStrategy) GenerateAuthorizeCode(ctx context.Context, r fosite.Requester) (string, string, error) {
	t, sig, err := s.HMACSHAStrategyUnPrefixed.GenerateAuthorizeCode(ctx, r)
	return prefixed("ac", t, err), sig, err
}

func (s *tokenStrategy) ValidateAuthorizeCode(ctx context.Context, r fosite.Requester, token string) error {
	return s.HMACSHAStrategyUnPrefixed.ValidateAuthorizeCode(ctx, r, unprefixed("ac", token))
}
