package uitest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/browsertest"
)

// TestMain shares one Chromium among the tests (each gets a browser
// context of its own) and removes the qiao binary at the end.
func TestMain(m *testing.M) {
	code := browsertest.Main(m)
	qiaoBinary.remove()
	os.Exit(code)
}

// moduleRoot is the module's directory, two levels above this package.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// binary is cmd/qiao, built once per test binary for the tests that run
// the demo.
type binary struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	out  []byte
}

var qiaoBinary binary

// path builds cmd/qiao on its first call and returns the binary's path;
// without the go command the test is skipped.
func (b *binary) path(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the demo test builds cmd/qiao and needs the go command on PATH")
	}
	b.once.Do(func() {
		if b.dir, b.err = os.MkdirTemp("", "qiao-uitest-"); b.err != nil {
			return
		}
		b.bin = filepath.Join(b.dir, "qiao")
		start := time.Now()
		build := exec.Command(goTool, "build", "-o", b.bin, "./cmd/qiao")
		build.Dir = moduleRoot()
		b.out, b.err = build.CombinedOutput()
		t.Logf("built cmd/qiao in %v", time.Since(start).Round(time.Millisecond))
	})
	if b.err != nil {
		t.Fatalf("building cmd/qiao: %v\n%s", b.err, b.out)
	}
	return b.bin
}

func (b *binary) remove() {
	if b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}
