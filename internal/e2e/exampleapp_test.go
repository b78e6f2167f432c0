package e2e_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/exampleapp"
	"github.com/qiaoidp/qiao/internal/pagecheck"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// TestExampleAppSignsInRefreshesAndSignsOut drives the demo's relying
// party through the broker and a simulator: login with a connector_id,
// the claims table, a refresh, the chooser, and RP-initiated logout.
func TestExampleAppSignsInRefreshesAndSignsOut(t *testing.T) {
	appLn := qiaotest.Listen(t)
	appURL := "http://" + appLn.Addr().String()
	s := newWorld(t, qiaotest.WithClient(qiaotest.Client{
		ID: "example-app", Secret: "example-secret-0123456789abcdef0123456789",
		RedirectURIs: []string{appURL + "/callback"}, PostLogoutRedirectURIs: []string{appURL + "/"},
		Connectors: []string{"wechat", "wechat_mp", "qq", "weibo"},
	}))
	app, err := exampleapp.New(context.Background(), exampleapp.Config{
		Issuer: s.Issuer, ClientID: "example-app", ClientSecret: "example-secret-0123456789abcdef0123456789", BaseURL: appURL,
		Connectors: []exampleapp.Connector{{ID: "wechat", Name: "WeChat"}, {ID: "qq", Name: "QQ"}, {ID: "weibo", Name: "Weibo"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(app)
	srv.Listener.Close()
	srv.Listener = appLn
	srv.Start()
	t.Cleanup(srv.Close)

	br := qiaotest.NewBrowser(nil) // follows everything: the app is a real server
	home, err := br.Get(appURL + "/")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"wechat", "qq", "weibo", ""} {
		if _, err := home.Link("data-login", id); err != nil {
			t.Fatal(err)
		}
	}

	// Sign in with QQ: the app's page shows the verified claims.
	l, _ := home.Link("data-login", "qq")
	page, err := br.LoginAt(l.Href, "bob")
	if err != nil {
		t.Fatal(err)
	}
	if page.URL.String() != appURL+"/" || !strings.Contains(page.Body, "data-notice") {
		t.Fatalf("after the login: HTTP %d at %s; body %.500s", page.Status, page.URL, page.Body)
	}
	claims := claimTable(t, page)
	if claims["idp"] != "qq" || claims["name"] != qiaotest.Person(t, "bob").Name || claims["iss"] != s.Issuer || claims["sub"] == "" {
		t.Fatalf("claims table %v, want idp qq, bob's name, iss %s and a sub", claims, s.Issuer)
	}
	if !strings.Contains(page.Body, "data-raw-claims") || !strings.Contains(page.Body, `&#34;idp&#34;: &#34;qq&#34;`) {
		t.Errorf("no raw JSON claims on the page")
	}
	if _, err := page.Link("data-action", "account"); err != nil {
		t.Error(err)
	}
	sub := claims["sub"]

	// Refresh: new tokens, the same user.
	page, err = br.PostForm(appURL+"/refresh", url.Values{"csrf": {csrfOf(t, page)}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.Body, "Refreshed") {
		t.Fatalf("after refresh: %.500s", page.Body)
	}
	if c := claimTable(t, page); c["sub"] != sub || c["idp"] != "qq" {
		t.Errorf("refreshed claims %v, want sub %s idp qq", c, sub)
	}
	// A POST without the CSRF token is refused.
	if bad, err := br.PostForm(appURL+"/refresh", url.Values{"csrf": {"forged"}}); err != nil || bad.Status != 400 {
		t.Errorf("refresh with a forged CSRF token: %v %v, want 400", bad, err)
	}

	// Logout: through the broker's end_session_endpoint and back.
	page, err = br.PostForm(appURL+"/logout", url.Values{"csrf": {csrfOf(t, page)}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(page.Body, "Signed out of the app and of the broker") {
		t.Fatalf("after logout: HTTP %d at %s: %.500s", page.Status, page.URL, page.Body)
	}
	// The broker session is gone: the chooser shows again, rather than SSO.
	l, _ = page.Link("data-login", "")
	chooser, err := br.Get(l.Href)
	if err != nil {
		t.Fatal(err)
	}
	c, err := chooser.Link("data-connector-id", "weibo")
	if err != nil {
		t.Fatalf("no chooser after logout: %v", err)
	}
	page, err = br.LoginAt(c.Href, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if got := claimTable(t, page); got["idp"] != "weibo" || got["name"] != qiaotest.Person(t, "alice").Name {
		t.Errorf("claims after choosing Weibo: %v", got)
	}
}

// claimTable reads the app's claims table: <tr data-claim="NAME"> rows.
func claimTable(t *testing.T, p *qiaotest.Page) map[string]string {
	t.Helper()
	rows, err := p.Elements("tr", "data-claim")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, r := range rows {
		// The row's text is the name, the value and the meaning, in cells.
		if len(r.Cells) < 2 {
			t.Fatalf("claim row %v has %d cells", r.Attrs, len(r.Cells))
		}
		out[r.Attrs["data-claim"]] = r.Cells[1]
	}
	if len(out) == 0 {
		t.Fatalf("no claims table on the page at %s: %.500s", p.URL, p.Body)
	}
	return out
}

func csrfOf(t *testing.T, p *qiaotest.Page) string {
	t.Helper()
	inputs, err := p.Elements("input", "name")
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range inputs {
		if in.Attrs["name"] == "csrf" && in.Attrs["value"] != "" {
			return in.Attrs["value"]
		}
	}
	t.Fatalf("no csrf input on the page")
	return ""
}

// TestExampleAppShowsTheBrokersErrors: a refusal at the provider and a
// forged callback end on the app's page with a clear error, not tokens.
func TestExampleAppShowsTheBrokersErrors(t *testing.T) {
	appLn := qiaotest.Listen(t)
	appURL := "http://" + appLn.Addr().String()
	s := newWorld(t, qiaotest.WithClient(qiaotest.Client{
		ID: "example-app", Secret: "example-secret-0123456789abcdef0123456789",
		RedirectURIs: []string{appURL + "/callback"}, PostLogoutRedirectURIs: []string{appURL + "/"},
	}))
	app, err := exampleapp.New(context.Background(), exampleapp.Config{
		Issuer: s.Issuer, ClientID: "example-app", ClientSecret: "example-secret-0123456789abcdef0123456789", BaseURL: appURL,
		Connectors: []exampleapp.Connector{{ID: "wechat", Name: "WeChat"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	qiaotest.Serve(t, appLn, app)

	br := qiaotest.NewBrowser(nil)
	picker, err := br.Get(appURL + "/login?connector=wechat")
	if err != nil {
		t.Fatal(err)
	}
	page, err := br.Refuse(picker)
	if err != nil {
		t.Fatal(err)
	}
	errs, _ := page.Elements("p", "data-error")
	if len(errs) != 1 || !strings.Contains(errs[0].Text, "access_denied") {
		t.Fatalf("after a refusal: errors %v on %s; body %.400s", errs, page.URL, page.Body)
	}
	if rows, _ := page.Elements("tr", "data-claim"); len(rows) != 0 {
		t.Error("claims shown after a refusal")
	}

	page, err = br.Get(appURL + "/callback?code=stolen&state=forged")
	if err != nil {
		t.Fatal(err)
	}
	errs, _ = page.Elements("p", "data-error")
	if len(errs) != 1 || !strings.Contains(errs[0].Text, "state") {
		t.Fatalf("after a forged callback: errors %v; body %.400s", errs, page.Body)
	}
	if app.RedirectURL() != appURL+"/callback" {
		t.Errorf("RedirectURL = %q", app.RedirectURL())
	}
}

// TestExampleAppErrorsArePagesWithAWayBack: every error of the app itself
// is a styled HTML page with the status, what went wrong and a link back
// to the home page, and references no host off the machine.
func TestExampleAppErrorsArePagesWithAWayBack(t *testing.T) {
	appLn := qiaotest.Listen(t)
	appURL := "http://" + appLn.Addr().String()
	s := newWorld(t, qiaotest.WithClient(qiaotest.Client{
		ID: "example-app", Secret: "example-secret-0123456789abcdef0123456789",
		RedirectURIs: []string{appURL + "/callback"},
	}))
	app, err := exampleapp.New(context.Background(), exampleapp.Config{
		Issuer: s.Issuer, ClientID: "example-app", ClientSecret: "example-secret-0123456789abcdef0123456789", BaseURL: appURL,
		Connectors: []exampleapp.Connector{{ID: "qq", Name: "QQ"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	qiaotest.Serve(t, appLn, app)

	for _, tc := range []struct {
		name, method, path string
		status             int
		want               string
	}{
		{"an unknown connector", "GET", "/login?connector=nope", 400, `connector "nope"`},
		{"a page that does not exist", "GET", "/nowhere", 404, "no page at /nowhere"},
		{"a callback without a session", "GET", "/callback?code=x&state=y", 400, "no session at the app"},
		{"a form without a session", "POST", "/refresh", 400, "no session at the app"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			br := qiaotest.NewBrowser(nil) // a fresh browser: no cookies
			var page *qiaotest.Page
			var err error
			if tc.method == "POST" {
				page, err = br.PostForm(appURL+tc.path, url.Values{"csrf": {"x"}})
			} else {
				page, err = br.Get(appURL + tc.path)
			}
			if err != nil {
				t.Fatal(err)
			}
			if page.Status != tc.status || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
				t.Fatalf("HTTP %d, %q; want %d and an HTML page", page.Status, page.Header.Get("Content-Type"), tc.status)
			}
			errs, _ := page.Elements("p", "data-error")
			if len(errs) != 1 || !strings.Contains(errs[0].Text, tc.want) {
				t.Errorf("error text %v, want %q; body %.400s", errs, tc.want, page.Body)
			}
			if home, err := page.Link("data-action", "home"); err != nil || home.Href != appURL+"/" {
				t.Errorf("no way back home: %v %v", home, err)
			}
			if !strings.Contains(page.Body, "<style>") || !strings.Contains(page.Body, `data-app-error="`) {
				t.Errorf("not the app's styled error page: %.300s", page.Body)
			}
			if ext := pagecheck.ExternalURLs(page.Body); len(ext) > 0 {
				t.Errorf("the error page references hosts off the machine: %q", ext)
			}
		})
	}
}
