package broker

import (
	"context"
	"errors"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/qiaoidp/qiao/storage"
)

// grantSession is the session fosite keeps with every code and token (not
// the browser's session, browserSession, nor the stored storage.Session):
// the ID token claims (subject, auth_time, idp, profile) and the expiry of
// each token.
type grantSession struct {
	openid.DefaultSession
	// IDP is the connector of the login that created the grant; it stays
	// with the grant across SSO and refreshes.
	IDP string `json:"idp"`
	// IdentitySubject is the provider subject of the identity (of
	// connector IDP) that signed in: unbinding that identity revokes the
	// grant. Empty for grants from before it was recorded.
	IdentitySubject string `json:"idp_subject,omitempty"`
}

func newSession() *grantSession {
	return &grantSession{DefaultSession: openid.DefaultSession{
		Claims:  &jwt.IDTokenClaims{Extra: map[string]interface{}{}},
		Headers: &jwt.Headers{Extra: map[string]interface{}{}},
	}}
}

// Clone implements fosite.Session: a deep copy.
func (s *grantSession) Clone() fosite.Session {
	if s == nil {
		return nil
	}
	c := *s
	if d, ok := s.DefaultSession.Clone().(*openid.DefaultSession); ok && d != nil {
		c.DefaultSession = *d
	}
	return &c
}

// profileReader looks up a user's profile.
type profileReader interface {
	profile(ctx context.Context, userID string) (profile, error)
}

// grantSessions builds the sessions of new grants: every login (browser,
// scan, token exchange) starts its grant here.
type grantSessions struct {
	issuer string
	// hashAlg is the alg header fosite computes at_hash from
	// (keys.Manager.HashAlgHint).
	hashAlg  func() string
	profiles profileReader
}

// new builds the claims of a grant for user. known is the user's profile
// when the login already knows it; nil: looked up when scopes ask for it.
func (g *grantSessions) new(ctx context.Context, userID, idp, idpSubject string, authTime, requestedAt time.Time, scopes fosite.Arguments, known *profile) (*grantSession, error) {
	sess := newSession()
	sess.Subject = userID
	sess.IDP = idp
	sess.IdentitySubject = idpSubject
	sess.Claims.Subject = userID
	sess.Claims.Issuer = g.issuer
	sess.Claims.AuthTime = authTime.UTC().Truncate(time.Second)
	sess.Claims.RequestedAt = requestedAt.UTC().Truncate(time.Second)
	sess.Claims.Extra["idp"] = idp
	// fosite computes at_hash from this header's hash size, not from the
	// signer: EdDSA needs SHA-512 (the hint never reaches the token).
	sess.Headers.Add("alg", g.hashAlg())
	if scopes.Has("profile") {
		if known == nil {
			p, err := g.profiles.profile(ctx, userID)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, err
			}
			known = &p
		}
		known.addTo(sess.Claims.Extra)
	}
	return sess, nil
}
