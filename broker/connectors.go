package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/qiaoidp/qiao/broker/seal"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

// ConnectorDeps is what connectors get from the broker's surroundings.
type ConnectorDeps struct {
	HTTP    *http.Client // nil: a client with the default transport
	Metrics *Metrics
	Cache   storage.Cache // shares the mini-program app token across replicas; nil: per process
	Secret  []byte        // seals cached provider tokens
	Logger  *slog.Logger
}

// opener is a connector type's decoded config: it builds the connector.
// Each provider package's Config implements it; the registry of types
// lives in cmd/qiao, so the broker names no provider.
type opener interface {
	Open(id string, deps connectors.Deps) (any, error)
}

// OpenConnectors builds the configured connectors.
func OpenConnectors(cfg *config.Config, deps ConnectorDeps) ([]Connector, error) {
	if deps.HTTP == nil {
		// Keep connections to the providers open between logins: the
		// default of 2 idle connections per host means a new TLS handshake
		// for most logins under load.
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = 256
		t.MaxIdleConnsPerHost = 64
		deps.HTTP = &http.Client{Timeout: connectors.Timeout, Transport: t}
	}
	if len(deps.Secret) == 0 {
		deps.Secret = []byte(cfg.Secret)
	}
	var tokens connectors.TokenCache
	if deps.Cache != nil {
		s, err := seal.New(deps.Secret, "provider-token-cache")
		if err != nil {
			return nil, err
		}
		tokens = &tokenCache{cache: deps.Cache, sealer: s}
	}
	var out []Connector
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
		out = append(out, Connector{ID: k.ID, Type: k.Type, Name: k.Name, Names: k.Names, LinkByUnionID: k.LinkByUnionID, Impl: impl})
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
