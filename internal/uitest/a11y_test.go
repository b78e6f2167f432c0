package uitest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/qiaoidp/qiao/internal/browsertest"
)

// axProblems lists the links and buttons of the page that have no
// accessible name, as Chromium's accessibility tree computes it.
func axProblems(t *testing.T, ctx context.Context) []string {
	t.Helper()
	nodes, err := chromedp.Run(ctx, func(ctx context.Context, tgt *chromedp.Target) ([]*accessibility.Node, error) {
		if _, err := cdp.Call(ctx, tgt, accessibility.Enable, cdp.Empty{}); err != nil {
			return nil, err
		}
		res, err := cdp.Call(ctx, tgt, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
		return res.Nodes, err
	})
	if err != nil {
		t.Fatalf("reading the accessibility tree: %v", err)
	}
	str := func(v *accessibility.Value) string {
		if v == nil || len(v.Value) == 0 {
			return ""
		}
		var s string
		if err := json.Unmarshal(v.Value, &s); err != nil {
			return ""
		}
		return strings.TrimSpace(s)
	}
	var problems []string
	controls := 0
	for _, n := range nodes {
		if n.Ignored {
			continue
		}
		switch role := str(n.Role); role {
		case "link", "button":
			controls++
			if str(n.Name) == "" {
				problems = append(problems, fmt.Sprintf("a %s (DOM node %d) has no accessible name", role, n.BackendDOMNodeID))
			}
		case "image", "img":
			if str(n.Name) == "" {
				problems = append(problems, fmt.Sprintf("an image (DOM node %d) is exposed without a name; give it alt text or alt=\"\"", n.BackendDOMNodeID))
			}
		}
	}
	if controls == 0 {
		problems = append(problems, "the accessibility tree has no link or button at all")
	}
	return problems
}

// domProblems checks what the DOM must have: lang on <html>, a title,
// one h1 in a main landmark, alt on every image, targets of at least
// 24×24 CSS pixels (WCAG 2.5.8), and text contrast of at least 4.5:1
// (3:1 for large text, WCAG 1.4.3).
const domChecks = `(() => {
	const problems = [];
	const de = document.documentElement;
	if (!/^(zh-CN|en)$/.test(de.lang)) problems.push('html lang is "' + de.lang + '"');
	if (!document.title.trim()) problems.push('the page has no title');
	if (document.querySelectorAll('main h1').length !== 1) problems.push('the page needs exactly one h1 in main');
	for (const img of document.querySelectorAll('img')) {
		if (!img.hasAttribute('alt')) problems.push('img ' + img.getAttribute('src') + ' has no alt');
	}
	for (const el of document.querySelectorAll('a[href], button')) {
		const r = el.getBoundingClientRect();
		if (r.width < 24 || r.height < 24) problems.push('target "' + el.textContent.trim() + '" is ' + Math.round(r.width) + 'x' + Math.round(r.height) + ' px');
	}
	const rgba = s => { const m = s.match(/[\d.]+/g).map(Number); return [m[0], m[1], m[2], m.length > 3 ? m[3] : 1]; };
	const lum = ([r, g, b]) => { const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : Math.pow((c + 0.055) / 1.055, 2.4); }; return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
	const background = el => {
		for (let e = el; e; e = e.parentElement) {
			const c = rgba(getComputedStyle(e).backgroundColor);
			if (c[3] > 0.5) return c;
		}
		return [255, 255, 255, 1];
	};
	const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
	const seen = new Set();
	for (let n = walker.nextNode(); n; n = walker.nextNode()) {
		const el = n.parentElement;
		if (!n.textContent.trim() || seen.has(el) || !el.getClientRects().length) continue;
		seen.add(el);
		const cs = getComputedStyle(el);
		const fg = rgba(cs.color), bg = background(el);
		const l1 = lum(fg), l2 = lum(bg);
		const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
		const size = parseFloat(cs.fontSize), bold = parseInt(cs.fontWeight, 10) >= 700;
		const need = (size >= 24 || (bold && size >= 18.66)) ? 3 : 4.5;
		if (ratio < need) problems.push('text "' + n.textContent.trim().slice(0, 30) + '" has contrast ' + ratio.toFixed(2) + ':1, needs ' + need + ':1');
	}
	return problems;
})()`

func checkPage(t *testing.T, ctx context.Context, page string) {
	t.Helper()
	for _, p := range append(axProblems(t, ctx), eval[[]string](t, ctx, domChecks)...) {
		t.Errorf("%s: %s", page, p)
	}
}

func TestPagesHaveAccessibleNamesAltTextLangAndContrast(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := browsertest.New(t, browsertest.WithTimeout(150*time.Second))
	signedIn := browsertest.NewProfile(t, ctx)
	do(t, signedIn, "emulating", browsertest.Emulate(browsertest.Desktop, "en"))
	e.signIn(t, signedIn, "qq", "alice")
	if st, er := bind(t, signedIn, "weibo", "alice"); st != "bound_ok" {
		t.Fatalf("binding: status %q, error %q", st, er)
	}
	chooser := e.authRequest(webClientID).URL
	for _, lang := range []string{"zh-CN", "en"} {
		for _, dev := range []struct {
			name string
			emu  chromedp.Action[chromedp.Void]
		}{{"phone", browsertest.Emulate(browsertest.Phone, lang)}, {"desktop", browsertest.Emulate(browsertest.Desktop, lang)}} {
			for _, pg := range []struct {
				name, url, wait string
				tab             context.Context
			}{
				{"chooser", chooser, "[data-connector-id]", ctx},
				{"account page signed out", e.Issuer + "/account", "[data-connector-id]", ctx},
				{"account page signed in", e.Issuer + "/account", "[data-user-id]", signedIn},
				{"error page", e.Issuer + "/auth?client_id=nobody", "main h1", ctx},
				{"signed-out page", e.Issuer + "/logout", "main h1", ctx},
				{"callback without its cookie", e.Issuer + "/callback/qq?code=x&state=" + strings.Repeat("A", 32), "[data-link]", ctx},
				{"unbind confirmation", e.Issuer + "/account/unbind/confirm?connector_id=weibo", "[data-confirm-unbind]", signedIn},
				{"account page from an app", e.Issuer + "/account?client_id=" + webClientID, `[data-link="back"]`, signedIn},
			} {
				name := pg.name + " (" + dev.name + ", " + lang + ")"
				do(t, pg.tab, "opening the "+name, dev.emu, chromedp.Navigate(pg.url), chromedp.WaitVisible(chromedp.CSS(pg.wait)))
				if got := eval[string](t, pg.tab, `document.documentElement.lang`); got != lang {
					t.Errorf("%s: html lang = %q, want %q", name, got, lang)
				}
				checkPage(t, pg.tab, name)
				browsertest.Screenshot(t, pg.tab, pg.name+"-"+dev.name+"-"+lang)
			}
		}
	}
}

func TestLanguageSwitchGoesBothWaysAndKeepsTheRequest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := browsertest.New(t)
	a := e.authRequest(webClientID)
	do(t, ctx, "opening the chooser in Chinese", browsertest.Emulate(browsertest.Phone, "zh-CN,zh;q=0.9"), chromedp.Navigate(a.URL), chromedp.WaitVisible(chromedp.CSS("[data-connector-id]")))
	page := func() (lang, h1, switchText string) {
		return eval[string](t, ctx, `document.documentElement.lang`),
			eval[string](t, ctx, `document.querySelector('main h1').textContent.trim()`),
			eval[string](t, ctx, `document.querySelector('[data-lang-switch]').textContent.trim()`)
	}
	lang, h1, sw := page()
	if lang != "zh-CN" || h1 != "登录" || sw != "English" {
		t.Fatalf("with Accept-Language zh-CN: lang %q, h1 %q, switch %q", lang, h1, sw)
	}
	for _, want := range []struct{ lang, h1, sw string }{{"en", "Sign in", "中文"}, {"zh-CN", "登录", "English"}, {"en", "Sign in", "中文"}} {
		click(t, ctx, "[data-lang-switch]", "[data-connector-id]")
		if lang, h1, sw := page(); lang != want.lang || h1 != want.h1 || sw != want.sw {
			t.Errorf("after the switch: lang %q, h1 %q, switch %q; want %q, %q, %q", lang, h1, sw, want.lang, want.h1, want.sw)
		}
		if got := attrs(t, ctx, "data-connector-id"); strings.Join(got, ",") != "qq,weibo" { // a phone: no QR code
			t.Errorf("after the switch the chooser lists %q", got)
		}
	}
	// The choice sticks: the account page, asked in Chinese, answers in
	// English.
	do(t, ctx, "opening the account page", chromedp.Navigate(e.Issuer+"/account"), chromedp.WaitVisible(chromedp.CSS("main h1")))
	if lang, h1, _ := page(); lang != "en" || h1 != "Your accounts" {
		t.Errorf("the account page after choosing English: lang %q, h1 %q", lang, h1)
	}
	// The request survived the switches: the login still reaches the client.
	do(t, ctx, "back to the chooser", chromedp.Navigate(a.URL), chromedp.WaitVisible(chromedp.CSS("[data-connector-id]")))
	click(t, ctx, `[data-connector-id="qq"]`, `[data-person="alice"]`)
	click(t, ctx, `[data-person="alice"]`, `[data-rp-callback]`)
	if claims := e.redeem(a); claims["idp"] != "qq" {
		t.Errorf("idp = %v, want qq", claims["idp"])
	}
}

// focused describes document.activeElement.
const focused = `(() => {
	const a = document.activeElement;
	if (!a || a === document.body) return {id: '', outline: ''};
	const cs = getComputedStyle(a);
	return {
		id: a.getAttribute('data-connector-id') || a.getAttribute('data-lang-switch') !== null && 'lang-switch' || a.getAttribute('data-bind') && 'bind:' + a.getAttribute('data-bind') || a.getAttribute('data-unbind') && 'unbind:' + a.getAttribute('data-unbind') || a.tagName.toLowerCase(),
		outline: cs.outlineStyle !== 'none' && parseFloat(cs.outlineWidth) >= 2 ? cs.outlineStyle + ' ' + cs.outlineWidth : '',
	};
})()`

type focus struct {
	ID      string `json:"id"`
	Outline string `json:"outline"`
}

// tabThrough presses Tab n times and returns what had the focus after
// each press.
func tabThrough(t *testing.T, ctx context.Context, n int) []focus {
	t.Helper()
	var seq []focus
	for range n {
		do(t, ctx, "pressing Tab", chromedp.KeyEvent(kb.Tab))
		seq = append(seq, eval[focus](t, ctx, focused))
	}
	return seq
}

func TestKeyboardReachesEveryProviderWithAVisibleFocus(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := browsertest.New(t)
	a := e.authRequest(webClientID)
	do(t, ctx, "opening the chooser", browsertest.Emulate(browsertest.Desktop, "en"), chromedp.Navigate(a.URL), chromedp.WaitVisible(chromedp.CSS("[data-connector-id]")))
	seq := tabThrough(t, ctx, 4)
	var ids []string
	for _, f := range seq {
		ids = append(ids, f.ID)
		if f.Outline == "" {
			t.Errorf("%s has the keyboard focus but no visible outline", f.ID)
		}
	}
	if want := "lang-switch,wechat,qq,weibo"; strings.Join(ids, ",") != want {
		t.Errorf("Tab order = %s, want %s", strings.Join(ids, ","), want)
	}
	browsertest.Screenshot(t, ctx, "chooser-focus-on-weibo")
	// Shift+Tab back to QQ, and Enter follows the link.
	do(t, ctx, "pressing Shift+Tab", chromedp.KeyEvent(kb.Tab, chromedp.KeyModifiers(chromedp.ModifierShift)))
	if f := eval[focus](t, ctx, focused); f.ID != "qq" {
		t.Fatalf("after Shift+Tab the focus is on %q, want qq", f.ID)
	}
	do(t, ctx, "pressing Enter on QQ", chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.CSS(`[data-person="alice"]`)))
	if at := location(t, ctx); !strings.HasPrefix(at, e.QQURL+"/oauth2.0/authorize?") {
		t.Errorf("Enter on the QQ link led to %s", at)
	}

	// On the account page the keyboard reaches the sign-in links, and
	// once signed in the bind and unbind buttons.
	do(t, ctx, "opening the account page", chromedp.Navigate(e.Issuer+"/account"), chromedp.WaitVisible(chromedp.CSS("[data-connector-id]")))
	ids = ids[:0]
	for _, f := range tabThrough(t, ctx, 4) {
		ids = append(ids, f.ID)
	}
	if want := "lang-switch,wechat,qq,weibo"; strings.Join(ids, ",") != want {
		t.Errorf("Tab order on the signed-out account page = %s, want %s", strings.Join(ids, ","), want)
	}
	e.signIn(t, ctx, "qq", "alice")
	if st, _ := bind(t, ctx, "weibo", "alice"); st != "bound_ok" {
		t.Fatalf("binding Weibo: %q", st)
	}
	ids = ids[:0]
	for _, f := range tabThrough(t, ctx, 5) {
		ids = append(ids, f.ID)
		if f.Outline == "" {
			t.Errorf("%s has the keyboard focus but no visible outline", f.ID)
		}
	}
	if want := "lang-switch,unbind:qq,unbind:weibo,bind:wechat,button"; strings.Join(ids, ",") != want {
		t.Errorf("Tab order on the account page = %s, want %s", strings.Join(ids, ","), want)
	}
}

// The checks above must be able to fail: a page with each defect.
func TestPageChecksFindEachDefect(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!DOCTYPE html><html><head><title> </title></head><body>
<h1>outside main</h1>
<main><a href="/x" id="unnamed"><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="></a>
<button id="empty"></button>
<p style="color:#bbb;background:#fff">faint text</p>
<a href="/tiny" style="font-size:8px;line-height:8px;display:inline-block">t</a></main></body></html>`))
	}))
	defer srv.Close()
	ctx := browsertest.New(t)
	do(t, ctx, "opening the bad page", chromedp.Navigate(srv.URL), chromedp.WaitVisible(chromedp.CSS("#empty")))
	got := strings.Join(append(axProblems(t, ctx), eval[[]string](t, ctx, domChecks)...), "\n")
	for _, want := range []string{
		"a link (DOM node",
		"a button (DOM node",
		`html lang is ""`,
		"the page has no title",
		"exactly one h1 in main",
		"has no alt",
		`target "t" is`,
		`text "faint text" has contrast`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the checks missed %q; they found:\n%s", want, got)
		}
	}
}
