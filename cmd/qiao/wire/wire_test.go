package wire_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/broker"
	"github.com/qiaoidp/qiao/cmd/qiao/registry"
	"github.com/qiaoidp/qiao/cmd/qiao/wire"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

const secret = "0123456789abcdef0123456789abcdef-wire-test"

// baseConfig has what every configuration needs; a case adds top-level
// keys, and a clients block unless it brings its own.
const baseConfig = `
issuer: https://id.example/qiao
secret: "` + secret + `"
storage: { type: sqlite, sqlite: { path: "DBPATH" } }
connectors:
  - { id: alpha, type: weibo, name: Alpha, config: { client_id: a, client_secret: a-secret } }
  - id: beta
    type: weibo
    names: { en: Beta, zh-CN: 贝塔 }
    config: { client_id: b, client_secret: b-secret }
`

const defaultClients = `
clients:
  - id: web
    secret: web-secret-0123456789abcdef0123456789
    redirect_uris: [https://app.example/cb]
`

func parse(t *testing.T, extra string) *config.Config {
	t.Helper()
	y := baseConfig + extra
	if !strings.Contains(extra, "clients:") {
		y += defaultClients
	}
	y = strings.Replace(y, "DBPATH", filepath.Join(t.TempDir(), "qiao.db"), 1)
	cfg, err := config.Parse([]byte(y), "wire.yaml", nil, registry.Types())
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// TestOptionsCarriesEveryKey: each configuration key the broker uses
// reaches its field of broker.Options, and an absent key gives the
// configuration's default.
func TestOptionsCarriesEveryKey(t *testing.T) {
	d := config.DefaultLimits()
	tests := []struct {
		name string
		yaml string
		got  func(broker.Options) any
		want any
	}{
		{"issuer", "", func(o broker.Options) any { return o.Issuer }, "https://id.example/qiao"},
		{"secret", "", func(o broker.Options) any { return string(o.Secret) }, secret},
		{"token lifetimes default", "", func(o broker.Options) any { return o.Tokens },
			broker.TokenLifetimes{IDTokenTTL: config.DefaultIDTokenTTL, AccessTokenTTL: config.DefaultAccessTokenTTL, RefreshTokenTTL: config.DefaultRefreshTokenTTL}},
		{"token lifetimes", "tokens: { id_token_ttl: 5m, access_token_ttl: 10m, refresh_token_ttl: 48h }\n", func(o broker.Options) any { return o.Tokens },
			broker.TokenLifetimes{IDTokenTTL: 5 * time.Minute, AccessTokenTTL: 10 * time.Minute, RefreshTokenTTL: 48 * time.Hour}},
		{"session_ttl default", "", func(o broker.Options) any { return o.SessionTTL }, config.DefaultSessionTTL},
		{"session_ttl", "session_ttl: 2h\n", func(o broker.Options) any { return o.SessionTTL }, 2 * time.Hour},
		{"keys default", "", func(o broker.Options) any { return o.Keys },
			broker.SigningKeys{Algorithm: config.DefaultAlgorithm, RotateEvery: config.DefaultRotateEvery}},
		{"keys", "keys: { algorithm: EdDSA, rotate_every: 24h }\n", func(o broker.Options) any { return o.Keys },
			broker.SigningKeys{Algorithm: "EdDSA", RotateEvery: 24 * time.Hour}},
		{"account.reauth_within default", "", func(o broker.Options) any { return o.ReauthWithin }, config.DefaultReauthWithin},
		{"account.reauth_within", "account: { reauth_within: 5m }\n", func(o broker.Options) any { return o.ReauthWithin }, 5 * time.Minute},
		{"linking absent", "", func(o broker.Options) any { return o.Linking }, map[string]bool(nil)},
		{"linking", "linking: { wechat_unionid: false, qq_unionid: true }\n", func(o broker.Options) any { return o.Linking },
			map[string]bool{"wechat": false, "qq": true}},
		{"limits default", "", func(o broker.Options) any { return o.Limits }, broker.Limits{
			Exempt:     d.Exempt,
			Auth:       broker.Rate{PerIP: d.Auth.PerIP, PerIPBurst: d.Auth.PerIPBurst, PerClient: d.Auth.PerClient, PerClientBurst: d.Auth.PerClientBurst},
			Token:      broker.Rate{PerIP: d.Token.PerIP, PerIPBurst: d.Token.PerIPBurst, PerClient: d.Token.PerClient, PerClientBurst: d.Token.PerClientBurst},
			Callback:   broker.Rate{PerIP: d.Callback.PerIP, PerIPBurst: d.Callback.PerIPBurst},
			Account:    broker.Rate{PerIP: d.Account.PerIP, PerIPBurst: d.Account.PerIPBurst, PerClient: d.Account.PerClient, PerClientBurst: d.Account.PerClientBurst},
			ClientAuth: broker.ClientAuth{Failures: d.ClientAuth.Failures, MaxBackoff: d.ClientAuth.MaxBackoff},
		}},
		{"limits", `limits:
  exempt: [10.0.0.0/8]
  auth: { per_ip: 1, per_ip_burst: 2, per_client: 3, per_client_burst: 4 }
  token: { per_ip: 5, per_ip_burst: 6, per_client: 7, per_client_burst: 8 }
  callback: { per_ip: 9, per_ip_burst: 10 }
  account: { per_ip: 11, per_ip_burst: 12, per_client: 13, per_client_burst: 14 }
  client_auth: { failures: 15, max_backoff: 16s }
`, func(o broker.Options) any { return o.Limits }, broker.Limits{
			Exempt:     []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
			Auth:       broker.Rate{PerIP: 1, PerIPBurst: 2, PerClient: 3, PerClientBurst: 4},
			Token:      broker.Rate{PerIP: 5, PerIPBurst: 6, PerClient: 7, PerClientBurst: 8},
			Callback:   broker.Rate{PerIP: 9, PerIPBurst: 10},
			Account:    broker.Rate{PerIP: 11, PerIPBurst: 12, PerClient: 13, PerClientBurst: 14},
			ClientAuth: broker.ClientAuth{Failures: 15, MaxBackoff: 16 * time.Second},
		}},
		{"audit.retain default", "", func(o broker.Options) any { return o.AuditRetain }, config.DefaultAuditRetain},
		{"audit.retain 0 keeps forever", "audit: { retain: 0 }\n", func(o broker.Options) any { return o.AuditRetain }, time.Duration(0)},
		{"audit.retain", "audit: { retain: 24h }\n", func(o broker.Options) any { return o.AuditRetain }, 24 * time.Hour},
		{"http.trusted_proxies absent", "", func(o broker.Options) any { return o.TrustedProxies }, []netip.Prefix(nil)},
		{"http.trusted_proxies", "http: { trusted_proxies: [10.0.0.0/8, 192.0.2.1] }\n", func(o broker.Options) any { return o.TrustedProxies },
			[]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.0.2.1/32")}},
		{"client, every key", `clients:
  - id: web
    secret: web-secret-0123456789abcdef0123456789
    name: Web App
    redirect_uris: [https://app.example/cb]
    post_logout_redirect_uris: [https://app.example/bye]
    connectors: [beta]
    require_consent: true
    account_api: true
    home_url: https://app.example/start
    introspect_any: true
    id_token_signed_response_alg: ES256
`, func(o broker.Options) any { return o.Clients }, []broker.Client{{
			ID: "web", Secret: "web-secret-0123456789abcdef0123456789", Name: "Web App",
			RedirectURIs: []string{"https://app.example/cb"}, PostLogoutRedirectURIs: []string{"https://app.example/bye"},
			Connectors: []string{"beta"}, RequireConsent: true, AccountAPI: true, HomeURL: "https://app.example/start",
			IntrospectAny: true, IDTokenAlg: "ES256",
		}}},
		{"client defaults", `keys: { algorithm: EdDSA }
clients:
  - id: spa
    public: true
    redirect_uris: [https://spa.example/cb]
`, func(o broker.Options) any { return o.Clients }, []broker.Client{{
			ID: "spa", Name: "spa", RedirectURIs: []string{"https://spa.example/cb"},
			Connectors: []string{"alpha", "beta"}, HomeURL: "https://spa.example/", IDTokenAlg: "EdDSA",
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := wire.Options(parse(t, tc.yaml))
			if got := tc.got(o); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
			if o.Store != nil || o.Connectors != nil || o.Metrics != nil || o.Logger != nil || o.Now != nil || o.Holder != "" {
				t.Errorf("Options set a dependency: %+v", o)
			}
		})
	}
}

// TestConnectorsAsConfigured: the connectors open in the configured
// order with their ids, types and display names.
func TestConnectorsAsConfigured(t *testing.T) {
	conns, err := wire.Connectors(parse(t, ""), wire.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		ID, Type, Name string
		Names          map[string]string
	}
	var got []view
	for _, c := range conns {
		if c.Impl == nil {
			t.Errorf("connector %s has no implementation", c.ID)
		}
		got = append(got, view{c.ID, c.Type, c.Name, c.Names})
	}
	want := []view{{"alpha", "weibo", "Alpha", nil}, {"beta", "weibo", "", map[string]string{"en": "Beta", "zh-CN": "贝塔"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("connectors = %+v, want %+v", got, want)
	}
}

// TestNewServesTheConfiguration: the broker New builds answers for the
// configured issuer and signs with every configured algorithm.
func TestNewServesTheConfiguration(t *testing.T) {
	cfg := parse(t, `keys: { algorithm: ES256 }
clients:
  - id: web
    secret: web-secret-0123456789abcdef0123456789
    redirect_uris: [https://app.example/cb]
    id_token_signed_response_alg: EdDSA
`)
	store, err := sqlite.Open(context.Background(), cfg.Storage.SQLite.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	b, err := wire.New(context.Background(), cfg, store, wire.Deps{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	b.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://id.example/qiao/.well-known/openid-configuration", nil))
	var doc struct {
		Issuer string   `json:"issuer"`
		Algs   []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("discovery %d: %v", rec.Code, err)
	}
	if doc.Issuer != "https://id.example/qiao" || !reflect.DeepEqual(doc.Algs, []string{"RS256", "ES256", "EdDSA"}) {
		t.Errorf("discovery = %+v", doc)
	}
}
