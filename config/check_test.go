package config

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckValidPrintsSummary(t *testing.T) {
	t.Setenv("QIAO_SECRET", testSecret)
	t.Setenv("MP_SECRET", "mp-sentinel-secret")
	path := writeFile(t, "qiao.yaml", `issuer: https://id.example.com/sso/
http: {listen: ":8443", tls_cert: c.pem, tls_key: k.pem}
storage:
  type: postgres
  postgres: {dsn: "postgres://qiao:pg-sentinel-password@db.internal:5432/qiao?sslmode=disable"}
secret: ${QIAO_SECRET}
keys: {algorithm: ES256, rotate_every: 1h30m}
connectors:
  - id: mp
    type: wechat_mp
    config: {client_id: wx1, client_secret: "${MP_SECRET}"}
  - id: mini
    type: wechat_miniprogram
    config: {client_id: wx2, client_secret: mini-sentinel-secret}
clients:
  - id: web
    secret: client-sentinel-secret-0123456789abcdef
    redirect_uris: [https://a.example/cb, https://b.example/cb]
  - id: spa
    public: true
    redirect_uris: [https://a.example/spa]
`)
	var out, errOut bytes.Buffer
	if code := Check(&out, &errOut, path, testTypes()); code != 0 {
		t.Fatalf("Check = %d, want 0; stderr:\n%s", code, errOut.String())
	}
	if errOut.Len() != 0 {
		t.Errorf("stderr = %q, want nothing", errOut.String())
	}
	want := path + `: configuration is valid
issuer:  https://id.example.com/sso
listen:  :8443 (TLS)
store:   postgres db.internal:5432/qiao
keys:    ES256 by default, rotated every 1h30m
         an RS256 key is always kept too (OpenID Connect requires it)
limits (requests per second, burst):
  /auth        50 (200) per address, 500 (2000) per client
  /token       200 (1000) per address, 500 (2000) per client
  /callback    50 (200) per address
  account      20 (100) per address, 100 (500) per client
  client auth  a backoff after 5 failures in a row, up to 5s
  exempt       127.0.0.0/8, ::1
connectors (2):
  mp    wechat_mp           https://id.example.com/sso/callback/mp
  mini  wechat_miniprogram  (token endpoint only, no callback)
clients (2):
  web  confidential  2 redirect URIs
  spa  public        1 redirect URI
`
	if got := out.String(); got != want {
		t.Errorf("summary:\n%s\nwant:\n%s", got, want)
	}
	for _, secret := range []string{testSecret, "sentinel"} {
		if strings.Contains(out.String(), secret) {
			t.Errorf("summary contains a secret (%q)", secret)
		}
	}
}

func TestCheckInvalidListsEveryErrorAndExits1(t *testing.T) {
	t.Setenv("QIAO_SECRET", "too-short")
	path := writeFile(t, "bad.yaml", `issuer: https://id.example.com
secret: ${QIAO_SECRET}
connectors:
  - id: wechat
    type: wechat
    config: {client_id: wx1, client_secret: s}
  - id: wechat
    type: qq
    config:
      client_id: "1"
      scopes: x
clients:
  - id: app
    redirect_uris: [/cb]
    connectors: [weibo]
`)
	var out, errOut bytes.Buffer
	if code := Check(&out, &errOut, path, testTypes()); code != 1 {
		t.Fatalf("Check = %d, want 1", code)
	}
	if out.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", out.String())
	}
	want := []string{
		path + ":2: secret: must be at least 32 bytes after ${VAR} expansion, got 9",
		path + `:7: connectors[1].id: duplicate connector id "wechat" (first at line 4)`,
		path + ":10: connectors[1].config.client_secret: required field is missing",
		path + ":11: connectors[1].config.scopes: unknown key",
		path + ":13: clients[0].secret: a client needs either a secret (a confidential client, at least 32 characters: " +
			"make one with `openssl rand -hex 32`) or public: true (a public client, which must use PKCE)",
		path + ":14: clients[0].redirect_uris[0]: must be an absolute URL",
		path + `:15: clients[0].connectors[0]: unknown connector "weibo"`,
	}
	got := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(errOut.String(), "too-short") {
		t.Errorf("stderr contains the secret")
	}
}

func TestCheckUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, path, want string
	}{
		{"missing file", filepath.Join(dir, "nope.yaml"), filepath.Join(dir, "nope.yaml") + ": cannot read config file: no such file or directory\n"},
		{"directory", dir, dir + ": cannot read config file: is a directory\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := Check(&out, &errOut, tt.path, testTypes()); code != 1 {
				t.Errorf("Check = %d, want 1", code)
			}
			if got := errOut.String(); got != tt.want {
				t.Errorf("stderr = %q, want %q", got, tt.want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", out.String())
			}
		})
	}
}

func TestLoadUsesProcessEnvironment(t *testing.T) {
	t.Setenv("QIAO_SECRET", testSecret)
	t.Setenv("QIAO_TEST_TTL", "90m")
	cfg, err := Load(writeFile(t, "qiao.yaml", head+"session_ttl: ${QIAO_TEST_TTL}\n"), testTypes())
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.Secret != testSecret || cfg.SessionTTL != 90*time.Minute {
		t.Errorf("Load: secret from env = %v, session_ttl = %v; want the environment's values", cfg.Secret == testSecret, cfg.SessionTTL)
	}
}

func TestStoreSummaryHidesCredentials(t *testing.T) {
	tests := []struct{ dsn, want string }{
		{"postgres://qiao:hunter2@db.example.com:5432/qiao?sslmode=require&password=hunter2", "postgres db.example.com:5432/qiao"},
		{"postgresql://qiao@db/qiao", "postgres db/qiao"},
		{"host=db port=5432 dbname=qiao user=qiao password=hunter2", "postgres db:5432/qiao"},
		{"password='hunter2 host=evil dbname=x' host=db dbname=qiao", "postgres db/qiao"},
		{`password=hun\ ter2\ host=evil host=db`, "postgres db"},
		{"password='unterminated hunter2 host=evil", "postgres"},
		{"postgres://qiao:hun%zzter2@db/qiao", "postgres"},
	}
	for _, tt := range tests {
		c := &Config{Storage: Storage{Type: "postgres", Postgres: Postgres{DSN: tt.dsn}}}
		if got := c.storeSummary(); got != tt.want {
			t.Errorf("storeSummary(%q) = %q, want %q", tt.dsn, got, tt.want)
		}
	}
}

func TestCheckRefusesUnsafeClients(t *testing.T) {
	t.Setenv("QIAO_SECRET", "0123456789abcdef0123456789abcdef")
	t.Setenv("APP_SECRET", "")
	path := writeFile(t, "clients.yaml", `issuer: https://id.example.com
secret: ${QIAO_SECRET}
connectors:
  - id: wechat
    type: wechat
    config: {client_id: wx1, client_secret: s}
clients:
  - id: app
    secret: ${APP_SECRET}
    redirect_uris:
      - https://app.example/cb
      - "javascript:alert(document.cookie)"
      - data:text/html,x
      - http://app.example/cb
  - id: short
    secret: abc123
    redirect_uris: [https://short.example/cb]
    post_logout_redirect_uris: ["file:///etc/passwd", "vbscript:msgbox"]
`)
	var out, errOut bytes.Buffer
	if code := Check(&out, &errOut, path, testTypes()); code != 1 {
		t.Fatalf("Check = %d, want 1", code)
	}
	want := []string{
		path + `:9: clients[0].secret: is empty (after ${VAR} expansion); set a secret (make one with ` + "`openssl rand -hex 32`" + `), or remove it and say public: true for a public client`,
		path + ":12: clients[0].redirect_uris[1]: the javascript: scheme is never allowed",
		path + ":13: clients[0].redirect_uris[2]: the data: scheme is never allowed",
		path + ":14: clients[0].redirect_uris[3]: plain http is allowed only on loopback (127.0.0.1, [::1], localhost) or on a host listed in this client's allow_http_hosts; use https",
		path + ":16: clients[1].secret: must be at least 32 characters, got 6; make one with `openssl rand -hex 32`",
		path + ":18: clients[1].post_logout_redirect_uris[0]: the file: scheme is never allowed",
		path + ":18: clients[1].post_logout_redirect_uris[1]: the vbscript: scheme is never allowed",
	}
	got := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("stderr:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(errOut.String(), "abc123") {
		t.Error("stderr shows a client secret")
	}
}
