package wechat_test

import (
	"bytes"
	"errors"
	"image"
	_ "image/jpeg"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/internal/conntest"
	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/connectors/wechat"
)

func (e *env) scanMini(t *testing.T, s wechat.ScanLogin) *wechat.MiniProgram {
	t.Helper()
	cfg := e.cfg(appMini)
	cfg.ScanLogin = s
	m, err := wechat.NewMiniProgram(cfg, e.caller, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestScanCodeAsksWeChatForTheConfiguredCode: the code opens the
// configured page in the configured version with the scene, and comes
// back as an image WeChat made.
func TestScanCodeAsksWeChatForTheConfiguredCode(t *testing.T) {
	e := newEnv(t, func(o *sandbox.WeChatOptions) { o.Apps[2].Pages = []string{"pages/scan/index"} })
	m := e.scanMini(t, wechat.ScanLogin{Page: "pages/scan/index", Width: 300})
	img, ct, err := m.ScanCode(t.Context(), "Scene0123456789abcdefABC")
	if err != nil {
		t.Fatal(err)
	}
	cfg, format, err := image.DecodeConfig(bytes.NewReader(img))
	if err != nil || ct != "image/"+format || cfg.Width != 300 {
		t.Errorf("image: %v, format %q, Content-Type %q, width %d", err, format, ct, cfg.Width)
	}
	codes := e.sim.Codes()
	if len(codes) != 1 || codes[0].Scene != "Scene0123456789abcdefABC" || codes[0].Page != "pages/scan/index" || codes[0].EnvVersion != "release" {
		t.Errorf("codes made: %+v", codes)
	}
	// An unreleased page in the trial version is fine (check_path false).
	trial := e.scanMini(t, wechat.ScanLogin{Page: "pages/new/index", EnvVersion: wechat.EnvTrial})
	if _, _, err := trial.ScanCode(t.Context(), "x"); err != nil {
		t.Errorf("trial version with an unreleased page: %v", err)
	}
}

// TestScanCodeErrors: WeChat's errors come back as provider errors of
// the right kind, without the access token; a stale token is replaced
// once and the call made again; a scene WeChat would refuse never
// leaves.
func TestScanCodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		page  string
		fault *sandbox.Fault
		code  int
		kind  error
		calls int // to getwxacodeunlimit: the retries made
	}{
		{"page not released", "pages/other/index", nil, 41030, connectors.ErrConfig, 1},
		{"daily quota", "pages/scan/index", &sandbox.Fault{Code: 45009, Times: 1}, 45009, connectors.ErrUnavailable, 1},
		{"busy twice", "pages/scan/index", &sandbox.Fault{Code: -1, Times: 2}, -1, connectors.ErrUnavailable, 2},
		{"too frequent", "pages/scan/index", &sandbox.Fault{Code: 45011, Times: 1}, 45011, connectors.ErrUnavailable, 1},
		{"not an image", "pages/scan/index", &sandbox.Fault{Kind: sandbox.FaultHTML, Times: 1}, 0, connectors.ErrUnavailable, 1},
		{"JSON without errcode", "pages/scan/index", &sandbox.Fault{Kind: sandbox.FaultRaw, Status: 200, ContentType: "application/json", Body: `{"ok":true}`, Times: 1}, 0, connectors.ErrUnavailable, 1},
		{"token refused twice", "pages/scan/index", &sandbox.Fault{Code: 40001, Times: 2}, 40001, connectors.ErrUnavailable, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(o *sandbox.WeChatOptions) { o.Apps[2].Pages = []string{"pages/scan/index"} })
			m := e.scanMini(t, wechat.ScanLogin{Page: tc.page})
			if tc.fault != nil {
				f := *tc.fault
				f.Path = "/wxa/getwxacodeunlimit"
				e.sim.InjectFault(f)
			}
			_, _, err := m.ScanCode(t.Context(), "abc")
			if !errors.Is(err, tc.kind) || (tc.code != 0 && providerCode(err) != tc.code) {
				t.Errorf("err %v, want %v with code %d", err, tc.kind, tc.code)
			}
			if n := e.sim.Calls("/wxa/getwxacodeunlimit"); n != tc.calls {
				t.Errorf("WeChat called %d times, want %d", n, tc.calls)
			}
		})
	}
	t.Run("stale token", func(t *testing.T) {
		e := newEnv(t, nil)
		m := e.scanMini(t, wechat.ScanLogin{Page: "pages/scan/index"})
		if _, _, err := m.ScanCode(t.Context(), "abc"); err != nil {
			t.Fatal(err)
		}
		e.sim.RevokeAccessTokens(appMini)
		if _, _, err := m.ScanCode(t.Context(), "abc"); err != nil {
			t.Errorf("after the token was revoked: %v", err)
		}
		e.clock.Advance(3 * time.Hour)
		if _, _, err := m.ScanCode(t.Context(), "abc"); err != nil {
			t.Errorf("after the token expired: %v", err)
		}
	})
	t.Run("bad scene never sent", func(t *testing.T) {
		e := newEnv(t, nil)
		m := e.scanMini(t, wechat.ScanLogin{Page: "pages/scan/index"})
		for _, scene := range []string{"", strings.Repeat("a", 33), "a%20b", "码"} {
			if _, _, err := m.ScanCode(t.Context(), scene); !errors.Is(err, connectors.ErrConfig) {
				t.Errorf("scene %q: %v, want ErrConfig", scene, err)
			}
		}
		if n := e.sim.Calls("/wxa/getwxacodeunlimit"); n != 0 {
			t.Errorf("WeChat called %d times", n)
		}
	})
}

// TestScanLoginConfigValidate: scan_login is for the mini-program, needs
// a page path, a known version and a width WeChat accepts.
func TestScanLoginConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		typ    string
		scan   wechat.ScanLogin
		fields string
	}{
		{wechat.TypeMiniProgram, wechat.ScanLogin{Page: "pages/scan/index"}, ""},
		{wechat.TypeMiniProgram, wechat.ScanLogin{Page: "pages/scan/index", EnvVersion: "develop", Width: 1280}, ""},
		{wechat.TypeMiniProgram, wechat.ScanLogin{Width: 430}, "scan_login.page"},
		{wechat.TypeMiniProgram, wechat.ScanLogin{Page: "/pages/scan/index"}, "scan_login.page"},
		{wechat.TypeMiniProgram, wechat.ScanLogin{Page: "pages/scan/index?x=1"}, "scan_login.page"},
		{wechat.TypeMiniProgram, wechat.ScanLogin{Page: "p", EnvVersion: "beta"}, "scan_login.env_version"},
		{wechat.TypeMiniProgram, wechat.ScanLogin{Page: "p", Width: 100}, "scan_login.width"},
		{wechat.TypeWeb, wechat.ScanLogin{Page: "p"}, "scan_login"},
	} {
		cfg := wechat.NewConfig(tc.typ)
		cfg.ClientID, cfg.ClientSecret, cfg.ScanLogin = "wx1", "s", tc.scan
		got := conntest.Fields(cfg.Validate())
		if strings.Join(got, ",") != tc.fields {
			t.Errorf("%s %+v: problems with %v, want %q", tc.typ, tc.scan, got, tc.fields)
		}
	}
}

// TestMiniProgramOfferedOnComputersWithScanLogin: without scan_login
// the mini-program is never offered in a browser; with it, on computers.
func TestMiniProgramOfferedOnComputersWithScanLogin(t *testing.T) {
	e := newEnv(t, nil)
	plain := e.scanMini(t, wechat.ScanLogin{})
	scan := e.scanMini(t, wechat.ScanLogin{Page: "p"})
	for _, b := range []connectors.Browser{{}, {Mobile: true}, {WeChat: true}, {WeChat: true, Mobile: true}} {
		if plain.OfferedIn(b) || plain.ScanEnabled() {
			t.Errorf("without scan_login offered in %+v", b)
		}
		if want := !b.Mobile && !b.WeChat; scan.OfferedIn(b) != want || !scan.ScanEnabled() {
			t.Errorf("with scan_login: offered in %+v = %v, want %v", b, scan.OfferedIn(b), want)
		}
	}
}
