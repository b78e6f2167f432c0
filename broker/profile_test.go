package broker_test

import (
	"bytes"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
	"golang.org/x/oauth2"
)

func testPNG(t *testing.T) []byte {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 4, 4))
	img.Set(1, 1, color.NRGBA{255, 0, 0, 255})
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// putPicture uploads body as the picture (contentType as sent).
func putPicture(t *testing.T, e *env, token, contentType string, body []byte) (int, string) {
	t.Helper()
	req := qiaotest.BearerRequest(t, http.MethodPut, e.issuer+"/api/v1/me/picture", token, nil)
	req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	p := e.Do(t, req)
	return p.Status, p.Body
}

// TestProfileSetByThePersonWinsOverTheProviders: a name and a picture
// set through the account API replace the provider's in the ID token,
// userinfo and /api/v1/me; the picture is served with safe headers.
func TestProfileSetByThePersonWinsOverTheProviders(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP(accountScopes...)
	tk := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	if tk.claims["name"] != "Nick alice" {
		t.Fatalf("the provider's name is %v", tk.claims["name"])
	}
	api := apiClient{e: e, token: tk.token.AccessToken}
	st, me := api.do("PATCH", "/api/v1/me", `{"name":"  小明\u202e  the\tgreat\u0000 "}`)
	if st != 200 || me["name"] != "小明 the great" {
		t.Fatalf("PATCH /api/v1/me: %d %v, want the cleaned name", st, me)
	}
	pic := testPNG(t)
	if st, body := putPicture(t, e, tk.token.AccessToken, "image/png", pic); st != 200 || !strings.Contains(body, `/pictures/`) {
		t.Fatalf("PUT picture: %d %s", st, body)
	}
	sub := tk.claims["sub"].(string)
	wantPic := e.issuer + "/pictures/" + sub

	// A new login through the provider: the person's own profile wins.
	tk2 := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	if tk2.claims["name"] != "小明 the great" || tk2.claims["picture"] != wantPic {
		t.Errorf("ID token name %v picture %v, want the person's own", tk2.claims["name"], tk2.claims["picture"])
	}
	st, info := apiClient{e: e, token: tk2.token.AccessToken}.do("GET", "/userinfo", "")
	if st != 200 || info["name"] != "小明 the great" || info["picture"] != wantPic {
		t.Errorf("userinfo %d %v", st, info)
	}

	resp, err := http.Get(wantPic)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	h := resp.Header
	if resp.StatusCode != 200 || !bytes.Equal(got, pic) || h.Get("Content-Type") != "image/png" || h.Get("X-Content-Type-Options") != "nosniff" ||
		!strings.HasPrefix(h.Get("Content-Security-Policy"), "default-src 'none'") || h.Get("Cache-Control") == "" || h.Get("ETag") == "" {
		t.Errorf("picture: %d, %d bytes, headers %v", resp.StatusCode, len(got), h)
	}
	req, _ := http.NewRequest(http.MethodGet, wantPic, nil)
	req.Header.Set("If-None-Match", h.Get("ETag"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: %v %v", resp.StatusCode, err)
	}

	// Cleared: the provider's again.
	if st, _ := api.do("PATCH", "/api/v1/me", `{"name":""}`); st != 200 {
		t.Fatal("clearing the name")
	}
	if st, _ := api.do("DELETE", "/api/v1/me/picture", ""); st != 200 {
		t.Fatal("clearing the picture")
	}
	tk3 := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	if tk3.claims["name"] != "Nick alice" || tk3.claims["picture"] != "https://img.example/alice.png" {
		t.Errorf("after clearing: %v %v", tk3.claims["name"], tk3.claims["picture"])
	}
	if resp, _ := http.Get(wantPic); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a cleared picture: HTTP %d", resp.StatusCode)
	}
}

// TestProfileBadInputs: every bad upload or name gets a clear 4xx and
// changes nothing; both need the account scope.
func TestProfileBadInputs(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP(accountScopes...)
	tk := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	tok := tk.token.AccessToken
	api := apiClient{e: e, token: tok}
	pic := testPNG(t)

	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("file", "avatar.png")
	_, _ = fw.Write(pic)
	_ = mw.Close()
	if st, body := putPicture(t, e, tok, mw.FormDataContentType(), mp.Bytes()); st != 200 {
		t.Fatalf("multipart upload (wx.uploadFile): %d %s", st, body)
	}

	for _, tc := range []struct {
		name, ct string
		body     []byte
		want     int
	}{
		{"an HTML page", "image/png", []byte("<html><script>alert(1)</script></html>"), http.StatusUnsupportedMediaType},
		{"an SVG", "image/svg+xml", []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`), http.StatusUnsupportedMediaType},
		{"a GIF", "image/gif", []byte("GIF89a......"), http.StatusUnsupportedMediaType},
		{"empty", "image/png", nil, http.StatusUnsupportedMediaType},
		{"too large", "image/png", append(append([]byte{}, pic...), make([]byte, 256<<10)...), http.StatusRequestEntityTooLarge},
		{"multipart without a file", "multipart/form-data; boundary=x", []byte("--x--\r\n"), http.StatusBadRequest},
	} {
		if st, body := putPicture(t, e, tok, tc.ct, tc.body); st != tc.want || !strings.Contains(body, "invalid_request") {
			t.Errorf("%s: %d %s, want %d invalid_request", tc.name, st, body, tc.want)
		}
	}
	for _, body := range []string{`{"name": 5}`, `{}`, `not json`, `{"name":"x","sub":"y"}`} {
		if st, m := api.do("PATCH", "/api/v1/me", body); st != 400 || m["error"] != "invalid_request" {
			t.Errorf("PATCH %s: %d %v", body, st, m)
		}
	}
	st, me := api.do("GET", "/api/v1/me", "")
	if st != 200 || me["name"] != "Nick alice" || !strings.HasSuffix(me["picture"].(string), "/pictures/"+tk.claims["sub"].(string)) {
		t.Errorf("after the bad inputs /api/v1/me = %v, want the provider's name and the multipart picture", me)
	}

	// Without the account scope: 403 insufficient_scope.
	plain := e.webRP("openid", "profile")
	ptk := plain.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	if st, m := (apiClient{e: e, token: ptk.token.AccessToken}).do("PATCH", "/api/v1/me", `{"name":"x"}`); st != 403 || m["error"] != "insufficient_scope" {
		t.Errorf("PATCH without account: %d %v", st, m)
	}
	if st, _ := putPicture(t, e, ptk.token.AccessToken, "image/png", pic); st != 403 {
		t.Errorf("PUT picture without account: %d", st)
	}
}

// TestAccountPageSetsNameAndPicture: the account page offers the same
// name and picture, with its CSRF token, and shows what was set.
func TestAccountPageSetsNameAndPicture(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.accountBrowser()
	a.get("/account/login?connector_id=alpha")
	page := a.get("/account")
	if !strings.Contains(page, "data-own-profile") || !strings.Contains(page, `value="Nick alice"`) {
		t.Fatalf("the account page offers no profile form: %.800s", page)
	}
	if body := a.post("/account/profile", url.Values{"name": {" Ada\u200b Lovelace "}}); !strings.Contains(body, `data-status="profile_saved"`) || !strings.Contains(body, `value="Ada Lovelace"`) {
		t.Errorf("after saving the name: %.800s", body)
	}
	a.post("/account/profile", url.Values{"name": {"Mallory"}, "csrf": {"forged"}})
	if body := a.get("/account"); strings.Contains(body, `value="Mallory"`) || !strings.Contains(body, `value="Ada Lovelace"`) {
		t.Errorf("a forged CSRF token set the name")
	}

	upload := func(csrf string, file []byte) string {
		t.Helper()
		var mp bytes.Buffer
		mw := multipart.NewWriter(&mp)
		_ = mw.WriteField("csrf", csrf)
		fw, _ := mw.CreateFormFile("picture", "me.png")
		_, _ = fw.Write(file)
		_ = mw.Close()
		req, _ := http.NewRequest("POST", e.issuer+"/account/picture", &mp)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := a.br.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return a.read(resp)
	}
	if body := upload(a.csrf, []byte("<svg onload=alert(1)>")); !strings.Contains(body, `data-error="picture_bad"`) {
		t.Errorf("an SVG upload: %.600s", body)
	}
	upload("forged", testPNG(t))
	if body := a.get("/account"); strings.Contains(body, "/pictures/") {
		t.Errorf("a forged CSRF token set the picture")
	}
	body := upload(a.csrf, testPNG(t))
	if !strings.Contains(body, `data-status="profile_saved"`) || !strings.Contains(body, "/pictures/") || !strings.Contains(body, "data-user-picture") {
		t.Errorf("after the upload: %.800s", body)
	}
	if body := a.post("/account/picture", url.Values{"remove": {"1"}}); strings.Contains(body, "/pictures/") || !strings.Contains(body, `data-status="profile_saved"`) {
		t.Errorf("remove kept the picture: %.1500s", body)
	}
}
