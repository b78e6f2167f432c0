package replicas

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/qiaoidp/qiao/internal/pgtest"
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if qiaoBinary.dir != "" {
		_ = os.RemoveAll(qiaoBinary.dir)
	}
	os.Exit(code)
}

// repoRoot is the module root, two levels above this package.
func repoRoot(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatal("cannot locate the test source")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// binary builds cmd/qiao once per test binary run.
type binary struct {
	once sync.Once
	dir  string
	path string
	err  error
	out  []byte
}

var qiaoBinary binary

// qiao returns the path of a freshly built qiao binary.
func (b *binary) qiao(tb testing.TB) string {
	tb.Helper()
	b.once.Do(func() {
		b.dir, b.err = os.MkdirTemp("", "qiao-bin-")
		if b.err != nil {
			return
		}
		b.path = filepath.Join(b.dir, "qiao")
		cmd := exec.Command("go", "build", "-o", b.path, "./cmd/qiao")
		cmd.Dir = repoRoot(tb)
		b.out, b.err = cmd.CombinedOutput()
	})
	if b.err != nil {
		tb.Fatalf("go build ./cmd/qiao: %v\n%s", b.err, b.out)
	}
	return b.path
}
