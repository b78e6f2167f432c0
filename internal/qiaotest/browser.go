package qiaotest

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// maxPage caps what the browser reads of a page.
const maxPage = 1 << 20

// Browser is one user agent: an HTTP client with its own cookies and
// User-Agent that follows redirects through the broker and the provider
// simulators, picks a person on a simulator's picker page (the
// `<a data-person="ID" href=...>` links, the one way every harness picks
// a person) and stops where it was told (at the relying party).
type Browser struct {
	Client *http.Client
	// UserAgent is sent with every request ("" leaves Go's default).
	UserAgent string
	// OnRedirect, if set, is called before each redirect is followed.
	OnRedirect func(*url.URL)

	w    *World
	once *http.Client // the same jar, following no redirect
}

// Browser is a new browser (empty cookie jar) that follows redirects
// within the world and stops at a redirect leaving it (to a relying
// party). ua, if given, is its User-Agent.
func (w *World) Browser(ua ...string) *Browser {
	b := NewBrowser(func(u *url.URL) bool { return !w.IsWorld(u.Host) })
	b.w = w
	b.Client.Transport, b.once.Transport = w.transport(), w.transport()
	if len(ua) > 0 {
		b.UserAgent = ua[0]
	}
	return b
}

// NewBrowser returns a browser with an empty cookie jar that follows
// redirects until one leads to a URL for which stop returns true; that
// redirect is returned as the response (its Location tells where it
// would go). A nil stop follows every redirect.
func NewBrowser(stop func(*url.URL) bool) *Browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		panic(err) // cookiejar.New never fails without options
	}
	b := &Browser{}
	b.Client = &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 20 {
				return errors.New("stopped after 20 redirects")
			}
			if stop != nil && stop(req.URL) {
				return http.ErrUseLastResponse
			}
			if b.UserAgent != "" {
				req.Header.Set("User-Agent", b.UserAgent)
			}
			if b.OnRedirect != nil {
				b.OnRedirect(req.URL)
			}
			return nil
		},
	}
	b.once = &http.Client{
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return b
}

// Jar is the browser's cookie jar.
func (b *Browser) Jar() http.CookieJar { return b.Client.Jar }

// Page is a response read whole.
type Page struct {
	Status   int
	URL      *url.URL // where the page came from (after redirects)
	Location string   // the Location of a redirect the browser stopped at
	Header   http.Header
	Body     string
}

// Get loads u.
func (b *Browser) Get(u string) (*Page, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return b.Do(req)
}

// PostForm posts a form to u.
func (b *Browser) PostForm(u string, form url.Values) (*Page, error) {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.Do(req)
}

// Do sends req with the browser's User-Agent, follows redirects and
// reads the answer.
func (b *Browser) Do(req *http.Request) (*Page, error) { return b.do(b.Client, req) }

// Step sends req and reads the answer without following a redirect
// (Location is then resolved against the request's URL).
func (b *Browser) Step(req *http.Request) (*Page, error) {
	p, err := b.do(b.once, req)
	if err == nil && p.Location != "" {
		if u, perr := p.URL.Parse(p.Location); perr == nil {
			p.Location = u.String()
		}
	}
	return p, err
}

func (b *Browser) do(c *http.Client, req *http.Request) (*Page, error) {
	if b.UserAgent != "" {
		req.Header.Set("User-Agent", b.UserAgent)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPage))
	if err != nil {
		return nil, err
	}
	loc := resp.Header.Get("Location")
	if loc != "" {
		if u, err := resp.Request.URL.Parse(loc); err == nil {
			loc = u.String()
		}
	}
	return &Page{
		Status:   resp.StatusCode,
		URL:      resp.Request.URL,
		Location: loc,
		Header:   resp.Header,
		Body:     string(body),
	}, nil
}

// StepGet loads u without following a redirect; a failed request fails t.
func (b *Browser) StepGet(t testing.TB, u string) *Page {
	t.Helper()
	return b.StepForm(t, http.MethodGet, u, nil)
}

// StepForm sends method to u with form (nil: no body) without following
// a redirect; a failed request fails t.
func (b *Browser) StepForm(t testing.TB, method, u string, form url.Values) *Page {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	p, err := b.Step(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	return p
}

// RefusePick, given as the person to Through, refuses at the picker.
const RefusePick = "!refuse"

// Through loads u, following redirects within the world; at a
// simulator's picker page it picks person (RefusePick refuses; ""
// stops at the picker) and goes on. It returns where the browser
// stopped: a redirect that leaves the world (to a relying party), or a
// page that is not a picker.
func (b *Browser) Through(u, person string) (*Page, error) {
	p, err := b.Get(u)
	if err != nil || person == "" || !b.AtPicker(p) {
		return p, err
	}
	if person == RefusePick {
		return b.Refuse(p)
	}
	return b.Pick(p, person)
}

// CallbackOf loads the authorization request u to the simulator's
// picker, picks person there and returns the broker callback URL the
// simulator sends the browser to, without loading it; a failure fails t.
func (b *Browser) CallbackOf(t testing.TB, u, person string) string {
	t.Helper()
	picker, err := b.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	l, err := picker.Link("data-person", person)
	if err != nil {
		t.Fatal(err)
	}
	return b.StepGet(t, l.Href).Location
}

// AtPicker reports whether p is a simulator's picker page (a page of a
// simulator of the browser's world with `<a data-person>` links).
func (b *Browser) AtPicker(p *Page) bool {
	if b.w == nil || p.Status != http.StatusOK || p.URL == nil || b.w.isBroker(p.URL.Host) || !b.w.IsWorld(p.URL.Host) {
		return false
	}
	links, err := p.Links("data-person")
	return err == nil && len(links) > 0
}

// RedirectQuery is the query of the redirect the browser stopped at.
func (p *Page) RedirectQuery() (url.Values, error) {
	if p.Status < 300 || p.Status > 399 || p.Location == "" {
		return nil, fmt.Errorf("not a redirect: HTTP %d at %s; body: %.300s", p.Status, p.URL, p.Body)
	}
	u, err := url.Parse(p.Location)
	if err != nil {
		return nil, fmt.Errorf("redirect Location %q: %w", p.Location, err)
	}
	return u.Query(), nil
}

// Link is an <a> element of a page.
type Link struct {
	Attrs map[string]string
	Href  string // resolved against the page's URL
	Text  string
}

// Links returns the page's <a href> elements that have the attribute
// attr (any value).
func (p *Page) Links(attr string) ([]Link, error) {
	els, err := p.Elements("a", attr)
	if err != nil {
		return nil, err
	}
	var out []Link
	for _, e := range els {
		href, ok := e.Attrs["href"]
		if !ok {
			continue
		}
		l := Link{Attrs: e.Attrs, Href: href, Text: e.Text}
		if ref, err := url.Parse(href); err == nil && p.URL != nil {
			l.Href = p.URL.ResolveReference(ref).String()
		}
		out = append(out, l)
	}
	return out, nil
}

func textOf(n *html.Node) string {
	if n.Type == html.TextNode {
		return n.Data
	}
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		b.WriteString(textOf(c))
	}
	return b.String()
}

// Link returns the link whose attr is value.
func (p *Page) Link(attr, value string) (Link, error) {
	links, err := p.Links(attr)
	if err != nil {
		return Link{}, err
	}
	var seen []string
	for _, l := range links {
		if l.Attrs[attr] == value {
			return l, nil
		}
		seen = append(seen, l.Attrs[attr])
	}
	return Link{}, fmt.Errorf("no <a %s=%q> on the page at %s (HTTP %d; found %q); body: %.300s", attr, value, p.URL, p.Status, seen, p.Body)
}

// Pick chooses person on a simulator's picker page and follows the link.
func (b *Browser) Pick(p *Page, person string) (*Page, error) {
	l, err := p.Link("data-person", person)
	if err != nil {
		return nil, err
	}
	return b.Get(l.Href)
}

// Choose follows the chooser page's link to connector (data-connector-id).
func (b *Browser) Choose(p *Page, connector string) (*Page, error) {
	l, err := p.Link("data-connector-id", connector)
	if err != nil {
		return nil, err
	}
	return b.Get(l.Href)
}

// Refuse follows the picker page's refusal link (data-deny).
func (b *Browser) Refuse(p *Page) (*Page, error) {
	links, err := p.Links("data-deny")
	if err != nil {
		return nil, err
	}
	if len(links) != 1 {
		return nil, fmt.Errorf("%d data-deny links on the page at %s, want 1", len(links), p.URL)
	}
	return b.Get(links[0].Href)
}

// LoginAt loads authURL, which leads to a provider's picker page, picks
// person there and returns where the browser stopped. When no picker
// shows (the browser's session answers, or a test's own connector sends
// the browser straight back) it returns the redirect the browser
// stopped at.
func (b *Browser) LoginAt(authURL, person string) (*Page, error) {
	p, err := b.Get(authURL)
	if err != nil {
		return nil, err
	}
	if p.Status >= 300 && p.Status < 400 && p.Location != "" {
		return p, nil
	}
	if p.Status != http.StatusOK {
		return nil, fmt.Errorf("the authorization request ended with HTTP %d at %s (Location %q), not at a picker page; body: %.300s", p.Status, p.URL, p.Location, p.Body)
	}
	return b.Pick(p, person)
}

// Element is an HTML element of a page: its attributes, its text, and the
// text of each of its <td>/<th> cells (for table rows).
type Element struct {
	Attrs map[string]string
	Text  string
	Cells []string
}

// Elements returns the page's elements named tag that have the attribute
// attr.
func (p *Page) Elements(tag, attr string) ([]Element, error) {
	doc, err := html.Parse(strings.NewReader(p.Body))
	if err != nil {
		return nil, fmt.Errorf("parsing the page at %s: %w", p.URL, err)
	}
	var out []Element
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag {
			attrs := map[string]string{}
			for _, a := range n.Attr {
				attrs[a.Key] = a.Val
			}
			if _, ok := attrs[attr]; ok {
				e := Element{Attrs: attrs, Text: strings.TrimSpace(textOf(n))}
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					if c.Type == html.ElementNode && (c.Data == "td" || c.Data == "th") {
						e.Cells = append(e.Cells, strings.TrimSpace(textOf(c)))
					}
				}
				out = append(out, e)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return out, nil
}
