package broker_test

import (
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
	"golang.org/x/oauth2"
)

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// logoutForm returns the hidden fields of a logout confirmation page.
func logoutForm(t testing.TB, resp *http.Response) url.Values {
	t.Helper()
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "data-confirm-logout") {
		t.Fatalf("not the logout confirmation page: %d %.300s", resp.StatusCode, body)
	}
	form := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(string(body), -1) {
		form.Add(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return form
}

// confirmLogout posts the confirmation page's form, as "sign out" does.
func (br *browser) confirmLogout(page *http.Response) *http.Response {
	br.t.Helper()
	form := logoutForm(br.t, page)
	req := qiaotest.FormRequest(br.t, page.Request.URL.Scheme+"://"+page.Request.URL.Host+page.Request.URL.Path, form, "", "")
	resp, err := br.Client.Do(req)
	if err != nil {
		br.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// signedIn reports whether the browser still has an SSO session.
func signedIn(r *rp, br *browser) bool {
	a := r.authURL(oauth2.SetAuthURLParam("prompt", "none"))
	return r.authorize(br, a).Get("error") == ""
}

func TestLogoutAsksUnlessTheHintIsTheSessionUsers(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()
	e.fakes["alpha"].setPerson("alice")
	aliceBrowser := e.newBrowser()
	alice := r.login(aliceBrowser, oauth2.SetAuthURLParam("connector_id", "alpha"))
	e.fakes["alpha"].setPerson("bob")
	bobBrowser := e.newBrowser()
	r.login(bobBrowser, oauth2.SetAuthURLParam("connector_id", "alpha"))

	const bye = "http://127.0.0.1:9/bye"
	tests := []struct {
		name string
		br   *browser
		q    url.Values
	}{
		{"another user's hint", bobBrowser, url.Values{"id_token_hint": {alice.raw}, "post_logout_redirect_uri": {bye}, "state": {"s1"}}},
		{"client_id alone", bobBrowser, url.Values{"client_id": {"web"}, "post_logout_redirect_uri": {bye}, "state": {"s1"}}},
		{"a GET carrying a csrf parameter", bobBrowser, url.Values{"client_id": {"web"}, "csrf": {"x"}, "post_logout_redirect_uri": {bye}, "state": {"s1"}}},
		{"a hint and no session", e.newBrowser(), url.Values{"id_token_hint": {alice.raw}, "post_logout_redirect_uri": {bye}, "state": {"s1"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.br.get(e.issuer + "/logout?" + tc.q.Encode())
			if resp.StatusCode != http.StatusOK {
				resp.Body.Close()
				t.Fatalf("status %d location %q, want the confirmation page", resp.StatusCode, resp.Header.Get("Location"))
			}
			form := logoutForm(t, resp)
			if form.Get("client_id") != "web" || form.Get("post_logout_redirect_uri") != bye || form.Get("state") != "s1" || form.Get("csrf") == "" {
				t.Errorf("confirmation form = %v, want client_id, post_logout_redirect_uri, state and csrf", form)
			}
			if tc.br == bobBrowser && !signedIn(r, bobBrowser) {
				t.Fatal("the session ended without asking")
			}
		})
	}
	// Confirming signs Bob out and still returns to the client.
	resp := bobBrowser.get(e.issuer + "/logout?" + url.Values{"id_token_hint": {alice.raw}, "post_logout_redirect_uri": {bye}, "state": {"s2"}}.Encode())
	resp = bobBrowser.confirmLogout(resp)
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != bye+"?state=s2" {
		t.Fatalf("after confirming: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if signedIn(r, bobBrowser) {
		t.Error("Bob is still signed in after confirming")
	}
	// Alice's own hint signs her out at once.
	if !signedIn(r, aliceBrowser) {
		t.Fatal("Alice lost her session when Bob signed out")
	}
	resp = aliceBrowser.get(e.issuer + "/logout?" + url.Values{"id_token_hint": {alice.raw}, "post_logout_redirect_uri": {bye}}.Encode())
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != bye {
		t.Fatalf("logout with the session user's hint: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if signedIn(r, aliceBrowser) {
		t.Error("Alice is still signed in")
	}
}

func TestSignedOutPageIsNotAnError(t *testing.T) {
	e := newEnv(t, envOptions{})
	br := e.newBrowser()
	r := e.webRP()
	tk := r.login(br, oauth2.SetAuthURLParam("connector_id", "alpha"))
	resp := br.get(e.issuer + "/logout?" + url.Values{"id_token_hint": {tk.raw}}.Encode())
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `role="status"`) || strings.Contains(string(body), `role="alert"`) {
		t.Fatalf("signed-out page: %d %s", resp.StatusCode, body)
	}
}
