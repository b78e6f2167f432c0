package broker_test

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/pagecheck"
)

// TestIssuerURLServesAPageThatSaysWhatThisIs: GET {issuer}/ (and the
// issuer without its slash) is a page that says what the service is and
// links to the account page and the discovery document, in each
// language, not a 404 at the address apps and the banner name.
func TestIssuerURLServesAPageThatSaysWhatThisIs(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, tc := range []struct {
		url, lang, want string
	}{
		{e.issuer + "/", "en", "Qiao sign-in service"},
		{e.issuer + "/?lang=zh-CN", "zh-CN", "Qiao 登录服务"},
		{e.issuer, "en", "Qiao sign-in service"},
	} {
		br := e.newBrowser()
		req, _ := http.NewRequest(http.MethodGet, tc.url, nil)
		req.Header.Set("Accept-Language", tc.lang)
		resp, err := br.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(body)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Fatalf("GET %s: HTTP %d %q", tc.url, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !strings.Contains(page, tc.want) || !strings.Contains(page, `lang="`+tc.lang+`"`) || !strings.Contains(page, e.issuer) {
			t.Errorf("GET %s: no %q, lang %s or the issuer: %.600s", tc.url, tc.want, tc.lang, page)
		}
		links := map[string]string{}
		for _, m := range regexp.MustCompile(`<a [^>]*href="([^"]+)"[^>]*data-home-link="(\w+)"`).FindAllStringSubmatch(page, -1) {
			links[m[2]] = m[1]
		}
		if links["account"] != e.issuer+"/account" || links["discovery"] != e.issuer+"/.well-known/openid-configuration" {
			t.Errorf("GET %s: links %v", tc.url, links)
		}
		for _, u := range links {
			r, err := br.Client.Get(u)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode != 200 {
				t.Errorf("the home page's link %s: HTTP %d", u, r.StatusCode)
			}
		}
		if ext := pagecheck.ExternalURLs(page); len(ext) > 0 {
			t.Errorf("the home page references hosts off the machine: %q", ext)
		}
	}
}
