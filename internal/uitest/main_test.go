package uitest

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/qiaoidp/qiao/internal/browsertest"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// TestMain shares one Chromium among the tests (each gets a browser
// context of its own) and removes the qiao binary qiaotest built for the
// demo tests.
func TestMain(m *testing.M) { os.Exit(qiaotest.Main(withBrowser{m})) }

// withBrowser runs the tests with the shared Chromium.
type withBrowser struct{ m *testing.M }

func (r withBrowser) Run() int { return browsertest.Main(r.m) }

// moduleRoot is the module's directory, two levels above this package.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
