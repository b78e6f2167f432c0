package config

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors/qq"
	"github.com/qiaoidp/qiao/connectors/wechat"
	"github.com/qiaoidp/qiao/connectors/weibo"
)

const testSecret = "0123456789abcdef0123456789abcdef" // 32 bytes

// envOf returns a lookup over the given name/value pairs.
func envOf(pairs ...string) func(string) (string, bool) {
	m := map[string]string{}
	for i := 0; i+1 < len(pairs); i += 2 {
		m[pairs[i]] = pairs[i+1]
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

// head is a minimal valid configuration of 6 lines; cases append to it,
// so line numbers below start at 7 (and connectors appended continue the
// connectors list).
const head = `issuer: https://id.example.com
secret: ${QIAO_SECRET}
connectors:
  - id: wechat
    type: wechat
    config: {client_id: wx1, client_secret: s1}
`

// errorLines parses src and returns its error lines (nil when valid).
func errorLines(t *testing.T, src string, env func(string) (string, bool)) []string {
	t.Helper()
	cfg, err := Parse([]byte(src), "t.yaml", env, testTypes())
	if err == nil {
		if cfg == nil {
			t.Fatal("Parse returned neither a config nor an error")
		}
		return nil
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse error is %T, want Errors: %v", err, err)
	}
	if cfg != nil {
		t.Errorf("Parse returned a config along with errors")
	}
	return strings.Split(errs.Error(), "\n")
}

func TestParseMinimalAppliesDefaults(t *testing.T) {
	cfg, err := Parse([]byte(head), "t.yaml", envOf("QIAO_SECRET", testSecret), testTypes())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Config{
		Issuer:     "https://id.example.com",
		HTTP:       HTTP{Listen: "127.0.0.1:5556"},
		Storage:    Storage{Type: "sqlite", SQLite: SQLite{Path: "data/qiao.db"}},
		Secret:     testSecret,
		Keys:       Keys{Algorithm: "RS256", RotateEvery: 720 * time.Hour},
		Tokens:     Tokens{IDTokenTTL: time.Hour, AccessTokenTTL: time.Hour, RefreshTokenTTL: 720 * time.Hour},
		SessionTTL: 24 * time.Hour,
		Log:        Log{Level: "info", Format: "json"},
		Limits:     DefaultLimits(),
		Audit:      Audit{Retain: 90 * 24 * time.Hour},
		Connectors: []Connector{{ID: "wechat", Type: "wechat",
			Config: &wechat.Config{ClientID: "wx1", ClientSecret: "s1"}}},
		Account: Account{ReauthWithin: 15 * time.Minute},
	}
	want.Connectors[0].Config = wechatConfig(wechat.TypeWeb, wechat.Config{ClientID: "wx1", ClientSecret: "s1"})
	dropRaw(t, cfg)
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Parse(minimal) =\n%+v\nwant\n%+v", cfg, want)
	}
}

func TestParseFullConfigReadsEveryField(t *testing.T) {
	src := `issuer: https://example.com/sso/
http:
  listen: 0.0.0.0:8443
  tls_cert: /etc/qiao/tls.crt
  tls_key: /etc/qiao/tls.key
storage:
  type: postgres
  sqlite: {path: unused.db}
  postgres: {dsn: "${DB}"}
secret: ${QIAO_SECRET}
keys: {algorithm: EdDSA, rotate_every: 1h30m}
tokens: {id_token_ttl: 5m, access_token_ttl: 10m, refresh_token_ttl: 48h}
session_ttl: 12h
log: {level: debug, format: text}
linking: {wechat_unionid: false, qq_unionid: true}
account: {reauth_within: 5m}
limits:
  exempt: [10.1.2.3, "fd00::/8"]
  auth: {per_ip: 5, per_ip_burst: 6, per_client: 7, per_client_burst: 8}
  token: {per_ip: 9, per_ip_burst: 10, per_client: 11, per_client_burst: 12}
  callback: {per_ip: 13, per_ip_burst: 14}
  account: {per_ip: 15, per_ip_burst: 16, per_client: 17, per_client_burst: 18}
  client_auth: {failures: 3, max_backoff: 3s}
audit: {retain: 720h}
connectors:
  - id: mp
    type: wechat_mp
    name: 公众号
    config:
      client_id: wxmp
      client_secret: mpsecret
      auth_base_url: http://127.0.0.1:9000/
      api_base_url: https://proxy.example.com/wechat
  - id: mini
    type: wechat_miniprogram
    config: {client_id: wxmini, client_secret: minisecret}
  - id: qq
    type: qq
    config: {client_id: "101", client_secret: qqsecret, unionid: true}
clients:
  - id: web
    secret: websecret-0123456789abcdef0123456789
    name: Web
    redirect_uris: [https://app.example.com/cb, com.example.app:/oauth]
    post_logout_redirect_uris: [https://app.example.com/]
    connectors: [qq, mp]
    require_consent: true
    account_api: true
    home_url: https://app.example.com/start?from=qiao
  - id: spa
    public: true
    redirect_uris: [http://127.0.0.1/cb]
`
	cfg, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret, "DB", "postgres://u:p@db/qiao"), testTypes())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Config{
		Issuer:     "https://example.com/sso",
		HTTP:       HTTP{Listen: "0.0.0.0:8443", TLSCert: "/etc/qiao/tls.crt", TLSKey: "/etc/qiao/tls.key"},
		Storage:    Storage{Type: "postgres", Postgres: Postgres{DSN: "postgres://u:p@db/qiao"}},
		Secret:     testSecret,
		Keys:       Keys{Algorithm: "EdDSA", RotateEvery: 90 * time.Minute},
		Tokens:     Tokens{IDTokenTTL: 5 * time.Minute, AccessTokenTTL: 10 * time.Minute, RefreshTokenTTL: 48 * time.Hour},
		SessionTTL: 12 * time.Hour,
		Log:        Log{Level: "debug", Format: "text"},
		Linking:    map[string]bool{"wechat": false, "qq": true},
		Limits: Limits{
			Exempt:     []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32"), netip.MustParsePrefix("fd00::/8")},
			Auth:       Rate{PerIP: 5, PerIPBurst: 6, PerClient: 7, PerClientBurst: 8},
			Token:      Rate{PerIP: 9, PerIPBurst: 10, PerClient: 11, PerClientBurst: 12},
			Callback:   Rate{PerIP: 13, PerIPBurst: 14},
			Account:    Rate{PerIP: 15, PerIPBurst: 16, PerClient: 17, PerClientBurst: 18},
			ClientAuth: ClientAuth{Failures: 3, MaxBackoff: 3 * time.Second},
		},
		Audit: Audit{Retain: 720 * time.Hour},
		Connectors: []Connector{
			{ID: "mp", Type: wechat.TypeMP, Name: "公众号", Config: wechatConfig(wechat.TypeMP, wechat.Config{ClientID: "wxmp", ClientSecret: "mpsecret",
				AuthBaseURL: "http://127.0.0.1:9000/", APIBaseURL: "https://proxy.example.com/wechat"})},
			{ID: "mini", Type: wechat.TypeMiniProgram, Config: wechatConfig(wechat.TypeMiniProgram, wechat.Config{ClientID: "wxmini", ClientSecret: "minisecret"})},
			{ID: "qq", Type: qq.Type, Config: &qq.Config{ClientID: "101", ClientSecret: "qqsecret", UnionID: true}},
		},
		Clients: []Client{
			{ID: "web", Secret: "websecret-0123456789abcdef0123456789", Name: "Web",
				RedirectURIs:           []string{"https://app.example.com/cb", "com.example.app:/oauth"},
				PostLogoutRedirectURIs: []string{"https://app.example.com/"},
				Connectors:             []string{"qq", "mp"}, RequireConsent: true, AccountAPI: true,
				HomeURL: "https://app.example.com/start?from=qiao"},
			{ID: "spa", Name: "spa", RedirectURIs: []string{"http://127.0.0.1/cb"}, Connectors: []string{"mp", "mini", "qq"},
				HomeURL: "http://127.0.0.1/"},
		},
		Account: Account{ReauthWithin: 5 * time.Minute},
		Warnings: []Error{
			{File: "t.yaml", Line: 15, Path: "linking.wechat_unionid", Msg: "deprecated: set link_by_unionid on each connector instead"},
			{File: "t.yaml", Line: 15, Path: "linking.qq_unionid", Msg: "deprecated: set link_by_unionid on each connector instead"},
		},
	}
	dropRaw(t, cfg)
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("Parse =\n%+v\nwant\n%+v", cfg, want)
	}
	if !cfg.Clients[1].Public() || cfg.Clients[0].Public() {
		t.Errorf("Public(): web=%v spa=%v, want false, true", cfg.Clients[0].Public(), cfg.Clients[1].Public())
	}
}

func TestParseExampleFileIsValid(t *testing.T) {
	data, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	env := envOf("QIAO_SECRET", testSecret, "WECHAT_SECRET", "a", "WECHAT_MP_SECRET", "b",
		"WECHAT_MINIPROGRAM_SECRET", "c", "QQ_APPKEY", "d", "WEIBO_APPSECRET", "e", "EXAMPLE_APP_SECRET", "0123456789abcdef0123456789abcdef")
	cfg, err := Parse(data, "config.example.yaml", env, testTypes())
	if err != nil {
		t.Fatalf("example does not parse:\n%v", err)
	}
	types := map[string]string{}
	for _, c := range cfg.Connectors {
		types[c.ID] = c.Type
	}
	wantTypes := map[string]string{"wechat": wechat.TypeWeb, "wechat-mp": wechat.TypeMP, "miniprogram": wechat.TypeMiniProgram, "qq": qq.Type, "weibo": weibo.Type}
	if !reflect.DeepEqual(types, wantTypes) {
		t.Errorf("connector types = %v, want %v", types, wantTypes)
	}
	if got := cfg.Connectors[1].Config.(*wechat.Config).Scope; got != wechat.ScopeUserInfo {
		t.Errorf("wechat_mp scope = %q, want %q", got, wechat.ScopeUserInfo)
	}
	if !cfg.Connectors[3].Config.(*qq.Config).UnionID {
		t.Errorf("qq unionid = false, want true")
	}
	if len(cfg.Clients) != 2 || cfg.Clients[0].Public() || !cfg.Clients[1].Public() {
		t.Errorf("clients = %+v, want one confidential and one public", cfg.Clients)
	}
	if cfg.Storage.Type != "sqlite" || cfg.Storage.Postgres.DSN != "" {
		t.Errorf("storage = %+v, want sqlite with the unused postgres section left alone", cfg.Storage)
	}

	// Every secret in the example comes from the environment.
	_, err = Parse(data, "config.example.yaml", envOf(), testTypes())
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 7 {
		t.Errorf("example without environment: got %v, want 7 unset-variable errors", err)
	}
	for _, e := range errs {
		if !strings.HasPrefix(e.Msg, "environment variable ") {
			t.Errorf("unexpected error %v", e)
		}
	}
}

func TestParseErrors(t *testing.T) {
	env := envOf("QIAO_SECRET", testSecret, "SHORT", "only-31-bytes-long-0123456789ab")
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown top-level key", head + "colour: blue\n",
			[]string{"t.yaml:7: colour: unknown key"}},
		{"repeated key", head + "issuer: https://other.example.com\n",
			[]string{"t.yaml:7: issuer: duplicate key (first at line 1)"}},
		{"unknown nested key", head + "http:\n  port: 80\n",
			[]string{"t.yaml:8: http.port: unknown key"}},
		{"mapping expected", head + "http: 8080\n",
			[]string{"t.yaml:7: http: must be a mapping"}},
		{"single value expected", "issuer: [https://a.example]\n" + head[strings.Index(head, "\n")+1:],
			[]string{"t.yaml:1: issuer: must be a single value, not a list"}},
		{"merge keys refused", head + "log:\n  <<: {level: info}\n",
			[]string{"t.yaml:8: log.<<: merge keys (<<) are not supported"}},
		{"empty file", "",
			[]string{
				"t.yaml:1: issuer: required field is missing",
				"t.yaml:1: secret: required field is missing",
				"t.yaml:1: connectors: at least one connector is required",
			}},
		{"invalid YAML", head + "http:\n  listen: a\n    tls_cert: b\n",
			[]string{"t.yaml:9: invalid YAML: mapping values are not allowed in this context"}},
		{"two documents", head + "---\nissuer: x\n",
			[]string{"t.yaml:7: the file holds more than one YAML document"}},

		// issuer
		{"issuer missing", "# comment\nsecret: ${QIAO_SECRET}\n" + head[strings.Index(head, "connectors"):],
			[]string{"t.yaml:2: issuer: required field is missing"}},
		{"issuer relative", "issuer: id.example.com\n" + head[strings.Index(head, "\n")+1:],
			[]string{"t.yaml:1: issuer: must be an absolute http or https URL"}},
		{"issuer not http", "issuer: ftp://id.example.com\n" + head[strings.Index(head, "\n")+1:],
			[]string{"t.yaml:1: issuer: must be an absolute http or https URL"}},
		{"issuer with query", "issuer: https://id.example.com/?x=1\n" + head[strings.Index(head, "\n")+1:],
			[]string{"t.yaml:1: issuer: must not have a query or fragment"}},
		{"issuer with fragment", "issuer: 'https://id.example.com/#top'\n" + head[strings.Index(head, "\n")+1:],
			[]string{"t.yaml:1: issuer: must not have a query or fragment"}},
		{"issuer empty", "issuer: ''\n" + head[strings.Index(head, "\n")+1:],
			[]string{"t.yaml:1: issuer: must not be empty"}},

		// secret
		{"secret variable unset", strings.Replace(head, "${QIAO_SECRET}", "${NOT_SET}", 1),
			[]string{"t.yaml:2: secret: environment variable NOT_SET is not set"}},
		{"secret short after expansion", strings.Replace(head, "${QIAO_SECRET}", "${SHORT}", 1),
			[]string{"t.yaml:2: secret: must be at least 32 bytes after ${VAR} expansion, got 31"}},
		{"secret literal looks long but expands short", strings.Replace(head, "${QIAO_SECRET}", "${EMPTY_SECRET:-x}", 1),
			[]string{"t.yaml:2: secret: must be at least 32 bytes after ${VAR} expansion, got 1"}},
		{"secret missing", strings.Replace(head, "secret: ${QIAO_SECRET}\n", "", 1),
			[]string{"t.yaml:1: secret: required field is missing"}},

		// durations
		{"duration without unit", head + "tokens:\n  id_token_ttl: 3600\n",
			[]string{`t.yaml:8: tokens.id_token_ttl: invalid duration "3600": use Go syntax like 720h or 1h30m`}},
		{"duration in days", head + "keys: {rotate_every: 30d}\n",
			[]string{`t.yaml:7: keys.rotate_every: invalid duration "30d": use Go syntax like 720h or 1h30m`}},
		{"zero duration", head + "session_ttl: 0s\n",
			[]string{`t.yaml:7: session_ttl: duration must be positive, got "0s"`}},
		{"negative duration", head + "tokens: {refresh_token_ttl: -1h}\n",
			[]string{`t.yaml:7: tokens.refresh_token_ttl: duration must be positive, got "-1h"`}},

		// enumerations and booleans
		{"bad key algorithm", head + "keys: {algorithm: HS256}\n",
			[]string{`t.yaml:7: keys.algorithm: "HS256" is not one of RS256, ES256, EdDSA`}},
		{"bad log level and format", head + "log:\n  level: verbose\n  format: xml\n",
			[]string{
				`t.yaml:8: log.level: "verbose" is not one of debug, info, warn, error`,
				`t.yaml:9: log.format: "xml" is not one of json, text`,
			}},
		{"bad boolean", head + "linking: {wechat_unionid: maybe}\n",
			[]string{"t.yaml:7: linking.wechat_unionid: must be true or false"}},

		// http and storage
		{"listen without port", head + "http: {listen: localhost}\n",
			[]string{"t.yaml:7: http.listen: must be host:port, like 127.0.0.1:5556 or :5556"}},
		{"tls cert without key", head + "http:\n  tls_cert: /c.pem\n",
			[]string{"t.yaml:8: http.tls_key: required when tls_cert is set"}},
		{"tls key without cert", head + "http:\n  tls_cert: ''\n  tls_key: /k.pem\n",
			[]string{"t.yaml:8: http.tls_cert: required when tls_key is set"}},
		{"unknown store", head + "storage: {type: mysql}\n",
			[]string{`t.yaml:7: storage.type: "mysql" is not one of sqlite, postgres`}},
		{"postgres without dsn", head + "storage:\n  type: postgres\n",
			[]string{"t.yaml:8: storage.postgres.dsn: required when storage.type is postgres"}},
		{"postgres with empty dsn", head + "storage:\n  type: postgres\n  postgres:\n    dsn: ${DSN:-}\n",
			[]string{"t.yaml:10: storage.postgres.dsn: must not be empty"}},
		{"postgres dsn variable unset", head + "storage:\n  type: postgres\n  postgres: {dsn: \"${QIAO_DATABASE_URL}\"}\n",
			[]string{"t.yaml:9: storage.postgres.dsn: environment variable QIAO_DATABASE_URL is not set"}},
		{"sqlite with empty path", head + "storage:\n  sqlite:\n    path: ''\n",
			[]string{"t.yaml:9: storage.sqlite.path: must not be empty"}},
		{"unknown key in unused store section", head + "storage:\n  postgres: {url: x}\n",
			[]string{"t.yaml:8: storage.postgres.url: unknown key"}},

		// connectors
		{"no connectors", "issuer: https://id.example.com\nsecret: ${QIAO_SECRET}\n",
			[]string{"t.yaml:1: connectors: at least one connector is required"}},
		{"empty connector list", "issuer: https://id.example.com\nsecret: ${QIAO_SECRET}\nconnectors: []\n",
			[]string{"t.yaml:3: connectors: at least one connector is required"}},
		{"connectors not a list", "issuer: https://id.example.com\nsecret: ${QIAO_SECRET}\nconnectors: {id: wechat}\n",
			[]string{"t.yaml:3: connectors: must be a list"}},
		{"connector not a mapping", head + "  - wechat\n",
			[]string{"t.yaml:7: connectors[1]: must be a mapping"}},
		{"unknown key in connector config", head +
			"  - id: qq\n    type: qq\n    config: {client_id: q, client_secret: s}\n" +
			"  - id: mp\n    type: wechat_mp\n    config:\n      client_id: wx2\n      client_secret: s2\n      scopes: snsapi_base\n",
			[]string{"t.yaml:15: connectors[2].config.scopes: unknown key"}},
		{"duplicate connector id names the second", head + "  - id: wechat\n    type: weibo\n    config: {client_id: w, client_secret: s}\n",
			[]string{`t.yaml:7: connectors[1].id: duplicate connector id "wechat" (first at line 4)`}},
		{"connector id with capitals", head + "  - id: WeChat2\n    type: weibo\n    config: {client_id: w, client_secret: s}\n",
			[]string{`t.yaml:7: connectors[1].id: "WeChat2" must match [a-z0-9_-]+`}},
		{"unknown connector type", head + "  - id: gh\n    type: github\n    config: {client_id: w, client_secret: s}\n",
			[]string{`t.yaml:8: connectors[1].type: "github" is not one of wechat, wechat_mp, wechat_miniprogram, qq, weibo`}},
		{"connector id and type missing", head + "  - name: X\n    config: {client_id: w, client_secret: s}\n",
			[]string{
				"t.yaml:7: connectors[1].id: required field is missing",
				"t.yaml:7: connectors[1].type: required field is missing",
			}},
		{"connector config missing", head + "  - id: qq\n    type: qq\n",
			[]string{"t.yaml:7: connectors[1].config: required field is missing"}},
		{"connector client_secret missing", head + "  - id: qq\n    type: qq\n    config:\n      client_id: q\n",
			[]string{"t.yaml:10: connectors[1].config.client_secret: required field is missing"}},
		{"connector client_id empty", head + "  - id: qq\n    type: qq\n    config:\n      client_id: ''\n      client_secret: s\n",
			[]string{"t.yaml:10: connectors[1].config.client_id: must not be empty"}},
		{"scope on a non-mp connector", head + "  - id: w2\n    type: wechat\n    config: {client_id: a, client_secret: b, scope: snsapi_base}\n",
			[]string{"t.yaml:9: connectors[1].config.scope: only allowed for type wechat_mp"}},
		{"unknown mp scope", head + "  - id: mp\n    type: wechat_mp\n    config: {client_id: a, client_secret: b, scope: snsapi_login}\n",
			[]string{`t.yaml:9: connectors[1].config.scope: "snsapi_login" is not one of snsapi_userinfo, snsapi_base`}},
		{"unionid on a non-qq connector", head + "  - id: wb\n    type: weibo\n    config:\n      client_id: a\n      client_secret: b\n      unionid: true\n",
			[]string{"t.yaml:12: connectors[1].config.unionid: unknown key"}},
		{"unionid not a boolean", head + "  - id: qq\n    type: qq\n    config: {client_id: a, client_secret: b, unionid: 'yes please'}\n",
			[]string{"t.yaml:9: connectors[1].config.unionid: must be true or false"}},
		{"base URLs not absolute http", head + "  - id: wb\n    type: weibo\n    config:\n      client_id: a\n      client_secret: b\n      auth_base_url: api.weibo.com\n      api_base_url: ftp://api.weibo.com\n",
			[]string{
				"t.yaml:12: connectors[1].config.auth_base_url: must be an absolute http or https URL without query or fragment",
				"t.yaml:13: connectors[1].config.api_base_url: must be an absolute http or https URL without query or fragment",
			}},

		// clients
		{"client id missing", head + "clients:\n  - redirect_uris: [https://a.example/cb]\n    public: true\n",
			[]string{"t.yaml:8: clients[0].id: required field is missing"}},
		{"duplicate client id names the second", head + "clients:\n  - id: app\n    redirect_uris: [https://a.example/cb]\n    public: true\n  - id: app\n    redirect_uris: [https://b.example/cb]\n    public: true\n",
			[]string{`t.yaml:11: clients[1].id: duplicate client id "app" (first at line 8)`}},
		{"client without redirect URIs", head + "clients:\n  - id: app\n    public: true\n",
			[]string{"t.yaml:8: clients[0].redirect_uris: at least one redirect URI is required"}},
		{"client with empty redirect URIs", head + "clients:\n  - id: app\n    redirect_uris: []\n    public: true\n",
			[]string{"t.yaml:9: clients[0].redirect_uris: at least one redirect URI is required"}},
		{"bad redirect URIs", head + "clients:\n  - id: app\n    redirect_uris:\n      - https://a.example/cb\n      - /callback\n      - https://a.example/cb#frag\n      - https:///cb\n      - https://a.example/cb\n    public: true\n",
			[]string{
				"t.yaml:11: clients[0].redirect_uris[1]: must be an absolute URL",
				"t.yaml:12: clients[0].redirect_uris[2]: must not have a fragment",
				"t.yaml:13: clients[0].redirect_uris[3]: must be an absolute URL",
				"t.yaml:14: clients[0].redirect_uris[4]: listed twice",
			}},
		{"relative post-logout URI", head + "clients:\n  - id: app\n    redirect_uris: [https://a.example/cb]\n    post_logout_redirect_uris: [https://a.example/, /bye]\n    public: true\n",
			[]string{"t.yaml:10: clients[0].post_logout_redirect_uris[1]: must be an absolute URL"}},
		{"client names an unknown connector", head + "clients:\n  - id: app\n    redirect_uris: [https://a.example/cb]\n    connectors:\n      - wechat\n      - github\n      - wechat\n    public: true\n",
			[]string{
				`t.yaml:12: clients[0].connectors[1]: unknown connector "github"`,
				`t.yaml:13: clients[0].connectors[2]: connector "wechat" is listed twice`,
			}},
		{"empty list elements", head + "clients:\n  - id: app\n    redirect_uris:\n      - https://a.example/cb\n      -\n      - ''\n      - {url: x}\n    public: true\n",
			[]string{
				"t.yaml:11: clients[0].redirect_uris[1]: must not be empty",
				"t.yaml:12: clients[0].redirect_uris[2]: must not be empty",
				"t.yaml:13: clients[0].redirect_uris[3]: must be a single value, not a mapping",
			}},
		{"value through an alias reported where it is written", head + "x-uris: &bad [/cb]\nclients:\n  - id: app\n    redirect_uris: *bad\n    public: true\n",
			[]string{
				"t.yaml:7: x-uris: unknown key",
				"t.yaml:7: clients[0].redirect_uris[0]: must be an absolute URL",
			}},
		{"client with empty connector list", head + "clients:\n  - id: app\n    redirect_uris: [https://a.example/cb]\n    connectors: []\n    public: true\n",
			[]string{"t.yaml:10: clients[0].connectors: must not be empty; omit it to allow every connector"}},
		{"client secret variable unset", head + "clients:\n  - id: app\n    secret: ${APP_SECRET}\n    redirect_uris: [https://a.example/cb]\n",
			[]string{"t.yaml:9: clients[0].secret: environment variable APP_SECRET is not set"}},
		{"require_consent not a boolean", head + "clients:\n  - id: app\n    redirect_uris: [https://a.example/cb]\n    require_consent: sometimes\n    public: true\n",
			[]string{"t.yaml:10: clients[0].require_consent: must be true or false"}},
		{"home_url not an http URL", head + "clients:\n  - id: app\n    redirect_uris: [https://a.example/cb]\n    home_url: javascript:alert(1)\n    public: true\n",
			[]string{"t.yaml:10: clients[0].home_url: must be an absolute http or https URL without user information"}},

		// all at once, sorted by line
		{"every error at once sorted by line", `log: {level: loud}
connectors:
  - id: Bad
    type: wechat
    config: {client_id: a, client_secret: b}
secret: short
issuer: ftp://id.example.com
`, []string{
			`t.yaml:1: log.level: "loud" is not one of debug, info, warn, error`,
			`t.yaml:3: connectors[0].id: "Bad" must match [a-z0-9_-]+`,
			`t.yaml:6: secret: must be at least 32 bytes after ${VAR} expansion, got 5`,
			`t.yaml:7: issuer: must be an absolute http or https URL`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := errorLines(t, tt.src, env)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestExpand(t *testing.T) {
	env := envOf("A", "alpha", "B", "beta", "EMPTY", "")
	tests := []struct {
		in, want string
		err      error
	}{
		{in: "plain", want: "plain"},
		{in: "${A}", want: "alpha"},
		{in: "x${A}y${B}z", want: "xalphaybetaz"},
		{in: "${A:-default}", want: "alpha"},
		{in: "${UNSET:-default}", want: "default"},
		{in: "${EMPTY:-default}", want: "default"},
		{in: "${UNSET:-}", want: ""},
		{in: "${EMPTY}", want: ""},
		{in: "${UNSET:-a:b}c", want: "a:bc"},
		{in: "$${A}", want: "${A}"},
		{in: "pa$$word", want: "pa$$word"},
		{in: "pa$$word${A}", want: "pa$$wordalpha"},
		{in: "$$${A}$", want: "$${A}$"},
		{in: "costs $5 or $A", want: "costs $5 or $A"},
		{in: "${UNSET}", err: unsetError{"UNSET"}},
		{in: "abc${A", err: errUnterminated},
		{in: "${1A}", err: errBadReference},
		{in: "${}", err: errBadReference},
		{in: "${A-x}", err: errBadReference},
		{in: "${A:-${B}}", err: errNested},
	}
	for _, tt := range tests {
		got, err := expand(tt.in, env)
		if err != tt.err || got != tt.want {
			t.Errorf("expand(%q) = %q, %v; want %q, %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestParseExpandsAfterYAMLParsing(t *testing.T) {
	// Values from the environment may hold YAML syntax; they stay data.
	special := `a: "b" # c {d} [e] 'f' ${NOT_EXPANDED_TWICE}`
	src := head + `  - id: qq
    type: qq
    config:
      client_id: ${QQ_ID:-101}
      client_secret: ${QQ_SECRET}
      unionid: ${QQ_UNIONID:-true}
session_ttl: ${SESSION_TTL:-2h}
`
	cfg, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret, "QQ_SECRET", special), testTypes())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	qq := cfg.Connectors[1].Config.(*qq.Config)
	if qq.ClientSecret != special || qq.ClientID != "101" || !qq.UnionID {
		t.Errorf("qq config = %+v, want secret %q, client id 101, unionid true", qq, special)
	}
	if cfg.SessionTTL != 2*time.Hour {
		t.Errorf("session_ttl = %v, want 2h from the default", cfg.SessionTTL)
	}

	// Keys are never expanded: ${X} as a key is just an unknown key.
	got := errorLines(t, head+"${X}: 1\n", envOf("QIAO_SECRET", testSecret, "X", "issuer"))
	want := []string{"t.yaml:7: ${X}: unknown key"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("errors = %q, want %q", got, want)
	}
}

func TestParseSecretLengthCountsExpandedBytes(t *testing.T) {
	tests := []struct {
		name  string
		value string
		env   func(string) (string, bool)
		valid bool
	}{
		{"two halves make 32", "${HALF}${HALF}", envOf("HALF", "0123456789abcdef"), true},
		{"one half is 16", "${HALF}", envOf("HALF", "0123456789abcdef"), false},
		{"32-byte reference to a short value", "${SHORT_VALUE_FROM_ENVIRONMENT_}", envOf("SHORT_VALUE_FROM_ENVIRONMENT_", "x"), false},
		{"multi-byte characters count as bytes", "${CJK}", envOf("CJK", strings.Repeat("桥", 11)), true}, // 33 bytes
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := strings.Replace(head, "${QIAO_SECRET}", tt.value, 1)
			_, err := Parse([]byte(src), "t.yaml", tt.env, testTypes())
			if (err == nil) != tt.valid {
				t.Errorf("valid = %v (err %v), want %v", err == nil, err, tt.valid)
			}
		})
	}
}

func TestParseFollowsAliases(t *testing.T) {
	src := head + `  - id: qq
    type: qq
    config: &creds {client_id: "1", client_secret: shared}
  - id: weibo
    type: weibo
    config: *creds
clients:
  - id: a
    public: true
    redirect_uris: &uris [https://a.example/cb]
  - id: b
    public: true
    redirect_uris: *uris
`
	cfg, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret), testTypes())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got := cfg.Connectors[2].Config.(*weibo.Config); got.ClientID != "1" || got.ClientSecret != "shared" {
		t.Errorf("weibo config through alias = %+v", got)
	}
	if got := cfg.Clients[1].RedirectURIs; !reflect.DeepEqual(got, []string{"https://a.example/cb"}) {
		t.Errorf("client b redirect URIs through alias = %v", got)
	}
}

func TestParseWithoutEnvironment(t *testing.T) {
	src := strings.Replace(head, "${QIAO_SECRET}", "${QIAO_SECRET:-"+testSecret+"}", 1)
	cfg, err := Parse([]byte(src), "t.yaml", nil, testTypes())
	if err != nil {
		t.Fatalf("Parse with nil env: %v", err)
	}
	if cfg.Secret != testSecret {
		t.Errorf("secret = %q, want the default", cfg.Secret)
	}
	got := errorLines(t, head, nil)
	if want := []string{"t.yaml:2: secret: environment variable QIAO_SECRET is not set"}; !reflect.DeepEqual(got, want) {
		t.Errorf("errors = %q, want %q", got, want)
	}
}

func TestParseUnusedStoreIsNotExpanded(t *testing.T) {
	src := head + "storage:\n  type: sqlite\n  postgres: {dsn: \"${QIAO_DATABASE_URL}\"}\n"
	cfg, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret), testTypes())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if cfg.Storage.Postgres.DSN != "" || cfg.Storage.SQLite.Path != DefaultSQLitePath {
		t.Errorf("storage = %+v", cfg.Storage)
	}
}

func TestSecretsNeverInErrors(t *testing.T) {
	const sentinel = "hunter2"
	src := `issuer: https://id.example.com
secret: "hunter2"
storage:
  type: postgres
  postgres: {dsn: "postgres://qiao:hunter2@db/qiao ${1hunter2}"}
connectors:
  - id: wechat
    type: wechat
    config: {client_id: wx1, client_secret: "hunter2${"}
  - id: qq
    type: qq
    config: {client_id: "1", client_secret: "${hunter2-x}", unionid: hunter2}
clients:
  - id: app
    secret: "hunter2 ${hunter2:-${x}}"
    redirect_uris: [https://a.example/cb]
`
	_, err := Parse([]byte(src), "t.yaml", envOf("hunter2", "hunter2"), testTypes())
	var errs Errors
	if !errors.As(err, &errs) || len(errs) != 6 {
		t.Fatalf("got %v, want 6 errors", err)
	}
	if strings.Contains(err.Error(), sentinel) {
		t.Errorf("a secret leaked into the errors:\n%v", err)
	}
}

func TestCallbackURL(t *testing.T) {
	tests := []struct{ issuer, id, want string }{
		{"https://id.example.com", "wechat", "https://id.example.com/callback/wechat"},
		{"https://example.com/sso", "qq", "https://example.com/sso/callback/qq"},
		{"https://example.com/sso/", "weibo", "https://example.com/sso/callback/weibo"},
	}
	for _, tt := range tests {
		c := &Config{Issuer: tt.issuer}
		if got := c.CallbackURL(tt.id); got != tt.want {
			t.Errorf("CallbackURL(%q) with issuer %q = %q, want %q", tt.id, tt.issuer, got, tt.want)
		}
	}
	// Parsing trims the issuer, so the path prefix is kept once.
	src := strings.Replace(head, "https://id.example.com", "https://example.com/sso/", 1)
	cfg, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret), testTypes())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.CallbackURL("wechat"), "https://example.com/sso/callback/wechat"; got != want {
		t.Errorf("CallbackURL = %q, want %q", got, want)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{File: "q.yaml", Line: 3, Path: "connectors[2].config.client_secret", Msg: "required field is missing"},
			"q.yaml:3: connectors[2].config.client_secret: required field is missing"},
		{Error{File: "q.yaml", Line: 9, Msg: "invalid YAML: x"}, "q.yaml:9: invalid YAML: x"},
		{Error{File: "q.yaml", Msg: "invalid YAML: y"}, "q.yaml: invalid YAML: y"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	var e Error
	if err := error(Errors{tests[0].err}); !errors.As(err, &e) || e.Line != 3 {
		t.Errorf("errors.As(Errors, *Error) did not find the element")
	}
}

// wechatConfig is c as NewConfig(typ) would hold it after decoding.
func wechatConfig(typ string, c wechat.Config) *wechat.Config {
	w := wechat.NewConfig(typ)
	w.ClientID, w.ClientSecret, w.AuthBaseURL, w.APIBaseURL, w.Scope = c.ClientID, c.ClientSecret, c.AuthBaseURL, c.APIBaseURL, c.Scope
	return w
}

// dropRaw checks that every connector kept its config: block and removes
// it, so that configurations compare by value.
func dropRaw(t *testing.T, cfg *Config) {
	t.Helper()
	for i := range cfg.Connectors {
		if cfg.Connectors[i].Raw == nil {
			t.Errorf("connector %s: the raw config: block was not kept", cfg.Connectors[i].ID)
		}
		cfg.Connectors[i].Raw = nil
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMiniProgramOnlyClientNeedsNoRedirectURI(t *testing.T) {
	src := head + `  - id: mini
    type: wechat_miniprogram
    config: {client_id: wx2, client_secret: s2}
clients:
  - id: app
    public: true
    connectors: [mini]
`
	if lines := errorLines(t, src, envOf("QIAO_SECRET", testSecret)); lines != nil {
		t.Fatalf("a mini-program-only client was refused: %v", lines)
	}
	// A client that may also use a web connector still needs one.
	bad := strings.Replace(src, "connectors: [mini]", "connectors: [mini, wechat]", 1)
	want := "t.yaml:11: clients[0].redirect_uris: at least one redirect URI is required"
	if lines := errorLines(t, bad, envOf("QIAO_SECRET", testSecret)); len(lines) != 1 || lines[0] != want {
		t.Fatalf("errors = %v, want %q", lines, want)
	}
}

func TestTrustedProxies(t *testing.T) {
	src := strings.Replace(head, "secret: ${QIAO_SECRET}\n", "secret: ${QIAO_SECRET}\nhttp:\n  trusted_proxies: [10.0.0.0/8, 127.0.0.1, \"::1\"]\n", 1)
	cfg, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret), testTypes())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range cfg.HTTP.TrustedProxies {
		got = append(got, p.String())
	}
	if want := []string{"10.0.0.0/8", "127.0.0.1/32", "::1/128"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("trusted proxies %v, want %v", got, want)
	}
	bad := strings.Replace(src, "127.0.0.1, ", "proxy.example, ", 1)
	want := "t.yaml:4: http.trusted_proxies[1]: must be an IP address or a CIDR like 10.0.0.0/8"
	if lines := errorLines(t, bad, envOf("QIAO_SECRET", testSecret)); len(lines) != 1 || lines[0] != want {
		t.Fatalf("errors %v, want %q", lines, want)
	}
}

func TestLimitsAreTunableAndZeroSwitchesOne(t *testing.T) {
	src := head + `limits:
  exempt: []
  auth: {per_ip: 10, per_client: 0}
  token: {per_ip: 0.5, per_ip_burst: 3}
  callback: {per_ip: 0}
  client_auth: {failures: 0, max_backoff: 2s}
audit:
  retain: "0"
`
	cfg, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret), testTypes())
	if err != nil {
		t.Fatal(err)
	}
	want := Limits{
		Exempt:     []netip.Prefix{},
		Auth:       Rate{PerIP: 10, PerIPBurst: 40, PerClient: 0, PerClientBurst: 1},
		Token:      Rate{PerIP: 0.5, PerIPBurst: 3, PerClient: 500, PerClientBurst: 2000},
		Callback:   Rate{PerIP: 0, PerIPBurst: 1},
		Account:    DefaultLimits().Account,
		ClientAuth: ClientAuth{Failures: 0, MaxBackoff: 2 * time.Second},
	}
	if !reflect.DeepEqual(cfg.Limits, want) {
		t.Errorf("limits =\n%+v\nwant\n%+v", cfg.Limits, want)
	}
	if cfg.Audit.Retain != 0 {
		t.Errorf("audit.retain \"0\" = %v, want 0 (keep forever)", cfg.Audit.Retain)
	}
}

func TestLimitsErrors(t *testing.T) {
	env := envOf("QIAO_SECRET", testSecret)
	tests := []struct{ name, src, want string }{
		{"negative rate", "limits:\n  auth: {per_ip: -1}\n", `t.yaml:8: limits.auth.per_ip: must be a number, 0 or more, got "-1"`},
		{"rate not a number", "limits:\n  token: {per_client: lots}\n", `t.yaml:8: limits.token.per_client: must be a number, 0 or more, got "lots"`},
		{"fractional burst", "limits:\n  auth: {per_ip_burst: 2.5}\n", `t.yaml:8: limits.auth.per_ip_burst: must be a whole number, 0 or more, got "2.5"`},
		{"rate not a real number", "limits:\n  auth: {per_ip: .nan}\n", `t.yaml:8: limits.auth.per_ip: must be a number, 0 or more, got ".nan"`},
		{"rate beyond 1e9", "limits:\n  auth: {per_ip: 2e9}\n", `t.yaml:8: limits.auth.per_ip: must be a number, 0 or more, got "2e9"`},
		{"burst beyond 1e9", "limits:\n  auth: {per_ip_burst: 2000000000}\n", `t.yaml:8: limits.auth.per_ip_burst: must be a whole number, 0 or more, got "2000000000"`},
		{"burst in float notation", "limits:\n  auth: {per_ip_burst: 1e3}\n", `t.yaml:8: limits.auth.per_ip_burst: must be a whole number, 0 or more, got "1e3"`},
		{"negative failures", "limits:\n  client_auth: {failures: -1}\n", `t.yaml:8: limits.client_auth.failures: must be a whole number, 0 or more, got "-1"`},
		{"empty bucket", "limits:\n  auth: {per_ip_burst: 0}\n", `t.yaml:8: limits.auth.per_ip_burst: must be at least 1 while the rate is on`},
		{"callbacks have no client", "limits:\n  callback: {per_client: 5}\n", `t.yaml:8: limits.callback.per_client: unknown key`},
		{"bad exempt address", "limits:\n  exempt: [localhost]\n", `t.yaml:8: limits.exempt[0]: must be an IP address or a CIDR like 10.0.0.0/8`},
		{"bad backoff", "limits:\n  client_auth: {max_backoff: 5}\n", `t.yaml:8: limits.client_auth.max_backoff: invalid duration "5": use Go syntax like 720h or 1h30m`},
		{"bad retention", "audit:\n  retain: 90d\n", `t.yaml:8: audit.retain: invalid duration "90d": use Go syntax like 720h or 1h30m`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lines := errorLines(t, head+tc.src, env)
			if len(lines) != 1 || lines[0] != tc.want {
				t.Fatalf("errors = %q, want %q", lines, tc.want)
			}
		})
	}
}

// TestDefaultLimitsAreTheDocumented: the defaults docs/configuration.md
// and docs/security.md promise (a NAT burst of logins passes them).
func TestDefaultLimitsAreTheDocumented(t *testing.T) {
	want := Limits{
		Exempt:     []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")},
		Auth:       Rate{PerIP: 50, PerIPBurst: 200, PerClient: 500, PerClientBurst: 2000},
		Token:      Rate{PerIP: 200, PerIPBurst: 1000, PerClient: 500, PerClientBurst: 2000},
		Callback:   Rate{PerIP: 50, PerIPBurst: 200},
		Account:    Rate{PerIP: 20, PerIPBurst: 100, PerClient: 100, PerClientBurst: 500},
		ClientAuth: ClientAuth{Failures: 5, MaxBackoff: 5 * time.Second},
	}
	if got := DefaultLimits(); !reflect.DeepEqual(got, want) {
		t.Errorf("DefaultLimits() =\n%+v\nwant\n%+v", got, want)
	}
}

// TestHomeURLDefaultsToTheFirstWebRedirectOrigin: "Back to <app>" links
// go to home_url, else the origin of the first http(s) redirect URI, else
// nowhere (a native app's custom scheme has no home page).
func TestHomeURLDefaultsToTheFirstWebRedirectOrigin(t *testing.T) {
	for _, tc := range []struct{ uris, home, want string }{
		{`["https://app.example.com:8443/auth/cb?x=1"]`, "", "https://app.example.com:8443/"},
		{`["com.example.app:/oauth", "http://127.0.0.1:9/cb"]`, "", "http://127.0.0.1:9/"},
		{`["com.example.app:/oauth"]`, "", ""},
		{"[https://app.example.com/cb]", "https://www.example.com/", "https://www.example.com/"},
	} {
		src := head + "clients:\n  - id: app\n    public: true\n    redirect_uris: " + tc.uris + "\n"
		if tc.home != "" {
			src += "    home_url: " + tc.home + "\n"
		}
		cfg, err := Parse([]byte(src), "t.yaml", envOf("QIAO_SECRET", testSecret), testTypes())
		if err != nil {
			t.Fatalf("%s: %v", tc.uris, err)
		}
		if got := cfg.Clients[0].HomeURL; got != tc.want {
			t.Errorf("redirect_uris %s, home_url %q: HomeURL = %q, want %q", tc.uris, tc.home, got, tc.want)
		}
	}
}

func TestClientSecretRulesStopSilentlyPublicClients(t *testing.T) {
	const long = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		name, client string
		env          map[string]string
		want         []string
	}{
		{"secret expanding to empty", "  - id: app\n    secret: ${APP_SECRET}\n    redirect_uris: [https://a.example/cb]\n",
			map[string]string{"APP_SECRET": ""},
			[]string{`t.yaml:9: clients[0].secret: is empty (after ${VAR} expansion); set a secret (make one with ` +
				"`openssl rand -hex 32`), or remove it and say public: true for a public client"}},
		{"neither secret nor public", "  - id: app\n    redirect_uris: [https://a.example/cb]\n", nil,
			[]string{"t.yaml:8: clients[0].secret: a client needs either a secret (a confidential client, at least 32 characters: " +
				"make one with `openssl rand -hex 32`) or public: true (a public client, which must use PKCE)"}},
		{"short secret", "  - id: app\n    secret: hunter2-hunter2\n    redirect_uris: [https://a.example/cb]\n", nil,
			[]string{"t.yaml:9: clients[0].secret: must be at least 32 characters, got 15; make one with `openssl rand -hex 32`"}},
		{"public with a secret", "  - id: app\n    public: true\n    secret: " + long + "\n    redirect_uris: [https://a.example/cb]\n", nil,
			[]string{"t.yaml:10: clients[0].secret: a public client (public: true) must not have a secret"}},
		{"public", "  - id: app\n    public: true\n    redirect_uris: [https://a.example/cb]\n", nil, nil},
		{"confidential", "  - id: app\n    secret: " + long + "\n    redirect_uris: [https://a.example/cb]\n", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"QIAO_SECRET": testSecret}
			for k, v := range tt.env {
				env[k] = v
			}
			lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
			got := errorLines(t, head+"clients:\n"+tt.client, lookup)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(tt.want, "\n  "))
			}
		})
	}
}

func TestRedirectURIsMustBeSafeSchemes(t *testing.T) {
	tests := []struct {
		uri  string
		want string // "" for accepted
	}{
		{"https://app.example/cb", ""},
		{"http://127.0.0.1:8080/cb", ""},
		{"http://[::1]/cb", ""},
		{"http://localhost:3000/cb", ""},
		{"http://intranet.example/cb", ""}, // listed in allow_http_hosts
		{"com.example.app:/oauth", ""},
		{"com.example.app://callback", ""},
		{"http://app.example/cb", "plain http is allowed only on loopback (127.0.0.1, [::1], localhost) or on a host listed in this client's allow_http_hosts; use https"},
		{"javascript:alert(1)//", "the javascript: scheme is never allowed"},
		{"JavaScript:alert(1)", "the javascript: scheme is never allowed"},
		{"data:text/html,hi", "the data: scheme is never allowed"},
		{"file:///etc/passwd", "the file: scheme is never allowed"},
		{"vbscript:msgbox", "the vbscript: scheme is never allowed"},
		{"myapp:/cb", "the myapp: scheme is not allowed: use https, or a private-use scheme named after a domain you own, like com.example.app:/callback (RFC 8252 §7.1)"},
	}
	for _, tt := range tests {
		for _, key := range []string{"redirect_uris", "post_logout_redirect_uris"} {
			t.Run(key+" "+tt.uri, func(t *testing.T) {
				client := "  - id: app\n    public: true\n    allow_http_hosts: [intranet.example]\n"
				if key == "redirect_uris" {
					client += "    redirect_uris: [\"" + tt.uri + "\"]\n"
				} else {
					client += "    redirect_uris: [https://a.example/cb]\n    post_logout_redirect_uris: [\"" + tt.uri + "\"]\n"
				}
				got := errorLines(t, head+"clients:\n"+client, envOf("QIAO_SECRET", testSecret))
				var want []string
				if tt.want != "" {
					line := 11
					if key != "redirect_uris" {
						line = 12
					}
					want = []string{fmt.Sprintf("t.yaml:%d: clients[0].%s[0]: %s", line, key, tt.want)}
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("errors = %q, want %q", got, want)
				}
			})
		}
	}
}

func TestAllowHTTPHostsTakesNamesAndIPAddresses(t *testing.T) {
	client := "  - id: app\n    public: true\n    allow_http_hosts: [Intranet.Example, 192.168.1.5, \"fd00::1\"]\n" +
		"    redirect_uris: [\"http://intranet.example/cb\", \"http://192.168.1.5:8080/cb\", \"http://[fd00::1]:8080/cb\"]\n"
	if got := errorLines(t, head+"clients:\n"+client, envOf("QIAO_SECRET", testSecret)); got != nil {
		t.Fatalf("errors = %q, want none", got)
	}
	bad := "  - id: app\n    public: true\n    allow_http_hosts: [\"http://intranet.example\"]\n    redirect_uris: [https://a.example/cb]\n"
	want := []string{"t.yaml:10: clients[0].allow_http_hosts[0]: must be a bare host name or IP address like intranet.example (no scheme, port or path)"}
	if got := errorLines(t, head+"clients:\n"+bad, envOf("QIAO_SECRET", testSecret)); !reflect.DeepEqual(got, want) {
		t.Fatalf("errors = %q, want %q", got, want)
	}
}
