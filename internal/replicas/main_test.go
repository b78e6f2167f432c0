package replicas

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/qiaoidp/qiao/internal/pgtest"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// TestMain shares one PostgreSQL cluster among the tests and removes the
// qiao binary qiaotest built.
func TestMain(m *testing.M) { os.Exit(qiaotest.Main(withPostgres{m})) }

// withPostgres runs the tests with the shared PostgreSQL cluster.
type withPostgres struct{ m *testing.M }

func (r withPostgres) Run() int { return pgtest.Main(r.m) }

// repoRoot is the module root, two levels above this package.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("cannot locate the test source")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}
