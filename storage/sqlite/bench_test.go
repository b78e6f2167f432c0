package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

// layouts are the pool layouts the benchmarks compare.
var layouts = []struct {
	name string
	opts options
}{
	{"SplitPools", options{}},
	{"SinglePool", options{singlePool: true}},
}

func benchStore(b *testing.B, o options) *Store {
	b.Helper()
	s, err := open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// tokenData is the size of a typical serialized fosite request.
var tokenData = make([]byte, 1024)

func benchToken(kind storage.TokenKind, n int64, req string) storage.TokenRecord {
	t := time.Now()
	return storage.TokenRecord{
		Kind:      kind,
		Signature: fmt.Sprintf("sig-%d-%d", n, t.UnixNano()),
		RequestID: req,
		ClientID:  "app",
		Subject:   "user-1",
		Active:    true,
		Data:      tokenData,
		CreatedAt: t,
		ExpiresAt: t.Add(time.Hour),
	}
}

// each runs fn sequentially and with b.RunParallel, for every layout.
func each(b *testing.B, fn func(b *testing.B, s *Store, parallel bool)) {
	for _, l := range layouts {
		b.Run(l.name, func(b *testing.B) {
			b.Run("Serial", func(b *testing.B) { fn(b, benchStore(b, l.opts), false) })
			b.Run("Parallel", func(b *testing.B) { fn(b, benchStore(b, l.opts), true) })
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) (user, sys time.Duration) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano())
}

// loop runs body b.N times and reports, beside wall time, the CPU time
// per op (user and kernel, all goroutines): on a shared machine it is the
// steadier figure, and the one the latency budget is about. Parallel runs
// use 8 goroutines per CPU, as a busy server would.
func loop(b *testing.B, parallel bool, body func(worker int64, i int) error) {
	b.ReportAllocs()
	b.ResetTimer()
	u0, s0 := cpuTime(b)
	defer func() {
		u1, s1 := cpuTime(b)
		b.ReportMetric(float64(u1-u0+s1-s0)/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(s1-s0)/float64(b.N), "sys-ns/op")
	}()
	if !parallel {
		for i := 0; b.Loop(); i++ {
			if err := body(0, i); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	var workers atomic.Int64
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		w := workers.Add(1)
		for i := 0; pb.Next(); i++ {
			if err := body(w, i); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkCreateToken(b *testing.B) {
	each(b, func(b *testing.B, s *Store, parallel bool) {
		ctx := context.Background()
		var n atomic.Int64
		loop(b, parallel, func(int64, int) error {
			r := benchToken(storage.KindAccessToken, n.Add(1), "req")
			return s.ApplyTokenOps(ctx, storage.TokenOp{Type: storage.OpCreate, Record: r})
		})
	})
}

func BenchmarkGetToken(b *testing.B) {
	each(b, func(b *testing.B, s *Store, parallel bool) {
		ctx := context.Background()
		const n = 1000
		sigs := make([]string, n)
		for i := range sigs {
			r := benchToken(storage.KindAccessToken, int64(i), fmt.Sprintf("req-%d", i))
			if err := s.ApplyTokenOps(ctx, storage.TokenOp{Type: storage.OpCreate, Record: r}); err != nil {
				b.Fatal(err)
			}
			sigs[i] = r.Signature
		}
		loop(b, parallel, func(w int64, i int) error {
			_, err := s.GetToken(ctx, storage.KindAccessToken, sigs[(int(w)*31+i)%n])
			return err
		})
	})
}

// BenchmarkRefreshRotation is one refresh_token grant: deactivate the old
// refresh token, create the new access and refresh tokens, atomically.
func BenchmarkRefreshRotation(b *testing.B) {
	each(b, func(b *testing.B, s *Store, parallel bool) {
		ctx := context.Background()
		var n atomic.Int64
		loop(b, parallel, func(w int64, i int) error {
			// Each worker keeps its own chain; the first op of a chain
			// seeds it.
			req := fmt.Sprintf("req-%d", w)
			prev := fmt.Sprintf("chain-%d-%d", w, i)
			next := fmt.Sprintf("chain-%d-%d", w, i+1)
			if i == 0 {
				r := benchToken(storage.KindRefreshToken, n.Add(1), req)
				r.Signature = prev
				if err := s.ApplyTokenOps(ctx, storage.TokenOp{Type: storage.OpCreate, Record: r}); err != nil {
					return err
				}
			}
			access := benchToken(storage.KindAccessToken, n.Add(1), req)
			refresh := benchToken(storage.KindRefreshToken, n.Add(1), req)
			refresh.Signature = next
			return s.ApplyTokenOps(ctx,
				storage.TokenOp{Type: storage.OpDeactivate, Kind: storage.KindRefreshToken, Signature: prev},
				storage.TokenOp{Type: storage.OpCreate, Record: access},
				storage.TokenOp{Type: storage.OpCreate, Record: refresh},
			)
		})
	})
}

// BenchmarkLoginFlow is every store call a returning user's OIDC login
// makes: pending login in and out, identity lookup and touch, SSO
// session, authorization code with PKCE and OIDC records, the code
// exchange, and an audit event.
func BenchmarkLoginFlow(b *testing.B) {
	each(b, func(b *testing.B, s *Store, parallel bool) {
		ctx := context.Background()
		var n atomic.Int64
		loop(b, parallel, func(w int64, i int) error {
			k := n.Add(1)
			now := time.Now()
			uid := fmt.Sprintf("user-%d", w)
			if i == 0 {
				id := storage.Identity{ConnectorID: "wechat", Subject: uid, UserID: uid, ConnectorType: "wechat", BoundAt: now}
				if err := s.CreateUser(ctx, storage.User{ID: uid, CreatedAt: now}, id); err != nil {
					return err
				}
			}
			state := fmt.Sprintf("state-%d", k)
			if err := s.CreateLogin(ctx, storage.PendingLogin{State: state, ConnectorID: "wechat", Binding: "b", Data: tokenData[:200], CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}); err != nil {
				return err
			}
			if _, err := s.TakeLogin(ctx, state); err != nil {
				return err
			}
			got, err := s.GetIdentity(ctx, "wechat", uid)
			if err != nil {
				return err
			}
			got.LastUsedAt = now
			if err := s.UpdateIdentity(ctx, got); err != nil {
				return err
			}
			if err := s.CreateSession(ctx, storage.Session{ID: state, UserID: uid, ConnectorID: "wechat", AuthTime: now, ExpiresAt: now.Add(time.Hour), Data: tokenData[:100]}); err != nil {
				return err
			}
			req := fmt.Sprintf("req-%d", k)
			code := benchToken(storage.KindAuthorizeCode, n.Add(1), req)
			pkce := benchToken(storage.KindPKCE, n.Add(1), req)
			pkce.Signature = code.Signature
			oidc := benchToken(storage.KindOIDC, n.Add(1), req)
			oidc.Signature = code.Signature
			if err := s.ApplyTokenOps(ctx,
				storage.TokenOp{Type: storage.OpCreate, Record: code},
				storage.TokenOp{Type: storage.OpCreate, Record: pkce},
				storage.TokenOp{Type: storage.OpCreate, Record: oidc},
			); err != nil {
				return err
			}
			for _, kind := range []storage.TokenKind{storage.KindAuthorizeCode, storage.KindPKCE, storage.KindOIDC} {
				if _, err := s.GetToken(ctx, kind, code.Signature); err != nil {
					return err
				}
			}
			access := benchToken(storage.KindAccessToken, n.Add(1), req)
			refresh := benchToken(storage.KindRefreshToken, n.Add(1), req)
			if err := s.ApplyTokenOps(ctx,
				storage.TokenOp{Type: storage.OpDeactivate, Kind: storage.KindAuthorizeCode, Signature: code.Signature},
				storage.TokenOp{Type: storage.OpDelete, Kind: storage.KindPKCE, Signature: code.Signature},
				storage.TokenOp{Type: storage.OpCreate, Record: access},
				storage.TokenOp{Type: storage.OpCreate, Record: refresh},
			); err != nil {
				return err
			}
			return s.AppendAudit(ctx, storage.AuditEvent{Time: now, Action: "login", UserID: uid, ConnectorID: "wechat", Result: "success"})
		})
	})
}

// BenchmarkSignIn is what a web login asks of the store today: the
// callback's identity read and its one CompleteLogin transaction (spent
// state, identity update, session, audit event, authorization code),
// then the token request's code read and its one transaction (code
// deactivated, access and refresh token created). 50 returning users,
// on a store that already holds 2 000 logins. wal-pages/op is the pages
// its commits write to the WAL (the checkpointer is stopped for it).
func BenchmarkSignIn(b *testing.B) {
	s := benchStore(b, options{})
	ctx := context.Background()
	login := signInLoop(b, s)
	for i := range 2000 {
		if err := login(ctx, i); err != nil {
			b.Fatal(err)
		}
	}
	stopCheckpointer(b, s)
	if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		b.Fatal(err)
	}
	loop(b, false, func(_ int64, i int) error { return login(ctx, i) })
	var busy, pages, copied int64
	if err := s.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &pages, &copied); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(pages)/float64(b.N), "wal-pages/op")
}

// signInLoop returns a function that runs the i-th sign-in of
// BenchmarkSignIn (creating its 50 users first).
func signInLoop(b testing.TB, s *Store) func(ctx context.Context, i int) error {
	ctx := context.Background()
	now := time.Now()
	const users = 50
	for i := range users {
		u := storage.User{ID: fmt.Sprintf("user-%d", i), CreatedAt: now}
		id := storage.Identity{ConnectorID: "weibo", Subject: fmt.Sprintf("sub-%d", i), UserID: u.ID,
			ConnectorType: "weibo", DisplayName: "Person", BoundAt: now, LastUsedAt: now}
		if err := s.CreateUser(ctx, u, id); err != nil {
			b.Fatal(err)
		}
	}
	data := make([]byte, 1500) // a code's record: request, session, forms
	var n atomic.Int64
	name := func() string { return fmt.Sprintf("%016x-%d", n.Add(1), now.UnixNano()) }
	return func(ctx context.Context, i int) error {
		id, err := s.GetIdentity(ctx, "weibo", fmt.Sprintf("sub-%d", i%users))
		if err != nil {
			return err
		}
		t := time.Now()
		id.LastUsedAt = t
		req := name()
		tok := func(k storage.TokenKind, ttl time.Duration) storage.TokenRecord {
			return storage.TokenRecord{Kind: k, Signature: name(), RequestID: req, ClientID: "bench", Subject: id.UserID,
				Active: true, Data: data, CreatedAt: t, ExpiresAt: t.Add(ttl), IdentityConnector: "weibo", IdentitySubject: id.Subject}
		}
		code := tok(storage.KindAuthorizeCode, 10*time.Minute)
		if err := s.CompleteLogin(ctx, storage.LoginCompletion{
			State: name(), StateConnector: "weibo", StateExpiresAt: t.Add(10 * time.Minute),
			UpdateIdentity: &id,
			Session: &storage.Session{ID: name(), UserID: id.UserID, ConnectorID: "weibo", AuthTime: t,
				ExpiresAt: t.Add(24 * time.Hour), Data: data[:300], IdentitySubject: id.Subject},
			Audit:    []storage.AuditEvent{{Time: t, Action: "login", UserID: id.UserID, ConnectorID: "weibo", ClientID: "bench", IP: "127.0.0.1", Result: "success"}},
			TokenOps: []storage.TokenOp{{Type: storage.OpCreate, Kind: code.Kind, Record: code}},
		}); err != nil {
			return err
		}
		if _, err := s.GetToken(ctx, code.Kind, code.Signature); err != nil {
			return err
		}
		return s.ApplyTokenOps(ctx,
			storage.TokenOp{Type: storage.OpDeactivate, Kind: code.Kind, Signature: code.Signature},
			storage.TokenOp{Type: storage.OpCreate, Kind: storage.KindAccessToken, Record: tok(storage.KindAccessToken, time.Hour)},
			storage.TokenOp{Type: storage.OpCreate, Kind: storage.KindRefreshToken, Record: tok(storage.KindRefreshToken, 30*24*time.Hour)})
	}
}
