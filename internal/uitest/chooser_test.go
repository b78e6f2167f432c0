package uitest

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"

	"github.com/qiaoidp/qiao/internal/browsertest"
)

func TestChooserListsTheWebConnectorsOfTheClientForTheBrowser(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := browsertest.New(t)
	for _, tc := range []struct {
		name   string
		dev    device.Info
		client string
		want   []string
	}{
		{"desktop browser", browsertest.Desktop, webClientID, []string{"wechat", "qq", "weibo"}},
		// Issue 11: a phone cannot scan its own screen: no QR code there.
		{"phone browser", browsertest.Phone, webClientID, []string{"qq", "weibo"}},
		{"WeChat browser offers the Official Account login", browsertest.WeChat, webClientID, []string{"wechat_mp", "qq", "weibo"}},
		{"client limited to QQ, Weibo and the mini-program", browsertest.Desktop, limitedClientID, []string{"qq", "weibo"}},
		{"client limited to QQ, Weibo and the mini-program, in WeChat", browsertest.WeChat, limitedClientID, []string{"qq", "weibo"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := e.authRequest(tc.client)
			do(t, ctx, "opening the chooser", browsertest.Emulate(tc.dev, "en"), chromedp.Navigate(a.URL), chromedp.WaitVisible(chromedp.CSS("[data-connector-id]")))
			got := attrs(t, ctx, "data-connector-id")
			if !slices.Equal(got, tc.want) {
				t.Errorf("data-connector-id = %q, want %q", got, tc.want)
			}
			visible := eval[int](t, ctx, `Array.from(document.querySelectorAll('[data-connector-id]')).filter(e => e.getBoundingClientRect().width > 0 && e.getClientRects().length > 0).length`)
			if visible != len(tc.want) {
				t.Errorf("%d of %d provider links are visible", visible, len(tc.want))
			}
			note := eval[string](t, ctx, `(document.querySelector('[data-note]') || {textContent: ''}).textContent`)
			if tc.dev.UserAgent == browsertest.Phone.UserAgent && !strings.Contains(note, "open this page in WeChat") {
				t.Errorf("on a phone the chooser's note is %q, want it to say to open this page in WeChat", note)
			} else if tc.dev.UserAgent != browsertest.Phone.UserAgent && note != "" {
				t.Errorf("unexpected note %q", note)
			}
			browsertest.Screenshot(t, ctx, "chooser")
		})
	}
}

func TestChooserIsSkippedForAClientWithOneWebConnector(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := browsertest.New(t)
	a := e.authRequest(singleClientID)
	do(t, ctx, "authorizing", browsertest.Emulate(browsertest.Desktop, "en"), chromedp.Navigate(a.URL), chromedp.WaitVisible(chromedp.CSS(`[data-person="alice"]`)))
	if at := location(t, ctx); !strings.HasPrefix(at, e.QQURL+"/oauth2.0/authorize?") {
		t.Fatalf("the browser is at %s, want QQ's authorize page", at)
	}
}

func TestChooserLoginReturnsACodeToTheClient(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := browsertest.New(t, browsertest.WithTimeout(40*time.Second))
	for _, tc := range []struct {
		name        string
		dev         device.Info
		connector   string
		providerURL string
		wantDisplay string // QQ's display parameter
	}{
		{"QQ on a desktop", browsertest.Desktop, "qq", e.QQURL + "/oauth2.0/authorize", ""},
		{"QQ on a phone gets the mobile page", browsertest.Phone, "qq", e.QQURL + "/oauth2.0/authorize", "mobile"},
		{"Weibo", browsertest.Desktop, "weibo", e.WeiboURL + "/oauth2/authorize", ""},
		{"WeChat QR code on a desktop", browsertest.Desktop, "wechat", e.WeChatURL + "/connect/qrconnect", ""},
		{"WeChat Official Account in the WeChat browser", browsertest.WeChat, "wechat_mp", e.WeChatURL + "/connect/oauth2/authorize", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Each login in a fresh profile, so that no SSO session skips
			// the provider.
			tab := browsertest.NewProfile(t, ctx)
			a := e.authRequest(webClientID)
			do(t, tab, "opening the chooser", browsertest.Emulate(tc.dev, "zh-CN"), chromedp.Navigate(a.URL))
			click(t, tab, `[data-connector-id="`+tc.connector+`"]`, `[data-person="alice"]`)
			at := location(t, tab)
			if !strings.HasPrefix(at, tc.providerURL+"?") {
				t.Fatalf("the chooser link led to %s, want the provider's page %s", at, tc.providerURL)
			}
			u, _ := url.Parse(at)
			if got := u.Query().Get("display"); tc.connector == "qq" && got != tc.wantDisplay {
				t.Errorf("QQ display = %q, want %q", got, tc.wantDisplay)
			}
			browsertest.Screenshot(t, tab, "provider")
			click(t, tab, `[data-person="alice"]`, `[data-rp-callback]`)
			if at := location(t, tab); !strings.HasPrefix(at, e.rp.url+"/callback?") {
				t.Fatalf("after the provider the browser is at %s, want the client's redirect URI", at)
			}
			code := eval[string](t, tab, `document.querySelector('[data-rp-callback]').dataset.code`)
			if code == "" || code != e.rp.last(t).Get("code") {
				t.Fatalf("the client page shows code %q; the client got %q", code, e.rp.last(t).Get("code"))
			}
			claims := e.redeem(a)
			if claims["idp"] != tc.connector {
				t.Errorf("idp = %v, want %s", claims["idp"], tc.connector)
			}
			if sub, _ := claims["sub"].(string); sub == "" {
				t.Errorf("no sub in %v", claims)
			}
		})
	}
}

func TestChooserDenyAtTheProviderReturnsAccessDenied(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := browsertest.New(t)
	a := e.authRequest(webClientID)
	do(t, ctx, "opening the chooser", browsertest.Emulate(browsertest.Desktop, "en"), chromedp.Navigate(a.URL))
	click(t, ctx, `[data-connector-id="weibo"]`, `[data-deny]`)
	click(t, ctx, `[data-deny]`, `[data-rp-callback]`)
	q := e.rp.last(t)
	if q.Get("error") != "access_denied" || q.Get("state") != a.State || q.Get("code") != "" {
		t.Errorf("the client got %v, want error=access_denied with its state and no code", q)
	}
}
