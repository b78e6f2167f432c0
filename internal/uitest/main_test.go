package uitest

import (
	"os"
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
