package broker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/broker"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

func TestLoginCookieIsNeverAdoptedFromTheBrowser(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.rp("web", "web-secret-0123456789abcdef0123456789", "http://127.0.0.1:9/callback")
	br := e.newBrowser()
	planted := strings.Repeat("P", 40)
	u, _ := url.Parse(e.issuer + "/")
	br.client.Jar.SetCookies(u, []*http.Cookie{{Name: "qiao_login", Value: planted, Path: "/qiao/"}})
	noFollow := &http.Client{Jar: br.client.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha")).url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var got string
	for _, c := range resp.Cookies() {
		if c.Name == "qiao_login" {
			got = c.Value
		}
	}
	if got == "" || got == planted {
		t.Fatalf("login cookie set to %q (planted %q), want a fresh value", got, planted)
	}
	// And each flow gets its own value.
	resp, err = noFollow.Get(r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha")).url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if c.Name == "qiao_login" && (c.Value == got || c.Value == planted) {
			t.Fatalf("second flow reused the login cookie %q", c.Value)
		}
	}
}

// newHandler is a broker for issuer served in process, with no server.
func newHandler(t *testing.T, issuer string) http.Handler {
	t.Helper()
	y := strings.NewReplacer("ISSUER", issuer, "DBPATH", filepath.Join(t.TempDir(), "qiao.db"), "ALG", "RS256").Replace(testConfig)
	cfg, err := config.Parse([]byte(y), "test.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	store, err := sqlite.Open(context.Background(), cfg.Storage.SQLite.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var conns []broker.Connector
	for _, k := range cfg.Connectors {
		conns = append(conns, broker.Connector{ID: k.ID, Type: k.Type, Name: k.Name, Impl: &fakeWeb{person: "alice"}})
	}
	b, err := broker.New(context.Background(), broker.Options{Config: cfg, Store: store, Connectors: conns, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return b.Handler()
}

func TestHSTSOnEveryAnswerOfAnHTTPSIssuer(t *testing.T) {
	h := newHandler(t, "https://id.example/qiao")
	for _, path := range []string{"/qiao/.well-known/openid-configuration", "/qiao/keys", "/qiao/auth", "/qiao/nope", "/healthz", "/metrics"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://id.example"+path, nil))
		v := rec.Header().Get("Strict-Transport-Security")
		var age int
		if _, err := fmt.Sscanf(v, "max-age=%d", &age); err != nil || age < 31536000 {
			t.Errorf("%s (%d): Strict-Transport-Security %q, want max-age of at least a year", path, rec.Code, v)
		}
	}
	plain := newHandler(t, "http://127.0.0.1:9/qiao")
	rec := httptest.NewRecorder()
	plain.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "http://127.0.0.1:9/qiao/keys", nil))
	if v := rec.Header().Get("Strict-Transport-Security"); v != "" {
		t.Errorf("an http issuer sends Strict-Transport-Security %q", v)
	}
}

func TestTokenEndpointErrorsAreAlwaysOAuthJSON(t *testing.T) {
	h := newHandler(t, "http://127.0.0.1:9/qiao")
	tests := []struct {
		name, method, body string
		status             int
	}{
		{"malformed percent-encoding", http.MethodPost, "grant_type=%zz&code=x", http.StatusBadRequest},
		{"body too large", http.MethodPost, "code=" + strings.Repeat("a", 70<<10), http.StatusRequestEntityTooLarge},
		{"GET", http.MethodGet, "", http.StatusMethodNotAllowed},
		{"unknown grant", http.MethodPost, "grant_type=password", http.StatusBadRequest},
	}
	for _, path := range []string{"/qiao/token", "/qiao/revoke", "/qiao/introspect"} {
		for _, tc := range tests {
			if tc.name == "unknown grant" && path != "/qiao/token" {
				continue
			}
			t.Run(path+" "+tc.name, func(t *testing.T) {
				req := httptest.NewRequest(tc.method, "http://127.0.0.1:9"+path, strings.NewReader(tc.body))
				if tc.method == http.MethodPost {
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				}
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				var body struct {
					Error string `json:"error"`
				}
				if rec.Code != tc.status || !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") ||
					json.Unmarshal(rec.Body.Bytes(), &body) != nil || body.Error == "" {
					t.Fatalf("%d %q %.200s, want %d with an RFC 6749 JSON error", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String(), tc.status)
				}
			})
		}
	}
}
