package securitytest

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

func TestHTMLPagesForbidFramingAndSniffing(t *testing.T) {
	e := newEnv(t)
	br := e.newBrowser()
	pages := map[string]string{
		"chooser":      "/auth?" + e.authParams("web", "https://app.example/cb", "connector_id", "").Encode(),
		"account":      "/account",
		"error":        "/auth?client_id=ghost",
		"not found":    "/nope",
		"signed out":   "/logout",
		"callback err": "/callback/alpha?state=x",
	}
	for name, path := range pages {
		t.Run(name, func(t *testing.T) {
			r := br.StepGet(t, e.issuer+path)
			h := r.Header
			if !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
				t.Fatalf("Content-Type %q", h.Get("Content-Type"))
			}
			csp := h.Get("Content-Security-Policy")
			for _, d := range []string{"default-src 'none'", "frame-ancestors 'none'", "base-uri 'none'"} {
				if !strings.Contains(csp, d) {
					t.Errorf("CSP %q lacks %s", csp, d)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "script-src") {
				t.Errorf("CSP %q allows scripts", csp)
			}
			want := map[string]string{
				"X-Frame-Options":        "DENY",
				"X-Content-Type-Options": "nosniff",
				"Referrer-Policy":        "no-referrer",
				"Cache-Control":          "no-store",
			}
			for k, v := range want {
				if h.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, h.Get(k), v)
				}
			}
		})
	}
}

func TestTokenBearingResponsesAreNotStored(t *testing.T) {
	e := newEnv(t)
	br := e.newBrowser()
	p := e.authParams("web", "https://app.example/cb", "scope", accountScope)
	rs := br.walk(e.issuer + "/auth?" + p.Encode())
	redirect := rs[len(rs)-1]
	code, _ := url.Parse(location(redirect))
	if code.Query().Get("code") == "" {
		t.Fatalf("no code: %q", location(redirect))
	}
	tok := e.redeem(code.Query().Get("code"), p, "web", webSecret)
	at := str(tok.JSON(), "access_token")
	bearer := func(method, path string) *qiaotest.Page {
		return e.Bearer(t, method, path, at, nil)
	}
	cases := map[string]*qiaotest.Page{
		"authorization redirect with the code": redirect,
		"token response":                       tok,
		"token error":                          e.redeem("nope", p, "web", webSecret),
		"token exchange":                       e.miniTokens("miniapp", e.LoginCode("mini", "alice")),
		"userinfo":                             bearer(http.MethodGet, "/userinfo"),
		"account API":                          bearer(http.MethodGet, "/api/v1/me"),
		"introspection":                        e.Post(t, "/introspect", url.Values{"token": {at}}, "web", webSecret),
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			if r.Status >= 500 {
				t.Fatalf("status %d", r.Status)
			}
			if cc := r.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
				t.Errorf("Cache-Control %q", cc)
			}
			if name != "authorization redirect with the code" && r.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("X-Content-Type-Options %q", r.Header.Get("X-Content-Type-Options"))
			}
			if rp := r.Header.Get("Referrer-Policy"); rp != "no-referrer" {
				t.Errorf("Referrer-Policy %q", rp)
			}
		})
	}
}

func TestRequestSizeLimits(t *testing.T) {
	e := newEnv(t)
	big := strings.Repeat("a", 70<<10)
	c := e.newBrowser()
	post := func(path, ctype, body string) *qiaotest.Page {
		req, _ := http.NewRequest(http.MethodPost, e.issuer+path, strings.NewReader(body))
		req.Header.Set("Content-Type", ctype)
		return do(t, c, req)
	}
	tests := []struct {
		name string
		r    func() *qiaotest.Page
		want int
	}{
		{"token form body", func() *qiaotest.Page {
			return post("/token", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token="+big)
		}, http.StatusRequestEntityTooLarge},
		{"auth POST body", func() *qiaotest.Page {
			return post("/auth", "application/x-www-form-urlencoded", "client_id=web&state="+big)
		}, http.StatusRequestEntityTooLarge},
		{"logout POST body", func() *qiaotest.Page {
			return post("/logout", "application/x-www-form-urlencoded", "id_token_hint="+big)
		}, http.StatusRequestEntityTooLarge},
		{"auth query string", func() *qiaotest.Page {
			return c.StepGet(t, e.issuer+"/auth?client_id=web&state="+big)
		}, http.StatusRequestURITooLong},
		{"callback query string", func() *qiaotest.Page {
			return c.StepGet(t, e.issuer+"/callback/alpha?code="+big)
		}, http.StatusRequestURITooLong},
		{"multipart body", func() *qiaotest.Page {
			var b bytes.Buffer
			b.WriteString("--X\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n" + big + "\r\n--X--\r\n")
			return post("/token", "multipart/form-data; boundary=X", b.String())
		}, 0},
		{"account API JSON body", func() *qiaotest.Page {
			return post("/api/v1/me/identities", "application/json", `{"connector_id":"mini","code":"`+big+`"}`)
		}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.r()
			if tc.want != 0 && r.Status != tc.want {
				t.Fatalf("status %d, want %d", r.Status, tc.want)
			}
			if r.Status < 400 || r.Status >= 500 {
				t.Fatalf("status %d, want a 4xx", r.Status)
			}
		})
	}
}
