package qiaotest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/qiaoidp/qiao/cmd/qiao/registry"
	"github.com/qiaoidp/qiao/config"
)

// Config is a configuration file as Go values: each field carries the
// key it has in the file, so that Marshal writes a file `qiao serve`
// reads. Keys without a field (tokens, limits, audit, account, ...) go in
// Extra, as the file spells them. Start fills in what only the running
// world knows: the issuer, the listen address, the store and each
// simulated connector's base URLs.
type Config struct {
	Issuer  string  `yaml:"issuer"`
	HTTP    *HTTP   `yaml:"http,omitempty"`
	Secret  string  `yaml:"secret"`
	Storage Storage `yaml:"storage"`
	Keys    *Keys   `yaml:"keys,omitempty"`
	Log     *Log    `yaml:"log,omitempty"`
	// Linking holds the deprecated linking.wechat_unionid and
	// linking.qq_unionid keys; nil leaves them out.
	Linking    map[string]bool `yaml:"linking,omitempty"`
	Connectors []Connector     `yaml:"connectors"`
	Clients    []Client        `yaml:"clients"`
	// Extra holds the other top-level keys, e.g.
	// {"tokens": map[string]any{"access_token_ttl": "5m"}}.
	Extra map[string]any `yaml:",inline"`
}

// HTTP is the http: section.
type HTTP struct {
	Listen         string   `yaml:"listen,omitempty"`
	TrustedProxies []string `yaml:"trusted_proxies,omitempty"`
}

// Storage is the storage: section.
type Storage struct {
	Type     string          `yaml:"type"`
	SQLite   *SQLiteConfig   `yaml:"sqlite,omitempty"`
	Postgres *PostgresConfig `yaml:"postgres,omitempty"`
}

// SQLiteConfig is storage.sqlite.
type SQLiteConfig struct {
	Path string `yaml:"path"`
}

// PostgresConfig is storage.postgres.
type PostgresConfig struct {
	DSN string `yaml:"dsn"`
}

// Keys is the keys: section.
type Keys struct {
	Algorithm   string `yaml:"algorithm,omitempty"`
	RotateEvery string `yaml:"rotate_every,omitempty"`
}

// Log is the log: section.
type Log struct {
	Level  string `yaml:"level,omitempty"`
	Format string `yaml:"format,omitempty"`
}

// Connector is one entry of connectors:. Config is its config: block;
// for a simulated type (wechat, wechat_mp, wechat_miniprogram, qq,
// weibo) Start sets auth_base_url and api_base_url to the simulator
// unless they are set, and registers the app (client_id, client_secret,
// the callback URL) at the simulator with the settings of App.
type Connector struct {
	ID            string            `yaml:"id"`
	Type          string            `yaml:"type"`
	Name          string            `yaml:"name,omitempty"`
	Names         map[string]string `yaml:"names,omitempty"`
	LinkByUnionID *bool             `yaml:"link_by_unionid,omitempty"`
	Config        map[string]any    `yaml:"config"`
	// App is how the simulator knows the app; not part of the file.
	App App `yaml:"-"`
	// NotAtSimulator leaves the app unregistered at its simulator (a
	// connector whose app the provider does not know).
	NotAtSimulator bool `yaml:"-"`
}

// App is a simulated connector's app as its provider knows it.
type App struct {
	// NoUnionID: the WeChat app is not bound to an Open Platform
	// account, so the provider gives no unionid.
	NoUnionID bool
	// UnionIDWithBase: the WeChat Official Account also gives the
	// unionid with snsapi_base.
	UnionIDWithBase bool
	// UnionID: QQ granted the app the unionid permission.
	UnionID bool
	// Email: Weibo gives the app the person's email.
	Email bool
	// Pages are the mini-program's pages (wxacode); nil: the
	// simulator's default.
	Pages []string
}

// Client is one entry of clients:.
type Client struct {
	ID                       string   `yaml:"id"`
	Secret                   string   `yaml:"secret,omitempty"`
	Public                   bool     `yaml:"public,omitempty"`
	Name                     string   `yaml:"name,omitempty"`
	RedirectURIs             []string `yaml:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs   []string `yaml:"post_logout_redirect_uris,omitempty"`
	Connectors               []string `yaml:"connectors,omitempty"`
	RequireConsent           bool     `yaml:"require_consent,omitempty"`
	AccountAPI               bool     `yaml:"account_api,omitempty"`
	HomeURL                  string   `yaml:"home_url,omitempty"`
	AllowHTTPHosts           []string `yaml:"allow_http_hosts,omitempty"`
	IntrospectAny            bool     `yaml:"introspect_any,omitempty"`
	IDTokenSignedResponseAlg string   `yaml:"id_token_signed_response_alg,omitempty"`
}

// The relying party of the base configuration: its redirect URIs are on
// a port nobody serves, so that the browser stops there.
const (
	RPHost     = "127.0.0.1:9"
	RPRedirect = "http://" + RPHost + "/cb"
	RPLogout   = "http://" + RPHost + "/bye"

	// WebClient is the base configuration's confidential web client.
	WebClient = "web"
	// WebSecret is its secret.
	WebSecret = "qiaotest-web-client-secret-0123456789"
	// MiniClient is the base configuration's public mini-program client.
	MiniClient = "mini"
	// BrokerSecret is the base configuration's secret.
	BrokerSecret = "qiaotest-broker-secret-0123456789abcdef0123"
)

// User agents a test may give a browser.
const (
	WeChatUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.49(0x18003137) NetType/WIFI Language/zh_CN"
	DesktopUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
)

// Base is the configuration every world starts from: one connector of
// each simulated type, named after its type (wechat, wechat_mp,
// wechat_miniprogram, qq, weibo), the web client (WebClient, redirecting
// to RPRedirect, allowed the four web connectors) and the public
// mini-program client (MiniClient), debug logs in JSON, SQLite.
func Base() Config {
	return Config{
		Secret:  BrokerSecret,
		Storage: Storage{Type: "sqlite"},
		Log:     &Log{Level: "debug", Format: "json"},
		Connectors: []Connector{
			WeChat("wechat", "WeChat"),
			WeChatMP("wechat_mp", "WeChat OA"),
			MiniProgram("wechat_miniprogram", "Mini-program"),
			QQ("qq", "QQ"),
			Weibo("weibo", "Weibo"),
		},
		Clients: []Client{
			{
				ID: WebClient, Secret: WebSecret,
				RedirectURIs:           []string{RPRedirect},
				PostLogoutRedirectURIs: []string{RPLogout},
				Connectors:             []string{"wechat", "wechat_mp", "qq", "weibo"},
			},
			{ID: MiniClient, Public: true, RedirectURIs: []string{"http://" + RPHost + "/unused"}, Connectors: []string{"wechat_miniprogram"}},
		},
	}
}

// The simulated connector types.
const (
	TypeWeChat      = "wechat"
	TypeWeChatMP    = "wechat_mp"
	TypeMiniProgram = "wechat_miniprogram"
	TypeQQ          = "qq"
	TypeWeibo       = "weibo"
)

// WeChat is a WeChat website-app connector with its own app id and
// secret (derived from id, so stable across runs).
func WeChat(id, name string) Connector { return simConnector(id, TypeWeChat, name) }

// WeChatMP is a WeChat Official Account connector.
func WeChatMP(id, name string) Connector { return simConnector(id, TypeWeChatMP, name) }

// MiniProgram is a WeChat mini-program connector; its app knows the
// pages pages/index/index and pages/scan/index.
func MiniProgram(id, name string) Connector {
	c := simConnector(id, TypeMiniProgram, name)
	c.App.Pages = []string{"pages/index/index", "pages/scan/index"}
	return c
}

// QQ is a QQ connector.
func QQ(id, name string) Connector { return simConnector(id, TypeQQ, name) }

// Weibo is a Weibo connector.
func Weibo(id, name string) Connector { return simConnector(id, TypeWeibo, name) }

func simConnector(id, typ, name string) Connector {
	return Connector{ID: id, Type: typ, Name: name, Config: map[string]any{
		"client_id":     appID(typ, id),
		"client_secret": appSecret(typ, id),
	}}
}

// appID is a provider-looking app id for connector id of type typ:
// wx + 16 hex digits at WeChat, 9 digits at QQ, 10 at Weibo.
func appID(typ, id string) string {
	sum := sha256.Sum256([]byte("app:" + typ + ":" + id))
	n := new(big.Int).SetBytes(sum[:8])
	switch typ {
	case TypeQQ:
		return fmt.Sprintf("101%06d", new(big.Int).Mod(n, big.NewInt(1e6)).Int64())
	case TypeWeibo:
		return fmt.Sprintf("1352%06d", new(big.Int).Mod(n, big.NewInt(1e6)).Int64())
	default:
		return "wx" + hex.EncodeToString(sum[:8])
	}
}

// appSecret is a distinctive secret (so that a leak is found by a
// substring search), 32 characters.
func appSecret(typ, id string) string {
	sum := sha256.Sum256([]byte("secret:" + typ + ":" + id))
	return "QTS" + hex.EncodeToString(sum[:])[:29]
}

// Option changes the configuration or the world before it starts.
type Option func(*settings)

// settings are what the options set.
type settings struct {
	cfg        Config
	store      Store
	binary     bool
	issuerPath string
	now        func() time.Time
	sims       []func(*Simulators)
	ln         net.Listener
	fakes      map[string]any
	replicas   int
}

// WithConfig lets f change the configuration.
func WithConfig(f func(*Config)) Option { return func(s *settings) { f(&s.cfg) } }

// WithConnector adds c, or replaces the connector with its id.
func WithConnector(c Connector) Option {
	return func(s *settings) {
		s.cfg.Connectors = replaceOrAdd(s.cfg.Connectors, c, func(c Connector) string { return c.ID })
	}
}

// WithoutConnector removes connector id and its mentions in clients.
func WithoutConnector(id string) Option {
	return func(s *settings) {
		s.cfg.Connectors = slices.DeleteFunc(s.cfg.Connectors, func(c Connector) bool { return c.ID == id })
		for i := range s.cfg.Clients {
			s.cfg.Clients[i].Connectors = slices.DeleteFunc(slices.Clone(s.cfg.Clients[i].Connectors), func(c string) bool { return c == id })
		}
	}
}

// WithClient adds c, or replaces the client with its id.
func WithClient(c Client) Option {
	return func(s *settings) {
		s.cfg.Clients = replaceOrAdd(s.cfg.Clients, c, func(c Client) string { return c.ID })
	}
}

// WithStore runs the broker on SQLite (the default) or PostgreSQL.
func WithStore(st Store) Option { return func(s *settings) { s.store = st } }

// WithBinary runs the broker as the built `qiao serve` binary instead of
// in process.
func WithBinary() Option { return func(s *settings) { s.binary = true } }

// WithIssuerPath puts the broker under a path prefix ("/sso").
func WithIssuerPath(p string) Option { return func(s *settings) { s.issuerPath = p } }

// WithIssuer is the broker's issuer, e.g. "https://sso.example.test/qiao":
// an origin other than the broker's loopback address, as behind a
// TLS-terminating proxy. The world's clients (HTTP, browsers, relying
// parties) reach the issuer's host at the broker over plain HTTP, so
// that cookies and redirects behave as they would at the issuer. The
// simulators' back-channel calls to the broker (scan login) do not.
func WithIssuer(u string) Option { return func(s *settings) { s.cfg.Issuer = u } }

// WithListener serves the in-process broker on ln (whose address a test
// needed before the world started); the issuer is on its address.
func WithListener(ln net.Listener) Option { return func(s *settings) { s.ln = ln } }

// WithFake makes the in-process broker use impl as connector id (which
// must be configured) instead of opening it: a test's own connector
// (a WebConnector, CodeConnector, ...). Binary mode cannot take one.
func WithFake(id string, impl any) Option {
	return func(s *settings) {
		if s.fakes == nil {
			s.fakes = map[string]any{}
		}
		s.fakes[id] = impl
	}
}

// WithNow is the in-process broker's clock.
func WithNow(now func() time.Time) Option { return func(s *settings) { s.now = now } }

// WithSimulators lets f change the simulators' options (persons, clock,
// more apps) before they are built; the apps of the configured
// connectors are already in them.
func WithSimulators(f func(*Simulators)) Option {
	return func(s *settings) { s.sims = append(s.sims, f) }
}

func replaceOrAdd[T any](list []T, v T, id func(T) string) []T {
	out := slices.Clone(list)
	for i := range out {
		if id(out[i]) == id(v) {
			out[i] = v
			return out
		}
	}
	return append(out, v)
}

// Connector returns the configured connector id (nil if there is none).
func (c *Config) Connector(id string) *Connector {
	for i := range c.Connectors {
		if c.Connectors[i].ID == id {
			return &c.Connectors[i]
		}
	}
	return nil
}

// Client returns the configured client id (nil if there is none).
func (c *Config) Client(id string) *Client {
	for i := range c.Clients {
		if c.Clients[i].ID == id {
			return &c.Clients[i]
		}
	}
	return nil
}

// Marshal writes the configuration as a file `qiao serve` reads.
func (c Config) Marshal() ([]byte, error) {
	return yaml.Marshal(c)
}

// Parse marshals c and parses it as `qiao serve` parses its file, with
// the registry of connector types; env serves ${VAR} references (nil:
// none).
func (c Config) Parse(env func(string) (string, bool)) (*config.Config, error) {
	data, err := c.Marshal()
	if err != nil {
		return nil, fmt.Errorf("marshalling the configuration: %w", err)
	}
	return config.Parse(data, "qiaotest.yaml", env, registry.Types())
}

// Secrets are the secrets in c: the broker's, the clients' and the
// connectors' client_secret; a test looks for them where they must not
// appear.
func (c Config) Secrets() []string {
	out := []string{c.Secret}
	for _, cl := range c.Clients {
		if cl.Secret != "" {
			out = append(out, cl.Secret)
		}
	}
	for _, k := range c.Connectors {
		if s, ok := k.Config["client_secret"].(string); ok && s != "" {
			out = append(out, s)
		}
	}
	return out
}
