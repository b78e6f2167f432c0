package broker

import (
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
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
