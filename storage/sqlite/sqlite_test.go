package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
	"github.com/qiaoidp/qiao/storage/storagetest"
)

func openTest(t testing.TB, path string) *Store {
	t.Helper()
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storagetest.RunTests(t, func(t *testing.T) storage.Storage {
		s := openTest(t, filepath.Join(t.TempDir(), "qiao.db"))
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestConformanceSharedDatabase(t *testing.T) {
	// One database for every sub-test, as a server-backed store would run.
	s := openTest(t, filepath.Join(t.TempDir(), "qiao.db"))
	t.Cleanup(func() { s.Close() })
	storagetest.RunTests(t, func(*testing.T) storage.Storage { return s })
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	storagetest.RunReopenTests(t, func(t *testing.T, name string) storage.Storage {
		return openTest(t, filepath.Join(dir, name+".db"))
	})
}

func TestOpenCreatesParentDirectory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a", "b", "qiao.db")
	s := openTest(t, path)
	defer s.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database file not created: %v", err)
	}
}

func TestOpenRejectsUnusablePaths(t *testing.T) {
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	notADB := filepath.Join(t.TempDir(), "garbage.db")
	if err := os.WriteFile(notADB, []byte("this is not an sqlite database, just some text long enough"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"Empty":            "",
		"Memory":           ":memory:",
		"ParentIsAFile":    filepath.Join(notADir, "qiao.db"),
		"NotADatabaseFile": notADB,
	} {
		t.Run(name, func(t *testing.T) {
			s, err := Open(t.Context(), path)
			if err == nil {
				s.Close()
				t.Fatalf("Open(%q) succeeded", path)
			}
		})
	}
}

func TestPathWithURICharacters(t *testing.T) {
	// '?', '#' and '%' in a path must not be read as URI syntax.
	dir := filepath.Join(t.TempDir(), "we?ird#dir %20")
	path := filepath.Join(dir, "q?.db")
	s := openTest(t, path)
	defer s.Close()
	if err := s.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %q: %v", path, err)
	}
}

func TestMigrationsAreRecordedOnceAcrossReopens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qiao.db")
	for range 3 {
		openTest(t, path).Close()
	}
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	s := openTest(t, path)
	defer s.Close()
	var n, max int
	if err := s.r.QueryRow(`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &max); err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || max != ms[len(ms)-1].Version {
		t.Errorf("schema_migrations has %d rows up to %d, want %d up to %d", n, max, len(ms), ms[len(ms)-1].Version)
	}
}

func TestNewerSchemaIsRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qiao.db")
	s := openTest(t, path)
	if _, err := s.w.Exec(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', 0)`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if s, err := Open(t.Context(), path); err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer version succeeded")
	}
}

func TestFailedMigrationLeavesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "qiao.db")
	db, err := sql.Open("sqlite", dsn(path, roleWriter))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	bad := []migration{
		{Version: 1, Name: "0001_ok.sql", SQL: `CREATE TABLE a (x INTEGER)`},
		{Version: 2, Name: "0002_bad.sql", SQL: `CREATE TABLE b (x INTEGER); SELECT nonsense FROM nowhere`},
	}
	if err := applyMigrations(t.Context(), db, bad); err == nil {
		t.Fatal("a failing migration reported success")
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM sqlite_master WHERE name IN ('a', 'b', 'schema_migrations')`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d objects left behind by a failed migration, want 0", n)
	}
}

func TestConstraintErrorsMapToAlreadyExists(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "qiao.db"))
	defer s.Close()
	sess := storage.Session{ID: "s1", UserID: "u"}
	if err := s.CreateSession(t.Context(), sess); err != nil {
		t.Fatal(err)
	}
	err := s.CreateSession(t.Context(), sess)
	if !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("duplicate session: got %v, want ErrAlreadyExists", err)
	}
	// Other errors are not mistaken for duplicates.
	if err := mapErr(errors.New("disk I/O error")); errors.Is(err, storage.ErrAlreadyExists) {
		t.Error("a plain error mapped to ErrAlreadyExists")
	}
}

func TestClosedStoreReturnsErrors(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "qiao.db"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Ping(t.Context()); err == nil {
		t.Error("Ping of a closed store succeeded")
	}
	if _, err := s.GetToken(t.Context(), storage.KindAccessToken, "x"); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetToken on a closed store: %v, want a non-sentinel error", err)
	}
}

func TestConformanceSinglePool(t *testing.T) {
	// The alternative layout the benchmarks compare against must be
	// correct too: one pool, IMMEDIATE transactions, SQLite's busy wait.
	storagetest.RunTests(t, func(t *testing.T) storage.Storage {
		s, err := open(t.Context(), filepath.Join(t.TempDir(), "qiao.db"), options{singlePool: true, readConns: 8})
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestTwoStoresOnOneFileSerializeWriters(t *testing.T) {
	// Two stores on one file stand for two processes (the server and an
	// admin command): their writers meet in SQLite's file locks, not in
	// one pool. Transactions that read before they write (key rotation,
	// unbind) need BEGIN IMMEDIATE here, or the loser of the lock fails
	// with SQLITE_BUSY instead of waiting and seeing the winner's write.
	path := filepath.Join(t.TempDir(), "qiao.db")
	stores := []*Store{openTest(t, path), openTest(t, path)}
	for _, s := range stores {
		defer s.Close()
	}
	ctx := t.Context()
	now := time.Now()
	const racers = 16

	tests := []struct {
		name string
		// setup prepares round r and returns racer i's operation.
		setup   func(t *testing.T, r int) func(s *Store, i int) error
		loserIs error
	}{
		{"RefreshRotation", func(t *testing.T, r int) func(*Store, int) error {
			old := storage.TokenRecord{Kind: storage.KindRefreshToken, Signature: fmt.Sprintf("old-%d", r),
				RequestID: "req", Active: true, ExpiresAt: now.Add(time.Hour)}
			if err := stores[0].ApplyTokenOps(ctx, storage.TokenOp{Type: storage.OpCreate, Record: old}); err != nil {
				t.Fatal(err)
			}
			return func(s *Store, i int) error {
				next := storage.TokenRecord{Kind: storage.KindRefreshToken, Signature: fmt.Sprintf("new-%d-%d", r, i),
					RequestID: "req", Active: true, ExpiresAt: now.Add(time.Hour)}
				return s.ApplyTokenOps(ctx,
					storage.TokenOp{Type: storage.OpDeactivate, Kind: old.Kind, Signature: old.Signature},
					storage.TokenOp{Type: storage.OpCreate, Record: next})
			}
		}, storage.ErrConflict},
		{"KeyRotation", func(t *testing.T, r int) func(*Store, int) error {
			ks, err := stores[0].ListSigningKeys(ctx)
			if err != nil {
				t.Fatal(err)
			}
			prev := ""
			if len(ks) > 0 {
				prev = ks[0].ID
			}
			return func(s *Store, i int) error {
				next := storage.SigningKey{ID: fmt.Sprintf("kid-%d-%d", r, i), Algorithm: "ES256", CreatedAt: now.Add(time.Duration(r) * time.Second)}
				return s.RotateSigningKey(ctx, prev, next, now.Add(time.Hour))
			}
		}, storage.ErrConflict},
		{"Unbind", func(t *testing.T, r int) func(*Store, int) error {
			uid := fmt.Sprintf("user-%d", r)
			first := storage.Identity{ConnectorID: "c0", Subject: uid, UserID: uid}
			if err := stores[0].CreateUser(ctx, storage.User{ID: uid}, first); err != nil {
				t.Fatal(err)
			}
			for i := 1; i < racers; i++ {
				id := storage.Identity{ConnectorID: fmt.Sprintf("c%d", i), Subject: uid, UserID: uid}
				if err := stores[0].BindIdentity(ctx, id); err != nil {
					t.Fatal(err)
				}
			}
			return func(s *Store, i int) error {
				return s.UnbindIdentity(ctx, uid, fmt.Sprintf("c%d", i))
			}
		}, storage.ErrLastIdentity},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for round := range 5 {
				op := tc.setup(t, round)
				errs := make([]error, racers)
				var wg sync.WaitGroup
				start := make(chan struct{})
				for i := range racers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						<-start
						errs[i] = op(stores[i%2], i)
					}()
				}
				close(start)
				wg.Wait()
				lost := 0
				for i, err := range errs {
					switch {
					case errors.Is(err, tc.loserIs):
						lost++
					case err != nil:
						t.Errorf("round %d racer %d: %v", round, i, err)
					}
				}
				// Rotations: one winner. Unbinds: one refused.
				if tc.loserIs == storage.ErrLastIdentity && lost != 1 || tc.loserIs != storage.ErrLastIdentity && lost != racers-1 {
					t.Fatalf("round %d: %d racers lost", round, lost)
				}
			}
		})
	}
}

// TestAuditRetentionDeletesInSlices: a large backlog of old audit rows
// goes in several short write transactions, and all of it goes.
func TestAuditRetentionDeletesInSlices(t *testing.T) {
	s := openTest(t, filepath.Join(t.TempDir(), "qiao.db"))
	defer s.Close()
	old := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	const n = 2*auditGCBatch + 17
	if _, err := s.w.Exec(`WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < ?)
		INSERT INTO audit (time, action, user_id, connector_id, client_id, ip, result, detail)
		SELECT ? + x, 'login', 'u', '', '', '', 'success', '' FROM c`, n, old); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(t.Context(), storage.AuditEvent{Time: time.Now(), Action: "login", UserID: "u", Result: "success"}); err != nil {
		t.Fatal(err)
	}
	res, err := s.GarbageCollect(t.Context(), time.Now(), time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if res.Audit != n {
		t.Errorf("removed %d audit rows, want %d", res.Audit, n)
	}
	evs, err := s.ListAudit(t.Context(), storage.AuditFilter{UserID: "u"})
	if err != nil || len(evs) != 1 {
		t.Fatalf("left %d events (%v), want the recent one", len(evs), err)
	}
}
