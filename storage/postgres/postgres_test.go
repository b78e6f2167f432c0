package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/qiaoidp/qiao/internal/pgtest"
	"github.com/qiaoidp/qiao/storage"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// openStore opens a store on a fresh database of the shared cluster.
func openStore(t testing.TB) *Store {
	t.Helper()
	return openDSN(t, pgtest.Shared(t).NewDatabase(t))
}

func openDSN(t testing.TB, dsn string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, dsn)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestOpenRejectsBadDSN(t *testing.T) {
	ctx := t.Context()
	for _, tc := range []struct {
		name, dsn string
	}{
		{"empty", ""},
		{"garbage", "postgres://user:hunter2@[::1"},
		{"bad pool size", "postgres://127.0.0.1/x?pool_max_conns=zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ctx, tc.dsn)
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if tc.dsn != "" && strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestOpenFailsWhenServerUnreachable(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	srv.Stop(t)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	s, err := Open(ctx, dsn)
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded with the server down")
	}
}

func TestConcurrentOpensMigrateOnce(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	const replicas = 4
	stores := make([]*Store, replicas)
	errs := make([]error, replicas)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			stores[i], errs[i] = Open(t.Context(), dsn)
		}()
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	var n, latest int
	err := stores[0].pool.QueryRow(t.Context(),
		`SELECT count(*), max(version) FROM schema_migrations`).Scan(&n, &latest)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(ms) || latest != ms[len(ms)-1].Version {
		t.Fatalf("schema_migrations has %d rows up to %d, want %d up to %d", n, latest, len(ms), ms[len(ms)-1].Version)
	}
	// Every replica works on the shared schema.
	for i, s := range stores {
		u := storage.User{ID: fmt.Sprintf("u%d", i), CreatedAt: time.Now()}
		if err := s.CreateUser(t.Context(), u, storage.Identity{ConnectorID: "qq", Subject: u.ID}); err != nil {
			t.Fatalf("replica %d: create user: %v", i, err)
		}
	}
}

func TestOpenRefusesNewerSchema(t *testing.T) {
	s := openStore(t)
	dsn := s.pool.Config().ConnString()
	if _, err := s.pool.Exec(t.Context(),
		`INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, '9999_future.sql', now())`); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(t.Context(), dsn)
	if err == nil {
		s2.Close()
		t.Fatal("Open accepted a schema newer than the program")
	}
}

func TestLaterMigrationAppliesOnReopen(t *testing.T) {
	s := openStore(t)
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	extra := append(ms, migration{Version: ms[len(ms)-1].Version + 1, Name: "next.sql",
		SQL: `CREATE TABLE extra (x int); INSERT INTO extra VALUES (1);`})
	for range 2 { // the second run finds nothing to do
		if err := s.applyMigrations(t.Context(), extra); err != nil {
			t.Fatal(err)
		}
	}
	var n int
	if err := s.pool.QueryRow(t.Context(), `SELECT count(*) FROM extra`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("extra has %d rows (%v), want 1", n, err)
	}
}

func TestFailedMigrationLeavesNoTrace(t *testing.T) {
	s := openStore(t)
	ms, err := loadMigrations(migrationFS)
	if err != nil {
		t.Fatal(err)
	}
	v := ms[len(ms)-1].Version + 1
	bad := append(ms, migration{Version: v, Name: "bad.sql", SQL: `CREATE TABLE half (x int); SELECT nonsense FROM nowhere;`})
	if err := s.applyMigrations(t.Context(), bad); err == nil {
		t.Fatal("a failing migration reported success")
	}
	var half *string
	if err := s.pool.QueryRow(t.Context(), `SELECT to_regclass('half')::text`).Scan(&half); err != nil || half != nil {
		t.Fatalf("table of the failed migration exists: %v %v", half, err)
	}
	var max int
	if err := s.pool.QueryRow(t.Context(), `SELECT max(version) FROM schema_migrations`).Scan(&max); err != nil || max >= v {
		t.Fatalf("schema version %d after a failed migration (%v)", max, err)
	}
}

func TestLoadMigrationsOrdersAndRejectsBadNames(t *testing.T) {
	file := &fstest.MapFile{Data: []byte("SELECT 1;")}
	for _, tc := range []struct {
		name    string
		fsys    fstest.MapFS
		want    []int
		wantErr bool
	}{
		{"ordered by version", fstest.MapFS{"migrations/0010_b.sql": file, "migrations/0002_a.sql": file}, []int{2, 10}, false},
		{"no version", fstest.MapFS{"migrations/init.sql": file}, nil, true},
		{"zero version", fstest.MapFS{"migrations/0000_init.sql": file}, nil, true},
		{"duplicate version", fstest.MapFS{"migrations/0001_a.sql": file, "migrations/1_b.sql": file}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := loadMigrations(tc.fsys)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			var got []int
			for _, m := range ms {
				got = append(got, m.Version)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("versions %v, want %v", got, tc.want)
			}
		})
	}
	ms, err := loadMigrations(migrationFS)
	if err != nil || len(ms) == 0 || ms[0].Version != 1 {
		t.Fatalf("embedded migrations: %v, %v", ms, err)
	}
}

// TestStoreSurvivesServerRestart: while the server is down, calls return
// errors (not panics) and Ping fails; once it is back, the same Store works
// again without being reopened.
func TestStoreSurvivesServerRestart(t *testing.T) {
	srv := pgtest.Start(t)
	s := openDSN(t, srv.NewDatabase(t))
	ctx := t.Context()
	u := storage.User{ID: "before", CreatedAt: time.Now()}
	if err := s.CreateUser(ctx, u, storage.Identity{ConnectorID: "wechat", Subject: "o1"}); err != nil {
		t.Fatal(err)
	}

	srv.Stop(t)
	down, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.Ping(down); err == nil {
		t.Fatal("Ping succeeded with the server down")
	}
	if _, err := s.GetUser(down, u.ID); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetUser with the server down: %v, want a connection error", err)
	}
	if err := s.ApplyTokenOps(down, storage.TokenOp{Type: storage.OpCreate, Record: storage.TokenRecord{
		Kind: storage.KindAccessToken, Signature: "sig", RequestID: "r"}}); err == nil {
		t.Fatal("ApplyTokenOps succeeded with the server down")
	}

	srv.Restart(t)
	// The pool's connections all died with the server; the first calls
	// must not fail on them.
	got, err := s.GetUser(ctx, u.ID)
	if err != nil || got.ID != u.ID {
		t.Fatalf("GetUser after restart: %+v, %v", got, err)
	}
	if err := s.BindIdentity(ctx, storage.Identity{ConnectorID: "qq", Subject: "q1", UserID: u.ID}); err != nil {
		t.Fatalf("BindIdentity after restart: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping after restart: %v", err)
	}
}

// TestFirstCallsAfterQuickRestartSucceed: connections that were busy a
// moment before the server restarted (too recently used for the pool to
// ping them) do not fail the first reads and writes after it.
func TestFirstCallsAfterQuickRestartSucceed(t *testing.T) {
	srv := pgtest.Start(t)
	s := openDSN(t, srv.NewDatabase(t))
	ctx := t.Context()
	// Fill the pool with several open connections.
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.CreateSession(ctx, storage.Session{ID: fmt.Sprintf("s%d", i), UserID: "u"}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	for round := range 2 {
		srv.Restart(t)
		if _, err := s.GetSession(ctx, "s0"); err != nil {
			t.Fatalf("round %d: GetSession after restart: %v", round, err)
		}
		if err := s.CreateSession(ctx, storage.Session{ID: fmt.Sprintf("after%d", round), UserID: "u"}); err != nil {
			t.Fatalf("round %d: CreateSession after restart: %v", round, err)
		}
	}
}

// TestPoolExhaustionQueues: more concurrent calls than connections wait
// for a connection instead of failing.
func TestPoolExhaustionQueues(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t) + "&pool_max_conns=2"
	s := openDSN(t, dsn)
	if got := s.pool.Config().MaxConns; got != 2 {
		t.Fatalf("MaxConns = %d, want 2 from the DSN", got)
	}
	const callers = 40
	errs := make(chan error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := storage.User{ID: fmt.Sprintf("u%02d", i)}
			errs <- s.CreateUser(t.Context(), u, storage.Identity{ConnectorID: "weibo", Subject: u.ID})
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, limit := range []int{100, 0, -1} { // 0 or less: no limit
		us, err := s.ListUsers(t.Context(), "", limit)
		if err != nil || len(us) != callers {
			t.Fatalf("ListUsers(limit %d): %d users, %v; want %d", limit, len(us), err, callers)
		}
	}
}

func TestDefaultPoolSize(t *testing.T) {
	s := openStore(t)
	if got := s.pool.Config().MaxConns; got != defaultMaxConns {
		t.Fatalf("MaxConns = %d, want %d", got, defaultMaxConns)
	}
}

// TestApplyTokenOpsReportsFailingOp: the error names the op that failed,
// and the ops before it are rolled back.
func TestApplyTokenOpsReportsFailingOp(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	rec := func(sig string) storage.TokenRecord {
		return storage.TokenRecord{Kind: storage.KindRefreshToken, Signature: sig, RequestID: "req", Active: true}
	}
	if err := s.ApplyTokenOps(ctx, storage.TokenOp{Type: storage.OpCreate, Record: rec("a")}); err != nil {
		t.Fatal(err)
	}
	err := s.ApplyTokenOps(ctx,
		storage.TokenOp{Type: storage.OpCreate, Record: rec("b")},
		storage.TokenOp{Type: storage.OpDeactivate, Kind: storage.KindRefreshToken, Signature: "a"},
		storage.TokenOp{Type: storage.OpDeactivate, Kind: storage.KindRefreshToken, Signature: "missing"},
	)
	if !errors.Is(err, storage.ErrNotFound) || !strings.Contains(err.Error(), "op 2") {
		t.Fatalf("got %v, want ErrNotFound naming op 2", err)
	}
	if _, err := s.GetToken(ctx, storage.KindRefreshToken, "b"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("token b of the failed batch: %v, want ErrNotFound", err)
	}
	if got, err := s.GetToken(ctx, storage.KindRefreshToken, "a"); err != nil || !got.Active {
		t.Fatalf("token a after the failed batch: %+v, %v; want active", got, err)
	}
	if err := s.ApplyTokenOps(ctx, storage.TokenOp{Type: 99}); err == nil {
		t.Fatal("unknown op type accepted")
	}
}

// TestUnbindIdentityUnderContention: users with several identities, each
// unbound by concurrent callers from different connectors, always keep
// exactly one.
func TestUnbindIdentityUnderContention(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	connectors := []string{"wechat", "qq", "weibo", "wechat_mp", "mini"}
	for round := range 5 {
		uid := fmt.Sprintf("user-%d", round)
		if err := s.CreateUser(ctx, storage.User{ID: uid}, storage.Identity{ConnectorID: connectors[0], Subject: uid}); err != nil {
			t.Fatal(err)
		}
		for _, c := range connectors[1:] {
			if err := s.BindIdentity(ctx, storage.Identity{ConnectorID: c, Subject: uid, UserID: uid}); err != nil {
				t.Fatal(err)
			}
		}
		var wg sync.WaitGroup
		errs := make([]error, len(connectors))
		for i, c := range connectors {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = s.UnbindIdentity(ctx, uid, c)
			}()
		}
		wg.Wait()
		last := 0
		for _, err := range errs {
			switch {
			case errors.Is(err, storage.ErrLastIdentity):
				last++
			case err != nil:
				t.Fatalf("unbind: %v", err)
			}
		}
		ids, err := s.ListIdentities(ctx, uid)
		if err != nil || len(ids) != 1 || last != 1 {
			t.Fatalf("round %d: %d identities left, %d ErrLastIdentity (%v); want 1 and 1", round, len(ids), last, err)
		}
	}
}

// TestTimesComeBackUTCToTheMillisecond: times are kept to the millisecond,
// as the SQLite store keeps them, and come back in UTC.
func TestTimesComeBackUTCToTheMillisecond(t *testing.T) {
	s := openStore(t)
	at := time.Date(2025, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CST", 8*3600))
	if err := s.CreateSession(t.Context(), storage.Session{ID: "s", AuthTime: at}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetSession(t.Context(), "s")
	if err != nil {
		t.Fatal(err)
	}
	if want := at.Truncate(time.Millisecond).UTC(); got.AuthTime != want {
		t.Fatalf("AuthTime = %v, want %v", got.AuthTime, want)
	}
	if !got.ExpiresAt.IsZero() {
		t.Fatalf("zero ExpiresAt came back as %v", got.ExpiresAt)
	}
}

// TestReplicasRaceOnOneDatabase: two Stores on one database (two
// replicas) racing for the same refresh token, pending login and lease
// each get exactly one winner.
func TestReplicasRaceOnOneDatabase(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	replicas := []*Store{openDSN(t, dsn), openDSN(t, dsn)}
	ctx := t.Context()
	const racers = 12

	// race runs f(i) on replica i%2 for every racer and counts the
	// successes; every failure must be want.
	race := func(t *testing.T, want error, f func(s *Store, i int) error) int {
		t.Helper()
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				errs[i] = f(replicas[i%2], i)
			}()
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, want):
				t.Errorf("racer %d: %v, want %v", i, err, want)
			}
		}
		return wins
	}

	t.Run("RefreshRotation", func(t *testing.T) {
		old := storage.TokenRecord{Kind: storage.KindRefreshToken, Signature: "old", RequestID: "req", Active: true}
		if err := replicas[0].ApplyTokenOps(ctx, storage.TokenOp{Type: storage.OpCreate, Record: old}); err != nil {
			t.Fatal(err)
		}
		wins := race(t, storage.ErrConflict, func(s *Store, i int) error {
			return s.ApplyTokenOps(ctx,
				storage.TokenOp{Type: storage.OpDeactivate, Kind: old.Kind, Signature: old.Signature},
				storage.TokenOp{Type: storage.OpCreate, Record: storage.TokenRecord{
					Kind: storage.KindRefreshToken, Signature: fmt.Sprintf("new-%d", i), RequestID: "req", Active: true}},
			)
		})
		if wins != 1 {
			t.Fatalf("%d rotations succeeded, want 1", wins)
		}
	})
	t.Run("TakeLogin", func(t *testing.T) {
		if err := replicas[1].CreateLogin(ctx, storage.PendingLogin{State: "st", ConnectorID: "qq",
			ExpiresAt: time.Now().Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		wins := race(t, storage.ErrNotFound, func(s *Store, _ int) error {
			_, err := s.TakeLogin(ctx, "st")
			return err
		})
		if wins != 1 {
			t.Fatalf("%d takers got the login, want 1", wins)
		}
	})
	t.Run("Lease", func(t *testing.T) {
		errNotHeld := errors.New("lease held by another")
		wins := race(t, errNotHeld, func(s *Store, i int) error {
			ok, err := s.AcquireLease(ctx, "gc", fmt.Sprintf("holder-%d", i), time.Minute)
			if err == nil && !ok {
				err = errNotHeld
			}
			return err
		})
		if wins != 1 {
			t.Fatalf("%d holders got the lease, want 1", wins)
		}
	})
}
