package pgtest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func query(ctx context.Context, dsn string) (int, error) {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, "SELECT 41 + 1").Scan(&n)
	return n, err
}

func TestNewDatabaseIsUsableAndSeparate(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a, b := s.NewDatabase(t), s.NewDatabase(t)
	if a == b {
		t.Fatalf("two databases share the DSN %s", a)
	}
	conn, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}
	conn2, err := pgx.Connect(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close(ctx)
	if _, err := conn2.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatalf("table from database a visible in b: %v", err)
	}
	var fsync string
	if err := conn.QueryRow(ctx, "SHOW fsync").Scan(&fsync); err != nil || fsync != "off" {
		t.Fatalf("fsync = %q, %v; want off", fsync, err)
	}
	assertDroppedAfterItsTest(t, s)
}

// assertDroppedAfterItsTest checks that a database made in a sub-test is
// gone once the drops the sub-test's end started are done.
func assertDroppedAfterItsTest(t *testing.T, s *Server) {
	t.Helper()
	var dsn string
	t.Run("a database made by a test", func(t *testing.T) {
		dsn = s.NewDatabase(t)
		if _, err := query(t.Context(), dsn); err != nil {
			t.Fatal(err)
		}
	})
	s.drops.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	name := dsn[strings.LastIndex(dsn, "/")+1 : strings.Index(dsn, "?")]
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("database %s still exists after its test ended", name)
	}
}

func TestStopRefusesConnectionsAndRestartKeepsDataAndPort(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dsn := s.NewDatabase(t)
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (7)"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	port := s.Port()

	s.Stop(t)
	if _, err := query(ctx, dsn); err == nil {
		t.Fatal("query succeeded while the server is stopped")
	}
	s.Restart(t)
	if s.Port() != port {
		t.Fatalf("port changed from %d to %d", port, s.Port())
	}
	if n, err := query(ctx, dsn); err != nil || n != 42 {
		t.Fatalf("after restart: %d, %v", n, err)
	}
	conn, err = pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var x int
	if err := conn.QueryRow(ctx, "SELECT x FROM kept").Scan(&x); err != nil || x != 7 {
		t.Fatalf("data after restart: %d, %v", x, err)
	}
}

func TestSharedWithoutMainStartsOwnCluster(t *testing.T) {
	s := Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := query(ctx, s.DSN()); err != nil || n != 42 {
		t.Fatalf("%d, %v", n, err)
	}
}

// recorder notes whether unavailable skipped or failed, instead of doing it.
type recorder struct {
	testing.TB
	skipped, failed bool
}

func (r *recorder) Skipf(string, ...any)  { r.skipped = true }
func (r *recorder) Fatalf(string, ...any) { r.failed = true }

func TestMissingBinariesSkipLocallyAndFailInCI(t *testing.T) {
	t.Setenv("QIAO_PG_BINDIR", t.TempDir())
	_, err := startServer()
	if err == nil {
		t.Fatal("started a server from an empty QIAO_PG_BINDIR")
	}
	for _, tc := range []struct {
		ci              string
		skipped, failed bool
	}{
		{ci: "", skipped: true},
		{ci: "true", failed: true},
	} {
		t.Setenv("CI", tc.ci)
		r := &recorder{TB: t}
		unavailable(r, err)
		if r.skipped != tc.skipped || r.failed != tc.failed {
			t.Errorf("CI=%q: skipped=%v failed=%v, want skipped=%v failed=%v",
				tc.ci, r.skipped, r.failed, tc.skipped, tc.failed)
		}
	}
}

func TestTempRootAvoidsDirsThePostgresUserCannotReach(t *testing.T) {
	private, err := os.MkdirTemp("/tmp", "p") // short: t.TempDir() may be too deep
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(private) })
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", private)
	if got := tempRoot(false); got != private {
		t.Errorf("tempRoot(same user) = %q, want %q", got, private)
	}
	if got := tempRoot(true); got != "/tmp" {
		t.Errorf("tempRoot(other user) = %q, want /tmp", got)
	}
	t.Setenv("TMPDIR", "/"+strings.Repeat("d", 80))
	if got := tempRoot(false); got != "/tmp" {
		t.Errorf("tempRoot(deep dir) = %q, want /tmp", got)
	}
}
