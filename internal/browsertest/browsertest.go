// Package browsertest runs headless Chromium for tests: one browser
// process per test binary with a fresh browser context (its own cookies
// and storage) and tab per test, device emulation (phone, desktop, the
// WeChat browser) and screenshots saved as test artifacts.
//
// A package shares one browser among its tests with Main in TestMain;
// its tests may then run in parallel, each in its own browser context:
//
//	func TestMain(m *testing.M) { os.Exit(browsertest.Main(m)) }
//
// A test gets a chromedp context with New and drives it with chromedp:
//
//	ctx := browsertest.New(t)
//	err := chromedp.Do(ctx, browsertest.Emulate(browsertest.Phone, "en"), chromedp.Navigate(u))
//
// Every action on that context runs under the test's deadline (Timeout
// by default). Without Main, New starts a browser for the test alone.
// Without Chromium the test is skipped, or fails when the environment
// variable CI is set.
//
// Screenshots go to $QIAO_ARTIFACTS/<test name>/ when that is set, else
// to the test's temporary directory; a failed test's last screenshot is
// kept in a directory of its own under the system's temporary directory
// and its path logged. Nothing is written into the source tree.
package browsertest

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"
	"github.com/qiaoidp/qiao/internal/syncbuf"
)

// Timeout is how long one test may drive its browser, unless WithTimeout
// says otherwise. It is the budget of a test that has the machine to
// itself: New multiplies it by the number of tests that may run at once
// (go test's -parallel, GOMAXPROCS by default), since that many share the
// machine, and by 2, since `go test ./...` runs another package's tests at
// the same time. The deadline only stops a hung test early; -timeout
// bounds the whole run.
const Timeout = 20 * time.Second

// startTimeout bounds the start of Chromium itself.
const startTimeout = 30 * time.Second

// ExecPath is where Debian's chromium package puts the browser.
const ExecPath = "/usr/bin/chromium"

// Devices the tests emulate. Phone and WeChat are 390×844 CSS pixels at 3×
// with touch; Desktop is a 1280×800 window.
var (
	Phone = device.Info{
		Name:      "phone",
		UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
		Width:     390, Height: 844, Scale: 3, Mobile: true, Touch: true,
	}
	// WeChat is the WeChat in-app browser on an iPhone: its User-Agent
	// carries MicroMessenger.
	WeChat = device.Info{
		Name:      "wechat",
		UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2f) NetType/WIFI Language/zh_CN",
		Width:     390, Height: 844, Scale: 3, Mobile: true, Touch: true,
	}
	Desktop = device.Info{
		Name:      "desktop",
		UserAgent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
		Width:     1280, Height: 800, Scale: 1,
	}
)

// Emulate makes the tab look like the device: viewport, scale, touch and
// User-Agent. lang is the Accept-Language to send, such as "en" or
// "zh-CN,zh;q=0.9"; "" keeps Chromium's own. The emulation lasts as long
// as the tab.
func Emulate(d device.Info, lang string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: d.UserAgent, AcceptLanguage: lang}); err != nil {
			return fmt.Errorf("emulating %s: %w", d.Name, err)
		}
		if _, err := cdp.Call(ctx, t, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width: d.Width, Height: d.Height, DeviceScaleFactor: d.Scale, Mobile: d.Mobile,
			ScreenOrientation: &emulation.ScreenOrientation{Type: emulation.ScreenOrientationTypePortraitPrimary},
		}); err != nil {
			return fmt.Errorf("emulating %s: %w", d.Name, err)
		}
		if _, err := cdp.Call(ctx, t, emulation.SetTouchEmulationEnabled, emulation.SetTouchEmulationEnabledParams{Enabled: d.Touch}); err != nil {
			return fmt.Errorf("emulating %s: %w", d.Name, err)
		}
		return nil
	})
}

// Option changes how New starts the browser.
type Option func(*options)

type options struct {
	timeout time.Duration
}

// WithTimeout sets the test's budget in place of Timeout; New multiplies
// it in the same way and counts it from its own call.
func WithTimeout(d time.Duration) Option {
	return func(o *options) { o.timeout = d }
}

// FindChromium returns the path of the Chromium binary: $QIAO_CHROMIUM
// if set, else ExecPath, or chromium (or chromium-browser) on PATH.
func FindChromium() (string, error) {
	if p := os.Getenv("QIAO_CHROMIUM"); p != "" {
		if fi, err := os.Stat(p); err != nil || fi.IsDir() {
			return "", fmt.Errorf("QIAO_CHROMIUM=%s is not a program", p)
		}
		return p, nil
	}
	if fi, err := os.Stat(ExecPath); err == nil && !fi.IsDir() {
		return ExecPath, nil
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("chromium not found at " + ExecPath + " or on PATH")
}

// requireChromium returns Chromium's path, or ends the test: a skip on a
// developer's machine, a failure in CI.
func requireChromium(t testing.TB) string {
	t.Helper()
	p, err := FindChromium()
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("browser tests need Chromium: %v; install it with `apt-get install -y chromium` (Debian/Ubuntu)", err)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// shared is the browser that Main starts for the whole test binary. It is
// set once, by Main, before any test runs; the browser itself starts on
// the first call of New.
var shared *browser

// browser is one Chromium process and the context of its first tab.
type browser struct {
	once sync.Once
	ctx  context.Context // the first tab; new tabs are made from it
	stop func()
	out  *syncbuf.Buffer // the browser's output, for an error message
	err  error
}

// Main runs the tests of a package with one Chromium for all of them, and
// stops it when they are done. Call it from TestMain. Each test still gets
// a browser context of its own from New, so tests may call t.Parallel.
func Main(m *testing.M) int {
	shared = &browser{}
	code := m.Run()
	shared.close()
	return code
}

// start launches Chromium with a fresh user data directory and waits for
// its first tab. The process lives until stop is called.
func (b *browser) start(execPath string) error {
	b.out = &syncbuf.Buffer{Max: 64 << 10}
	dir, err := os.MkdirTemp("", "qiao-chromium-")
	if err != nil {
		return err
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(execPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(dir),
		chromedp.CombinedOutput(b.out),
	)
	// The browser's own log goes with its output, shown when it fails.
	tabCtx, cancelTab := chromedp.NewContext(allocCtx, chromedp.WithLogf(func(format string, args ...any) {
		fmt.Fprintf(b.out, format+"\n", args...)
	}))
	b.stop = func() {
		cancelTab()
		cancelAlloc()
		_ = os.RemoveAll(dir)
	}
	// The first Run starts the browser, which lives as long as that Run's
	// context: it gets no deadline, so a timer bounds the start instead.
	timer := time.AfterFunc(startTimeout, cancelTab)
	err = chromedp.Do(tabCtx)
	stopped := timer.Stop()
	if err != nil {
		b.stop()
		if !stopped {
			err = fmt.Errorf("no answer within %v: %w", startTimeout, err)
		}
		return fmt.Errorf("starting Chromium (%s): %w\n%s", execPath, err, b.out.String())
	}
	b.ctx = tabCtx
	return nil
}

func (b *browser) close() {
	if b.stop != nil {
		b.stop()
	}
}

// New returns the context of a new tab in a new browser context (no
// cookies, no storage) for the test. With Main the tab is in the test
// binary's one browser, else in a browser started for this test. Every
// chromedp action on the context (and on contexts made from it) must
// finish before the test's deadline. The tab closes when the test ends;
// if the test failed, a screenshot of it is saved first.
func New(t testing.TB, opts ...Option) context.Context {
	t.Helper()
	o := options{timeout: Timeout}
	for _, f := range opts {
		f(&o)
	}
	execPath := requireChromium(t)
	b := shared
	if b == nil {
		// No Main: a browser for this test alone.
		b = &browser{}
		b.err = b.start(execPath)
		t.Cleanup(b.close)
	} else {
		b.once.Do(func() { b.err = b.start(execPath) })
	}
	if b.err != nil {
		t.Fatal(b.err)
	}

	tabCtx, cancelTab := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	// Opening the tab is bounded like the start: tabCtx must carry no
	// deadline, since the tab lives as long as it.
	timer := time.AfterFunc(startTimeout, cancelTab)
	err := chromedp.Do(tabCtx)
	stopped := timer.Stop()
	if err != nil {
		cancelTab()
		if !stopped {
			err = fmt.Errorf("no answer within %v: %w", startTimeout, err)
		}
		t.Fatalf("opening a tab in Chromium: %v\n%s", err, b.out.String())
	}

	ctx, cancel := context.WithTimeout(tabCtx, o.timeout*time.Duration(2*parallelism()))
	t.Cleanup(func() {
		if t.Failed() {
			// The test's deadline may be over: take the picture on
			// the tab's own context, briefly.
			sctx, scancel := context.WithTimeout(tabCtx, 5*time.Second)
			if _, err := saveScreenshot(t, sctx, failureDir(t), "failure"); err != nil {
				t.Logf("screenshot of the failed test: %v", err)
			}
			scancel()
		}
		cancel()
		cancelTab()
	})
	return ctx
}

// parallelism is how many tests may run at once: the value of go test's
// -parallel flag, which defaults to GOMAXPROCS.
func parallelism() int {
	if f := flag.Lookup("test.parallel"); f != nil {
		if n, err := strconv.Atoi(f.Value.String()); err == nil && n > 0 {
			return n
		}
	}
	return max(1, runtime.GOMAXPROCS(0))
}

// NewProfile opens a tab in a fresh browser context of ctx's browser: its
// own cookies and storage, as another person on another device would
// have. It closes when the test ends.
func NewProfile(t testing.TB, ctx context.Context) context.Context {
	t.Helper()
	pctx, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	if err := chromedp.Do(pctx); err != nil {
		t.Fatalf("opening a new browser context: %v", err)
	}
	return pctx
}

// ArtifactDir is where the test's screenshots go: $QIAO_ARTIFACTS/<test
// name> when QIAO_ARTIFACTS is set, else the test's temporary directory.
// It is never in the source tree unless QIAO_ARTIFACTS says so.
func ArtifactDir(t testing.TB) string {
	if d := os.Getenv("QIAO_ARTIFACTS"); d != "" {
		return filepath.Join(d, safeName(t.Name()))
	}
	return t.TempDir()
}

// failureDir is where the screenshot of a failed test goes: like
// artifactDir under $QIAO_ARTIFACTS, else a directory of its own under
// the system's temporary directory that outlives the test, so that the
// logged path can be opened.
func failureDir(t testing.TB) string {
	if os.Getenv("QIAO_ARTIFACTS") != "" {
		return ArtifactDir(t)
	}
	d, err := os.MkdirTemp("", "qiao-failure-"+safeName(t.Name())+"-")
	if err != nil {
		return t.TempDir()
	}
	return d
}

// Screenshot saves a PNG of the whole page in ctx's tab as <name>.png in
// the test's artifact directory ($QIAO_ARTIFACTS/<test name>, or the
// test's temporary directory), logs the path and returns it. A failure to
// take or save it fails the test.
func Screenshot(t testing.TB, ctx context.Context, name string) string {
	t.Helper()
	p, err := saveScreenshot(t, ctx, ArtifactDir(t), name)
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	return p
}

func saveScreenshot(t testing.TB, ctx context.Context, dir, name string) (string, error) {
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return "", err
	}
	if len(png) < 8 || !bytes.Equal(png[:8], []byte("\x89PNG\r\n\x1a\n")) {
		return "", errors.New("the browser did not answer with a PNG")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, safeName(name)+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		return "", err
	}
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	t.Logf("screenshot: %s", p)
	return p, nil
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// safeName turns a test or shot name into one path element.
func safeName(s string) string {
	s = unsafeChars.ReplaceAllString(s, "_")
	if s == "" || s == "." || s == ".." {
		return "_"
	}
	return s
}
