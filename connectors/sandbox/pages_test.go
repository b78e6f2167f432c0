package sandbox

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/connectors/internal/conntest"
	"github.com/qiaoidp/qiao/internal/pagecheck"
)

// simulatorPages serves the three simulators, each under its own prefix
// of one server, and returns the server and the URL of every page a
// person can meet at them.
func simulatorPages(t *testing.T) (*httptest.Server, map[string]string) {
	t.Helper()
	wc, err := NewWeChat(WeChatOptions{Apps: []WeChatApp{
		{AppID: "wxweb", Secret: "s1", Type: WeChatWebsite},
		{AppID: "wxmp", Secret: "s2", Type: WeChatMP},
	}})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/wechat/", http.StripPrefix("/wechat", wc))
	mux.Handle("/qq/", http.StripPrefix("/qq", NewQQ(QQOptions{Apps: []QQApp{{ClientID: qqTestApp, Secret: qqTestSecret, RedirectURI: qqTestRedirect}}})))
	mux.Handle("/weibo/", http.StripPrefix("/weibo", NewWeibo(WeiboOptions{Apps: []WeiboApp{{ClientID: weiboTestApp, Secret: weiboTestSecret, RedirectURI: weiboTestRedirect}}})))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	wx := func(path, appid, scope string) string {
		return srv.URL + "/wechat" + path + "?appid=" + appid + "&redirect_uri=" + url.QueryEscape("https://rp.example/cb") + "&response_type=code&scope=" + scope + "&state=abc"
	}
	qq := func(display string) string {
		q := qqAuthorizeQuery(qqTestApp, qqTestRedirect)
		if display != "" {
			q.Set("display", display)
		}
		return srv.URL + "/qq" + QQPathAuthorize + "?" + q.Encode()
	}
	wb := func(display string) string {
		q := weiboAuthorizeQuery(weiboTestApp, weiboTestRedirect)
		if display != "" {
			q.Set("display", display)
		}
		return srv.URL + "/weibo" + WeiboPathAuthorize + "?" + q.Encode()
	}
	closedQ := qqAuthorizeQuery(qqTestApp, qqTestRedirect)
	closedQ.Set(denyParam, "1")
	return srv, map[string]string{
		"WeChat QR-code login":               wx("/connect/qrconnect", "wxweb", "snsapi_login"),
		"WeChat Official Account, userinfo":  wx("/connect/oauth2/authorize", "wxmp", "snsapi_userinfo"),
		"WeChat Official Account, base":      wx("/connect/oauth2/authorize", "wxmp", "snsapi_base"),
		"WeChat error page":                  wx("/connect/qrconnect", "nobody", "snsapi_login"),
		"WeChat Official Account error page": wx("/connect/oauth2/authorize", "nobody", "snsapi_base"),
		"QQ login on a computer":             qq(""),
		"QQ login on a phone":                qq("mobile"),
		"QQ error page":                      srv.URL + "/qq" + QQPathAuthorize + "?response_type=code&client_id=1",
		"QQ closed window after a cancel":    srv.URL + "/qq" + QQPathAuthorize + "?" + closedQ.Encode(),
		"Weibo authorization":                wb(""),
		"Weibo authorization on a phone":     wb("mobile"),
		"Weibo error page":                   srv.URL + "/weibo" + WeiboPathAuthorize + "?client_id=nobody",
	}
}

func get(t *testing.T, u string) (*http.Response, string) {
	t.Helper()
	resp, err := conntest.NoRedirect().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

var imgSrcRE = regexp.MustCompile(`<img [^>]*src="([^"]+)"`)

// TestSimulatorPagesSaySandboxAndLoadNothingFromElsewhere: every page of
// every simulator renders, is labelled SANDBOX, names its provider,
// references no host but the machine's own, and its avatars load from
// the simulator.
func TestSimulatorPagesSaySandboxAndLoadNothingFromElsewhere(t *testing.T) {
	_, pages := simulatorPages(t)
	for name, u := range pages {
		t.Run(name, func(t *testing.T) {
			resp, page := get(t, u)
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
				t.Fatalf("HTTP %d, Content-Type %q", resp.StatusCode, ct)
			}
			if !strings.Contains(page, "SANDBOX") || !strings.Contains(page, "data-sandbox") {
				t.Errorf("the page is not labelled SANDBOX: %.300s", page)
			}
			if !regexp.MustCompile(`data-provider="(wechat|qq|weibo)"`).MatchString(page) || !strings.Contains(page, `lang="zh-CN"`) {
				t.Errorf("no data-provider or lang: %.300s", page)
			}
			for _, ext := range pagecheck.ExternalURLs(page) {
				// The app's own site, where the person came from, is
				// the one host allowed (on loopback in the demo).
				if !strings.HasPrefix(ext, "https://rp.example/") {
					t.Errorf("the page references a host off the machine: %q", ext)
				}
			}
			for _, m := range imgSrcRE.FindAllStringSubmatch(page, -1) {
				src, err := url.Parse(m[1])
				if err != nil || !pagecheck.Loopback(src.String()) {
					t.Errorf("avatar %q is not on the simulator's host", m[1])
					continue
				}
				resp, svg := get(t, src.String())
				if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/svg+xml" || !strings.HasPrefix(svg, "<svg") {
					t.Errorf("avatar %s: HTTP %d, %q, %.60s", src, resp.StatusCode, resp.Header.Get("Content-Type"), svg)
				}
			}
		})
	}
}

// TestSimulatorsServeTheirOwnAvatars: a person without an avatar URL gets
// the simulator's generated one, in the picker and in the API's profile,
// under whatever prefix the simulator is mounted at; an unknown person
// or file is a 404; a person with an Avatar keeps it.
func TestSimulatorsServeTheirOwnAvatars(t *testing.T) {
	srv, pages := simulatorPages(t)
	_, page := get(t, pages["Weibo authorization"])
	want := AvatarURL(srv.URL+"/weibo", "alice")
	if !strings.Contains(page, `src="`+want+`"`) {
		t.Errorf("the Weibo picker does not show %s: %.600s", want, page)
	}
	_, page = get(t, pages["QQ login on a computer"])
	if want := AvatarURL(srv.URL+"/qq", "bob") + "?"; strings.Contains(page, want) || !strings.Contains(page, AvatarURL(srv.URL+"/qq", "bob")) {
		t.Errorf("the QQ picker does not show bob's avatar %s: %.600s", AvatarURL(srv.URL+"/qq", "bob"), page)
	}
	for path, status := range map[string]int{
		"/weibo/sandbox/avatar/alice.svg":   200,
		"/qq/sandbox/avatar/carol.svg":      200,
		"/wechat/sandbox/avatar/bob.svg":    200,
		"/wechat/sandbox/avatar/nobody.svg": 404,
		"/wechat/sandbox/avatar/alice.png":  404,
		"/wechat/sandbox/avatar/":           404,
	} {
		resp, body := get(t, srv.URL+path)
		if resp.StatusCode != status {
			t.Errorf("GET %s: HTTP %d, want %d", path, resp.StatusCode, status)
		}
		if status == 200 && (!strings.Contains(body, "<svg") || !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'none'")) {
			t.Errorf("GET %s: %q, CSP %q", path, body, resp.Header.Get("Content-Security-Policy"))
		}
	}
	// Two people, two pictures; the name's first character on it.
	a, b := string(avatarSVG(Person{ID: "alice", Name: "爱丽丝"})), string(avatarSVG(Person{ID: "bob", Name: "<b>"}))
	if !strings.Contains(a, ">爱</text>") || !strings.Contains(b, ">&lt;</text>") || strings.Contains(b, "<b>") {
		t.Errorf("avatars: %s / %s", a, b)
	}

	own := Person{ID: "dave", Name: "Dave", Avatar: "http://127.0.0.1:1/dave.png"}
	r := httptest.NewRequest(http.MethodGet, "http://sim.test/x", nil)
	if got := avatarURL(r, own); got != own.Avatar {
		t.Errorf("a person's own avatar became %q", got)
	}
	if got := avatarURL(r, Person{ID: "eve"}); got != "http://sim.test/sandbox/avatar/eve.svg" {
		t.Errorf("generated avatar URL %q", got)
	}
}

// TestQQCancelOnAComputerExplainsAndOffersAWayBack: the real QQ closes
// its window on a cancel and tells the app nothing; the simulator's page
// says so, sends nothing to the app either, and offers the picker again
// and the site that sent the person.
func TestQQCancelOnAComputerExplainsAndOffersAWayBack(t *testing.T) {
	_, pages := simulatorPages(t)
	_, picker := get(t, pages["QQ login on a computer"])
	deny := conntest.PickLink(t, pages["QQ login on a computer"], picker, "data-deny")
	resp, page := get(t, deny)
	if resp.StatusCode != 200 || resp.Header.Get("Location") != "" {
		t.Fatalf("cancel: HTTP %d, Location %q; want the closed-window page and no redirect", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, want := range []string{"data-cancelled", "closes its login window and sends nothing back", "登录已取消"} {
		if !strings.Contains(page, want) {
			t.Errorf("the closed page lacks %q: %.800s", want, page)
		}
	}
	retry := conntest.PickLink(t, deny, page, "data-retry")
	if strings.Contains(retry, denyParam) {
		t.Errorf("the retry link %s still cancels", retry)
	}
	if _, again := get(t, retry); !strings.Contains(again, `data-person="alice"`) {
		t.Errorf("the retry link %s does not show the picker again", retry)
	}
	if back := conntest.PickLink(t, deny, page, "data-back"); back != "https://rp.example/" {
		t.Errorf("the way back is %q, want the site of the redirect URI, https://rp.example/", back)
	}
}
