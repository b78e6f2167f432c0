// Package conntest holds the fixtures the connector and simulator tests
// share: a hand-moved clock, a browser that walks a simulator's person
// picker, a transport that notes the secret values a login exchanges
// so that a test can check no error carries one, and a record of what a
// connector's Caller told its observer, the fields a configuration's
// Validate complained about, and checks of a connector's errors (one of
// the kinds; a given kind and provider code).
package conntest

import (
	"bytes"
	"errors"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors"
)

// Clock is a clock the test moves by hand.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock stopped at now.
func NewClock(now time.Time) *Clock { return &Clock{now: now} }

// Now tells the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// NoRedirect returns a browser that stops at redirects, so that a test
// can read where it is sent.
func NoRedirect() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// PickLink returns the href of the link on page whose last attribute
// before href is attr (`data-person="alice"`, `data-deny`), resolved
// against pageURL.
func PickLink(t testing.TB, pageURL, page, attr string) string {
	t.Helper()
	m := regexp.MustCompile(`<a (?:[^>]* )?` + regexp.QuoteMeta(attr) + ` href="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no link %s in page:\n%s", attr, page)
	}
	base, err := url.Parse(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := url.Parse(html.UnescapeString(m[1]))
	if err != nil {
		t.Fatalf("link %s: %v", attr, err)
	}
	return base.ResolveReference(ref).String()
}

// Follow opens link without following its redirect, which must be a 302
// to callback, and returns the callback's query.
func Follow(t testing.TB, link, callback string) url.Values {
	t.Helper()
	resp, err := NoRedirect().Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), callback+"?") {
		t.Fatalf("following %s: status %d, Location %q, want a redirect to %s", link, resp.StatusCode, resp.Header.Get("Location"), callback)
	}
	return loc.Query()
}

// Browse plays the browser at a simulator: it opens loginURL, follows the
// picker link that carries attr and returns the query the callback gets.
func Browse(t testing.TB, loginURL, attr, callback string) url.Values {
	t.Helper()
	resp, err := NoRedirect().Get(loginURL)
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return Follow(t, PickLink(t, resp.Request.URL.String(), string(page), attr), callback)
}

// Recorder sits between a connector and a simulator and notes every value
// that must never reach an error: the secret parameters of requests (in
// the query or a form body) and the secrets replies carry.
type Recorder struct {
	Next http.RoundTripper // nil: http.DefaultTransport
	// Keys are the parameters whose values are secret (code,
	// client_secret, access_token...).
	Keys []string
	// Replies returns the secret values in the body of a reply to path
	// (tokens); nil: none.
	Replies func(path string, body []byte) []string
	// Rewrite changes a request before it is sent (its secrets are noted
	// first); nil: none.
	Rewrite func(*http.Request) *http.Request

	mu        sync.Mutex
	sensitive []string
}

// RoundTrip notes the request's secrets, sends it, and notes the reply's.
func (r *Recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.note(req.URL.Query())
	if req.Body != nil {
		body, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		if form, err := url.ParseQuery(string(body)); err == nil {
			r.note(form)
		}
	}
	if r.Rewrite != nil {
		req = r.Rewrite(req)
	}
	next := r.Next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	if err != nil || r.Replies == nil {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.sensitive = append(r.sensitive, r.Replies(req.URL.Path, body)...)
	r.mu.Unlock()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

func (r *Recorder) note(values url.Values) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range r.Keys {
		if v := values.Get(k); v != "" {
			r.sensitive = append(r.sensitive, v)
		}
	}
}

// AssertNoLeak fails the test if err's text holds one of secrets or of
// the values the Recorder noted.
func (r *Recorder) AssertNoLeak(t testing.TB, err error, secrets ...string) {
	t.Helper()
	r.mu.Lock()
	secrets = append(secrets, r.sensitive...)
	r.mu.Unlock()
	AssertNoLeak(t, err, secrets...)
}

// AssertNoLeak fails the test if err's text holds one of secrets.
func AssertNoLeak(t testing.TB, err error, secrets ...string) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains the secret value %q", err, s)
		}
	}
}

// Observed records what a connectors.Caller's Observe is told.
type Observed struct {
	mu    sync.Mutex
	calls [][3]string // connector, endpoint, result
}

// Observe is a connectors.Caller's Observe.
func (o *Observed) Observe(connectorID, endpoint, result string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.calls = append(o.calls, [3]string{connectorID, endpoint, result})
}

// List is what was observed so far, in order, one "endpoint=result" a
// call.
func (o *Observed) List() []string { return o.list(false) }

// ListWithConnector is List with the connector id in front of each:
// "connector endpoint=result".
func (o *Observed) ListWithConnector() []string { return o.list(true) }

func (o *Observed) list(withConnector bool) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]string, 0, len(o.calls))
	for _, c := range o.calls {
		s := c[1] + "=" + c[2]
		if withConnector {
			s = c[0] + " " + s
		}
		out = append(out, s)
	}
	return out
}

// Reset forgets what was observed.
func (o *Observed) Reset() {
	o.mu.Lock()
	o.calls = nil
	o.mu.Unlock()
}

// Fields are the paths (connectors.FieldError's Field) of the problems a
// connector configuration's Validate returned, in order; nil for nil.
func Fields(err error) []string {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	var fields []string
	for _, e := range errs {
		var fe *connectors.FieldError
		if errors.As(e, &fe) {
			fields = append(fields, fe.Field)
		}
	}
	return fields
}

// IsKind fails the test unless err is one of the connector error kinds
// (access denied, invalid code, unavailable, configuration): what a
// provider's reply, however garbled, must parse into.
func IsKind(t testing.TB, err error) {
	t.Helper()
	for _, k := range []error{connectors.ErrAccessDenied, connectors.ErrInvalidCode, connectors.ErrUnavailable, connectors.ErrConfig} {
		if errors.Is(err, k) {
			return
		}
	}
	t.Errorf("error %v is none of the connector errors", err)
}

// WantError checks a connector's error: err is kind (else the test stops)
// and a ProviderError with code exactly when code is not 0.
func WantError(t testing.TB, err, kind error, code int) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("err = %v, want %v", err, kind)
	}
	var pe *connectors.ProviderError
	if got := errors.As(err, &pe); got != (code != 0) || (got && pe.Code != code) {
		t.Errorf("err = %#v, want provider code %d", err, code)
	}
}
