package broker_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/broker"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

// plainOptions are the fewest plain values a broker needs: no
// configuration file involved.
func plainOptions(t *testing.T) broker.Options {
	t.Helper()
	store, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "qiao.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return broker.Options{
		Issuer:     "https://id.example",
		Secret:     []byte(testSecret),
		Tokens:     broker.TokenLifetimes{IDTokenTTL: time.Hour, AccessTokenTTL: time.Hour, RefreshTokenTTL: 24 * time.Hour},
		SessionTTL: time.Hour,
		Clients:    []broker.Client{{ID: "app", RedirectURIs: []string{"https://app.example/cb"}}},
		Store:      store,
		Logger:     slog.New(slog.DiscardHandler),
	}
}

// TestNewRefusesOptionsThatCannotWork: a broker without a store, an
// issuer or a long enough secret, or with a lifetime that would expire
// everything at once, is an error from New, not a broker that fails later.
func TestNewRefusesOptionsThatCannotWork(t *testing.T) {
	tests := []struct {
		name   string
		change func(*broker.Options)
		want   string
	}{
		{"no store", func(o *broker.Options) { o.Store = nil }, "Store is required"},
		{"no issuer", func(o *broker.Options) { o.Issuer = "" }, "Issuer is required"},
		{"short secret", func(o *broker.Options) { o.Secret = []byte("short") }, "secret"},
		{"no id token lifetime", func(o *broker.Options) { o.Tokens.IDTokenTTL = 0 }, "token lifetime"},
		{"no access token lifetime", func(o *broker.Options) { o.Tokens.AccessTokenTTL = 0 }, "token lifetime"},
		{"negative refresh token lifetime", func(o *broker.Options) { o.Tokens.RefreshTokenTTL = -time.Hour }, "token lifetime"},
		{"no session lifetime", func(o *broker.Options) { o.SessionTTL = 0 }, "SessionTTL"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := plainOptions(t)
			tc.change(&o)
			b, err := broker.New(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New = %v, %v; want an error about %q", b, err, tc.want)
			}
		})
	}
}

// TestPlainOptionsZeroValues: the zero values documented on Options hold
// for a broker built without a configuration file: Keys zero signs with
// RS256 alone, Keys.Algorithm adds its algorithm after RS256.
func TestPlainOptionsZeroValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		keys broker.SigningKeys
		want []string
	}{
		{"zero keys", broker.SigningKeys{}, []string{"RS256"}},
		{"EdDSA", broker.SigningKeys{Algorithm: "EdDSA"}, []string{"RS256", "EdDSA"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := plainOptions(t)
			o.Keys = tc.keys
			b, err := broker.New(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			b.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "https://id.example/.well-known/openid-configuration", nil))
			var doc struct {
				Algs []string `json:"id_token_signing_alg_values_supported"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				t.Fatalf("discovery %d: %v", rec.Code, err)
			}
			if !reflect.DeepEqual(doc.Algs, tc.want) {
				t.Errorf("signing algorithms = %v, want %v", doc.Algs, tc.want)
			}
		})
	}
}
