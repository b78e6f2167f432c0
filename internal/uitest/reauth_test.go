package uitest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/qiaoidp/qiao/internal/browsertest"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// TestReauthCannotSwitchPeopleAndResumesTheUnbind: in a real browser, an
// unbind with an old sign-in asks for a fresh one with the person's own
// other identity; signing in there as someone else is refused and leaves
// everything as it was; signing in as the same person offers the unbind
// again, and confirming it unbinds.
func TestReauthCannotSwitchPeopleAndResumesTheUnbind(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	offset := time.Duration(0)
	e := newEnv(t, qiaotest.WithNow(func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return time.Now().Add(offset)
	}))
	tab := browsertest.New(t, browsertest.WithTimeout(60*time.Second))
	do(t, tab, "emulating", browsertest.Emulate(browsertest.Desktop, "en"))

	// Bob exists (signed in with QQ elsewhere).
	bobTab := browsertest.NewProfile(t, tab)
	bob := e.signIn(t, bobTab, "qq", "bob")

	alice := e.signIn(t, tab, "qq", "alice")
	if st, er := bind(t, tab, "weibo", "alice"); st != "bound_ok" || er != "" {
		t.Fatalf("binding Weibo: status %q, error %q", st, er)
	}
	mu.Lock()
	offset = 20 * time.Minute
	mu.Unlock()

	askAgain := func() {
		t.Helper()
		click(t, tab, `[data-unbind="weibo"]`, `[data-reauth-with]`)
		if got := attrs(t, tab, "data-reauth-with"); strings.Join(got, ",") != "qq" {
			t.Fatalf("re-authentication offers %q, want only qq (alice's other identity)", got)
		}
	}
	askAgain()
	browsertest.Screenshot(t, tab, "reauth-desktop-en")

	// Bob is at the keyboard at QQ: refused, alice still signed in, weibo
	// still bound.
	click(t, tab, `[data-reauth-with="qq"]`, `[data-person="bob"]`)
	click(t, tab, `[data-person="bob"]`, `[data-error]`)
	if st, er := outcome(t, tab); er != "reauth_other_person" || st != "" {
		t.Fatalf("re-authentication as bob: status %q, error %q; want error reauth_other_person", st, er)
	}
	if msg := eval[string](t, tab, `document.querySelector('[data-error]').textContent`); !strings.Contains(msg, "different person") {
		t.Errorf("the refusal says %q", msg)
	}
	if got := readAccount(t, tab); got.userID != alice || got.userID == bob || strings.Join(got.identities, ",") != "qq,weibo" {
		t.Fatalf("after the refused re-authentication: %+v, want alice %s with qq and weibo", got, alice)
	}

	// Alice herself: the unbind is offered again and confirmed.
	askAgain()
	click(t, tab, `[data-reauth-with="qq"]`, `[data-person="alice"]`)
	click(t, tab, `[data-person="alice"]`, `[data-confirm]`)
	if got := eval[string](t, tab, `document.querySelector('[data-confirm]').getAttribute('data-confirm')`); got != "unbind:weibo" {
		t.Fatalf("after re-authentication the page confirms %q, want unbind:weibo", got)
	}
	browsertest.Screenshot(t, tab, "reauth-confirm-desktop-en")
	click(t, tab, `[data-confirm-button]`, `[data-status], [data-error]`)
	if st, er := outcome(t, tab); st != "unbound_ok" || er != "" {
		t.Fatalf("confirming the unbind: status %q, error %q", st, er)
	}
	if got := readAccount(t, tab); got.userID != alice || strings.Join(got.identities, ",") != "qq" {
		t.Fatalf("after the unbind: %+v", got)
	}
	do(t, tab, "checking", chromedp.WaitVisible(chromedp.CSS(`[data-signout-everywhere]`)))
}
