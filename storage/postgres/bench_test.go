package postgres

import (
	"fmt"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

func benchToken(kind storage.TokenKind, sig, req string) storage.TokenRecord {
	now := time.Now()
	return storage.TokenRecord{Kind: kind, Signature: sig, RequestID: req, ClientID: "app",
		Subject: "user", Active: true, Data: make([]byte, 512), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
}

// BenchmarkApplyTokenOpsRotation is one refresh: deactivate the old
// refresh token, create the new access and refresh tokens.
func BenchmarkApplyTokenOpsRotation(b *testing.B) {
	s := openStore(b)
	ctx := b.Context()
	prev := "r-0"
	if err := s.ApplyTokenOps(ctx, storage.TokenOp{Type: storage.OpCreate,
		Record: benchToken(storage.KindRefreshToken, prev, "req")}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		next := fmt.Sprintf("r-%d", i)
		err := s.ApplyTokenOps(ctx,
			storage.TokenOp{Type: storage.OpDeactivate, Kind: storage.KindRefreshToken, Signature: prev},
			storage.TokenOp{Type: storage.OpCreate, Record: benchToken(storage.KindAccessToken, fmt.Sprintf("a-%d", i), "req")},
			storage.TokenOp{Type: storage.OpCreate, Record: benchToken(storage.KindRefreshToken, next, "req")},
		)
		if err != nil {
			b.Fatal(err)
		}
		prev = next
	}
}

func BenchmarkGetToken(b *testing.B) {
	s := openStore(b)
	ctx := b.Context()
	if err := s.ApplyTokenOps(ctx, storage.TokenOp{Type: storage.OpCreate,
		Record: benchToken(storage.KindAccessToken, "a", "req")}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := s.GetToken(ctx, storage.KindAccessToken, "a"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetTokenParallel(b *testing.B) {
	s := openStore(b)
	ctx := b.Context()
	if err := s.ApplyTokenOps(ctx, storage.TokenOp{Type: storage.OpCreate,
		Record: benchToken(storage.KindAccessToken, "a", "req")}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.GetToken(ctx, storage.KindAccessToken, "a"); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkCreateUser(b *testing.B) {
	s := openStore(b)
	ctx := b.Context()
	now := time.Now()
	b.ResetTimer()
	for i := range b.N {
		id := fmt.Sprintf("u-%d", i)
		err := s.CreateUser(ctx, storage.User{ID: id, CreatedAt: now}, storage.Identity{
			ConnectorID: "wechat", Subject: id, ConnectorType: "wechat", UnionID: "wechat:" + id,
			DisplayName: "name", BoundAt: now, LastUsedAt: now})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetIdentity(b *testing.B) {
	s := openStore(b)
	ctx := b.Context()
	if err := s.CreateUser(ctx, storage.User{ID: "u"}, storage.Identity{ConnectorID: "qq", Subject: "o"}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := s.GetIdentity(ctx, "qq", "o"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetSession(b *testing.B) {
	s := openStore(b)
	ctx := b.Context()
	if err := s.CreateSession(ctx, storage.Session{ID: "s", UserID: "u", ExpiresAt: time.Now().Add(time.Hour),
		Data: make([]byte, 256)}); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		if _, err := s.GetSession(ctx, "s"); err != nil {
			b.Fatal(err)
		}
	}
}
