package sandbox

import (
	"net/http"
	"net/url"
	"sync"
	"time"
)

// oauthSim is the core the OAuth-style simulators (QQ, Weibo) share: the
// registered apps and the persons, the authorize page's person picker and
// the person's choice on it, codes (issued for a person, redeemed once),
// access and refresh tokens with their expiry, and the request routing
// with the fault injection. What differs, the endpoints, the wire format
// of answers and errors and each provider's quirks, comes in an
// oauthSpec and stays in qq.go and weibo.go.
type oauthSim[A oauthClient] struct {
	faultBox // InjectFault, ClearFaults, Calls
	spec     oauthSpec
	apps     []A
	persons  []Person
	clock    Clock

	mu      sync.Mutex
	codes   map[string]*oauthCode[A]
	tokens  map[string]*oauthGrant[A] // access tokens
	refresh map[string]*oauthGrant[A] // refresh tokens
}

// oauthClient is an app registered at an OAuth-style simulator.
type oauthClient interface {
	credentials() (clientID, secret string)
}

func (a QQApp) credentials() (string, string)    { return a.ClientID, a.Secret }
func (a WeiboApp) credentials() (string, string) { return a.ClientID, a.Secret }

// oauthSpec is what a provider adds to the shared core.
type oauthSpec struct {
	authorizePath string
	// routes serve the provider's paths, with r.Form parsed.
	routes map[string]http.HandlerFunc
	// notFound answers any other path.
	notFound http.HandlerFunc
	// badForm is the error code that answers an unreadable request.
	badForm int
	// apiError answers an error code in the endpoint's shape, errorPage
	// on the authorize path (the provider's page, no redirect).
	apiError  func(w http.ResponseWriter, r *http.Request, code int)
	errorPage func(w http.ResponseWriter, code int)
	// badRedirect is the error page's code for a redirect_uri that
	// cannot be parsed.
	badRedirect int
	// faults: the provider's busy answer and Content-Types (its fail is
	// apiError, or errorPage on the authorize path).
	faults faultWire
	// codeTTL and tokenTTL are the lifetimes of codes and access tokens
	// (refresh tokens do not expire); newCode and newToken make them.
	codeTTL, tokenTTL time.Duration
	newCode, newToken func() string
	// pickerPage is the picker's template, with Display defaultDisplay
	// when the request has none; avatar turns the simulator's avatar
	// URL into the one the provider hands out.
	pickerPage, defaultDisplay string
	avatar                     func(string) string
	// denied answers the person's refusal on the picker, unknownPerson
	// a sandbox_person the simulator does not know.
	denied        func(w http.ResponseWriter, r *http.Request, redirectURI string)
	unknownPerson func(w http.ResponseWriter)
}

type oauthCode[A oauthClient] struct {
	app         *A
	person      Person
	redirectURI string
	scope       string
	expires     time.Time
	used        bool
}

type oauthGrant[A oauthClient] struct {
	app     *A
	person  Person
	scope   string
	created time.Time
	expires time.Time // zero: never (refresh tokens)
}

// init sets the core up; persons nil means DefaultPersons().
func (o *oauthSim[A]) init(apps []A, persons []Person, clock Clock, spec oauthSpec) {
	if persons == nil {
		persons = DefaultPersons()
	}
	spec.faults.fail = o.fail
	o.spec, o.apps, o.persons, o.clock = spec, apps, persons, clock
	o.codes = map[string]*oauthCode[A]{}
	o.tokens = map[string]*oauthGrant[A]{}
	o.refresh = map[string]*oauthGrant[A]{}
}

// Persons returns the persons who can log in.
func (o *oauthSim[A]) Persons() []Person { return append([]Person(nil), o.persons...) }

func (o *oauthSim[A]) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.count(r.URL.Path)
	if serveAvatar(w, r, o.persons) {
		return
	}
	if r.URL.Path == faultPath {
		o.sandboxFault(w, r)
		return
	}
	formErr := r.ParseForm()
	if o.fault(w, r, o.spec.faults) {
		return
	}
	if formErr != nil {
		o.spec.apiError(w, r, o.spec.badForm)
		return
	}
	if h, ok := o.spec.routes[r.URL.Path]; ok {
		h(w, r)
	} else {
		o.spec.notFound(w, r)
	}
}

// fail answers error code: the error page on the authorize path, an API
// error in the endpoint's shape elsewhere.
func (o *oauthSim[A]) fail(w http.ResponseWriter, r *http.Request, code int) {
	if r.URL.Path == o.spec.authorizePath {
		o.spec.errorPage(w, code)
	} else {
		o.spec.apiError(w, r, code)
	}
}

// app finds a registered app.
func (o *oauthSim[A]) app(clientID string) (*A, bool) {
	for i := range o.apps {
		if id, _ := o.apps[i].credentials(); id == clientID {
			return &o.apps[i], true
		}
	}
	return nil, false
}

// clientProblem is what is wrong with a token call's client credentials.
type clientProblem int

const (
	clientOK      clientProblem = iota
	clientMissing               // no client_id
	clientUnknown               // no app has it
	secretMissing               // no client_secret
	secretWrong                 // not the app's secret
)

// client checks a token call's client credentials, in that order.
func (o *oauthSim[A]) client(clientID, secret string) (*A, clientProblem) {
	if clientID == "" {
		return nil, clientMissing
	}
	app, ok := o.app(clientID)
	if !ok {
		return nil, clientUnknown
	}
	_, want := (*app).credentials()
	switch {
	case secret == "":
		return nil, secretMissing
	case secret != want:
		return nil, secretWrong
	}
	return app, clientOK
}

// answer finishes an authorize request whose app and redirect_uri the
// simulator has checked: the person picker, or what the person chose on
// it. A person picked gets a code, sent to redirectURI with the state.
func (o *oauthSim[A]) answer(w http.ResponseWriter, r *http.Request, app *A, redirectURI string) {
	f := r.Form
	if f.Get(denyParam) != "" {
		o.spec.denied(w, r, redirectURI)
		return
	}
	if id := f.Get(personParam); id != "" {
		person, ok := findPerson(o.persons, id)
		if !ok {
			o.spec.unknownPerson(w)
			return
		}
		o.redirect(w, r, redirectURI, url.Values{"code": {o.issueCode(app, person, redirectURI, f.Get("scope"))}})
		return
	}
	clientID, _ := (*app).credentials()
	persons, deny := pickerLinks(o.persons, func(p Person) string { return o.spec.avatar(avatarURL(r, p)) }, formLink(f))
	display := f.Get("display")
	if display == "" {
		display = o.spec.defaultDisplay
	}
	writePage(w, http.StatusOK, pageTmpl, o.spec.pickerPage, map[string]any{
		"AppID": clientID, "Display": display, "Mobile": display == "mobile",
		"Persons": persons, "DenyHref": deny,
	})
}

// redirect sends the browser to redirectURI with params and the state
// (when the request has one), keeping any query redirectURI already has.
func (o *oauthSim[A]) redirect(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		o.spec.errorPage(w, o.spec.badRedirect)
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if s := r.Form.Get("state"); s != "" {
		q.Set("state", s)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// issueCode gives person a code for app, and forgets expired ones.
func (o *oauthSim[A]) issueCode(app *A, person Person, redirectURI, scope string) string {
	now := o.clock.now()
	code := o.spec.newCode()
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, c := range o.codes {
		if now.After(c.expires) {
			delete(o.codes, k)
		}
	}
	o.codes[code] = &oauthCode[A]{app: app, person: person, redirectURI: redirectURI, scope: scope, expires: now.Add(o.spec.codeTTL)}
	return code
}

// grantProblem is why a code or refresh token cannot be redeemed.
type grantProblem int

const (
	grantOK       grantProblem = iota
	grantMissing               // none given
	grantInvalid               // unknown, another app's, or expired
	grantUsed                  // a code redeemed before
	grantRedirect              // redirect_uri is not the authorize request's
)

// redeem uses a code of app once, checked in the order of grantProblem.
func (o *oauthSim[A]) redeem(code string, app *A, redirectURI string) (oauthCode[A], grantProblem) {
	if code == "" {
		return oauthCode[A]{}, grantMissing
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	c, found := o.codes[code]
	switch {
	case !found || c.app != app || o.clock.now().After(c.expires):
		return oauthCode[A]{}, grantInvalid
	case c.used:
		return oauthCode[A]{}, grantUsed
	case redirectURI != c.redirectURI:
		return oauthCode[A]{}, grantRedirect
	}
	c.used = true
	return *c, grantOK
}

// redeemRefresh uses a refresh token of app once.
func (o *oauthSim[A]) redeemRefresh(token string, app *A) (oauthGrant[A], grantProblem) {
	if token == "" {
		return oauthGrant[A]{}, grantMissing
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	g, found := o.refresh[token]
	if !found || g.app != app {
		return oauthGrant[A]{}, grantInvalid
	}
	delete(o.refresh, token)
	return *g, grantOK
}

// issueTokens gives person an access token for app, and a refresh token
// too when withRefresh.
func (o *oauthSim[A]) issueTokens(app *A, person Person, scope string, withRefresh bool) (access, refresh string) {
	now := o.clock.now()
	access = o.spec.newToken()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tokens[access] = &oauthGrant[A]{app: app, person: person, scope: scope, created: now, expires: now.Add(o.spec.tokenTTL)}
	if withRefresh {
		refresh = o.spec.newToken()
		o.refresh[refresh] = &oauthGrant[A]{app: app, person: person, scope: scope, created: now}
	}
	return access, refresh
}

// tokenProblem is why an access token is refused.
type tokenProblem int

const (
	tokenOK      tokenProblem = iota
	tokenMissing              // none given
	tokenUnknown              // never issued, or revoked
	tokenExpired
)

// lookup finds a live access token.
func (o *oauthSim[A]) lookup(token string) (oauthGrant[A], tokenProblem) {
	if token == "" {
		return oauthGrant[A]{}, tokenMissing
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	g, ok := o.tokens[token]
	switch {
	case !ok:
		return oauthGrant[A]{}, tokenUnknown
	case o.clock.now().After(g.expires):
		return oauthGrant[A]{}, tokenExpired
	}
	return *g, tokenOK
}

// revokeToken ends an access token.
func (o *oauthSim[A]) revokeToken(token string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.tokens, token)
}
