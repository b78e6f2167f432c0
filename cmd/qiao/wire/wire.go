// Package wire builds a broker from a configuration: it translates
// config.Config into the broker's plain Options and opens the configured
// connectors through each connector type's Open. It lives with the
// command (cmd/qiao) so that the broker never reads the configuration
// file's types; it is a package of its own, not part of main, so that the
// test harnesses build the same broker the binary does.
package wire

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/qiaoidp/qiao/broker"
	"github.com/qiaoidp/qiao/broker/seal"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

// Deps are what the broker and its connectors get from their
// surroundings rather than from the configuration.
type Deps struct {
	// HTTP calls the providers; nil: a client with connectors.Timeout
	// that keeps connections to the providers open between logins.
	HTTP *http.Client
	// Metrics are the broker's and the connectors' series; nil: New makes
	// one set for both, Connectors observes nothing.
	Metrics *broker.Metrics
	// Cache shares provider app tokens (the mini-program's access token)
	// across replicas, sealed; nil: Connectors keeps them per process, New
	// uses the store.
	Cache  storage.Cache
	Logger *slog.Logger     // nil: slog.Default()
	Now    func() time.Time // nil: time.Now
	// Holder names this replica for leases; "": a random id.
	Holder string
}

// New builds the broker of cfg over store: its connectors and its options.
func New(ctx context.Context, cfg *config.Config, store storage.Storage, deps Deps) (*broker.Broker, error) {
	if deps.Metrics == nil {
		deps.Metrics = broker.NewMetrics()
	}
	if deps.Cache == nil {
		deps.Cache = store
	}
	conns, err := Connectors(cfg, deps)
	if err != nil {
		return nil, err
	}
	opts := Options(cfg)
	opts.Store = store
	opts.Connectors = conns
	opts.Metrics = deps.Metrics
	opts.Logger = deps.Logger
	opts.Now = deps.Now
	opts.Holder = deps.Holder
	return broker.New(ctx, opts)
}

// Options are the broker options of cfg: its plain values, with the
// configuration's defaults already applied. Store, Connectors and the
// dependencies are left for the caller.
func Options(cfg *config.Config) broker.Options {
	l := cfg.Limits
	o := broker.Options{
		Issuer: cfg.Issuer,
		Secret: []byte(cfg.Secret),
		Tokens: broker.TokenLifetimes{
			IDTokenTTL:      cfg.Tokens.IDTokenTTL,
			AccessTokenTTL:  cfg.Tokens.AccessTokenTTL,
			RefreshTokenTTL: cfg.Tokens.RefreshTokenTTL,
		},
		Keys:         broker.SigningKeys{Algorithm: cfg.Keys.Algorithm, RotateEvery: cfg.Keys.RotateEvery},
		SessionTTL:   cfg.SessionTTL,
		ReauthWithin: cfg.Account.ReauthWithin,
		Linking:      cfg.Linking,
		Limits: broker.Limits{
			Exempt:     l.Exempt,
			Auth:       broker.Rate(l.Auth),
			Token:      broker.Rate(l.Token),
			Callback:   broker.Rate(l.Callback),
			Account:    broker.Rate(l.Account),
			ClientAuth: broker.ClientAuth(l.ClientAuth),
		},
		AuditRetain:    cfg.Audit.Retain,
		TrustedProxies: cfg.HTTP.TrustedProxies,
	}
	for _, c := range cfg.Clients {
		o.Clients = append(o.Clients, broker.Client{
			ID:                     c.ID,
			Secret:                 c.Secret,
			Name:                   c.Name,
			RedirectURIs:           c.RedirectURIs,
			PostLogoutRedirectURIs: c.PostLogoutRedirectURIs,
			Connectors:             c.Connectors,
			RequireConsent:         c.RequireConsent,
			AccountAPI:             c.AccountAPI,
			HomeURL:                c.HomeURL,
			IntrospectAny:          c.IntrospectAny,
			IDTokenAlg:             cfg.IDTokenAlg(c),
		})
	}
	return o
}

// opener is a connector type's decoded config: it builds the connector.
// Each provider package's Config implements it; the registry of types
// (cmd/qiao/registry) decides which types a file may name.
type opener interface {
	Open(id string, deps connectors.Deps) (any, error)
}

// Connectors opens the configured connectors, in the configured order.
func Connectors(cfg *config.Config, deps Deps) ([]broker.Connector, error) {
	if deps.HTTP == nil {
		// Keep connections to the providers open between logins: the
		// default of 2 idle connections per host means a new TLS handshake
		// for most logins under load.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 256
		t.MaxIdleConnsPerHost = 64
		deps.HTTP = &http.Client{Timeout: connectors.Timeout, Transport: t}
	}
	var tokens connectors.TokenCache
	if deps.Cache != nil {
		s, err := seal.New([]byte(cfg.Secret), "provider-token-cache")
		if err != nil {
			return nil, err
		}
		tokens = &tokenCache{cache: deps.Cache, sealer: s}
	}
	var out []broker.Connector
	for _, k := range cfg.Connectors {
		op, ok := k.Config.(opener)
		if !ok {
			return nil, fmt.Errorf("connector %s: type %q cannot be opened", k.ID, k.Type)
		}
		caller := &connectors.Caller{HTTP: deps.HTTP, ConnectorID: k.ID}
		if deps.Metrics != nil {
			caller.Observe = deps.Metrics.ObserveUpstream
		}
		impl, err := op.Open(k.ID, connectors.Deps{Caller: caller, Tokens: tokens, Logger: deps.Logger})
		if err != nil {
			return nil, fmt.Errorf("connector %s: %w", k.ID, err)
		}
		out = append(out, broker.Connector{ID: k.ID, Type: k.Type, Name: k.Name, Names: k.Names, LinkByUnionID: k.LinkByUnionID, Impl: impl})
	}
	return out, nil
}

// tokenCache keeps provider app tokens in the shared store, sealed.
type tokenCache struct {
	cache  storage.Cache
	sealer *seal.Sealer
}

func (t *tokenCache) GetToken(ctx context.Context, key string) (string, time.Time, error) {
	v, exp, err := t.cache.GetCache(ctx, "provider-token:"+key)
	if errors.Is(err, storage.ErrNotFound) {
		return "", time.Time{}, fmt.Errorf("%w", connectors.ErrCacheMiss)
	} else if err != nil {
		return "", time.Time{}, err
	}
	plain, err := t.sealer.Open(v, []byte(key))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%w: unreadable entry", connectors.ErrCacheMiss)
	}
	return string(plain), exp, nil
}

func (t *tokenCache) PutToken(ctx context.Context, key, token string, expiresAt time.Time) error {
	return t.cache.PutCache(ctx, "provider-token:"+key, t.sealer.Seal([]byte(token), []byte(key)), expiresAt)
}
