package broker

import (
	"cmp"
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/qiaoidp/qiao/broker/keys"
)

// TokenLifetimes are how long issued tokens are valid; each is required.
type TokenLifetimes struct {
	IDTokenTTL      time.Duration
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
}

// SigningKeys is how ID tokens are signed.
type SigningKeys struct {
	// Algorithm is RS256, ES256 or EdDSA; "": RS256.
	Algorithm string
	// RotateEvery is the age at which the signing key is replaced; 0: 720h.
	RotateEvery time.Duration
}

// Limits are the abuse limits (docs/security.md, "Rate limits and
// abuse"). The zero value switches every limit off.
type Limits struct {
	// Exempt addresses are never rate-limited; empty: none.
	Exempt     []netip.Prefix
	Auth       Rate
	Token      Rate
	Callback   Rate // per address only
	Account    Rate
	ClientAuth ClientAuth
}

// Rate is a token bucket per client address and one per client id:
// PerIP and PerClient are requests per second, sustained; the bursts are
// how many may come at once. A rate of 0 switches that bucket off.
type Rate struct {
	PerIP          float64
	PerIPBurst     int
	PerClient      float64
	PerClientBurst int
}

// ClientAuth is the backoff after failed client authentications: after
// Failures failures in a row for one client id, further attempts wait 1s,
// doubling up to MaxBackoff. Failures 0 switches it off.
type ClientAuth struct {
	Failures   int
	MaxBackoff time.Duration
}

// Client is a relying party.
type Client struct {
	ID string
	// Secret is the client secret; "": a public client (PKCE required).
	Secret string
	// Name is shown to people; "": the ID.
	Name                   string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	// Connectors are the connector ids the client may use; empty: every
	// connector in Options.Connectors.
	Connectors     []string
	RequireConsent bool
	// AccountAPI lets the client request the "account" scope.
	AccountAPI bool
	// HomeURL is where "Back to <app>" links go; "": no such link.
	HomeURL string
	// IntrospectAny lets the client introspect other clients' tokens.
	IntrospectAny bool
	// IDTokenAlg signs the client's ID tokens: RS256, ES256 or EdDSA;
	// "": Keys.Algorithm.
	IDTokenAlg string
}

// defaultReauthWithin is ReauthWithin when it is 0 (the configuration's
// default too).
const defaultReauthWithin = 15 * time.Minute

// validate refuses options that would make a broker that cannot work.
func (o Options) validate() error {
	switch {
	case o.Store == nil:
		return errors.New("broker: Store is required")
	case o.Issuer == "":
		return errors.New("broker: Issuer is required")
	case o.Tokens.IDTokenTTL <= 0 || o.Tokens.AccessTokenTTL <= 0 || o.Tokens.RefreshTokenTTL <= 0:
		return errors.New("broker: every token lifetime must be positive")
	case o.SessionTTL <= 0:
		return errors.New("broker: SessionTTL must be positive")
	}
	return nil
}

// idTokenAlg is the algorithm of the client's ID tokens.
func (o Options) idTokenAlg(c Client) string {
	return cmp.Or(c.IDTokenAlg, o.Keys.Algorithm, keys.DefaultAlgorithm)
}

// signingAlgorithms are the algorithms the broker keeps a key for: RS256
// (mandatory for an OpenID provider), Keys.Algorithm and every client's
// IDTokenAlg, RS256 first.
func (o Options) signingAlgorithms() []string {
	algs := []string{keys.RS256}
	add := func(a string) {
		if a != "" && !slices.Contains(algs, a) {
			algs = append(algs, a)
		}
	}
	add(o.Keys.Algorithm)
	for _, c := range o.Clients {
		add(c.IDTokenAlg)
	}
	return algs
}
