package securitytest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/net/html"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// page is a parsed HTML page.
type page struct {
	root *html.Node
	raw  string
}

func parsePage(t testing.TB, body string) page {
	t.Helper()
	n, err := html.Parse(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing page: %v", err)
	}
	return page{root: n, raw: body}
}

func (p page) walk(fn func(n *html.Node)) {
	var rec func(n *html.Node)
	rec = func(n *html.Node) {
		fn(n)
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			rec(c)
		}
	}
	rec(p.root)
}

// assertInert fails when the page has a script element, an event handler
// attribute, a URL that runs script, or a link or form that leaves the
// origin through a scheme-relative URL.
func (p page) assertInert(t *testing.T) {
	t.Helper()
	p.walk(func(n *html.Node) {
		if n.Type != html.ElementNode {
			return
		}
		switch n.Data {
		case "script", "iframe", "object", "embed", "base", "meta":
			if n.Data == "meta" && (attr(n, "charset") != "" || attr(n, "name") == "viewport") {
				return
			}
			t.Errorf("page has a <%s> element: %.300s", n.Data, p.raw)
		}
		for _, a := range n.Attr {
			name := strings.ToLower(a.Key)
			if strings.HasPrefix(name, "on") || name == "style" || name == "srcdoc" {
				t.Errorf("<%s> has attribute %s=%q", n.Data, a.Key, a.Val)
			}
			if name == "href" || name == "src" || name == "action" || name == "formaction" {
				v := strings.ToLower(strings.Map(func(r rune) rune {
					if r <= ' ' {
						return -1
					}
					return r
				}, a.Val))
				if strings.HasPrefix(v, "javascript:") || strings.HasPrefix(v, "vbscript:") || strings.HasPrefix(v, "data:text") {
					t.Errorf("<%s %s=%q> runs script", n.Data, a.Key, a.Val)
				}
				navigates := name != "src" // an image may come from anywhere CSP allows
				if navigates && (strings.HasPrefix(v, "//") || strings.HasPrefix(v, "/\\") || strings.HasPrefix(v, "\\")) {
					t.Errorf("<%s %s=%q> is scheme-relative", n.Data, a.Key, a.Val)
				}
			}
		}
	})
}

// text is the page's text content.
func (p page) text() string {
	var b strings.Builder
	p.walk(func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
	})
	return b.String()
}

func (p page) attrValues(tag, name string) []string {
	var out []string
	p.walk(func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag {
			if v := attr(n, name); v != "" {
				out = append(out, v)
			}
		}
	})
	return out
}

func attr(n *html.Node, name string) string {
	for _, a := range n.Attr {
		if a.Key == name {
			return a.Val
		}
	}
	return ""
}

// hiddenInputs returns the name=value of a page's hidden form fields.
func (p page) hiddenInputs() url.Values {
	v := url.Values{}
	p.walk(func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == "input" && attr(n, "type") == "hidden" {
			v.Add(attr(n, "name"), attr(n, "value"))
		}
	})
	return v
}

const scriptNick = `<script>alert(1)</script>"'><img src=x onerror=alert(1)>&lt;b&gt;`

// hostilePictures are the avatar URLs of the hostile persons
// (hostilePerson), each with the nickname scriptNick.
var hostilePictures = []string{
	"javascript:alert(1)",
	"JaVaScRiPt:alert(document.cookie)",
	" javascript:alert(1)",
	"java\tscript:alert(1)",
	"vbscript:msgbox(1)",
	"data:text/html,<script>alert(1)</script>",
	`https://img.example/a.png" onerror="alert(1)`,
	`https://img.example/a.png' onerror='alert(1)`,
	`https://img.example/a.png><script>alert(1)</script>`,
	`//evil.example/a.png`,
}

// hostilePerson is the simulators' person whose profile (as the
// provider hands it out) has the nickname scriptNick and the picture
// hostilePictures[i].
func hostilePerson(i int) sandbox.Person {
	return sandbox.Person{ID: "mallory" + string(rune('a'+i)), Name: scriptNick, Avatar: hostilePictures[i]}
}

// TestAccountPageEscapesProviderProfiles: a provider profile with a
// script in the nickname and a hostile avatar URL, through the real
// Weibo connector, leaves the account page inert. (The broker's own
// cleaning of raw connector output is tested in broker,
// TestNonHTTPPicturesAreDropped.)
func TestAccountPageEscapesProviderProfiles(t *testing.T) {
	e := newEnv(t)
	for i, pic := range hostilePictures {
		t.Run(pic, func(t *testing.T) {
			br := e.newBrowser()
			e.accountLogin(br, "alpha", hostilePerson(i).ID)
			r := br.get(e.issuer + "/account?lang=en")
			p := parsePage(t, r.Body)
			p.assertInert(t)
			// As stored: nicknames are cut to 64 characters where they enter.
			if !strings.Contains(p.text(), connectors.Nickname(scriptNick)) {
				t.Errorf("the nickname is not shown as text: %.600s", r.Body)
			}
			for _, src := range p.attrValues("img", "src") {
				if strings.Contains(src, "onerror") && !strings.HasPrefix(src, "https://img.example/") {
					t.Errorf("img src %q", src)
				}
			}
		})
	}
}

// TestPagesEscapeRequestParameters: whatever the relying party or an
// attacker puts in a request comes back inert in the chooser, the consent
// page and the error pages.
func TestPagesEscapeRequestParameters(t *testing.T) {
	e := newEnv(t)
	const evil = `"><script>alert(1)</script><a href="javascript:alert(2)">x</a>`
	br := e.newBrowser()

	t.Run("chooser", func(t *testing.T) {
		p := e.authParams("web", "https://app.example/cb", "connector_id", "", "state", "st"+evil, "nonce", "nn"+evil, "ui_locales", evil, "login_hint", evil)
		r := br.get(e.issuer + "/auth?" + p.Encode())
		if r.Status != http.StatusOK {
			t.Fatalf("chooser: %d %.300s", r.Status, r.Body)
		}
		pg := parsePage(t, r.Body)
		pg.assertInert(t)
		links := pg.attrValues("a", "href")
		var found bool
		for _, l := range links {
			u, err := url.Parse(l)
			if err == nil && u.Query().Get("connector_id") != "" {
				found = true
				if u.Query().Get("state") != "st"+evil {
					t.Errorf("chooser link lost the state: %q", l)
				}
			}
		}
		if !found {
			t.Fatalf("no connector link in the chooser: %v", links)
		}
	})
	t.Run("consent", func(t *testing.T) {
		e.accountLogin(br, "alpha", "alice")
		p := e.authParams("consent", "https://consent.example/cb", "state", "st"+evil, "nonce", "nn"+evil)
		r := br.get(e.issuer + "/auth?" + p.Encode())
		if r.Status != http.StatusOK || !strings.Contains(r.Body, "consent_csrf") {
			t.Fatalf("consent page: %d %.300s", r.Status, r.Body)
		}
		pg := parsePage(t, r.Body)
		pg.assertInert(t)
		if got := pg.hiddenInputs().Get("state"); got != "st"+evil {
			t.Errorf("hidden state %q", got)
		}
	})
	errorPages := []string{
		"/auth?client_id=" + url.QueryEscape(evil) + "&redirect_uri=" + url.QueryEscape("https://evil.example/"+evil) + "&response_type=code",
		"/auth?client_id=web&redirect_uri=" + url.QueryEscape("javascript:alert(1)") + "&response_type=code",
		"/callback/alpha?state=" + url.QueryEscape(evil) + "&code=" + url.QueryEscape(evil),
		"/callback/" + url.PathEscape(evil),
		"/logout?id_token_hint=" + url.QueryEscape(evil),
		"/account?error=" + url.QueryEscape(evil) + "&status=" + url.QueryEscape(evil),
		"/account/login?connector_id=" + url.QueryEscape(evil),
		"/" + url.PathEscape(evil),
		"/%5Cevil.example/x",
		"/%2F%2Fevil.example/x",
	}
	for _, path := range errorPages {
		t.Run(path, func(t *testing.T) {
			r := e.newBrowser().StepGet(t, e.issuer+path)
			if r.Status >= 500 {
				t.Fatalf("status %d", r.Status)
			}
			if loc := location(r); loc != "" && !strings.HasPrefix(loc, e.issuer) && !strings.HasPrefix(loc, "/") {
				t.Fatalf("redirected off the broker to %q", loc)
			}
			if strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
				parsePage(t, r.Body).assertInert(t)
			}
		})
	}
	t.Run("root-relative paths", func(t *testing.T) {
		// Paths the router may clean: no page may link off the origin.
		for _, raw := range []string{"//evil.example/x", "/\\evil.example/x", "/qiao//evil.example"} {
			req := qiaotest.NewRequest(t, http.MethodGet, e.issuer)
			req.URL.Path, req.URL.RawPath = raw, ""
			r := do(t, e.newBrowser(), req)
			if loc := location(r); strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
				t.Errorf("%s: redirect to %q", raw, loc)
			}
			if strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") {
				parsePage(t, r.Body).assertInert(t)
			}
		}
	})
}
