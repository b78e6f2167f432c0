package wechat_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/connectors/wechat"
)

func TestLoginURLsFollowWeChatsFormat(t *testing.T) {
	e := newEnv(t, nil)
	web, _, err := e.web(t).LoginURL(t.Context(), loginReq)
	if err != nil {
		t.Fatal(err)
	}
	wantWeb := e.srv.URL + "/connect/qrconnect?appid=" + appWeb + "&redirect_uri=" + url.QueryEscape(callback) +
		"&response_type=code&scope=snsapi_login&state=" + state + "#wechat_redirect"
	if web != wantWeb {
		t.Errorf("website URL\n got %s\nwant %s", web, wantWeb)
	}
	for _, scope := range []string{"", wechat.ScopeUserInfo, wechat.ScopeBase} {
		got, _, err := e.mp(t, scope).LoginURL(t.Context(), loginReq)
		if err != nil {
			t.Fatal(err)
		}
		want := scope
		if want == "" {
			want = wechat.ScopeUserInfo
		}
		wantMP := e.srv.URL + "/connect/oauth2/authorize?appid=" + appOA + "&redirect_uri=" + url.QueryEscape(callback) +
			"&response_type=code&scope=" + want + "&state=" + state + "#wechat_redirect"
		if got != wantMP {
			t.Errorf("scope %q: OA URL\n got %s\nwant %s", scope, got, wantMP)
		}
	}
	defaults, err := wechat.NewWeb(wechat.Config{ClientID: appWeb, ClientSecret: secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u, _, _ := defaults.LoginURL(t.Context(), loginReq); !strings.HasPrefix(u, "https://open.weixin.qq.com/connect/qrconnect?appid=") {
		t.Errorf("default host: %s", u)
	}
}

func TestLoginURLRefusesBadInput(t *testing.T) {
	e := newEnv(t, nil)
	w := e.web(t)
	for name, req := range map[string]connectors.LoginRequest{
		"short state":       {State: "abc", CallbackURL: callback},
		"state with dash":   {State: "abcdefgh-ijklmnop", CallbackURL: callback},
		"relative callback": {State: state, CallbackURL: "/callback/wechat"},
		"no callback":       {State: state},
	} {
		if _, _, err := w.LoginURL(t.Context(), req); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestConstructorsRefuseBadConfig(t *testing.T) {
	cases := map[string]wechat.Config{
		"no client id":     {ClientSecret: secret},
		"no client secret": {ClientID: appWeb},
		"bad api url":      {ClientID: appWeb, ClientSecret: secret, APIBaseURL: "ftp://x"},
		"bad auth url":     {ClientID: appWeb, ClientSecret: secret, AuthBaseURL: "not a url"},
	}
	for name, cfg := range cases {
		if _, err := wechat.NewWeb(cfg, nil); !errors.Is(err, connectors.ErrConfig) {
			t.Errorf("NewWeb %s: %v, want ErrConfig", name, err)
		}
		if _, err := wechat.NewMiniProgram(cfg, nil, nil); !errors.Is(err, connectors.ErrConfig) {
			t.Errorf("NewMiniProgram %s: %v, want ErrConfig", name, err)
		}
	}
	if _, err := wechat.NewMP(wechat.Config{ClientID: appOA, ClientSecret: secret, Scope: "snsapi_login"}, nil); !errors.Is(err, connectors.ErrConfig) {
		t.Errorf("NewMP with snsapi_login: %v, want ErrConfig", err)
	}
}

func TestWebLoginYieldsProfileAndUnionID(t *testing.T) {
	e := newEnv(t, nil)
	w := e.web(t)
	id, err := w.HandleCallback(t.Context(), loginReq, e.webLogin(t, w, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	want := connectors.Identity{
		Subject: e.sim.OpenID(appWeb, "alice"), UnionID: e.sim.UnionID("alice"),
		DisplayName: "爱丽丝", Picture: sandbox.AvatarURL(e.srv.URL, "alice"), RealProfile: true,
	}
	if id.Subject != want.Subject || id.UnionID != want.UnionID || id.DisplayName != want.DisplayName ||
		id.Picture != want.Picture || !id.RealProfile || id.Secret != nil {
		t.Errorf("identity %+v, want %+v", id, want)
	}
	if got, want := e.obs.List(), []string{"sns/oauth2/access_token=ok", "sns/userinfo=ok"}; !slices.Equal(got, want) {
		t.Errorf("observed %v, want %v", got, want)
	}
}

func TestMPLoginSharesUnionIDWithWebsite(t *testing.T) {
	e := newEnv(t, func(o *sandbox.WeChatOptions) { o.StrictParamOrder = true })
	w, m := e.web(t), e.mp(t, "")
	webID, err := w.HandleCallback(t.Context(), loginReq, e.webLogin(t, w, "bob"))
	if err != nil {
		t.Fatal(err)
	}
	mpID, err := m.HandleCallback(t.Context(), loginReq, e.mpLogin(t, m, "bob"))
	if err != nil {
		t.Fatal(err)
	}
	if mpID.Subject != e.sim.OpenID(appOA, "bob") || mpID.Subject == webID.Subject {
		t.Errorf("OA subject %q (website %q)", mpID.Subject, webID.Subject)
	}
	if mpID.UnionID == "" || mpID.UnionID != webID.UnionID || mpID.DisplayName != "小波" || !mpID.RealProfile {
		t.Errorf("OA identity %+v, website unionid %q", mpID, webID.UnionID)
	}
}

func TestMPBaseScopeSkipsProfile(t *testing.T) {
	e := newEnv(t, nil)
	m := e.mp(t, wechat.ScopeBase)
	id, err := m.HandleCallback(t.Context(), loginReq, e.mpLogin(t, m, "carol"))
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != e.sim.OpenID(appOA, "carol") || id.RealProfile || id.DisplayName != "" || id.Picture != "" {
		t.Errorf("identity %+v", id)
	}
	if n := e.sim.Calls("/sns/userinfo"); n != 0 {
		t.Errorf("userinfo called %d times with snsapi_base", n)
	}
}

func TestUserRefusalIsAccessDenied(t *testing.T) {
	e := newEnv(t, nil)
	w, m := e.web(t), e.mp(t, "")
	for name, q := range map[string]url.Values{
		"website deny link": e.webLogin(t, w, ""),
		"OA deny link":      e.mpLogin(t, m, ""),
		"no query":          {},
	} {
		_, err := w.HandleCallback(t.Context(), loginReq, q)
		if !errors.Is(err, connectors.ErrAccessDenied) {
			t.Errorf("%s: %v, want ErrAccessDenied", name, err)
		}
	}
	if n := e.sim.Calls("/sns/oauth2/access_token"); n != 0 {
		t.Errorf("token endpoint called %d times after a refusal", n)
	}
}

func TestSnapshotUserIsRefused(t *testing.T) {
	e := newEnv(t, nil)
	e.sim.SetSnapshotUser("alice", true)
	m := e.mp(t, "")
	_, err := m.HandleCallback(t.Context(), loginReq, e.mpLogin(t, m, "alice"))
	if !errors.Is(err, connectors.ErrAccessDenied) || !strings.Contains(err.Error(), "snapshot") {
		t.Errorf("got %v, want ErrAccessDenied naming snapshot mode", err)
	}
	if n := e.sim.Calls("/sns/userinfo"); n != 0 {
		t.Errorf("userinfo called %d times for a snapshot user", n)
	}
}

func TestPlaceholderProfileIsNotReal(t *testing.T) {
	e := newEnv(t, nil)
	e.sim.SetPlaceholderProfile("bob", true)
	for name, login := range map[string]func() (connectors.Identity, error){
		"website": func() (connectors.Identity, error) {
			w := e.web(t)
			return w.HandleCallback(t.Context(), loginReq, e.webLogin(t, w, "bob"))
		},
		"OA": func() (connectors.Identity, error) {
			m := e.mp(t, "")
			return m.HandleCallback(t.Context(), loginReq, e.mpLogin(t, m, "bob"))
		},
	} {
		id, err := login()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if id.RealProfile || id.DisplayName != wechat.PlaceholderNickname || id.Picture != wechat.PlaceholderAvatar || id.Subject == "" {
			t.Errorf("%s: identity %+v, want the placeholder with RealProfile false", name, id)
		}
	}
}

func TestReusedCallbackCodeIsInvalid(t *testing.T) {
	e := newEnv(t, nil)
	w := e.web(t)
	q := e.webLogin(t, w, "alice")
	if _, err := w.HandleCallback(t.Context(), loginReq, q); err != nil {
		t.Fatal(err)
	}
	_, err := w.HandleCallback(t.Context(), loginReq, q)
	if !errors.Is(err, connectors.ErrInvalidCode) || providerCode(err) != 40163 {
		t.Errorf("second use: %v, want ErrInvalidCode 40163", err)
	}
	assertClean(t, err, q.Get("code"))
	e.clock.Advance(10 * time.Minute)
	q = e.webLogin(t, w, "alice")
	e.clock.Advance(10 * time.Minute)
	_, err = w.HandleCallback(t.Context(), loginReq, q)
	if !errors.Is(err, connectors.ErrInvalidCode) || providerCode(err) != 42003 {
		t.Errorf("expired code: %v, want ErrInvalidCode 42003", err)
	}
}

func TestWrongSecretIsConfigError(t *testing.T) {
	e := newEnv(t, nil)
	cfg := e.cfg(appWeb)
	cfg.ClientSecret = "WrongSecretValue42"
	w, err := wechat.NewWeb(cfg, e.caller)
	if err != nil {
		t.Fatal(err)
	}
	q := e.webLogin(t, w, "alice")
	_, err = w.HandleCallback(t.Context(), loginReq, q)
	if !errors.Is(err, connectors.ErrConfig) || providerCode(err) != 40125 {
		t.Errorf("got %v, want ErrConfig 40125", err)
	}
	assertClean(t, err, "WrongSecretValue42", q.Get("code"))
}

func TestProviderErrcodesMapToConnectorErrors(t *testing.T) {
	cases := []struct {
		errcode int
		want    error
	}{
		{40029, connectors.ErrInvalidCode},
		{40163, connectors.ErrInvalidCode},
		{42003, connectors.ErrInvalidCode},
		{41008, connectors.ErrInvalidCode},
		{45011, connectors.ErrUnavailable},
		{45009, connectors.ErrUnavailable},
		{-1, connectors.ErrUnavailable},
		{40125, connectors.ErrConfig},
		{40013, connectors.ErrConfig},
		{40164, connectors.ErrConfig},
		{48001, connectors.ErrConfig},
		{40226, connectors.ErrAccessDenied},
		{50002, connectors.ErrAccessDenied},
		{99999, connectors.ErrUnavailable},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("errcode %d", c.errcode), func(t *testing.T) {
			e := newEnv(t, nil)
			w := e.web(t)
			q := e.webLogin(t, w, "alice")
			e.sim.InjectFault(sandbox.Fault{Path: "/sns/oauth2/access_token", Code: c.errcode})
			_, err := w.HandleCallback(t.Context(), loginReq, q)
			if !errors.Is(err, c.want) || providerCode(err) != c.errcode {
				t.Errorf("errcode %d: got %v, want %v", c.errcode, err, c.want)
			}
			wantCalls := 1
			if c.errcode == -1 {
				wantCalls = 2 // retried once
			}
			if n := e.sim.Calls("/sns/oauth2/access_token"); n != wantCalls {
				t.Errorf("token endpoint called %d times, want %d", n, wantCalls)
			}
			assertClean(t, err, q.Get("code"))
		})
	}
}

func TestBusyIsRetriedOnce(t *testing.T) {
	for _, path := range []string{"/sns/oauth2/access_token", "/sns/userinfo"} {
		t.Run(path, func(t *testing.T) {
			e := newEnv(t, nil)
			w := e.web(t)
			q := e.webLogin(t, w, "carol")
			e.sim.InjectFault(sandbox.Fault{Path: path, Code: -1, Times: 1})
			id, err := w.HandleCallback(t.Context(), loginReq, q)
			if err != nil || id.DisplayName != "卡罗尔" {
				t.Fatalf("got %+v, %v", id, err)
			}
			if n := e.sim.Calls(path); n != 2 {
				t.Errorf("%s called %d times, want 2", path, n)
			}
		})
	}
}

func TestUnreadableRepliesAreUnavailable(t *testing.T) {
	cases := []struct {
		name  string
		fault sandbox.Fault
	}{
		{"empty 200", sandbox.Fault{Path: "/sns/oauth2/access_token", Kind: sandbox.FaultEmpty}},
		{"HTML page", sandbox.Fault{Path: "/sns/oauth2/access_token", Kind: sandbox.FaultHTML}},
		{"JSON without fields", sandbox.Fault{Path: "/sns/oauth2/access_token", Kind: sandbox.FaultRaw, Body: `{}`}},
		{"token without openid", sandbox.Fault{Path: "/sns/oauth2/access_token", Kind: sandbox.FaultRaw, Body: `{"access_token":"abc","expires_in":7200}`}},
		{"truncated JSON", sandbox.Fault{Path: "/sns/oauth2/access_token", Kind: sandbox.FaultRaw, Body: `{"access_token":"abc","openid":`}},
		{"JSON array", sandbox.Fault{Path: "/sns/oauth2/access_token", Kind: sandbox.FaultRaw, Body: `[1,2]`}},
		{"wrong types", sandbox.Fault{Path: "/sns/oauth2/access_token", Kind: sandbox.FaultRaw, Body: `{"access_token":5,"openid":{}}`}},
		{"errcode as text", sandbox.Fault{Path: "/sns/oauth2/access_token", Kind: sandbox.FaultRaw, Body: `{"errcode":"oops"}`}},
		{"userinfo without openid", sandbox.Fault{Path: "/sns/userinfo", Kind: sandbox.FaultRaw, Body: `{"nickname":"x"}`}},
		{"userinfo of someone else", sandbox.Fault{Path: "/sns/userinfo", Kind: sandbox.FaultRaw, Body: `{"openid":"oSomeoneElse","nickname":"x"}`}},
		{"provider down", sandbox.Fault{Path: "/sns/oauth2/access_token", Kind: sandbox.FaultDown}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil)
			w := e.web(t)
			q := e.webLogin(t, w, "alice")
			e.sim.InjectFault(c.fault)
			_, err := w.HandleCallback(t.Context(), loginReq, q)
			if !errors.Is(err, connectors.ErrUnavailable) {
				t.Errorf("got %v, want ErrUnavailable", err)
			}
			assertClean(t, err, q.Get("code"))
			if obs := e.obs.List(); len(obs) == 0 || !strings.HasSuffix(obs[len(obs)-1], "=unavailable") {
				t.Errorf("observer told %v, want a last unavailable", obs)
			}
		})
	}
}

func TestSlowProviderTimesOut(t *testing.T) {
	e := newEnv(t, nil)
	e.caller.HTTP = &http.Client{Timeout: 200 * time.Millisecond}
	w := e.web(t)
	q := e.webLogin(t, w, "alice")
	e.sim.InjectFault(sandbox.Fault{Path: "/sns/oauth2/access_token", Kind: sandbox.FaultTimeout})
	start := time.Now()
	_, err := w.HandleCallback(t.Context(), loginReq, q)
	if !errors.Is(err, connectors.ErrUnavailable) || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("got %v, want ErrUnavailable timeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	assertClean(t, err, q.Get("code"))
}

func TestErrorsNeverCarrySecretOrCode(t *testing.T) {
	e := newEnv(t, nil)
	w := e.web(t)
	q := e.webLogin(t, w, "alice")
	code := q.Get("code")
	// A provider that echoes what it was sent.
	e.sim.InjectFault(sandbox.Fault{Path: "/sns/oauth2/access_token",
		Kind: sandbox.FaultRaw, Body: `{"errcode":40029,"errmsg":"invalid code ` + code + ` for secret ` + secret + `, rid: 1-2-3"}`})
	_, err := w.HandleCallback(t.Context(), loginReq, q)
	if !errors.Is(err, connectors.ErrInvalidCode) {
		t.Errorf("got %v", err)
	}
	assertClean(t, err, code)
	if !strings.Contains(err.Error(), "invalid code [redacted]") {
		t.Errorf("message lost: %v", err)
	}
}
