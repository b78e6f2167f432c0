package sandbox_test

import (
	"bytes"
	"encoding/json"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors/sandbox"
)

func (e *wxEnv) appToken(t *testing.T, appid string) string {
	t.Helper()
	st := e.postJSON(t, "/cgi-bin/stable_token", nil, map[string]any{"grant_type": "client_credential", "appid": appid, "secret": wxSecret})
	if st.str("access_token") == "" {
		t.Fatalf("stable_token: %s", st.raw)
	}
	return st.str("access_token")
}

// wxaCode posts body to getwxacodeunlimit and returns the reply raw.
func (e *wxEnv) wxaCode(t *testing.T, token, contentType, body string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Post(e.srv.URL+"/wxa/getwxacodeunlimit?"+url.Values{"access_token": {token}}.Encode(), contentType, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestWeChatMiniProgramCodeImage: a good request gets the image bytes
// (JPEG; PNG with is_hyaline) of the asked width, HTTP 200, no JSON.
func TestWeChatMiniProgramCodeImage(t *testing.T) {
	e := newWXEnv(t, nil)
	tok := e.appToken(t, wxMini)
	resp, b := e.wxaCode(t, tok, "application/json", `{"scene":"a=1&b=2","page":"pages/scan/index","width":300}`)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Fatalf("HTTP %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	img, err := jpeg.Decode(bytes.NewReader(b))
	if err != nil || img.Bounds().Dx() != 300 {
		t.Fatalf("JPEG: %v %v", err, img)
	}
	resp, b = e.wxaCode(t, tok, "application/json", `{"scene":"x","is_hyaline":true}`)
	if resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("hyaline Content-Type %s", resp.Header.Get("Content-Type"))
	}
	pimg, err := png.Decode(bytes.NewReader(b))
	if err != nil || pimg.Bounds().Dx() != 430 {
		t.Fatalf("PNG: %v", err)
	}
	if _, _, _, a := pimg.At(0, 0).RGBA(); a != 0 {
		t.Errorf("hyaline background is not transparent")
	}
	codes := e.sim.Codes()
	if len(codes) != 2 || codes[0].Scene != "x" || codes[1].Scene != "a=1&b=2" || codes[1].Page != "pages/scan/index" || codes[1].EnvVersion != "release" {
		t.Errorf("codes %+v", codes)
	}
	var _ image.Image = img
}

// TestWeChatMiniProgramCodeErrors: every error §4.8 lists, as WeChat
// sends it (HTTP 200, JSON errcode/errmsg with a rid).
func TestWeChatMiniProgramCodeErrors(t *testing.T) {
	e := newWXEnv(t, func(o *sandbox.WeChatOptions) { o.Apps[2].Pages = []string{"pages/scan/index"} })
	tok := e.appToken(t, wxMini)
	webTok := e.appToken(t, wxWeb)
	for _, tc := range []struct {
		name, token, contentType, body string
		want                           int
	}{
		{"form post", tok, "application/x-www-form-urlencoded", "scene=x", 47001},
		{"no access token", "", "application/json", `{"scene":"x"}`, 41001},
		{"unknown access token", "nope", "application/json", `{"scene":"x"}`, 40001},
		{"not a mini-program", webTok, "application/json", `{"scene":"x"}`, 48001},
		{"no scene", tok, "application/json", `{"page":"pages/scan/index"}`, 40129},
		{"scene too long", tok, "application/json", `{"scene":"` + strings.Repeat("a", 33) + `"}`, 40129},
		{"scene with %", tok, "application/json", `{"scene":"a%20b"}`, 40129},
		{"page with a leading slash", tok, "application/json", `{"scene":"x","page":"/pages/scan/index"}`, 41030},
		{"page with a query string", tok, "application/json", `{"scene":"x","page":"pages/scan/index?a=1"}`, 41030},
		{"page not released", tok, "application/json", `{"scene":"x","page":"pages/new/index"}`, 41030},
		{"bad env_version", tok, "application/json", `{"scene":"x","env_version":"beta"}`, 40097},
	} {
		resp, b := e.wxaCode(t, tc.token, tc.contentType, tc.body)
		var m map[string]any
		if resp.StatusCode != 200 || json.Unmarshal(b, &m) != nil || m["errcode"] != float64(tc.want) || !strings.Contains(m["errmsg"].(string), "rid: ") {
			t.Errorf("%s: HTTP %d %s, want errcode %d", tc.name, resp.StatusCode, b, tc.want)
		}
	}
	// A GET is refused with 43002 (require POST method), not served.
	resp, err := http.Get(e.srv.URL + "/wxa/getwxacodeunlimit?" + url.Values{"access_token": {tok}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"errcode":43002`) {
		t.Errorf("GET: HTTP %d %s, want errcode 43002", resp.StatusCode, b)
	}
	// check_path false: an unreleased page is fine.
	if resp, _ := e.wxaCode(t, tok, "application/json", `{"scene":"x","page":"pages/new/index","check_path":false,"env_version":"develop"}`); resp.Header.Get("Content-Type") != "image/jpeg" {
		t.Errorf("check_path false: %s", resp.Header.Get("Content-Type"))
	}
	// An expired token: 42001.
	e.clock.Advance(3 * time.Hour)
	if _, b := e.wxaCode(t, tok, "application/json", `{"scene":"x"}`); !strings.Contains(string(b), `"errcode":42001`) {
		t.Errorf("expired token: %s", b)
	}
	if len(e.sim.Codes()) != 1 {
		t.Errorf("%d codes recorded, want only the good one", len(e.sim.Codes()))
	}
}

// TestWeChatPhonePageScansAndConfirms: the sandbox phone sends a
// wx.login code to the broker's scan API, shows what it answered, and
// confirms with a fresh code (or refuses with the ticket only).
func TestWeChatPhonePageScansAndConfirms(t *testing.T) {
	var got []map[string]string
	broker := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]string
		_ = json.NewDecoder(r.Body).Decode(&body)
		body["path"] = r.URL.Path
		got = append(got, body)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/confirm"):
			_, _ = io.WriteString(w, `{"status":"confirmed"}`)
		case strings.HasSuffix(r.URL.Path, "/refuse"):
			w.WriteHeader(http.StatusConflict)
			_, _ = io.WriteString(w, `{"error":"already_confirmed","error_description":"done"}`)
		default:
			_, _ = io.WriteString(w, `{"status":"scanned","ticket":"T1","client_name":"Shop <b>","created_at":1700000000}`)
		}
	}))
	defer broker.Close()
	e := newWXEnv(t, func(o *sandbox.WeChatOptions) { o.ScanLoginAPI = broker.URL + "/api/v1/scan" })
	tok := e.appToken(t, wxMini)
	e.wxaCode(t, tok, "application/json", `{"scene":"SCENE1"}`)

	page := func(form url.Values) (int, string) {
		var resp *http.Response
		var err error
		if form == nil {
			resp, err = http.Get(e.srv.URL + "/sandbox/phone")
		} else {
			resp, err = http.PostForm(e.srv.URL+"/sandbox/phone", form)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if _, body := page(nil); !strings.Contains(body, `data-scene="SCENE1"`) || !strings.Contains(body, `data-person="alice"`) {
		t.Fatalf("the phone lists no code: %s", body)
	}
	st, body := page(url.Values{"action": {"scan"}, "scene": {"SCENE1"}, "appid": {wxMini}, "person": {"alice"}})
	if st != 200 || !strings.Contains(body, "Shop &lt;b&gt;") || !strings.Contains(body, `value="T1"`) {
		t.Fatalf("after the scan: %d %s", st, body)
	}
	st, body = page(url.Values{"action": {"confirm"}, "scene": {"SCENE1"}, "appid": {wxMini}, "person": {"alice"}, "ticket": {"T1"}})
	if st != 200 || !strings.Contains(body, `data-phone-done="confirmed"`) {
		t.Fatalf("after confirm: %d %s", st, body)
	}
	st, body = page(url.Values{"action": {"refuse"}, "scene": {"SCENE1"}, "appid": {wxMini}, "person": {"alice"}, "ticket": {"T1"}})
	if st != 400 || !strings.Contains(body, "already_confirmed") {
		t.Errorf("a refused refuse: %d %s", st, body)
	}
	if len(got) != 3 || got[0]["path"] != "/api/v1/scan/SCENE1" || got[0]["code"] == "" ||
		got[1]["path"] != "/api/v1/scan/SCENE1/confirm" || got[1]["ticket"] != "T1" || got[1]["code"] == "" || got[1]["code"] == got[0]["code"] ||
		got[2]["ticket"] != "T1" || got[2]["code"] != "" {
		t.Errorf("the broker got %v", got)
	}
	// The codes it sent are alice's wx.login codes.
	if r := e.get(t, "/sns/jscode2session", url.Values{"appid": {wxMini}, "secret": {wxSecret}, "js_code": {got[0]["code"]}, "grant_type": {"authorization_code"}}); r.str("openid") != e.sim.OpenID(wxMini, "alice") {
		t.Errorf("the scan's code: %s", r.raw)
	}
}
