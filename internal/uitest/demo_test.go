package uitest

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/qiaoidp/qiao/internal/browsertest"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// demo is a running `qiao demo`, built from this tree.
type demo struct {
	appURL, issuer string
}

// startDemo runs `qiao demo` (the binary qiaotest builds once per test
// binary) until the test ends; the end sends SIGINT and expects exit
// status 0.
func startDemo(t *testing.T) demo {
	t.Helper()
	p := qiaotest.StartProcess(t, nil, nil, "demo", "--listen", "127.0.0.1", "--data", t.TempDir())
	// Registered after StartProcess's own cleanup, so it runs first: the
	// demo stops on SIGINT, as at a terminal.
	t.Cleanup(func() {
		_ = p.Cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.Done():
			if err := p.Err(); err != nil {
				t.Errorf("qiao demo after SIGINT: %v, want exit status 0\n%s", err, p.Out.String())
			}
		case <-time.After(30 * time.Second):
			_ = p.Cmd.Process.Kill()
			t.Errorf("qiao demo did not stop within 30 s of SIGINT")
		}
	})

	// The demo prints its URLs, then "Press Ctrl-C to stop."
	var d demo
	deadline := time.Now().Add(60 * time.Second)
	for {
		out := p.Out.String()
		d = demo{}
		for _, l := range strings.Split(out, "\n") {
			key, val, _ := strings.Cut(strings.TrimSpace(l), ":")
			if f := strings.Fields(val); len(f) > 0 {
				val = f[0]
			}
			switch key {
			case "example app":
				d.appURL = strings.TrimRight(val, "/")
			case "broker issuer":
				d.issuer = val
			}
		}
		if d.appURL != "" && d.issuer != "" && strings.Contains(out, "Ctrl-C") {
			break
		}
		select {
		case <-p.Done():
			t.Fatalf("qiao demo exited: %v\n%s", p.Err(), out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("qiao demo printed no URLs within 60 s:\n%s", out)
		}
	}
	t.Logf("demo: app %s, issuer %s", d.appURL, d.issuer)
	return d
}

// claim reads a claim from the example app's table.
func claim(t *testing.T, ctx context.Context, name string) string {
	t.Helper()
	v := eval[string](t, ctx, `(() => { const c = document.querySelector('[data-claim="`+name+`"] td.v'); return c ? c.textContent.trim() : ''; })()`)
	return strings.Trim(v, `"`)
}

func TestDemoClickThroughFromTheExampleApp(t *testing.T) {
	t.Parallel()
	d := startDemo(t)
	ctx := browsertest.New(t, browsertest.WithTimeout(45*time.Second))
	subs := map[string]string{} // idp → sub
	for _, tc := range []struct {
		name     string
		dev      string
		login    string // the example app's button: "" is the chooser
		chooseAt string // the connector to pick in the chooser
		person   string
		wantIdP  string
	}{
		{"desktop, QQ from the broker's chooser", "desktop", "", "qq", "alice", "qq"},
		{"desktop, WeChat QR code straight from the app", "desktop", "wechat", "", "alice", "wechat"},
		{"WeChat browser, the Official Account from the chooser", "wechat", "", "wechat_mp", "alice", "wechat_mp"},
		{"phone, Weibo from the chooser", "phone", "", "weibo", "bob", "weibo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab := browsertest.NewProfile(t, ctx)
			dev := map[string]chromedp.Action[chromedp.Void]{
				"desktop": browsertest.Emulate(browsertest.Desktop, "en"),
				"phone":   browsertest.Emulate(browsertest.Phone, "zh-CN"),
				"wechat":  browsertest.Emulate(browsertest.WeChat, "zh-CN"),
			}[tc.dev]
			do(t, tab, "opening the example app", dev, chromedp.Navigate(d.appURL+"/"), chromedp.WaitVisible(chromedp.CSS(`[data-login=""]`)))
			browsertest.Screenshot(t, tab, "app-signed-out")
			aboveTheFold(t, tab, "the example app signed out ("+tc.dev+")", `[data-login=""]`)
			if tc.chooseAt != "" {
				click(t, tab, `[data-login=""]`, `[data-connector-id="`+tc.chooseAt+`"]`)
				if at := location(t, tab); !strings.HasPrefix(at, d.issuer+"/auth?") {
					t.Fatalf("the chooser is at %s, want the broker's %s/auth", at, d.issuer)
				}
				browsertest.Screenshot(t, tab, "chooser")
				click(t, tab, `[data-connector-id="`+tc.chooseAt+`"]`, `[data-person="`+tc.person+`"]`)
			} else {
				click(t, tab, `[data-login="`+tc.login+`"]`, `[data-person="`+tc.person+`"]`)
			}
			browsertest.Screenshot(t, tab, "provider")
			click(t, tab, `[data-person="`+tc.person+`"]`, `[data-claim="sub"]`)
			browsertest.Screenshot(t, tab, "app-signed-in")
			aboveTheFold(t, tab, "the example app signed in ("+tc.dev+")", `[data-action="refresh"]`, `[data-action="account"]`, `[data-action="logout"]`)
			if at := location(t, tab); !strings.HasPrefix(at, d.appURL+"/") {
				t.Errorf("after the login the browser is at %s, want the example app", at)
			}
			sub := claim(t, tab, "sub")
			if sub == "" {
				t.Error("the example app shows no sub")
			}
			subs[tc.wantIdP] = sub
			if idp := claim(t, tab, "idp"); idp != tc.wantIdP {
				t.Errorf("idp = %q, want %q", idp, tc.wantIdP)
			}
			if iss := claim(t, tab, "iss"); iss != d.issuer {
				t.Errorf("iss = %q, want %q", iss, d.issuer)
			}
		})
	}
	// The demo links WeChat identities by unionid: alice's QR-code and
	// Official Account logins are one user; her QQ login is another
	// (nothing links QQ by default).
	if subs["wechat"] == "" || subs["wechat"] != subs["wechat_mp"] {
		t.Errorf("alice's WeChat logins: sub %q (QR code) and %q (Official Account), want one user", subs["wechat"], subs["wechat_mp"])
	}
	if subs["qq"] == "" || subs["qq"] == subs["wechat"] {
		t.Errorf("alice's QQ login has sub %q, her WeChat login %q; want two users", subs["qq"], subs["wechat"])
	}
}
