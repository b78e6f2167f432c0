package uitest

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/qiaoidp/qiao/internal/browsertest"
)

// signIn signs the tab in to the account page with the connector as the
// person, and returns the user id the page shows.
func (e *env) signIn(t *testing.T, tab context.Context, connector, person string) string {
	t.Helper()
	do(t, tab, "opening the account page", chromedp.Navigate(e.Issuer+"/account"), chromedp.WaitVisible(chromedp.CSS(`[data-connector-id="`+connector+`"]`)))
	click(t, tab, `[data-connector-id="`+connector+`"]`, `[data-person="`+person+`"]`)
	click(t, tab, `[data-person="`+person+`"]`, `[data-user-id]`)
	if at := location(t, tab); !strings.HasPrefix(at, e.Issuer+"/account") {
		t.Fatalf("after signing in the browser is at %s, want the account page", at)
	}
	id := eval[string](t, tab, `document.querySelector('[data-user-id]').textContent.trim()`)
	if id == "" {
		t.Fatal("the account page shows an empty user id")
	}
	return id
}

// bind clicks the connector's bind button, picks the person at the
// provider and returns the outcome the account page shows: the value of
// data-status or data-error.
func bind(t *testing.T, tab context.Context, connector, person string) (status, errMsg string) {
	t.Helper()
	click(t, tab, `[data-bind="`+connector+`"]`, `[data-person="`+person+`"]`)
	click(t, tab, `[data-person="`+person+`"]`, `[data-status], [data-error]`)
	return outcome(t, tab)
}

// unbind clicks the connector's unbind button, confirms on the page that
// asks, and returns the outcome the account page shows.
func unbind(t *testing.T, tab context.Context, connector string) (status, errMsg string) {
	t.Helper()
	click(t, tab, `[data-unbind="`+connector+`"]`, `[data-confirm-unbind="`+connector+`"]`)
	click(t, tab, `[data-confirm-unbind="`+connector+`"]`, `[data-status], [data-error]`)
	return outcome(t, tab)
}

func outcome(t *testing.T, tab context.Context) (status, errMsg string) {
	t.Helper()
	status = eval[string](t, tab, `(document.querySelector('[data-status]') || {getAttribute: () => ''}).getAttribute('data-status')`)
	errMsg = eval[string](t, tab, `(document.querySelector('[data-error]') || {getAttribute: () => ''}).getAttribute('data-error')`)
	return status, errMsg
}

// accountState is what the account page shows of the user.
type accountState struct {
	userID     string
	identities []string // data-identity, sorted
	unbind     []string // data-unbind buttons, sorted
	bind       []string // data-bind buttons, sorted
}

func readAccount(t *testing.T, tab context.Context) accountState {
	t.Helper()
	s := accountState{
		userID:     eval[string](t, tab, `document.querySelector('[data-user-id]').textContent.trim()`),
		identities: attrs(t, tab, "data-identity"),
		unbind:     attrs(t, tab, "data-unbind"),
		bind:       attrs(t, tab, "data-bind"),
	}
	slices.Sort(s.identities)
	slices.Sort(s.unbind)
	slices.Sort(s.bind)
	return s
}

func TestAccountBindingEndToEnd(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := browsertest.New(t, browsertest.WithTimeout(60*time.Second))
	alice := ctx
	do(t, alice, "emulating", browsertest.Emulate(browsertest.Desktop, "en"))

	// Bob signs in with Weibo on another device first.
	bobTab := browsertest.NewProfile(t, ctx)
	do(t, bobTab, "emulating", browsertest.Emulate(browsertest.Phone, "zh-CN"))
	bob := e.signIn(t, bobTab, "weibo", "bob")
	if got := readAccount(t, bobTab); !slices.Equal(got.identities, []string{"weibo"}) {
		t.Fatalf("bob's identities = %q, want weibo", got.identities)
	}

	// Alice signs in with QQ and binds WeChat (the QR-code login on a
	// desktop).
	user := e.signIn(t, alice, "qq", "alice")
	if user == bob {
		t.Fatalf("alice and bob got the same user id %s", user)
	}
	if got := readAccount(t, alice); !slices.Equal(got.identities, []string{"qq"}) || !slices.Equal(got.bind, []string{"wechat", "weibo"}) || len(got.unbind) != 0 {
		t.Fatalf("after the first sign-in: %+v; want identity qq, bind wechat and weibo, no unbind", got)
	}
	click(t, alice, `[data-bind="wechat"]`, `[data-person="alice"]`)
	if at := location(t, alice); !strings.HasPrefix(at, e.WeChatURL+"/connect/qrconnect?") {
		t.Errorf("binding WeChat on a desktop went to %s, want the QR-code login", at)
	}
	click(t, alice, `[data-person="alice"]`, `[data-status], [data-error]`)
	if st, er := outcome(t, alice); st != "bound_ok" || er != "" {
		t.Fatalf("binding WeChat: status %q, error %q; want bound_ok", st, er)
	}

	// Alice's session binds Weibo, but bob is at the keyboard at Weibo:
	// that identity is bob's own user, so the page asks whether to merge
	// it; cancelling changes nothing.
	before := readAccount(t, alice)
	click(t, alice, `[data-bind="weibo"]`, `[data-person="bob"]`)
	click(t, alice, `[data-person="bob"]`, `[data-confirm-merge]`)
	if msg := eval[string](t, alice, `document.querySelector('main').textContent`); !strings.Contains(msg, bob) || !strings.Contains(msg, "deleted") {
		t.Errorf("the merge confirmation does not say which user goes: %q", msg)
	}
	click(t, alice, `[data-cancel]`, `[data-user-id]`)
	if after := readAccount(t, alice); !slices.Equal(after.identities, before.identities) || after.userID != user {
		t.Errorf("the refused bind changed alice's account: %+v, was %+v", after, before)
	}
	do(t, bobTab, "reloading bob's page", chromedp.Navigate(e.Issuer+"/account"), chromedp.WaitVisible(chromedp.CSS("[data-user-id]")))
	if got := readAccount(t, bobTab); got.userID != bob || !slices.Equal(got.identities, []string{"weibo"}) {
		t.Errorf("the refused bind changed bob's account: %+v", got)
	}

	// Alice binds her own Weibo: three identities.
	if st, er := bind(t, alice, "weibo", "alice"); st != "bound_ok" || er != "" {
		t.Fatalf("binding Weibo: status %q, error %q; want bound_ok", st, er)
	}
	if got := readAccount(t, alice); !slices.Equal(got.identities, []string{"qq", "wechat", "weibo"}) || len(got.bind) != 0 || !slices.Equal(got.unbind, got.identities) {
		t.Fatalf("after binding three: %+v", got)
	}
	names := eval[[]string](t, alice, `Array.from(document.querySelectorAll('[data-identity] small:first-of-type'), e => e.textContent.trim())`)
	for _, n := range names {
		if n != "爱丽丝" {
			t.Errorf("an identity shows nickname %q, want alice's (爱丽丝)", n)
		}
	}

	// Signing out and in again with Weibo is the same person.
	click(t, alice, `[data-logout]`, `main h1`)
	do(t, alice, "opening the account page signed out", chromedp.Navigate(e.Issuer+"/account"), chromedp.WaitVisible(chromedp.CSS(`[data-connector-id]`)))
	if n := eval[int](t, alice, `document.querySelectorAll('[data-user-id]').length`); n != 0 {
		t.Fatal("the account page still shows a user after signing out")
	}
	if again := e.signIn(t, alice, "weibo", "alice"); again != user {
		t.Fatalf("signing in with the bound Weibo gave user %s, want %s", again, user)
	}
	if got := readAccount(t, alice); !slices.Equal(got.identities, []string{"qq", "wechat", "weibo"}) {
		t.Fatalf("after signing in again: %+v", got)
	}

	screenshotsOfAccount(t, e, alice)

	// Unbind until one is left; the last one has no unbind button, and a
	// forged unbind of it is refused.
	for _, c := range []string{"wechat", "qq"} {
		if st, er := unbind(t, alice, c); st != "unbound_ok" || er != "" {
			t.Fatalf("unbinding %s: status %q, error %q; want unbound_ok", c, st, er)
		}
	}
	last := readAccount(t, alice)
	if !slices.Equal(last.identities, []string{"weibo"}) || len(last.unbind) != 0 || !slices.Equal(last.bind, []string{"qq", "wechat"}) {
		t.Fatalf("with one identity left: %+v; want weibo with no unbind button, bind qq and wechat", last)
	}
	if why := eval[string](t, alice, `(document.querySelector('[data-last-identity]') || {textContent: ''}).textContent`); !strings.Contains(why, "only sign-in account") {
		t.Errorf("the last identity does not say why it cannot be unbound: %q", why)
	}
	// The page has no unbind form any more: post one with the page's own
	// CSRF token, as a stale tab would.
	do(t, alice, "posting an unbind of the last identity", chromedp.Evaluate[chromedp.Void](`(() => {
		const bindForm = document.querySelector('[data-bind]').form;
		const f = document.createElement('form');
		f.method = 'post';
		f.action = bindForm.action.replace(/\/bind$/, '/unbind');
		for (const [k, v] of [['csrf', bindForm.elements.csrf.value], ['connector_id', 'weibo']]) {
			const i = document.createElement('input');
			i.type = 'hidden'; i.name = k; i.value = v; f.appendChild(i);
		}
		document.body.appendChild(f);
		f.submit();
	})()`), chromedp.WaitVisible(chromedp.CSS(`[data-error]`)))
	if st, er := outcome(t, alice); er != "last_identity" || st != "" {
		t.Errorf("unbinding the last identity: status %q, error %q; want error last_identity", st, er)
	}
	if got := readAccount(t, alice); !slices.Equal(got.identities, []string{"weibo"}) || got.userID != user {
		t.Errorf("the refused unbind changed the account: %+v", got)
	}
}

// screenshotsOfAccount saves the signed-in account page at phone and
// desktop widths in both languages, and checks that nothing overflows
// the viewport sideways.
func screenshotsOfAccount(t *testing.T, e *env, tab context.Context) {
	t.Helper()
	for _, dev := range []struct {
		name string
		emu  chromedp.Action[chromedp.Void]
	}{{"phone", browsertest.Emulate(browsertest.Phone, "")}, {"desktop", browsertest.Emulate(browsertest.Desktop, "")}} {
		for _, lang := range []string{"zh-CN", "en"} {
			do(t, tab, "showing the account page", dev.emu, chromedp.Navigate(e.Issuer+"/account?lang="+lang), chromedp.WaitVisible(chromedp.CSS("[data-user-id]")))
			if got := eval[string](t, tab, `document.documentElement.lang`); got != lang {
				t.Errorf("%s: <html lang> = %q, want %q", dev.name, got, lang)
			}
			if over := eval[int](t, tab, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); over > 0 {
				t.Errorf("%s %s: the page is %d px wider than the viewport", dev.name, lang, over)
			}
			browsertest.Screenshot(t, tab, "account-"+dev.name+"-"+lang)
		}
	}
	do(t, tab, "back to the desktop", browsertest.Emulate(browsertest.Desktop, "en"), chromedp.Navigate(e.Issuer+"/account?lang=en"), chromedp.WaitVisible(chromedp.CSS("[data-user-id]")))
}

func TestAccountBindRefusedAtTheProviderSaysSoAndChangesNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := browsertest.New(t)
	do(t, ctx, "emulating", browsertest.Emulate(browsertest.Desktop, "en"))
	user := e.signIn(t, ctx, "qq", "alice")
	click(t, ctx, `[data-bind="weibo"]`, `[data-deny]`)
	click(t, ctx, `[data-deny]`, `[data-user-id]`)
	st, er := outcome(t, ctx)
	if st != "" || er == "" {
		t.Errorf("after refusing the bind at Weibo: status %q, error %q; want an error message (the page is %s)", st, er, location(t, ctx))
	}
	if got := readAccount(t, ctx); got.userID != user || strings.Join(got.identities, ",") != "qq" {
		t.Errorf("the refused bind changed the account: %+v", got)
	}
}

// TestMergeConfirmationEndToEnd: bob signed in with Weibo long ago; now
// signed in with QQ he binds that Weibo, reads what a merge does,
// confirms, and has one user with both; the old Weibo user's session in
// his other browser is gone.
func TestMergeConfirmationEndToEnd(t *testing.T) {
	e := newEnv(t)
	ctx := browsertest.New(t, browsertest.WithTimeout(60*time.Second))
	do(t, ctx, "emulating", browsertest.Emulate(browsertest.Phone, "en"))
	phone := browsertest.NewProfile(t, ctx)
	do(t, phone, "emulating", browsertest.Emulate(browsertest.Phone, "en"))
	old := e.signIn(t, phone, "weibo", "bob")

	user := e.signIn(t, ctx, "qq", "bob")
	if user == old {
		t.Fatalf("QQ and Weibo gave the same user %s before any merge", user)
	}
	click(t, ctx, `[data-bind="weibo"]`, `[data-person="bob"]`)
	click(t, ctx, `[data-person="bob"]`, `[data-confirm-merge]`)
	text := eval[string](t, ctx, `document.querySelector('main').textContent`)
	for _, want := range []string{"Merge accounts?", old, user, "deleted"} {
		if !strings.Contains(text, want) {
			t.Errorf("the merge confirmation lacks %q: %q", want, text)
		}
	}
	if over := eval[int](t, ctx, `document.documentElement.scrollWidth - document.documentElement.clientWidth`); over > 0 {
		t.Errorf("the merge confirmation is %d px wider than the phone", over)
	}
	browsertest.Screenshot(t, ctx, "merge-confirmation-phone-en")
	click(t, ctx, `[data-confirm-merge]`, `[data-status], [data-error]`)
	if st, er := outcome(t, ctx); st != "merged_ok" || er != "" {
		t.Fatalf("after confirming: status %q, error %q; want merged_ok", st, er)
	}
	if got := readAccount(t, ctx); got.userID != user || !slices.Equal(got.identities, []string{"qq", "weibo"}) {
		t.Fatalf("after the merge: %+v; want user %s with qq and weibo", got, user)
	}
	// The absorbed user's session ended with it.
	do(t, phone, "reloading the other browser", chromedp.Navigate(e.Issuer+"/account"), chromedp.WaitVisible(chromedp.CSS(`[data-connector-id]`)))
	if n := eval[int](t, phone, `document.querySelectorAll('[data-user-id]').length`); n != 0 {
		t.Fatal("the absorbed user is still signed in elsewhere")
	}
	if again := e.signIn(t, phone, "weibo", "bob"); again != user {
		t.Fatalf("Weibo now signs in as %s, want %s", again, user)
	}
}
