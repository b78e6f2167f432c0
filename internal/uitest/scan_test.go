package uitest

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/qiaoidp/qiao/internal/browsertest"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// scanLogin turns on the mini-program's scan login.
func scanLogin(t *testing.T) qiaotest.Option {
	return qiaotest.WithConfig(func(c *qiaotest.Config) {
		mini := c.Connector("wechat_mini")
		if mini == nil {
			t.Fatal("the UI configuration has no wechat_mini connector to turn the scan login on")
		}
		mini.Config["scan_login"] = map[string]any{"page": "pages/scan/index"}
	})
}

// TestScanLoginPageUpdatesItself: the computer's tab shows the code and,
// with no click or reload, follows the phone: "scanned" when the sandbox
// phone (another browser) scans, then signed in at the app when it
// confirms. A refusal turns the page to "refused" with a way back.
func TestScanLoginPageUpdatesItself(t *testing.T) {
	e := newEnv(t, scanLogin(t))
	if e.Config.Connector("wechat_mini").Config["scan_login"] == nil {
		t.Fatal("the scan option did not change the test configuration")
	}
	ctx := browsertest.New(t)
	phone := browsertest.NewProfile(t, ctx)

	for _, tc := range []struct {
		name    string
		confirm bool
	}{{"refused", false}, {"confirmed", true}} { // refused first: after confirm the session answers
		t.Run(tc.name, func(t *testing.T) {
			a := e.authRequest(limitedClientID)
			do(t, ctx, "opening the scan login", browsertest.Emulate(browsertest.Desktop, "en"),
				chromedp.Navigate(a.URL+"&connector_id=wechat_mini"),
				chromedp.WaitVisible(chromedp.CSS(`[data-scan][data-status="waiting"] img.scan-code`)))
			natural := eval[int](t, ctx, `document.querySelector('img.scan-code').naturalWidth`)
			if natural == 0 {
				t.Errorf("the code image does not load")
			}
			browsertest.Screenshot(t, ctx, "scan-waiting")
			at := location(t, ctx)

			// The phone scans as alice.
			do(t, phone, "scanning on the phone", browsertest.Emulate(browsertest.Phone, "en"),
				chromedp.Navigate(e.WeChatURL+"/sandbox/phone"),
				chromedp.WaitVisible(chromedp.CSS(`li:first-child [data-person="alice"]`)))
			click(t, phone, `li:first-child [data-person="alice"]`, "[data-phone-approve]")
			if got := eval[string](t, phone, `document.querySelector('[data-client-name]').textContent`); got != "QQ and Weibo" {
				t.Errorf("the phone approves a sign-in to %q, want the app's name", got)
			}
			do(t, ctx, "the page shows the scan by itself",
				chromedp.WaitVisible(chromedp.CSS(`[data-scan][data-status="scanned"]`)))
			if got := location(t, ctx); got != at {
				t.Errorf("the page moved to %s", got)
			}

			if tc.confirm {
				click(t, phone, "[data-phone-confirm]", `[data-phone-done="confirmed"]`)
				do(t, ctx, "the computer arrives at the app by itself",
					chromedp.WaitVisible(chromedp.CSS("[data-rp-callback]")))
				claims := e.redeem(a)
				if claims["idp"] != "wechat_mini" || claims["sub"] == "" {
					t.Errorf("claims %v, want a sign-in through wechat_mini", claims)
				}
				return
			}
			click(t, phone, "[data-phone-refuse]", `[data-phone-done="refused"]`)
			do(t, ctx, "the page shows the refusal by itself",
				chromedp.WaitVisible(chromedp.CSS(`[data-scan][data-status="refused"] [data-scan-back]`)))
			browsertest.Screenshot(t, ctx, "scan-refused")
			click(t, ctx, "[data-scan-back]", "[data-rp-callback]")
			if q := e.rp.last(t); q.Get("error") != "access_denied" || q.Get("state") != a.State {
				t.Errorf("back at the app with %v, want access_denied", q)
			}
		})
	}
}
