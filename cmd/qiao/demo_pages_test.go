package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/pagecheck"
)

// linkRE finds what a page links to or loads.
var linkRE = regexp.MustCompile(`(?i)(?:href|src|action)="([^"]*)"`)

// volatileParams change on every request; a crawl that tells pages apart
// by them would never end.
var volatileParams = map[string]bool{
	"state": true, "nonce": true, "code": true, "code_challenge": true, "redirect_uri": true,
	"sandbox_person": true, "csrf": true, "id_token_hint": true, "post_logout_redirect_uri": true,
}

// pageKey names a page for the crawl: host, path and the parameters, the
// volatile ones without their values.
func pageKey(u *url.URL) string {
	var parts []string
	for k, vs := range u.Query() {
		if volatileParams[k] {
			parts = append(parts, k)
		} else {
			parts = append(parts, k+"="+strings.Join(vs, ","))
		}
	}
	sort.Strings(parts)
	return u.Host + u.Path + "?" + strings.Join(parts, "&")
}

// TestDemoPagesReferenceNoHostOffTheMachine crawls the running demo as a
// person clicking every link would (the example app, every sign-in
// button, the providers' pages, the broker's pages, the avatars), plus
// the error pages no link leads to, and fails on any http(s) URL in an
// HTML page or stylesheet whose host is not this machine: the banner
// says nothing leaves it.
func TestDemoPagesReferenceNoHostOffTheMachine(t *testing.T) {
	out := startTestDemo(t, demoOptions{host: "127.0.0.1", anyPort: true})
	app, issuer := printedURL(out, "example app:"), printedURL(out, "broker issuer:")
	wx, qq, wb := printedURL(out, "WeChat sim:"), printedURL(out, "QQ sim:"), printedURL(out, "Weibo sim:")
	callback := url.QueryEscape(issuer + "/callback/")
	seeds := []string{
		app, issuer + "/", issuer + "/account", issuer + "/logout", issuer + "/nowhere",
		issuer + "/auth?client_id=nobody", app + "nowhere", app + "login?connector=nope",
		wx + "/connect/oauth2/authorize?appid=" + demoWeChatMPAppID + "&redirect_uri=" + callback + "wechat_mp&response_type=code&scope=snsapi_userinfo&state=abc",
		wx + "/connect/qrconnect?appid=nobody&redirect_uri=" + callback + "wechat&response_type=code&scope=snsapi_login&state=abc",
		qq + "/oauth2.0/authorize?response_type=code&client_id=nobody",
		qq + "/oauth2.0/authorize?response_type=code&client_id=" + demoQQAppID + "&redirect_uri=" + callback + "qq&state=abc&display=mobile",
		wb + "/oauth2/authorize?client_id=nobody",
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	queue := append([]string(nil), seeds...)
	seen := map[string]bool{}
	pages, html := 0, 0
	for len(queue) > 0 && pages < 400 {
		raw := queue[0]
		queue = queue[1:]
		u, err := url.Parse(raw)
		if err != nil || seen[pageKey(u)] {
			continue
		}
		seen[pageKey(u)] = true
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", raw, err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		pages++
		if resp.StatusCode >= 500 {
			t.Errorf("GET %s: HTTP %d", raw, resp.StatusCode)
		}
		ct := resp.Header.Get("Content-Type")
		if !strings.HasPrefix(ct, "text/html") && !strings.HasPrefix(ct, "text/css") {
			continue
		}
		html++
		for _, ext := range pagecheck.ExternalURLs(string(body)) {
			t.Errorf("%s (from %s) references %s", resp.Request.URL, raw, ext)
		}
		for _, m := range linkRE.FindAllStringSubmatch(string(body), -1) {
			ref, err := url.Parse(strings.ReplaceAll(m[1], "&amp;", "&"))
			if err != nil {
				continue
			}
			next := resp.Request.URL.ResolveReference(ref)
			if (next.Scheme == "http" || next.Scheme == "https") && pagecheck.Loopback(next.String()) {
				queue = append(queue, next.String())
			}
		}
	}
	// The crawl saw the providers' pages and a sign-in's result.
	if html < 20 {
		t.Errorf("the crawl saw only %d HTML pages of %d", html, pages)
	}
	for _, want := range []string{wx, qq, wb, issuer + "/account", app} {
		found := false
		for k := range seen {
			found = found || strings.HasPrefix("http://"+k, want)
		}
		if !found {
			t.Errorf("the crawl never reached %s", want)
		}
	}
	t.Logf("crawled %d pages (%d HTML or CSS)", pages, html)
}
