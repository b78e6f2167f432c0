package broker_test

import (
	"bytes"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
	"golang.org/x/oauth2"
)

// TestPictureRoutesDeclareTheirOwnBodyLimit: the picture routes take a
// picture of nearly 256 KB (the body limit their routes declare), through
// the account API and the account page, while a form posted to the same
// route is held to the 64 KiB every other request gets.
func TestPictureRoutesDeclareTheirOwnBodyLimit(t *testing.T) {
	e := newEnv(t, envOptions{})
	large := append(testPNG(t), make([]byte, 200<<10)...)

	r := e.webRP(accountScopes...)
	tok := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha")).token.AccessToken
	if st, body := putPicture(t, e, tok, "image/png", large); st != http.StatusOK {
		t.Errorf("a 200 KB picture through the API: %d %s", st, body)
	}

	a := e.accountBrowser()
	a.get("/account/login?connector_id=alpha")
	a.get("/account")
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	_ = mw.WriteField("csrf", a.csrf)
	fw, _ := mw.CreateFormFile("picture", "me.png")
	_, _ = fw.Write(large)
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, e.issuer+"/account/picture", &mp)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := a.br.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := a.read(resp); !strings.Contains(body, `data-status="profile_saved"`) || !strings.Contains(body, "/pictures/") {
		t.Errorf("a 200 KB picture through the account page: %d %.600s", resp.StatusCode, body)
	}

	// A form is no picture: the route's limit is not the form's.
	form := url.Values{"csrf": {a.csrf}, "remove": {"1"}, "pad": {strings.Repeat("p", 100<<10)}}
	req = qiaotest.FormRequest(t, e.issuer+"/account/picture", form, "", "")
	resp, err = a.br.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := a.read(resp); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 100 KiB form to the picture route: %d, want 413\n%.600s", resp.StatusCode, body)
	}
	if body := a.get("/account"); !strings.Contains(body, "/pictures/") {
		t.Errorf("the oversized form removed the picture")
	}
}
