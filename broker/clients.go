package broker

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"

	"github.com/ory/fosite"
)

// scopeAccount gives a token the account API (/api/v1/me): only a client
// whose configuration says account_api: true may request it.
const scopeAccount = "account"

// scopesSupported are the scopes that may be granted: every one to any
// client, except scopeAccount.
var scopesSupported = []string{"openid", "profile", "offline_access", "phone", scopeAccount}

// scopesAccepted are what any client may request. "email" is never
// granted: many OIDC libraries ask for it by default, and no provider
// gives a verified e-mail, so refusing the whole request would help no one.
var scopesAccepted = []string{"email", "openid", "profile", "offline_access", "phone"}

// client is a configured relying party.
type client struct {
	fosite.DefaultClient
	Name           string
	PostLogout     []string
	Connectors     []string // allowed connector ids
	RequireConsent bool
	AccountAPI     bool   // may request scopeAccount
	Home           string // home_url: where "Back to <app>" goes; may be empty
	// IntrospectAny: may introspect tokens issued to other clients.
	IntrospectAny bool
	// IDTokenAlg signs this client's ID tokens: RS256, ES256 or EdDSA.
	IDTokenAlg string
}

func (c *client) allows(connectorID string) bool {
	for _, id := range c.Connectors {
		if id == connectorID {
			return true
		}
	}
	return false
}

// clientRegistry holds the clients of the configuration. Secrets are kept
// only as keyed hashes.
type clientRegistry struct {
	byID   map[string]*client
	hasher *secretHasher
}

func newClientRegistry(cfg Options, hasher *secretHasher) *clientRegistry {
	r := &clientRegistry{byID: map[string]*client{}, hasher: hasher}
	for _, cc := range cfg.Clients {
		allowed := cc.Connectors
		if len(allowed) == 0 {
			for _, k := range cfg.Connectors {
				allowed = append(allowed, k.ID)
			}
		}
		scopes := scopesAccepted
		if cc.AccountAPI {
			scopes = append(append([]string(nil), scopesAccepted...), scopeAccount)
		}
		c := &client{
			DefaultClient: fosite.DefaultClient{
				ID:            cc.ID,
				RedirectURIs:  append([]string(nil), cc.RedirectURIs...),
				GrantTypes:    []string{"authorization_code", "refresh_token", grantTokenExchange},
				ResponseTypes: []string{"code"},
				Scopes:        scopes,
				Public:        cc.Secret == "",
			},
			Name:           cc.Name,
			PostLogout:     append([]string(nil), cc.PostLogoutRedirectURIs...),
			Connectors:     allowed,
			RequireConsent: cc.RequireConsent,
			AccountAPI:     cc.AccountAPI,
			Home:           cc.HomeURL,
			IntrospectAny:  cc.IntrospectAny,
			IDTokenAlg:     cfg.idTokenAlg(cc),
		}
		if c.Name == "" {
			c.Name = cc.ID
		}
		if cc.Secret != "" {
			c.Secret = hasher.sum([]byte(cc.Secret))
		}
		r.byID[cc.ID] = c
	}
	return r
}

func (r *clientRegistry) get(id string) (*client, bool) {
	c, ok := r.byID[id]
	return c, ok
}

// secretHasher is fosite's client-secret hasher: HMAC-SHA256 under a key
// derived from the broker secret. Client secrets come from the admin's
// configuration and are high-entropy, so a slow password hash (fosite's
// bcrypt default, ~50 ms a call) would only cost every token request
// without protecting anything more.
type secretHasher struct{ key []byte }

func (h *secretHasher) sum(data []byte) []byte {
	m := hmac.New(sha256.New, h.key)
	m.Write(data)
	return m.Sum(nil)
}

func (h *secretHasher) Hash(_ context.Context, data []byte) ([]byte, error) {
	return h.sum(data), nil
}

var errSecretMismatch = errors.New("client secret does not match")

// Compare checks a client secret and, when the context carries a
// secretCheck, records the outcome there: fosite authenticates the
// client inside its request parsing, and the broker's backoff needs to
// know whether a secret was checked and matched.
func (h *secretHasher) Compare(ctx context.Context, hash, data []byte) error {
	ok := len(hash) > 0 && hmac.Equal(hash, h.sum(data))
	if c, _ := ctx.Value(secretCheckKey{}).(*secretCheck); c != nil {
		c.done, c.ok = true, ok
	}
	if !ok {
		return errSecretMismatch
	}
	return nil
}

// secretCheckKey is the context key of a *secretCheck.
type secretCheckKey struct{}

// secretCheck is the outcome of the client secret check of one request.
type secretCheck struct{ done, ok bool }
