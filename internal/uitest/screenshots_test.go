package uitest

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"

	"github.com/qiaoidp/qiao/internal/browsertest"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// maxScreenshot bounds the size of a README screenshot.
const maxScreenshot = 150 << 10

// TestScreenshots takes the README's pictures in the running demo: the
// broker's chooser on a desktop, the account page on a phone with two
// bound accounts, and the example app after a login. They go to the
// directory $QIAO_SCREENSHOTS names (relative to the module root), else
// to the test's artifact directory. The README's are refreshed with
//
//	QIAO_SCREENSHOTS=docs/screenshots go test -count=1 -run TestScreenshots ./internal/uitest/
func TestScreenshots(t *testing.T) {
	t.Parallel()
	dir := os.Getenv("QIAO_SCREENSHOTS")
	switch {
	case dir == "":
		dir = browsertest.ArtifactDir(t)
	case !filepath.IsAbs(dir):
		dir = filepath.Join(qiaotest.ModuleRoot(t), dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d := startDemo(t)
	ctx := browsertest.New(t, browsertest.WithTimeout(60*time.Second))

	// A desktop browser: the example app sends it to the broker's
	// chooser, WeChat's QR-code login signs alice in.
	do(t, ctx, "opening the example app", browsertest.Emulate(browsertest.Desktop, "en"), chromedp.Navigate(d.appURL+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-login=""]`)))
	click(t, ctx, `[data-login=""]`, `[data-connector-id]`)
	if got := attrs(t, ctx, "data-connector-id"); !slices.Equal(got, []string{"wechat", "wechat_miniprogram", "qq", "weibo"}) {
		t.Errorf("the chooser lists %q, want wechat, the mini-program's scan login, qq and weibo", got)
	}
	shoot(t, ctx, dir, "chooser", browsertest.Desktop)
	click(t, ctx, `[data-connector-id="wechat"]`, `[data-person="alice"]`)
	click(t, ctx, `[data-person="alice"]`, `[data-claim="sub"]`)
	if idp := claim(t, ctx, "idp"); idp != "wechat" {
		t.Errorf("the example app shows idp %q, want wechat", idp)
	}
	shoot(t, ctx, dir, "example-app", browsertest.Desktop)

	// A phone: bob signs in to his account page with QQ and binds his
	// Weibo.
	phone := browsertest.Phone
	phone.Scale = 2 // sharp enough, and half the bytes of 3×
	tab := browsertest.NewProfile(t, ctx)
	do(t, tab, "opening the account page", browsertest.Emulate(phone, "en"), chromedp.Navigate(d.issuer+"/account"), chromedp.WaitVisible(chromedp.CSS(`[data-connector-id="qq"]`)))
	click(t, tab, `[data-connector-id="qq"]`, `[data-person="bob"]`)
	click(t, tab, `[data-person="bob"]`, `[data-user-id]`)
	if st, er := bind(t, tab, "weibo", "bob"); st != "bound_ok" || er != "" {
		t.Fatalf("binding Weibo: status %q, error %q; want bound_ok", st, er)
	}
	if got := readAccount(t, tab); !slices.Equal(got.identities, []string{"qq", "weibo"}) {
		t.Errorf("bob's account page shows %q, want qq and weibo", got.identities)
	}
	shoot(t, tab, dir, "account-phone", phone)
}

// shoot saves what the tab's viewport shows as dir/name.png, recompressed
// (an opaque image is written as RGB, at the best compression), and
// checks that it is a PNG of the size wanted and not too big.
func shoot(t *testing.T, ctx context.Context, dir, name string, dev device.Info) {
	t.Helper()
	raw, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	img, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	w, h := int(float64(dev.Width)*dev.Scale), int(float64(dev.Height)*dev.Scale)
	if got := img.Bounds().Size(); got.X != w || got.Y != h {
		t.Errorf("screenshot %s is %v px, want %dx%d", name, got, w, h)
	}
	var buf bytes.Buffer
	enc := png.Encoder{CompressionLevel: png.BestCompression}
	if err := enc.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	if buf.Len() > maxScreenshot {
		t.Errorf("screenshot %s has %d KiB, want at most %d", name, buf.Len()>>10, maxScreenshot>>10)
	}
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d KiB)", p, buf.Len()>>10)
}
