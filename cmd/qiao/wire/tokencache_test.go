package wire

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/broker/seal"
	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

// TestTokenCacheSealsProviderTokens: a provider token put in the shared
// cache comes back as it was, is stored sealed, and a replica with another
// secret (or another key) reads a miss rather than an error.
func TestTokenCacheSealsProviderTokens(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "qiao.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	cache := func(secret string) *tokenCache {
		s, err := seal.New([]byte(secret), "provider-token-cache")
		if err != nil {
			t.Fatal(err)
		}
		return &tokenCache{cache: store, sealer: s}
	}
	a := cache("0123456789abcdef0123456789abcdef-a")
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := a.PutToken(ctx, "wechat:app", "the-token", exp); err != nil {
		t.Fatal(err)
	}
	got, gotExp, err := a.GetToken(ctx, "wechat:app")
	if err != nil || got != "the-token" || !gotExp.Equal(exp) {
		t.Fatalf("GetToken = %q, %v, %v; want the-token, %v", got, gotExp, err, exp)
	}
	raw, _, err := store.GetCache(ctx, "provider-token:wechat:app")
	if err != nil || len(raw) == 0 || string(raw) == "the-token" {
		t.Fatalf("stored entry %q, %v: want it sealed", raw, err)
	}
	if _, _, err := cache("0123456789abcdef0123456789abcdef-b").GetToken(ctx, "wechat:app"); !errors.Is(err, connectors.ErrCacheMiss) {
		t.Errorf("another secret: err = %v, want a cache miss", err)
	}
	if _, _, err := a.GetToken(ctx, "qq:app"); !errors.Is(err, connectors.ErrCacheMiss) {
		t.Errorf("absent key: err = %v, want a cache miss", err)
	}
}
