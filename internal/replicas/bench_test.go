package replicas

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// The benchmarks run the broker in process (broker.New behind an
// httptest server, real HTTP on loopback) on each store, with
// benchClients×GOMAXPROCS parallel clients: ns/op is wall time per
// request (1/throughput), req/s the throughput.
//
//	go test -run '^$' -bench . -benchtime 3s ./internal/replicas/

var benchStores = []struct {
	name  string
	store qiaotest.Store
}{
	{"postgres", qiaotest.Postgres},
	{"sqlite", qiaotest.SQLite},
}

// benchClients is the parallelism: clients per GOMAXPROCS.
const benchClients = 4

func reportThroughput(b *testing.B, start time.Time) {
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
}

// BenchmarkRefreshRotation: grant_type=refresh_token, each parallel
// client rotating its own chain.
func BenchmarkRefreshRotation(b *testing.B) {
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) {
			e := newInProcess(b, st.store, quietLog)
			ctx := context.Background()
			var mu sync.Mutex
			var seeds []string
			for range 4 * benchClients {
				_, tr := e.login(e.newBrowser(), "alice", anyReplica, anyReplica, anyReplica)
				seeds = append(seeds, tr.str("refresh_token"))
			}
			b.SetParallelism(benchClients)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				mu.Lock()
				var rt string
				if len(seeds) > 0 {
					rt, seeds = seeds[0], seeds[1:]
				}
				mu.Unlock()
				if rt == "" {
					b.Error("more parallel clients than refresh chains")
					return
				}
				for pb.Next() {
					r, err := e.refresh(ctx, rt, anyReplica)
					if err != nil || r.status != http.StatusOK {
						b.Errorf("refresh: %v %s", err, r)
						return
					}
					rt = r.str("refresh_token")
				}
			})
			reportThroughput(b, start)
		})
	}
}

// BenchmarkCodeRedemption: grant_type=authorization_code with PKCE and
// an ID token. The codes are minted (full logins) before the timer runs.
func BenchmarkCodeRedemption(b *testing.B) {
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) {
			e := newInProcess(b, st.store, quietLog)
			ctx := context.Background()
			type minted struct {
				code string
				p    qiaotest.AuthRequest
			}
			codes := make(chan minted, b.N)
			var wg sync.WaitGroup
			for w := range 4 {
				wg.Go(func() {
					for i := w; i < b.N; i += 4 {
						p := e.authRequest()
						code, err := e.authorize(ctx, e.newBrowser(), p, "bob", anyReplica, anyReplica)
						if err != nil {
							b.Error(err)
							return
						}
						codes <- minted{code, p}
					}
				})
			}
			wg.Wait()
			close(codes)
			if b.Failed() {
				return
			}
			b.SetParallelism(benchClients)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					m := <-codes
					r, err := e.redeem(ctx, m.code, m.p, anyReplica)
					if err != nil || r.status != http.StatusOK || r.str("id_token") == "" {
						b.Errorf("redeem: %v %s", err, r)
						return
					}
				}
			})
			reportThroughput(b, start)
		})
	}
}

// BenchmarkMiniProgramExchange: the RFC 8693 token exchange of a wx.login
// code, against the WeChat simulator (one jscode2session call each).
func BenchmarkMiniProgramExchange(b *testing.B) {
	for _, st := range benchStores {
		b.Run(st.name, func(b *testing.B) {
			e := newInProcess(b, st.store, quietLog)
			ctx := context.Background()
			persons := []string{"alice", "bob", "carol"}
			codes := make(chan string, b.N)
			for i := range b.N {
				codes <- e.LoginCode(miniConnector, persons[i%len(persons)])
			}
			close(codes)
			b.SetParallelism(benchClients)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r, err := e.exchange(ctx, <-codes)
					if err != nil || r.status != http.StatusOK || r.str("access_token") == "" || r.str("id_token") == "" {
						b.Errorf("token exchange: %v %s", err, r)
						return
					}
				}
			})
			reportThroughput(b, start)
		})
	}
}

// TestMiniProgramExchangeInProcess checks the benchmark's exchange once on
// each store, so that a broken setup fails the tests and not only the
// benchmarks.
func TestMiniProgramExchangeInProcess(t *testing.T) {
	for _, name := range []string{"postgres", "sqlite"} {
		t.Run(name, func(t *testing.T) {
			st := qiaotest.SQLite
			if name == "postgres" {
				st = qiaotest.Postgres
			}
			e := newInProcess(t, st)
			code := e.LoginCode(miniConnector, "alice")
			r, err := e.exchange(context.Background(), code)
			if err != nil || r.status != http.StatusOK || r.str("refresh_token") == "" {
				t.Fatalf("token exchange: %v %s, want 200 with a refresh token", err, r)
			}
			again, err := e.exchange(context.Background(), code)
			if err != nil || again.status != http.StatusBadRequest || again.str("error") != "invalid_grant" {
				t.Fatalf("the same code again: %v %s, want 400 invalid_grant", err, again)
			}
			rr, err := e.refresh(context.Background(), r.str("refresh_token"), anyReplica)
			// The refresh token belongs to the public client "mini": the
			// confidential client "web" may not use it.
			if err != nil || rr.status == http.StatusOK {
				t.Fatalf("refresh as another client: %v %s, want a refusal", err, rr)
			}
		})
	}
}
