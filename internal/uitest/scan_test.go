package uitest

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/qiaoidp/qiao/internal/browsertest"
)

// scanYAML turns on the mini-program's scan login.
var scanYAML = strings.Replace(configYAML,
	`client_secret: wechat-mini-secret, auth_base_url: "{{WECHAT}}", api_base_url: "{{WECHAT}}" }`,
	`client_secret: wechat-mini-secret, auth_base_url: "{{WECHAT}}", api_base_url: "{{WECHAT}}", scan_login: { page: pages/scan/index } }`, 1)

// TestScanLoginPageUpdatesItself: the computer's tab shows the code and,
// with no click or reload, follows the phone: "scanned" when the sandbox
// phone (another browser) scans, then signed in at the app when it
// confirms. A refusal turns the page to "refused" with a way back.
func TestScanLoginPageUpdatesItself(t *testing.T) {
	if scanYAML == configYAML {
		t.Fatal("the scan configuration did not change the test configuration")
	}
	e := newEnvYAML(t, scanYAML)
	ctx := browsertest.New(t)
	phone := browsertest.NewProfile(t, ctx)

	for _, tc := range []struct {
		name    string
		confirm bool
	}{{"refused", false}, {"confirmed", true}} { // refused first: after confirm the session answers
		t.Run(tc.name, func(t *testing.T) {
			a := e.authRequest(limitedClientID, "limited-secret-0123456789abcdef0123456789")
			do(t, ctx, "opening the scan login", browsertest.Emulate(browsertest.Desktop, "en"),
				chromedp.Navigate(a.url+"&connector_id=wechat_mini"),
				chromedp.WaitVisible(chromedp.CSS(`[data-scan][data-status="waiting"] img.scan-code`)))
			natural := eval[int](t, ctx, `document.querySelector('img.scan-code').naturalWidth`)
			if natural == 0 {
				t.Errorf("the code image does not load")
			}
			browsertest.Screenshot(t, ctx, "scan-waiting")
			at := location(t, ctx)

			// The phone scans as alice.
			do(t, phone, "scanning on the phone", browsertest.Emulate(browsertest.Phone, "en"),
				chromedp.Navigate(e.wechatURL+"/sandbox/phone"),
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
			if q := e.rp.last(t); q.Get("error") != "access_denied" || q.Get("state") != a.state {
				t.Errorf("back at the app with %v, want access_denied", q)
			}
		})
	}
}
