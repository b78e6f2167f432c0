// Package config reads Qiao's YAML configuration: it applies the
// defaults, expands environment variables and validates everything,
// reporting every problem at once as "FILE:LINE: PATH: message", with
// 0-based paths like connectors[2].config.client_secret.
//
// Parsing is strict: an unknown key anywhere, a repeated key, a missing
// required field, a bad duration, a duplicate connector or client id is an
// error. Messages never contain a secret (secret, client secrets,
// connector client_secret, the PostgreSQL DSN).
//
// # Environment variables
//
// Expansion happens after the YAML is parsed, in string scalar values only
// (never in keys), so an expanded value may contain any character without
// breaking the YAML:
//
//   - ${VAR} is the value of VAR; an unset VAR is an error naming the
//     path. A VAR that is set but empty expands to "".
//   - ${VAR:-default} is the value of VAR, or default when VAR is unset
//     or empty (as in the shell). The default is literal text up to the
//     first "}"; it cannot contain another reference.
//   - $${ is an escape for a literal "${". Every other "$", including
//     "$$", is kept as it is, so a value such as "pa$$word" needs no
//     escaping.
//
// VAR is made of letters, digits and underscores and does not start with
// a digit. Only the storage section selected by storage.type is
// expanded, so an unused postgres.dsn of "${QIAO_DATABASE_URL}" does not
// require that variable.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Defaults applied when a key is absent.
const (
	DefaultListen          = "127.0.0.1:5556"
	DefaultSQLitePath      = "data/qiao.db"
	DefaultAlgorithm       = "RS256"
	DefaultRotateEvery     = 720 * time.Hour
	DefaultIDTokenTTL      = time.Hour
	DefaultAccessTokenTTL  = time.Hour
	DefaultRefreshTokenTTL = 720 * time.Hour
	DefaultSessionTTL      = 24 * time.Hour
	DefaultReauthWithin    = 15 * time.Minute
	MinSecretLength        = 32
	DefaultAuditRetain     = 90 * 24 * time.Hour
	// MinClientSecretLength is the shortest client secret accepted.
	MinClientSecretLength = 32
)

// Config is a parsed and validated configuration, defaults applied.
type Config struct {
	Issuer     string // absolute http(s) URL without a trailing slash
	HTTP       HTTP
	Storage    Storage
	Secret     string // at least MinSecretLength bytes
	Keys       Keys
	Tokens     Tokens
	SessionTTL time.Duration
	Log        Log
	// Linking holds the deprecated linking.wechat_unionid and
	// linking.qq_unionid keys, by union namespace ("wechat", "qq"); nil
	// when absent. A connector's own link_by_unionid wins over them.
	Linking    map[string]bool
	Limits     Limits
	Audit      Audit
	Connectors []Connector
	Clients    []Client
	Account    Account
	// Warnings are problems that do not stop Qiao (deprecated keys), in
	// the same form as errors. check-config prints them; serve logs them.
	Warnings []Error
}

// Account is the self-service account page and API. ReauthWithin is how
// recent a sign-in must be to bind or unbind an identity.
type Account struct {
	ReauthWithin time.Duration
}

// HTTP is where the broker listens. TLSCert and TLSKey are both set or
// both empty.
type HTTP struct {
	Listen  string
	TLSCert string
	TLSKey  string
	// TrustedProxies are the addresses (CIDRs) of reverse proxies whose
	// X-Forwarded-For header is believed, for the client address in the
	// audit log. Empty: the connecting address is the client's.
	TrustedProxies []netip.Prefix
}

// Storage selects the store: Type is "sqlite" or "postgres".
type Storage struct {
	Type     string
	SQLite   SQLite
	Postgres Postgres
}

// SQLite is the embedded store.
type SQLite struct{ Path string }

// Postgres is the PostgreSQL store. DSN is a secret.
type Postgres struct{ DSN string }

// Keys is how ID tokens are signed: Algorithm is RS256, ES256 or EdDSA.
type Keys struct {
	Algorithm   string
	RotateEvery time.Duration
}

// Tokens holds token lifetimes.
type Tokens struct {
	IDTokenTTL      time.Duration
	AccessTokenTTL  time.Duration
	RefreshTokenTTL time.Duration
}

// Log is the log level (debug, info, warn, error) and format (json, text).
type Log struct {
	Level  string
	Format string
}

// Limits are the abuse limits (docs/security.md, "Rate limits and
// abuse"). A rate of 0 switches that limit off.
type Limits struct {
	// Exempt addresses (CIDRs) are never rate-limited; by default the
	// loopback addresses, so that a reverse proxy on the same host that is
	// not listed in http.trusted_proxies does not make every person one
	// client.
	Exempt     []netip.Prefix
	Auth       Rate
	Token      Rate
	Callback   Rate
	Account    Rate
	ClientAuth ClientAuth
}

// Rate is a token bucket per client address and per client id:
// PerIP and PerClient are requests per second, sustained; the bursts are
// how many may come at once. 0 switches that bucket off.
type Rate struct {
	PerIP          float64
	PerIPBurst     int
	PerClient      float64
	PerClientBurst int
}

// ClientAuth is the backoff after failed client authentications: after
// Failures failures in a row for one client id, further attempts wait
// 1s, doubling up to MaxBackoff. Failures 0 switches it off.
type ClientAuth struct {
	Failures   int
	MaxBackoff time.Duration
}

// DefaultLimits are the limits when the file says nothing: generous
// enough that an office or campus behind one NAT address (dozens of
// logins a second in a burst) passes untouched.
func DefaultLimits() Limits {
	return Limits{
		Exempt:     []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Auth:       Rate{PerIP: 50, PerIPBurst: 200, PerClient: 500, PerClientBurst: 2000},
		Token:      Rate{PerIP: 200, PerIPBurst: 1000, PerClient: 500, PerClientBurst: 2000},
		Callback:   Rate{PerIP: 50, PerIPBurst: 200},
		Account:    Rate{PerIP: 20, PerIPBurst: 100, PerClient: 100, PerClientBurst: 500},
		ClientAuth: ClientAuth{Failures: 5, MaxBackoff: 5 * time.Second},
	}
}

// Audit is the audit log's retention: rows older than Retain are removed
// by the garbage collection; 0 keeps them forever.
type Audit struct {
	Retain time.Duration
}

// Connector is one upstream provider.
type Connector struct {
	ID   string
	Type string // a name in the ConnectorTypes given to Parse
	// Name is the display name in every language; "" leaves it to Names
	// and then to the connector's own names ("WeChat", "微信").
	Name string
	// Names are display names per language ("en", "zh-CN"); nil when absent.
	Names map[string]string
	// LinkByUnionID says whether identities with the same union id (the
	// connector's namespace: WeChat's or QQ's unionid) join one user;
	// nil leaves it to the deprecated linking keys and then to the
	// connector type's default.
	LinkByUnionID *bool
	// Config is the connector's config: block, decoded by its type and
	// validated; nil when the type is unknown.
	Config ConnectorConfig
	// Raw is the config: block as written (before ${VAR} expansion).
	Raw *yaml.Node
}

// TokenEndpointOnly reports whether the connector signs in at the token
// endpoint only (a mini-program), so that it has no callback URL.
func (c Connector) TokenEndpointOnly() bool {
	t, ok := c.Config.(tokenEndpointOnly)
	return ok && t.TokenEndpointOnly()
}

// Client is a relying party. A public client (PKCE S256 required) says
// public: true and has no Secret; every other client has a Secret of at
// least MinClientSecretLength characters. Name defaults to ID.
// Connectors are the allowed connector ids; absent in the file, every
// configured connector.
type Client struct {
	ID                     string
	Secret                 string
	Name                   string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	Connectors             []string
	RequireConsent         bool
	// AccountAPI lets the client request the "account" scope, which the
	// account API (/api/v1/me) requires: first-party apps only.
	AccountAPI bool
	// HomeURL is where "Back to <app>" links on the broker's pages go:
	// the configured home_url, else the origin of the first http(s)
	// redirect URI, else empty (no such link).
	HomeURL string
	// AllowHTTPHosts are host names on which plain-http redirect URIs
	// are accepted (an intranet app); loopback needs no entry.
	AllowHTTPHosts []string
	// IntrospectAny lets the client introspect tokens issued to other
	// clients (a resource server); by default it learns only about its
	// own tokens.
	IntrospectAny bool
	// IDTokenSignedResponseAlg is the algorithm of this client's ID
	// tokens: RS256, ES256 or EdDSA; "" means keys.algorithm.
	IDTokenSignedResponseAlg string
}

// Public reports whether the client is public (has no secret).
func (c Client) Public() bool { return c.Secret == "" }

// IDTokenAlg is the algorithm of the client's ID tokens.
func (c *Config) IDTokenAlg(cl Client) string {
	if cl.IDTokenSignedResponseAlg != "" {
		return cl.IDTokenSignedResponseAlg
	}
	return c.Keys.Algorithm
}

// CallbackURL is the URL the admin registers at the provider for the
// connector: {issuer}/callback/{connectorID}.
func (c *Config) CallbackURL(connectorID string) string {
	return strings.TrimRight(c.Issuer, "/") + "/callback/" + connectorID
}

// Load reads and parses the file at path, expanding variables from the
// process environment; types are the connector types it may name.
func Load(path string, types ConnectorTypes) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading config file: %w", err)
	}
	return Parse(data, path, os.LookupEnv, types)
}

// Parse parses and validates a configuration. filename is used in error
// messages; env looks up variables for ${VAR} and ${VAR:-default} (nil:
// no variable is set). An invalid configuration returns Errors holding
// every problem, sorted by line. types are the connector types the file
// may name; each connector's config: block is decoded and validated by
// its type.
func Parse(data []byte, filename string, env func(string) (string, bool), types ConnectorTypes) (*Config, error) {
	if env == nil {
		env = func(string) (string, bool) { return "", false }
	}
	p := &parser{file: filename, env: env, types: types}
	root := p.document(data)
	var cfg *Config
	if len(p.errs) == 0 {
		cfg = p.config(root)
	}
	if len(p.errs) > 0 {
		p.errs.sort()
		return nil, p.errs
	}
	p.warnings.sort()
	cfg.Warnings = p.warnings
	return cfg, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// document parses data into its root node (nil for an empty file).
func (p *parser) document(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if !errors.Is(err, io.EOF) {
			p.syntaxError(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case errors.Is(err, io.EOF):
	case err != nil:
		p.syntaxError(err)
	default:
		p.errorf(extra.Line, "", "the file holds more than one YAML document")
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

func (p *parser) syntaxError(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.errorf(line, "", "invalid YAML: %s", m[2])
		return
	}
	p.errorf(0, "", "invalid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
}

func (p *parser) config(root *yaml.Node) *Config {
	m := p.mapping(root, "", 1, "issuer", "http", "storage", "secret", "keys", "tokens",
		"session_ttl", "log", "linking", "limits", "audit", "connectors", "clients", "account")
	c := &Config{}
	c.Issuer = p.issuer(m)
	c.HTTP = p.http(p.sub(m, "http", "listen", "tls_cert", "tls_key", "trusted_proxies"))
	c.Storage = p.storage(p.sub(m, "storage", "type", "sqlite", "postgres"))
	if s, ok := p.required(m, "secret"); ok {
		if len(s) < MinSecretLength {
			p.errorf(m.lines["secret"], "secret", "must be at least %d bytes after ${VAR} expansion, got %d", MinSecretLength, len(s))
		}
		c.Secret = s
	}

	keys := p.sub(m, "keys", "algorithm", "rotate_every")
	c.Keys.Algorithm = p.oneOf(keys, "algorithm", DefaultAlgorithm, "RS256", "ES256", "EdDSA")
	c.Keys.RotateEvery = p.duration(keys, "rotate_every", DefaultRotateEvery)

	tokens := p.sub(m, "tokens", "id_token_ttl", "access_token_ttl", "refresh_token_ttl")
	c.Tokens.IDTokenTTL = p.duration(tokens, "id_token_ttl", DefaultIDTokenTTL)
	c.Tokens.AccessTokenTTL = p.duration(tokens, "access_token_ttl", DefaultAccessTokenTTL)
	c.Tokens.RefreshTokenTTL = p.duration(tokens, "refresh_token_ttl", DefaultRefreshTokenTTL)
	c.SessionTTL = p.duration(m, "session_ttl", DefaultSessionTTL)

	log := p.sub(m, "log", "level", "format")
	c.Log.Level = p.oneOf(log, "level", "info", "debug", "info", "warn", "error")
	c.Log.Format = p.oneOf(log, "format", "json", "json", "text")

	c.Linking = p.legacyLinking(p.sub(m, "linking", "wechat_unionid", "qq_unionid"))

	c.Limits = p.limits(p.sub(m, "limits", "exempt", "auth", "token", "callback", "account", "client_auth"))
	audit := p.sub(m, "audit", "retain")
	c.Audit.Retain = p.durationOrZero(audit, "retain", DefaultAuditRetain)

	c.Connectors = p.connectors(m)
	c.Clients = p.clients(m, c.Connectors)

	account := p.sub(m, "account", "reauth_within")
	c.Account.ReauthWithin = p.duration(account, "reauth_within", DefaultReauthWithin)
	return c
}

// legacyLinking reads the deprecated linking keys, which name the union
// namespaces of the WeChat and QQ connectors; each one present is a
// warning.
func (p *parser) legacyLinking(m *mapping) map[string]bool {
	var out map[string]bool
	for _, key := range []string{"wechat_unionid", "qq_unionid"} {
		if !m.has(key) {
			continue
		}
		if out == nil {
			out = map[string]bool{}
		}
		out[strings.TrimSuffix(key, "_unionid")] = p.boolean(m, key, false)
		p.warnf(m.lines[key], join(m.path, key), "deprecated: set link_by_unionid on each connector instead")
	}
	return out
}

func (p *parser) limits(m *mapping) Limits {
	d := DefaultLimits()
	l := Limits{Exempt: d.Exempt}
	if m.has("exempt") {
		l.Exempt = p.prefixes(m, "exempt")
	}
	rate := func(key string, def Rate, perClient bool) Rate {
		known := []string{"per_ip", "per_ip_burst"}
		if perClient {
			known = append(known, "per_client", "per_client_burst")
		}
		r := p.sub(m, key, known...)
		out := Rate{
			PerIP:     p.number(r, "per_ip", def.PerIP),
			PerClient: def.PerClient,
		}
		out.PerIPBurst = p.burst(r, "per_ip_burst", out.PerIP, def.PerIP, def.PerIPBurst)
		if perClient {
			out.PerClient = p.number(r, "per_client", def.PerClient)
			out.PerClientBurst = p.burst(r, "per_client_burst", out.PerClient, def.PerClient, def.PerClientBurst)
		}
		return out
	}
	l.Auth = rate("auth", d.Auth, true)
	l.Token = rate("token", d.Token, true)
	l.Callback = rate("callback", d.Callback, false)
	l.Account = rate("account", d.Account, true)
	ca := p.sub(m, "client_auth", "failures", "max_backoff")
	l.ClientAuth.Failures = p.whole(ca, "failures", d.ClientAuth.Failures)
	l.ClientAuth.MaxBackoff = p.duration(ca, "max_backoff", d.ClientAuth.MaxBackoff)
	return l
}

// burst is the bucket size under key: by default the default's, or four
// seconds' worth when the rate was changed; it must hold at least one
// request when the rate is on.
func (p *parser) burst(m *mapping, key string, rate, defRate float64, defBurst int) int {
	def := defBurst
	if rate != defRate {
		def = int(max(1, rate*4))
	}
	if !m.has(key) {
		return def
	}
	n := p.whole(m, key, def)
	if rate > 0 && n < 1 {
		p.errorf(m.lines[key], join(m.path, key), "must be at least 1 while the rate is on")
	}
	return n
}

// whole is the value of key as a whole number, 0 or more; def when absent.
func (p *parser) whole(m *mapping, key string, def int) int {
	return int(p.nonNegative(m, key, float64(def), "a whole number", func(s string) (float64, error) {
		n, err := strconv.Atoi(s)
		return float64(n), err
	}))
}

// number is the value of key as a non-negative number; def when absent.
func (p *parser) number(m *mapping, key string, def float64) float64 {
	return p.nonNegative(m, key, def, "a number", func(s string) (float64, error) {
		return strconv.ParseFloat(s, 64)
	})
}

// nonNegative is the value of key as parse reads it, from 0 to 1e9; def
// when absent. Anything else is an error saying it must be what.
func (p *parser) nonNegative(m *mapping, key string, def float64, what string, parse func(string) (float64, error)) float64 {
	s, ok := p.str(m, key)
	if !ok {
		return def
	}
	f, err := parse(s)
	if err != nil || f < 0 || f != f || f > 1e9 {
		p.errorf(m.lines[key], join(m.path, key), "must be %s, 0 or more, got %q", what, s)
		return def
	}
	return f
}

// durationOrZero is duration that also accepts 0 (for "never").
func (p *parser) durationOrZero(m *mapping, key string, def time.Duration) time.Duration {
	s, ok := p.str(m, key)
	switch {
	case !ok:
		return def
	case s == "0" || s == "0s":
		return 0
	}
	return p.duration(m, key, def)
}

// prefixes is the list under key of IP addresses or CIDRs.
func (p *parser) prefixes(m *mapping, key string) []netip.Prefix {
	values, from, _ := p.strings(m, key)
	out := []netip.Prefix{}
	for i, v := range values {
		pfx, err := netip.ParsePrefix(v)
		if err != nil {
			addr, aerr := netip.ParseAddr(v)
			if aerr != nil {
				p.errorf(from[i].line, from[i].path, "must be an IP address or a CIDR like 10.0.0.0/8")
				continue
			}
			pfx = netip.PrefixFrom(addr, addr.BitLen())
		}
		out = append(out, pfx.Masked())
	}
	return out
}

// uniqueID reports id (of a connector or a client: kind) at m's "id" when
// seen holds it already, with the line of its first occurrence, and
// otherwise records it.
func (p *parser) uniqueID(seen map[string]int, m *mapping, kind, id string) {
	line := m.lines["id"]
	if first, dup := seen[id]; dup {
		p.errorf(line, join(m.path, "id"), "duplicate %s id %q (first at line %d)", kind, id, first)
		return
	}
	seen[id] = line
}

func (p *parser) issuer(m *mapping) string {
	s, ok := p.required(m, "issuer")
	if !ok {
		return ""
	}
	line := m.lines["issuer"]
	u, err := url.Parse(s)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		p.errorf(line, "issuer", "must be an absolute http or https URL")
	case u.User != nil:
		p.errorf(line, "issuer", "must not contain user information")
	case strings.ContainsAny(s, "?#"):
		p.errorf(line, "issuer", "must not have a query or fragment")
	}
	return strings.TrimRight(s, "/")
}

func (p *parser) http(m *mapping) HTTP {
	h := HTTP{Listen: DefaultListen}
	if s, ok := p.str(m, "listen"); ok {
		h.Listen = s
		if _, port, err := net.SplitHostPort(s); err != nil || !validPort(port) {
			p.errorf(m.lines["listen"], join(m.path, "listen"), "must be host:port, like 127.0.0.1:5556 or :5556")
		}
	}
	h.TLSCert, _ = p.str(m, "tls_cert")
	h.TLSKey, _ = p.str(m, "tls_key")
	switch {
	case h.TLSCert != "" && h.TLSKey == "":
		p.errorf(m.lineOf("tls_key"), join(m.path, "tls_key"), "required when tls_cert is set")
	case h.TLSCert == "" && h.TLSKey != "":
		p.errorf(m.lineOf("tls_cert"), join(m.path, "tls_cert"), "required when tls_key is set")
	}
	if m.has("trusted_proxies") {
		h.TrustedProxies = p.prefixes(m, "trusted_proxies")
	}
	return h
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 0 && n <= 65535
}

func (p *parser) storage(m *mapping) Storage {
	s := Storage{Type: p.oneOf(m, "type", "sqlite", "sqlite", "postgres")}
	sqlite := p.sub(m, "sqlite", "path")
	postgres := p.sub(m, "postgres", "dsn")
	switch s.Type {
	case "sqlite":
		s.SQLite.Path = DefaultSQLitePath
		if path, ok := p.str(sqlite, "path"); ok {
			if path == "" {
				p.errorf(sqlite.lines["path"], join(sqlite.path, "path"), "must not be empty")
			}
			s.SQLite.Path = path
		}
	case "postgres":
		if !postgres.has("dsn") {
			if !postgres.bad {
				p.errorf(postgres.line, join(postgres.path, "dsn"), "required when storage.type is postgres")
			}
			break
		}
		dsn, ok := p.str(postgres, "dsn")
		if ok && dsn == "" {
			p.errorf(postgres.lines["dsn"], join(postgres.path, "dsn"), "must not be empty")
		}
		s.Postgres.DSN = dsn
	}
	return s
}

var connectorID = regexp.MustCompile(`^[a-z0-9_-]+$`)

func (p *parser) connectors(root *mapping) []Connector {
	items, present := p.list(root, "connectors")
	if !present || root.emptyList("connectors") {
		p.errorf(root.lineOf("connectors"), "connectors", "at least one connector is required")
		return nil
	}
	var out []Connector
	seen := map[string]int{} // id -> line of its first occurrence
	for _, it := range items {
		m := p.mapping(it.n, it.path, it.line, "id", "type", "name", "names", "link_by_unionid", "config")
		if m.bad {
			continue
		}
		c := Connector{}
		if id, ok := p.required(m, "id"); ok {
			c.ID = id
			if !connectorID.MatchString(id) {
				p.errorf(m.lines["id"], join(m.path, "id"), "%q must match [a-z0-9_-]+", id)
			}
			p.uniqueID(seen, m, "connector", id)
		}
		var typ ConnectorType
		known := false
		if name, ok := p.required(m, "type"); ok {
			if typ, known = p.types.lookup(name); known {
				c.Type = name
			} else {
				p.errorf(m.lines["type"], join(m.path, "type"), "%q is not one of %s", name, strings.Join(p.types.names(), ", "))
			}
		}
		c.Name, _ = p.str(m, "name")
		names := p.sub(m, "names", "en", "zh-CN")
		for _, lang := range []string{"en", "zh-CN"} {
			if !names.has(lang) {
				continue
			}
			if s, ok := p.required(names, lang); ok {
				if c.Names == nil {
					c.Names = map[string]string{}
				}
				c.Names[lang] = s
			}
		}
		if m.has("link_by_unionid") {
			link := p.boolean(m, "link_by_unionid", false)
			c.LinkByUnionID = &link
		}
		if !m.has("config") {
			p.errorf(m.line, join(m.path, "config"), "required field is missing")
		} else {
			c.Raw = m.value["config"]
			if known {
				c.Config = p.connectorBlock(m, typ)
			}
		}
		out = append(out, c)
	}
	return out
}

// baseURL is an optional absolute http(s) URL, trailing slash trimmed.
func (p *parser) baseURL(m *mapping, key string) string {
	s, ok := p.str(m, key)
	if !ok || s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(s, "?#") {
		p.errorf(m.lines[key], join(m.path, key), "must be an absolute http or https URL without query or fragment")
		return ""
	}
	return strings.TrimRight(s, "/")
}

func (p *parser) clients(root *mapping, connectors []Connector) []Client {
	items, _ := p.list(root, "clients")
	known := map[string]bool{}
	tokenOnly := map[string]bool{}
	var all []string
	for _, c := range connectors {
		if c.ID != "" && !known[c.ID] {
			known[c.ID] = true
			tokenOnly[c.ID] = c.TokenEndpointOnly()
			all = append(all, c.ID)
		}
	}
	var out []Client
	seen := map[string]int{}
	for _, it := range items {
		m := p.mapping(it.n, it.path, it.line, "id", "secret", "public", "name", "redirect_uris",
			"post_logout_redirect_uris", "connectors", "require_consent", "account_api", "home_url", "allow_http_hosts",
			"introspect_any", "id_token_signed_response_alg")
		if m.bad {
			continue
		}
		c := Client{}
		if id, ok := p.required(m, "id"); ok {
			c.ID = id
			p.uniqueID(seen, m, "client", id)
		}
		c.Secret = p.clientSecret(m)
		c.Name = p.strDefault(m, "name", c.ID)
		c.AllowHTTPHosts = p.httpHosts(m)

		uris, from, redirectsPresent := p.strings(m, "redirect_uris")
		redirectsMissing := !redirectsPresent || m.emptyList("redirect_uris")
		c.RedirectURIs = p.uris(uris, from, true, c.AllowHTTPHosts)
		uris, from, _ = p.strings(m, "post_logout_redirect_uris")
		c.PostLogoutRedirectURIs = p.uris(uris, from, false, c.AllowHTTPHosts)

		ids, from, present := p.strings(m, "connectors")
		switch {
		case !present:
			c.Connectors = append([]string(nil), all...)
		case m.emptyList("connectors"):
			p.errorf(m.lines["connectors"], join(m.path, "connectors"), "must not be empty; omit it to allow every connector")
		default:
			listed := map[string]bool{}
			for i, id := range ids {
				switch {
				case !known[id]:
					p.errorf(from[i].line, from[i].path, "unknown connector %q", id)
				case listed[id]:
					p.errorf(from[i].line, from[i].path, "connector %q is listed twice", id)
				default:
					listed[id] = true
					c.Connectors = append(c.Connectors, id)
				}
			}
		}
		// A client that only uses mini-program connectors signs in at the
		// token endpoint and never needs a redirect URI.
		if redirectsMissing && !onlyTokenEndpoint(c.Connectors, tokenOnly) {
			p.errorf(m.lineOf("redirect_uris"), join(m.path, "redirect_uris"), "at least one redirect URI is required")
		}
		c.RequireConsent = p.boolean(m, "require_consent", false)
		c.AccountAPI = p.boolean(m, "account_api", false)
		c.HomeURL = p.homeURL(m, c.RedirectURIs)
		c.IntrospectAny = p.boolean(m, "introspect_any", false)
		if m.has("id_token_signed_response_alg") {
			c.IDTokenSignedResponseAlg = p.oneOf(m, "id_token_signed_response_alg", "", "RS256", "ES256", "EdDSA")
		}
		out = append(out, c)
	}
	return out
}

// homeURL is the client's home_url, an absolute http(s) URL without user
// information; absent, the origin of its first http(s) redirect URI.
func (p *parser) homeURL(m *mapping, redirects []string) string {
	if s, ok := p.str(m, "home_url"); ok {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
			p.errorf(m.lines["home_url"], join(m.path, "home_url"), "must be an absolute http or https URL without user information")
			return ""
		}
		return s
	}
	for _, r := range redirects {
		if u, err := url.Parse(r); err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" {
			return u.Scheme + "://" + u.Host + "/"
		}
	}
	return ""
}

func onlyTokenEndpoint(ids []string, tokenOnly map[string]bool) bool {
	for _, id := range ids {
		if !tokenOnly[id] {
			return false
		}
	}
	return len(ids) > 0
}

// clientSecret reads a client's secret and public flag: a client is
// either public (public: true, no secret) or confidential with a secret
// of at least MinClientSecretLength characters. A secret that is empty
// (often a variable set to "") is an error, never a public client.
func (p *parser) clientSecret(m *mapping) string {
	public := p.boolean(m, "public", false)
	const makeOne = "make one with `openssl rand -hex 32`"
	if !m.has("secret") {
		if !public && !m.bad {
			p.errorf(m.line, join(m.path, "secret"), "a client needs either a secret (a confidential client, "+
				"at least %d characters: %s) or public: true (a public client, which must use PKCE)", MinClientSecretLength, makeOne)
		}
		return ""
	}
	s, ok := p.str(m, "secret")
	line, path := m.lines["secret"], join(m.path, "secret")
	switch {
	case !ok:
		return ""
	case public:
		p.errorf(line, path, "a public client (public: true) must not have a secret")
		return ""
	case s == "":
		p.errorf(line, path, "is empty (after ${VAR} expansion); set a secret (%s), or remove it and say public: true for a public client", makeOne)
		return ""
	case len(s) < MinClientSecretLength:
		p.errorf(line, path, "must be at least %d characters, got %d; %s", MinClientSecretLength, len(s), makeOne)
		return ""
	}
	return s
}

// httpHosts reads allow_http_hosts: bare host names or IP addresses.
func (p *parser) httpHosts(m *mapping) []string {
	values, from, _ := p.strings(m, "allow_http_hosts")
	var out []string
	for i, h := range values {
		if a, err := netip.ParseAddr(strings.Trim(h, "[]")); err == nil {
			out = append(out, a.String())
			continue
		}
		if strings.ContainsAny(h, "/:@?#[] ") {
			p.errorf(from[i].line, from[i].path, "must be a bare host name or IP address like intranet.example (no scheme, port or path)")
			continue
		}
		out = append(out, strings.ToLower(h))
	}
	return out
}

// forbiddenSchemes can run code or read local files in a browser.
var forbiddenSchemes = []string{"javascript", "data", "file", "vbscript", "about", "blob"}

// uris validates redirect URIs: absolute, and for redirect (not logout)
// URIs without a fragment; each listed once. A URI must be https, http on
// a loopback host or on one of httpHosts, or use a private-use scheme
// (RFC 8252 §7.1: a reverse domain name such as com.example.app).
func (p *parser) uris(values []string, from []item, noFragment bool, httpHosts []string) []string {
	var out []string
	seen := map[string]bool{}
	for i, s := range values {
		u, err := url.Parse(s)
		switch {
		case err != nil || !u.IsAbs() || ((u.Scheme == "http" || u.Scheme == "https") && u.Host == ""):
			p.errorf(from[i].line, from[i].path, "must be an absolute URL")
		case noFragment && strings.Contains(s, "#"):
			p.errorf(from[i].line, from[i].path, "must not have a fragment")
		case contains(forbiddenSchemes, u.Scheme):
			p.errorf(from[i].line, from[i].path, "the %s: scheme is never allowed", u.Scheme)
		case u.Scheme == "http" && !isLoopback(u.Hostname()) && !contains(httpHosts, normalHost(u.Hostname())):
			p.errorf(from[i].line, from[i].path, "plain http is allowed only on loopback (127.0.0.1, [::1], localhost) "+
				"or on a host listed in this client's allow_http_hosts; use https")
		case u.Scheme != "http" && u.Scheme != "https" && !strings.Contains(u.Scheme, "."):
			p.errorf(from[i].line, from[i].path, "the %s: scheme is not allowed: use https, or a private-use scheme "+
				"named after a domain you own, like com.example.app:/callback (RFC 8252 §7.1)", u.Scheme)
		case seen[s]:
			p.errorf(from[i].line, from[i].path, "listed twice")
		default:
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// normalHost is host lower-cased, or an IP address in its canonical form.
func normalHost(host string) string {
	if a, err := netip.ParseAddr(host); err == nil {
		return a.String()
	}
	return strings.ToLower(host)
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}
