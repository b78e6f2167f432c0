package spectest

import (
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// SPEC: "Authorization-endpoint errors redirect to a valid, registered
// redirect URI with `error` and `state`: an unknown or disallowed
// `connector_id` → `invalid_request`; the user refused at the provider, or
// a snapshot user → `access_denied`; the provider busy, unreachable or
// slower than 5 s → `temporarily_unavailable`."
func TestAuthorizationErrorsRedirectWithErrorAndState(t *testing.T) {
	s := shared
	tests := []struct {
		name, client, redirect, connector, person, ua, want string
		setup                                               func(t *testing.T)
	}{
		{name: "unknown connector_id is invalid_request", client: webClient, redirect: rpRedirect, connector: "nosuch", want: "invalid_request"},
		{name: "connector_id the client may not use is invalid_request", client: weiboClient, redirect: "https://weibo-only.example.com/cb", connector: "qq", want: "invalid_request"},
		{name: "mini-program connector_id on the browser flow is invalid_request", client: webClient, redirect: rpRedirect, connector: "mini", want: "invalid_request"},
		{name: "user refused at WeChat is access_denied", client: webClient, redirect: rpRedirect, connector: "wechat", person: qiaotest.RefusePick, want: "access_denied"},
		{name: "user refused at Weibo is access_denied", client: webClient, redirect: rpRedirect, connector: "weibo", person: qiaotest.RefusePick, want: "access_denied"},
		{name: "WeChat snapshot user is access_denied", client: webClient, redirect: rpRedirect, connector: "wechat_mp", person: "p31", ua: weChatUA, want: "access_denied",
			setup: func(t *testing.T) {
				s.WeChat.SetSnapshotUser("p31", true)
				t.Cleanup(func() { s.WeChat.SetSnapshotUser("p31", false) })
			}},
		{name: "Weibo busy is temporarily_unavailable", client: webClient, redirect: rpRedirect, connector: "weibo", person: "p01", want: "temporarily_unavailable",
			setup: func(t *testing.T) {
				s.Weibo.InjectFault(sandbox.Fault{Path: sandbox.WeiboPathToken, Kind: sandbox.FaultBusy, Times: 1})
			}},
		{name: "WeChat busy (errcode -1) is temporarily_unavailable", client: webClient, redirect: rpRedirect, connector: "wechat", person: "p01", want: "temporarily_unavailable",
			setup: func(t *testing.T) {
				s.WeChat.InjectFault(sandbox.Fault{Path: "/sns/oauth2/access_token", Code: -1})
				t.Cleanup(s.WeChat.ClearFaults)
			}},
		{name: "QQ unreachable is temporarily_unavailable", client: webClient, redirect: rpRedirect, connector: "qq", person: "p01", want: "temporarily_unavailable",
			setup: func(t *testing.T) {
				s.QQ.InjectFault(sandbox.Fault{Path: sandbox.QQPathToken, Kind: sandbox.FaultTimeout, Times: 1})
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup(t)
			}
			ua := tc.ua
			if ua == "" {
				ua = desktopUA
			}
			b := s.Browser(ua)
			a := qiaotest.NewRawAuth(tc.client, tc.redirect, tc.connector)
			p := s.follow(t, b, a.URL(s.Issuer), tc.person)
			if !isRedirect(p.Status) {
				t.Fatalf("status %d, want a redirect to %s; body: %.300s", p.Status, tc.redirect, p.Body)
			}
			if !strings.HasPrefix(p.Location, tc.redirect+"?") {
				t.Fatalf("redirected to %s, want %s", p.Location, tc.redirect)
			}
			u, _ := url.Parse(p.Location)
			q := u.Query()
			if q.Get("error") != tc.want || q.Get("state") != a.State() {
				t.Errorf("error=%q state=%q, want error=%q state=%q (%s)", q.Get("error"), q.Get("state"), tc.want, a.State(), p.Location)
			}
			if q.Get("code") != "" {
				t.Errorf("an error redirect carries a code: %s", p.Location)
			}
		})
	}
}

// SPEC: "Without a valid client and redirect URI: a 400 page." and
// "`redirect_uri` ... match exactly; only for a registered loopback URI
// (`http://127.0.0.1/…`, `http://[::1]/…`) may the port differ (RFC 8252)."
func TestWithoutValidClientAndRedirectURIA400Page(t *testing.T) {
	s := shared
	tests := []struct{ name, client, redirect string }{
		{"unknown client", "nosuch", rpRedirect},
		{"missing client_id", "", rpRedirect},
		{"unregistered redirect_uri", webClient, "https://evil.example.com/cb"},
		{"loopback redirect_uri with another path", webClient, "http://127.0.0.1:9/other"},
		{"loopback redirect_uri with a longer path", webClient, "http://127.0.0.1:9/cb/x"},
		{"loopback redirect_uri with a query added", webClient, "http://127.0.0.1:9/cb?x=1"},
		{"localhost is not the registered 127.0.0.1", webClient, "http://localhost:9/cb"},
		{"https instead of the registered http loopback", webClient, "https://127.0.0.1:9/cb"},
		{"non-loopback redirect_uri with another port", web2Client, "https://rp2.example.com:8443/cb"},
		{"non-loopback redirect_uri with a trailing slash", web2Client, rp2Redirect + "/"},
		{"redirect_uri of another client", webClient, rp2Redirect},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := s.Browser(desktopUA)
			a := qiaotest.NewRawAuth(tc.client, tc.redirect, "weibo")
			p := b.StepGet(t, a.URL(s.Issuer))
			if p.Status != http.StatusBadRequest {
				t.Fatalf("status %d (Location %q), want 400", p.Status, p.Location)
			}
			if !strings.Contains(p.Header.Get("Content-Type"), "text/html") {
				t.Errorf("Content-Type %q, want an HTML page", p.Header.Get("Content-Type"))
			}
		})
	}
}

// SPEC: "only for a registered loopback URI ... may the port differ (RFC 8252)."
func TestLoopbackRedirectURIMayUseAnyPort(t *testing.T) {
	s := shared
	for _, port := range []string{"", ":1", ":54321"} {
		redirect := "http://127.0.0.1" + port + "/cb"
		t.Run(redirect, func(t *testing.T) {
			b := s.Browser(desktopUA)
			a := qiaotest.NewRawAuth(webClient, redirect, "weibo")
			p := s.follow(t, b, a.URL(s.Issuer), "p07")
			if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, redirect+"?") {
				t.Fatalf("status %d Location %q, want a redirect to %s", p.Status, p.Location, redirect)
			}
			tk := s.redeem(t, a, p, webSecret)
			if tk.IDToken == "" {
				t.Fatal("no id_token")
			}
		})
	}
	// Another path, or a userinfo part, is refused even on a loopback
	// URI: a 400 page and no redirect.
	for _, redirect := range []string{"http://127.0.0.1:54321/other", "http://user@127.0.0.1:54321/cb"} {
		t.Run(redirect, func(t *testing.T) {
			p := s.Browser(desktopUA).StepGet(t, qiaotest.NewRawAuth(webClient, redirect, "weibo").URL(s.Issuer))
			if p.Status != http.StatusBadRequest || p.Location != "" {
				t.Errorf("%d %q, want 400 without a redirect", p.Status, p.Location)
			}
		})
	}
}

var upstreamStateRE = regexp.MustCompile(`^[A-Za-z0-9]{16,128}$`)

// SPEC: "Upstream `state` values are 16–128 characters of `[A-Za-z0-9]`
// (WeChat's rule)." and "`connector_id=ID` on the authorization request
// skips the chooser and goes straight to that provider."
func TestConnectorIDGoesStraightToProviderWithWeChatStyleState(t *testing.T) {
	s := shared
	tests := []struct{ connector, ua, base, path string }{
		{"wechat", desktopUA, s.WeChatURL, "/connect/qrconnect"},
		{"wechat_mp", weChatUA, s.WeChatURL, "/connect/oauth2/authorize"},
		{"qq", desktopUA, s.QQURL, sandbox.QQPathAuthorize},
		{"weibo", desktopUA, s.WeiboURL, sandbox.WeiboPathAuthorize},
	}
	for _, tc := range tests {
		t.Run(tc.connector, func(t *testing.T) {
			states := map[string]bool{}
			for i := 0; i < 3; i++ {
				b := s.Browser(tc.ua)
				p := b.StepGet(t, qiaotest.NewRawAuth(webClient, rpRedirect, tc.connector).URL(s.Issuer))
				if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, tc.base+tc.path+"?") {
					t.Fatalf("status %d Location %q, want a redirect to %s%s", p.Status, p.Location, tc.base, tc.path)
				}
				u, _ := url.Parse(p.Location)
				st := u.Query().Get("state")
				if !upstreamStateRE.MatchString(st) {
					t.Errorf("upstream state %q is not 16-128 characters of [A-Za-z0-9]", st)
				}
				if states[st] {
					t.Errorf("upstream state %q repeated", st)
				}
				states[st] = true
			}
		})
	}
}

var connectorIDRE = regexp.MustCompile(`data-connector-id="([^"]+)"`)

func chooserIDs(body string) []string {
	var ids []string
	for _, m := range connectorIDRE.FindAllStringSubmatch(body, -1) {
		ids = append(ids, m[1])
	}
	sort.Strings(ids)
	return ids
}

// SPEC: "Without it the chooser page lists the client's connectors, each as
// a link or button with the attribute `data-connector-id="ID"`." and "The
// chooser shows `wechat_mp` only inside the WeChat browser and the QR-code
// `wechat` only outside it."
func TestChooserListsTheClientsConnectorsWithDataConnectorID(t *testing.T) {
	s := shared
	tests := []struct {
		name, client, redirect, ua string
		want                       []string
	}{
		{"desktop browser: QR-code wechat, no wechat_mp, no mini-program", webClient, rpRedirect, desktopUA, []string{"qq", "wechat", "weibo"}},
		// Issue 11: a phone cannot scan its own screen, so the QR code is
		// not offered there (the page says to open it in WeChat instead).
		{"phone browser outside WeChat: no QR-code wechat", webClient, rpRedirect, "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36", []string{"qq", "weibo"}},
		{"WeChat browser: wechat_mp instead of wechat", webClient, rpRedirect, weChatUA, []string{"qq", "wechat_mp", "weibo"}},
		{"client without a connectors list: every web connector", web2Client, rp2Redirect, desktopUA, []string{"qq", "qqu", "wechat", "weibo"}},
		{"client without a connectors list in WeChat", web2Client, rp2Redirect, weChatUA, []string{"qq", "qqu", "wechat_mp", "weibo"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := s.Browser(tc.ua)
			p := b.StepGet(t, qiaotest.NewRawAuth(tc.client, tc.redirect, "").URL(s.Issuer))
			if p.Status != http.StatusOK {
				t.Fatalf("status %d Location %q, want the chooser page", p.Status, p.Location)
			}
			if got := chooserIDs(p.Body); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("chooser offers %v, want %v", got, tc.want)
			}
		})
	}
}

// SPEC: "Inside the WeChat browser ... on phones QQ gets `display=mobile`."
// and "A phone is a User-Agent with `Mobile`, `Android` or `iPhone`."
func TestQQGetsDisplayMobileOnPhones(t *testing.T) {
	s := shared
	tests := []struct {
		ua     string
		mobile bool
	}{
		{desktopUA, false},
		{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Version/17.0 Safari/604.1", true},
		{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Safari/537.36", true},
		{"Mozilla/5.0 (X11; Linux x86_64) Mobile Safari", true},
		{weChatUA, true},
	}
	for _, tc := range tests {
		t.Run(tc.ua, func(t *testing.T) {
			b := s.Browser(tc.ua)
			p := b.StepGet(t, qiaotest.NewRawAuth(webClient, rpRedirect, "qq").URL(s.Issuer))
			if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, s.QQURL) {
				t.Fatalf("status %d Location %q, want a redirect to QQ", p.Status, p.Location)
			}
			u, _ := url.Parse(p.Location)
			if got := u.Query().Get("display") == "mobile"; got != tc.mobile {
				t.Errorf("display=%q, want mobile: %v", u.Query().Get("display"), tc.mobile)
			}
		})
	}
}

// SPEC: "SSO: a second client's authorization request within the session
// skips the provider." and "`idp` stays the connector of the original login
// (also for SSO logins and after refresh). A `connector_id` other than the
// session's connector starts a fresh login with that provider."
func TestSSOSecondClientSkipsProviderAndKeepsIdp(t *testing.T) {
	s := shared
	first, b := s.webLogin(t, "weibo", "p06")
	firstClaims := claims(t, first.IDToken)

	t.Run("second client without connector_id signs in without the provider", func(t *testing.T) {
		a := qiaotest.NewRawAuth(web2Client, rp2Redirect, "")
		p := b.StepGet(t, a.URL(s.Issuer))
		if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, rp2Redirect+"?") {
			t.Fatalf("status %d Location %q, want a redirect straight to %s", p.Status, p.Location, rp2Redirect)
		}
		tk := s.redeem(t, a, p, web2Secret)
		c := claims(t, tk.IDToken)
		if c["sub"] != firstClaims["sub"] || c["idp"] != "weibo" {
			t.Errorf("SSO login sub=%v idp=%v, want sub=%v idp=weibo", c["sub"], c["idp"], firstClaims["sub"])
		}
		if c["aud"] != web2Client && !containsAny(c["aud"], web2Client) {
			t.Errorf("aud %v, want %s", c["aud"], web2Client)
		}
	})
	t.Run("the session's connector as connector_id signs in without the provider", func(t *testing.T) {
		a := qiaotest.NewRawAuth(web2Client, rp2Redirect, "weibo")
		p := b.StepGet(t, a.URL(s.Issuer))
		if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, rp2Redirect+"?") {
			t.Fatalf("status %d Location %q, want a redirect straight to %s", p.Status, p.Location, rp2Redirect)
		}
	})
	t.Run("another connector_id starts a fresh login with that provider", func(t *testing.T) {
		p := b.StepGet(t, qiaotest.NewRawAuth(web2Client, rp2Redirect, "qq").URL(s.Issuer))
		if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, s.QQURL+sandbox.QQPathAuthorize) {
			t.Fatalf("status %d Location %q, want a redirect to QQ", p.Status, p.Location)
		}
	})
	t.Run("prompt=login starts a fresh login with the provider", func(t *testing.T) {
		a := qiaotest.NewRawAuth(web2Client, rp2Redirect, "")
		a.Set("prompt", "login")
		p := b.StepGet(t, a.URL(s.Issuer))
		if isRedirect(p.Status) && strings.HasPrefix(p.Location, rp2Redirect) {
			t.Fatalf("prompt=login reused the session: %s", p.Location)
		}
		// With the session's connector named, straight to its provider.
		a = qiaotest.NewRawAuth(web2Client, rp2Redirect, "weibo")
		a.Set("prompt", "login")
		p = b.StepGet(t, a.URL(s.Issuer))
		if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, s.WeiboURL) {
			t.Fatalf("prompt=login with connector_id weibo: status %d Location %q, want a redirect to Weibo", p.Status, p.Location)
		}
	})
	t.Run("prompt=none with a session returns a code", func(t *testing.T) {
		a := qiaotest.NewRawAuth(web2Client, rp2Redirect, "")
		a.Set("prompt", "none")
		p := b.StepGet(t, a.URL(s.Issuer))
		u, _ := url.Parse(p.Location)
		if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, rp2Redirect+"?") || u.Query().Get("code") == "" {
			t.Fatalf("status %d Location %q, want a code at %s", p.Status, p.Location, rp2Redirect)
		}
		if c := claims(t, s.redeem(t, a, p, web2Secret).IDToken); c["sub"] != firstClaims["sub"] || c["idp"] != "weibo" {
			t.Errorf("prompt=none sign-in sub=%v idp=%v, want sub=%v idp=weibo", c["sub"], c["idp"], firstClaims["sub"])
		}
	})
	t.Run("max_age not yet passed reuses the session", func(t *testing.T) {
		a := qiaotest.NewRawAuth(web2Client, rp2Redirect, "")
		a.Set("max_age", "3600")
		p := b.StepGet(t, a.URL(s.Issuer))
		if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, rp2Redirect+"?") {
			t.Fatalf("status %d Location %q, want a redirect straight to %s", p.Status, p.Location, rp2Redirect)
		}
		c := claims(t, s.redeem(t, a, p, web2Secret).IDToken)
		if c["auth_time"] == nil {
			t.Error("no auth_time with max_age")
		}
	})
	t.Run("max_age=0 with prompt=none is a code or login_required", func(t *testing.T) {
		// A session from the same second may still count as fresh.
		a := qiaotest.NewRawAuth(web2Client, rp2Redirect, "")
		a.Set("max_age", "0")
		a.Set("prompt", "none")
		p := b.StepGet(t, a.URL(s.Issuer))
		u, _ := url.Parse(p.Location)
		if q := u.Query(); !isRedirect(p.Status) || !strings.HasPrefix(p.Location, rp2Redirect+"?") ||
			q.Get("code") == "" && q.Get("error") != "login_required" {
			t.Fatalf("status %d Location %q, want a code or error=login_required at %s", p.Status, p.Location, rp2Redirect)
		}
	})
	t.Run("another connector_id signs in there and idp follows it", func(t *testing.T) {
		a := qiaotest.NewRawAuth(web2Client, rp2Redirect, "qq")
		p := s.follow(t, b, a.URL(s.Issuer), "p06")
		if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, rp2Redirect+"?") {
			t.Fatalf("status %d Location %q, want a redirect to %s after QQ", p.Status, p.Location, rp2Redirect)
		}
		if c := claims(t, s.redeem(t, a, p, web2Secret).IDToken); c["idp"] != "qq" {
			t.Errorf("idp %v after signing in with QQ, want qq", c["idp"])
		}
	})
}

func containsAny(v any, want string) bool {
	l, ok := v.([]any)
	if !ok {
		return false
	}
	for _, x := range l {
		if x == want {
			return true
		}
	}
	return false
}

// SPEC: "prompt=none|login" and "max_age": prompt=none without a session
// answers login_required at the redirect URI; a passed max_age asks the
// provider again.
func TestPromptNoneWithoutSessionIsLoginRequired(t *testing.T) {
	s := shared
	b := s.Browser(desktopUA)
	a := qiaotest.NewRawAuth(webClient, rpRedirect, "")
	a.Set("prompt", "none")
	p := b.StepGet(t, a.URL(s.Issuer))
	u, _ := url.Parse(p.Location)
	if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, rpRedirect+"?") ||
		u.Query().Get("error") != "login_required" || u.Query().Get("state") != a.State() {
		t.Fatalf("status %d Location %q, want error=login_required&state=%s", p.Status, p.Location, a.State())
	}
}

func TestMaxAgePassedAsksTheProviderAgain(t *testing.T) {
	s := shared
	tk, b := s.webLogin(t, "weibo", "p25")
	authTime := int64(claims(t, tk.IDToken)["auth_time"].(float64))
	// max_age counts whole seconds: wait until two have passed.
	for time.Now().Unix() < authTime+2 {
		time.Sleep(100 * time.Millisecond)
	}
	a := qiaotest.NewRawAuth(webClient, rpRedirect, "")
	a.Set("max_age", "1")
	p := b.StepGet(t, a.URL(s.Issuer))
	if isRedirect(p.Status) && strings.HasPrefix(p.Location, rpRedirect) {
		t.Fatalf("max_age=1 after 2 s reused the session: %s", p.Location)
	}
	// Signing in again gives a fresh auth_time.
	a = qiaotest.NewRawAuth(webClient, rpRedirect, "weibo")
	a.Set("max_age", "1")
	p = s.follow(t, b, a.URL(s.Issuer), "p25")
	if !strings.HasPrefix(p.Location, rpRedirect+"?") {
		t.Fatalf("status %d Location %q after the provider", p.Status, p.Location)
	}
	c := claims(t, s.redeem(t, a, p, webSecret).IDToken)
	if at := int64(c["auth_time"].(float64)); at < authTime+2 {
		t.Errorf("auth_time %d after a fresh login, want >= %d", at, authTime+2)
	}
}
