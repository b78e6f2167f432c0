package broker

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages renders the HTML the broker shows people.
type pages struct {
	tmpl   map[string]*template.Template
	static fs.FS
}

func newPages() (*pages, error) {
	p := &pages{tmpl: map[string]*template.Template{}}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := path.Base(n)
		if base == "layout.html" {
			continue
		}
		t, err := template.New("layout.html").Funcs(template.FuncMap{}).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %w", n, err)
		}
		p.tmpl[base] = t
	}
	if p.static, err = fs.Sub(staticFS, "static"); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *pages) serveStatic(w http.ResponseWriter, r *http.Request) {
	name := mux.Vars(r)["file"]
	data, err := fs.ReadFile(p.static, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	switch path.Ext(name) {
	case ".css":
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case ".svg":
		w.Header().Set("Content-Type", "image/svg+xml")
	case ".js":
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(data)
}

// pageData is what every template gets.
type pageData struct {
	Lang     string
	T        map[msgID]string
	Title    msgID
	Message  msgID
	Notice   bool // Message is news, not an error
	Detail   string
	Note     msgID  // a hint beside the choices (open this page in WeChat)
	Static   string // URL prefix of static files
	LangURLs map[string]string

	// chooser
	Client  string
	Choices []choice
	// consent
	Scopes []msgID
	Hidden map[string][]string
	Action string
	CSRF   string
	// account
	Account *accountView
	// home
	Issuer, AccountURL, DiscoveryURL string

	// message pages: MessageArg formats Message when set; Links are the
	// ways forward (render gives an error page without any the default
	// ones, defaultLinks)
	MessageArg string
	Links      []link
	// merge and unbind confirmations
	Merge  *mergeView
	Unbind *unbindView
	// scan login
	Scan *scanView
	// Script is a static script the page loads ("" for none); the page
	// may then run it and call the broker (script-src, connect-src 'self').
	Script string
}

type choice struct {
	ID, Type, Name, URL string
	Icon                string // URL of the connector's icon
}

// displayNamer is a connector with names of its own ("WeChat", "微信").
type displayNamer interface {
	DisplayName(lang string) string
}

// iconer is a connector with an icon of its own (SVG).
type iconer interface {
	Icon() []byte
}

// connectorName is what the pages call a connector in lang: its
// configured names, else its own, else its id.
func connectorName(k *Connector, lang string) string {
	if n := k.Names[lang]; n != "" {
		return n
	}
	if k.Name != "" {
		return k.Name
	}
	if d, ok := k.Impl.(displayNamer); ok {
		if n := d.DisplayName(lang); n != "" {
			return n
		}
	}
	return k.ID
}

// iconURL is where the pages load the icon of the connector id.
func (s *site) iconURL(connectorID string) string {
	return s.prefix + "/icons/" + url.PathEscape(connectorID) + ".svg"
}

// newChoice is a connector as the pages list it.
func (s *site) newChoice(r *http.Request, k *Connector, target string) choice {
	return choice{ID: k.ID, Type: k.Type, Name: connectorName(k, pickLang(r)), URL: target, Icon: s.iconURL(k.ID)}
}

// pagesHandler serves the pages outside every flow: the home page, the
// static files and the connectors' icons.
type pagesHandler struct {
	*site
}

// Mount adds the handler's routes to r, the router under the issuer.
func (h *pagesHandler) Mount(r *mux.Router) {
	r.HandleFunc("/", h.handleHome).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/static/{file}", h.pages.serveStatic).Methods(http.MethodGet)
	r.HandleFunc("/icons/{connector}.svg", h.serveIcon).Methods(http.MethodGet)
}

// serveIcon serves a connector's own icon, or the generic one (also for a
// connector that is no longer configured).
func (h *pagesHandler) serveIcon(w http.ResponseWriter, r *http.Request) {
	var data []byte
	if k, ok := h.connectors[mux.Vars(r)["connector"]]; ok {
		if i, ok := k.Impl.(iconer); ok {
			data = i.Icon()
		}
	}
	if len(data) == 0 {
		data, _ = fs.ReadFile(h.pages.static, "connector.svg")
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(data)
}

// render writes a page in the request's language.
func (s *site) render(w http.ResponseWriter, r *http.Request, status int, name string, d pageData) {
	t, ok := s.pages.tmpl[name]
	if !ok {
		http.Error(w, "missing page", http.StatusInternalServerError)
		return
	}
	lang := pickLang(r)
	d.Lang = lang
	d.T = catalog[lang]
	d.Static = s.prefix + "/static/"
	if name == "message.html" && len(d.Links) == 0 {
		d.Links = s.defaultLinks(r)
		d.Links[0].Primary = true
	}
	for i := range d.Links {
		d.Links[i].Text = d.T[d.Links[i].Msg]
		if d.Links[i].Arg != "" {
			d.Links[i].Text = fmt.Sprintf(d.Links[i].Text, d.Links[i].Arg)
		}
	}
	d.LangURLs = map[string]string{}
	for _, l := range []string{"zh-CN", "en"} {
		u := *r.URL
		q := u.Query()
		q.Set("lang", l)
		u.RawQuery = q.Encode()
		d.LangURLs[l] = u.RequestURI()
	}
	if v := r.URL.Query().Get("lang"); v == "en" || v == "zh-CN" {
		http.SetCookie(w, &http.Cookie{Name: "qiao_lang", Value: v, Path: s.prefix + "/", MaxAge: 365 * 24 * 3600, SameSite: http.SameSiteLaxMode, Secure: s.secure})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	csp := "default-src 'none'; style-src 'self'; img-src 'self' https: http: data:; form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'"
	if d.Script != "" {
		csp += "; script-src 'self'; connect-src 'self'"
	}
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("X-Frame-Options", "DENY")
	w.WriteHeader(status)
	if err := t.Execute(w, d); err != nil {
		s.log.Error("rendering page", "page", name, "err", err)
	}
}

// pickLang chooses zh-CN or en: an explicit ?lang=, then the cookie, then
// Accept-Language; Chinese by default.
func pickLang(r *http.Request) string {
	if v := r.URL.Query().Get("lang"); v == "en" || v == "zh-CN" {
		return v
	}
	if c, err := r.Cookie("qiao_lang"); err == nil && (c.Value == "en" || c.Value == "zh-CN") {
		return c.Value
	}
	// The relying party's ui_locales (OIDC), then the browser's languages.
	if l := matchLang(strings.Fields(r.FormValue("ui_locales"))); l != "" {
		return l
	}
	var tags []string
	for _, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tags = append(tags, strings.SplitN(part, ";", 2)[0])
	}
	if l := matchLang(tags); l != "" {
		return l
	}
	return "zh-CN"
}

// matchLang returns the first of tags that Qiao speaks, or "".
func matchLang(tags []string) string {
	for _, t := range tags {
		tag := strings.ToLower(strings.TrimSpace(t))
		switch {
		case strings.HasPrefix(tag, "zh"):
			return "zh-CN"
		case strings.HasPrefix(tag, "en"):
			return "en"
		}
	}
	return ""
}

func (s *site) errorPage(w http.ResponseWriter, r *http.Request, status int, msg msgID) {
	s.errorPageText(w, r, status, msg, "")
}

func (s *site) errorPageText(w http.ResponseWriter, r *http.Request, status int, msg msgID, detail string) {
	s.render(w, r, status, "message.html", pageData{Title: msgErrorTitle, Message: msg, Detail: detail})
}

// link is one way forward on a page: Msg (formatted with Arg when set)
// is its text; Kind names it for tests and styling.
type link struct {
	Msg     msgID
	Arg     string
	URL     string
	Kind    string // "retry", "back", "account"
	Primary bool
	Text    string // set by render
}

// defaultLinks are the ways forward of a page that has no better ones:
// back to the application the request names (its home_url), and the
// account page, where a person can sign in and see their accounts.
func (s *site) defaultLinks(r *http.Request) []link {
	var out []link
	id := r.URL.Query().Get("client_id")
	if id == "" && r.PostForm != nil {
		id = r.PostForm.Get("client_id")
	}
	if back, ok := s.backLink(id); ok {
		out = append(out, back)
	}
	return append(out, link{Msg: msgAccountTitle, URL: s.url("/account"), Kind: "account"})
}

// backLink is "Back to <app>" for a configured client with a home URL.
// The URL comes from the configuration only, never from the request, so
// the link cannot be made to point anywhere else.
func (s *site) backLink(clientID string) (link, bool) {
	if clientID == "" {
		return link{}, false
	}
	c, ok := s.clients.get(clientID)
	if !ok || c.Home == "" {
		return link{}, false
	}
	return link{Msg: msgBackTo, Arg: c.Name, URL: c.Home, Kind: "back"}, true
}

// authURLWith is the authorization request form again, with conn as its
// connector_id: a choice on the chooser.
func (h *loginHandler) authURLWith(form url.Values, conn *Connector) string {
	q := url.Values{}
	for key, v := range form {
		q[key] = v
	}
	q.Set("connector_id", conn.ID)
	return h.url("/auth") + "?" + q.Encode()
}

func (h *loginHandler) renderChooser(w http.ResponseWriter, r *http.Request, c *client, form url.Values, list []*Connector, note msgID) {
	d := pageData{Title: msgChooseTitle, Client: c.Name, Note: note}
	for _, k := range list {
		d.Choices = append(d.Choices, h.newChoice(r, k, h.authURLWith(form, k)))
	}
	if len(d.Choices) == 0 && note == "" {
		d.Message = msgNoConnectors
	}
	h.render(w, r, http.StatusOK, "chooser.html", d)
}

func (h *loginHandler) renderConsent(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, c *client, s *browserSession) {
	hidden := map[string][]string{}
	for k, v := range ar.GetRequestForm() {
		if k == "consent_action" || k == "consent_csrf" {
			continue
		}
		hidden[k] = v
	}
	var scopes []msgID
	for _, s := range ar.GetRequestedScopes() {
		switch s {
		case "openid":
			scopes = append(scopes, msgScopeOpenID)
		case "profile":
			scopes = append(scopes, msgScopeProfile)
		case "phone":
			scopes = append(scopes, msgScopePhone)
		case "offline_access":
			scopes = append(scopes, msgScopeOffline)
		case scopeAccount:
			scopes = append(scopes, msgScopeAccount)
		}
	}
	h.render(w, r, http.StatusOK, "consent.html", pageData{
		Title: msgConsentTitle, Client: c.Name, Scopes: scopes, Hidden: hidden,
		Action: h.url("/auth"), CSRF: h.consentToken(s, c),
	})
}

// handleHome serves GET {issuer}/: what this service is, the way to the
// account page, and the discovery document, rather than a 404 at the
// address the banner and the apps name.
func (h *pagesHandler) handleHome(w http.ResponseWriter, r *http.Request) {
	h.render(w, r, http.StatusOK, "home.html", pageData{
		Title:        msgHomeTitle,
		Issuer:       h.issuer,
		AccountURL:   h.url("/account"),
		DiscoveryURL: h.url("/.well-known/openid-configuration"),
	})
}
