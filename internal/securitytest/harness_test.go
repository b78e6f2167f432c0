package securitytest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// Every secret of the configuration is a distinctive string, so that a
// leak is found by a plain substring search (the providers' app secrets
// are qiaotest's, distinctive too).
const (
	brokerSecret  = "BROKERSECRETxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx42"
	webSecret     = "WEBCLIENTSECRETzzzzzzzzzzzzzzzzzzzz1"
	otherSecret   = "OTHERCLIENTSECRETzzzzzzzzzzzzzzzzz2"
	consentSecret = "CONSENTCLIENTSECRETzzzzzzzzzzzzzzz3"
	webOnlySecret = "WEBONLYCLIENTSECRETzzzzzzzzzzzzzzz4"
)

// securityConfig is the attacks' configuration: two Weibo connectors
// (alpha and beta) and a mini-program (mini) at the simulators, and
// clients of every kind.
func securityConfig(c *qiaotest.Config) {
	c.Secret = brokerSecret
	c.Connectors = []qiaotest.Connector{
		qiaotest.Weibo("alpha", "Alpha"),
		qiaotest.Weibo("beta", "Beta"),
		qiaotest.MiniProgram("mini", "Mini"),
	}
	c.Clients = []qiaotest.Client{
		{ID: "web", Secret: webSecret, Name: "Web App", RedirectURIs: []string{"https://app.example/cb", "http://127.0.0.1:9/loop"},
			PostLogoutRedirectURIs: []string{"https://app.example/bye"}, AccountAPI: true},
		{ID: "other", Secret: otherSecret, RedirectURIs: []string{"https://other.example/cb"}, PostLogoutRedirectURIs: []string{"https://other.example/bye"}},
		{ID: "spa", Public: true, Name: "SPA", RedirectURIs: []string{"https://spa.example/cb"}},
		{ID: "consent", Secret: consentSecret, RedirectURIs: []string{"https://consent.example/cb"}, RequireConsent: true},
		{ID: "webonly", Secret: webOnlySecret, RedirectURIs: []string{"https://webonly.example/cb"}, Connectors: []string{"alpha", "beta"}},
		{ID: "miniapp", Public: true, Connectors: []string{"mini"}},
	}
}

// persons are the simulators' alice, bob and carol, mallory (the
// attacker) and the hostile profiles (hostilePerson).
func persons() []sandbox.Person {
	l := append(sandbox.DefaultPersons(), sandbox.Person{ID: "mallory", Name: "Mallory"})
	for i := range hostilePictures {
		l = append(l, hostilePerson(i))
	}
	return l
}

// noLimits switches the abuse limits off (for fuzzing: every input comes
// from one address and many carry a wrong client secret, and the fuzzer
// must reach the parsers behind the limits, not a 429).
func noLimits() qiaotest.Option {
	return qiaotest.WithConfig(func(c *qiaotest.Config) {
		off := map[string]any{"per_ip": 0, "per_client": 0}
		c.Extra = map[string]any{"limits": map[string]any{
			"auth": off, "token": off, "account": off,
			"callback":    map[string]any{"per_ip": 0},
			"client_auth": map[string]any{"failures": 0},
		}}
	})
}

// env is qiaotest's world (broker in process on SQLite, the simulators)
// with the attacks' configuration, the issuer under /qiao unless an
// option sets it.
type env struct {
	*qiaotest.World
	t      testing.TB
	issuer string
	host   string // the issuer's host
}

func newEnv(t testing.TB, opts ...qiaotest.Option) *env {
	t.Helper()
	w := qiaotest.Start(t, append([]qiaotest.Option{qiaotest.WithIssuerPath("/qiao"), qiaotest.WithConfig(securityConfig), qiaotest.WithPersons(persons())}, opts...)...)
	iu, err := url.Parse(w.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	return &env{World: w, t: t, issuer: w.Issuer, host: iu.Host}
}

// providerSecrets are the connectors' app secrets.
func (e *env) providerSecrets() []string {
	var out []string
	for _, k := range e.Config.Connectors {
		s, _ := k.Config["client_secret"].(string)
		out = append(out, s)
	}
	return out
}

// browser is a qiaotest browser of the world: it follows redirects
// through the broker and the simulators and stops at a client.
type browser struct {
	*qiaotest.Browser
	e *env
}

func (e *env) newBrowser() *browser { return &browser{Browser: e.Browser(), e: e} }

// do sends req from br (with its cookies), following no redirect.
func do(t testing.TB, br *browser, req *http.Request) *qiaotest.Page {
	t.Helper()
	p, err := br.Step(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return p
}

// location is the Location header as the broker wrote it.
func location(p *qiaotest.Page) string { return p.Header.Get("Location") }

// get loads u, following redirects within the world; a simulator's
// picker page is where it stops.
func (br *browser) get(u string) *qiaotest.Page {
	br.e.t.Helper()
	p, err := br.Get(u)
	if err != nil {
		br.e.t.Fatalf("GET %s: %v", u, err)
	}
	return p
}

func (br *browser) postForm(u string, form url.Values) *qiaotest.Page {
	br.e.t.Helper()
	p, err := br.PostForm(u, form)
	if err != nil {
		br.e.t.Fatalf("POST %s: %v", u, err)
	}
	return p
}

// pick chooses person if p is a simulator's picker page, and returns
// where the browser stopped.
func (br *browser) pick(p *qiaotest.Page, person string) *qiaotest.Page {
	br.e.t.Helper()
	if !br.AtPicker(p) {
		return p
	}
	p, err := br.Pick(p, person)
	if err != nil {
		br.e.t.Fatal(err)
	}
	return p
}

// cookie returns the value of the broker's cookie name in this browser.
func (br *browser) cookie(name string) string {
	u, _ := url.Parse(br.e.issuer + "/")
	for _, c := range br.Jar().Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

// walk loads u one request at a time with the browser's cookies, within
// the broker and the simulators (picking alice at a picker), and returns
// every *qiaotest.Page on the way.
func (br *browser) walk(u string) []*qiaotest.Page {
	br.e.t.Helper()
	var out []*qiaotest.Page
	for i := 0; i < 10; i++ {
		p := br.StepGet(br.e.t, u)
		out = append(out, p)
		if p.Location == "" {
			if br.AtPicker(p) {
				l, err := p.Link("data-person", "alice")
				if err != nil {
					br.e.t.Fatal(err)
				}
				u = l.Href
				continue
			}
			return out
		}
		next, err := url.Parse(p.Location)
		if err != nil || !br.e.IsWorld(next.Host) {
			return out
		}
		u = next.String()
	}
	br.e.t.Fatalf("too many redirects from %s", u)
	return nil
}

// walkPost posts a form and walks the redirects that follow.
func (br *browser) walkPost(u string, form url.Values) []*qiaotest.Page {
	br.e.t.Helper()
	p := br.StepForm(br.e.t, http.MethodPost, u, form)
	out := []*qiaotest.Page{p}
	if next, err := url.Parse(p.Location); p.Location != "" && err == nil && br.e.IsWorld(next.Host) {
		out = append(out, br.walk(next.String())...)
	}
	return out
}

// accountScope is what the first-party web client asks for to use the
// account API.
const accountScope = "openid profile offline_access account"

// authParams is client's authorization request through connector alpha
// (qiaotest.RawAuth) with the parameters in extra, name and value pairs,
// set ("" deletes the parameter).
func (e *env) authParams(clientID, redirect string, extra ...string) qiaotest.RawAuth {
	p := qiaotest.NewRawAuth(clientID, redirect, "alpha")
	for i := 0; i+1 < len(extra); i += 2 {
		if extra[i+1] == "" {
			p.Del(extra[i])
		} else {
			p.Set(extra[i], extra[i+1])
		}
	}
	return p
}

// authorize runs the browser through /auth (alice picked at the
// provider, if it asks) and returns the redirect the client received (or
// fails the test when there is none).
func (br *browser) authorize(p qiaotest.RawAuth) *url.URL {
	br.e.t.Helper()
	r, err := br.Through(br.e.issuer+"/auth?"+p.Encode(), "alice")
	if err != nil {
		br.e.t.Fatal(err)
	}
	if r.Status != http.StatusFound && r.Status != http.StatusSeeOther {
		br.e.t.Fatalf("authorize: status %d, want a redirect to the client; body %.300s", r.Status, r.Body)
	}
	u, err := url.Parse(location(r))
	if err != nil {
		br.e.t.Fatal(err)
	}
	return u
}

// code runs a login and returns the authorization code.
func (br *browser) code(p qiaotest.RawAuth) string {
	br.e.t.Helper()
	r, err := br.Through(p.URL(br.e.issuer), "alice")
	if err != nil {
		br.e.t.Fatal(err)
	}
	return p.Code(br.e.t, r)
}

// accountLogin signs the browser in at the account page through
// connector as person (picked at the provider).
func (e *env) accountLogin(br *browser, connector, person string) {
	e.t.Helper()
	r, err := br.Through(e.issuer+"/account/login?connector_id="+connector, person)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.Status != http.StatusOK || !strings.Contains(r.Body, "data-user-id") {
		e.t.Fatalf("account login: %d %.300s", r.Status, r.Body)
	}
}

// token posts to the token endpoint; user/pass set HTTP Basic.
func (e *env) token(form url.Values, user, pass string) *qiaotest.Page {
	e.t.Helper()
	return e.Post(e.t, "/token", form, user, pass)
}

// redeem exchanges a code for tokens as a confidential client.
func (e *env) redeem(code string, p qiaotest.RawAuth, user, pass string) *qiaotest.Page {
	e.t.Helper()
	return e.token(p.CodeForm(code), user, pass)
}

// loginTokens runs a full web login for client web and returns the token
// *qiaotest.Page (access_token, refresh_token, id_token).
func (e *env) loginTokens(br *browser) map[string]any {
	e.t.Helper()
	p := e.authParams("web", "https://app.example/cb", "scope", accountScope)
	r := e.redeem(br.code(p), p, "web", webSecret)
	if r.Status != http.StatusOK {
		e.t.Fatalf("redeem: %d %s", r.Status, r.Body)
	}
	return r.JSON()
}

// miniTokens logs a person in through the mini-program exchange with a
// wx.login code.
func (e *env) miniTokens(clientID, code string) *qiaotest.Page {
	e.t.Helper()
	return e.token(qiaotest.ExchangeForm("mini", clientID, code, "openid profile offline_access"), "", "")
}

// active reports whether token is active, asked by client web.
func (e *env) active(token, hint string) bool {
	e.t.Helper()
	form := url.Values{"token": {token}}
	if hint != "" {
		form.Set("token_type_hint", hint)
	}
	r := e.Post(e.t, "/introspect", form, "web", webSecret)
	if r.Status != http.StatusOK {
		e.t.Fatalf("introspect: %d %s", r.Status, r.Body)
	}
	return r.JSON()["active"] == true
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}
