package broker

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"

	"github.com/qiaoidp/qiao/broker/seal"
	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

// accountStore is what the account page and API read themselves; what
// they change goes through the identity service.
type accountStore interface {
	GetUser(ctx context.Context, id string) (storage.User, error)
	GetIdentity(ctx context.Context, connectorID, subject string) (storage.Identity, error)
	ListIdentities(ctx context.Context, userID string) ([]storage.Identity, error)
	GetProfile(ctx context.Context, userID string) (storage.UserProfile, error)
}

// accountFlow is the browser login flow (login.go) as the account page
// uses it: to sign in at a provider for the page, a bind or a
// re-authentication, and to write the sign-in a re-authentication makes.
type accountFlow interface {
	startUpstream(w http.ResponseWriter, r *http.Request, conn *Connector, data pendingData)
	writeSignIn(w http.ResponseWriter, r *http.Request, done *signIn) bool
}

// bearerChecker checks the account API's access tokens (endpoints.go).
type bearerChecker interface {
	bearer(r *http.Request, form bool) (fosite.AccessRequester, error)
	writeBearerError(w http.ResponseWriter, err error)
}

// accountHandler is the account page (its forms, the unbind
// confirmation, the merge offer, the person's own name and picture) and
// the account API under /api/v1/me: what people see and change of
// themselves. The rules are the identity service's.
type accountHandler struct {
	*site
	identity *identityService
	store    accountStore
	flow     accountFlow
	tokens   bearerChecker
	// reauth is how recent a sign-in must be to bind or unbind; 0:
	// defaultReauthWithin.
	reauth time.Duration
	// merges seals the merge offers the merge page carries.
	merges *seal.Sealer
}

// reauthWithin is how recent a sign-in must be to bind or unbind an
// identity, on the page and through the API.
func (h *accountHandler) reauthWithin() time.Duration {
	if d := h.reauth; d > 0 {
		return d
	}
	return defaultReauthWithin
}

// recentSignIn reports whether authTime is recent enough to bind or unbind.
func (h *accountHandler) recentSignIn(authTime time.Time) bool {
	return !authTime.IsZero() && h.now().Sub(authTime) <= h.reauthWithin()
}

// Mount adds the account page's and the account API's routes to s, the
// router under the issuer.
func (h *accountHandler) Mount(s *mux.Router) {
	page := func(next http.HandlerFunc) http.HandlerFunc { return h.limited(limitAccount, false, nil, next) }
	api := func(next http.HandlerFunc) http.HandlerFunc { return h.limited(limitAccount, true, nil, next) }
	s.HandleFunc("/account", page(h.handleAccount)).Methods(http.MethodGet)
	s.HandleFunc("/account/login", page(h.handleAccountLogin)).Methods(http.MethodGet)
	s.HandleFunc("/account/bind", page(h.handleAccountBind)).Methods(http.MethodPost)
	s.HandleFunc("/account/unbind", page(h.handleAccountUnbind)).Methods(http.MethodPost)
	s.HandleFunc("/account/reauth", page(h.handleAccountReauth)).Methods(http.MethodPost)
	s.HandleFunc("/account/signout-everywhere", page(h.handleAccountSignOutEverywhere)).Methods(http.MethodPost)
	s.HandleFunc("/account/unbind/confirm", page(h.handleAccountUnbindConfirm)).Methods(http.MethodGet)
	s.HandleFunc("/account/merge", page(h.handleAccountMerge)).Methods(http.MethodPost)
	s.HandleFunc("/api/v1/me", api(h.handleMe)).Methods(http.MethodGet)
	s.HandleFunc("/account/profile", page(h.handleAccountProfile)).Methods(http.MethodPost)
	s.HandleFunc("/account/picture", page(withBodyLimit(maxPictureBody, h.handleAccountPicture))).Methods(http.MethodPost)
	s.HandleFunc("/api/v1/me", api(h.handleSetName)).Methods(http.MethodPatch)
	// wx.request knows no PATCH and wx.uploadFile only POSTs: the
	// mini-program uses PUT /api/v1/me/name and POST /api/v1/me/picture.
	s.HandleFunc("/api/v1/me/name", api(h.handleSetName)).Methods(http.MethodPut)
	s.HandleFunc("/api/v1/me/picture", api(withBodyLimit(maxPictureBody, h.handleSetPicture))).Methods(http.MethodPut, http.MethodPost, http.MethodDelete)
	s.HandleFunc("/pictures/{user}", page(h.servePicture)).Methods(http.MethodGet, http.MethodHead)
	s.HandleFunc("/api/v1/me/identities", api(h.handleBindAPI)).Methods(http.MethodPost)
	s.HandleFunc("/api/v1/me/identities/{connector}", api(h.handleUnbindAPI)).Methods(http.MethodDelete)
	s.HandleFunc("/api/v1/me/sessions", api(h.handleSignOutEverywhereAPI)).Methods(http.MethodDelete)
}

// accountView is what the account page shows.
type accountView struct {
	UserID     string
	Name       string
	Picture    string
	Identities []identityView
	Unbound    []choice
	SignIn     []choice
	Note       msgID // a hint beside the choices (open this page in WeChat)
	Status     msgID
	Error      msgID
	CSRF       string
	BindURL    string
	UnbindURL  string
	LogoutURL  string
	LogoutCSRF string
	CanUnbind  bool

	// ProfileURL and PictureURL take the name and the picture the person
	// sets themselves.
	ProfileURL, PictureURL string

	// A fresh sign-in is needed before Action (bind or unbind) of Target:
	// Reauth lists the user's own connectors to sign in with again.
	Reauth    []choice
	ReauthURL string
	// Confirm asks again for Action of Target after a re-authentication.
	Confirm       bool
	ConfirmURL    string
	Action        string
	Target        string
	TargetName    string
	EverywhereURL string
	AccountURL    string

	ErrorArg    string // formats Error when set
	ErrorDetail string // under "Technical details"
	Back        *link  // "Back to <app>", when an application opened the page
}

type identityView struct {
	ConnectorID, Type, Provider, DisplayName, Picture string
	Icon                                              string // URL of the connector's icon
	BoundAt                                           time.Time
	BoundLocal                                        string // BoundAt for the reader: Beijing time in Chinese, UTC in English
	Web                                               bool
}

// beijing is China Standard Time (no daylight saving), without tzdata.
var beijing = time.FixedZone("CST", 8*3600)

func localTime(t time.Time, lang string) string {
	if lang == "zh-CN" {
		return t.In(beijing).Format("2006-01-02 15:04") + " " + catalog[lang][msgTimeZone]
	}
	return t.UTC().Format("2006-01-02 15:04") + " " + catalog["en"][msgTimeZone]
}

// statusMessages are the outcomes the account page may be told to show.
var statusMessages = map[string]msgID{
	msgBoundOK: msgBoundOK, msgUnboundOK: msgUnboundOK, msgSignedOutEverywhere: msgSignedOutEverywhere,
	msgMergedOK: msgMergedOK,
}
var errorMessages = map[string]msgID{
	msgAlreadyBound: msgAlreadyBound, msgLastIdentity: msgLastIdentity,
	msgReauth: msgReauth, msgUnavailable: msgUnavailable,
	msgProviderFailed: msgProviderFailed, msgBadCSRF: msgBadCSRF,
	msgSignInFirst: msgSignInFirst, msgUnknownConnector: msgUnknownConnector,
	msgReauthOtherPerson: msgReauthOtherPerson,
	msgMergeExpired:      msgMergeExpired,
	msgMergeChanged:      msgMergeChanged,
	msgCancelledAt:       msgCancelledAt,
	msgConnectorTaken:    msgConnectorTaken,
}

// The account actions that wait for a fresh sign-in (pendingAction,
// pendingData.Action), as the account page's forms and links name them.
const (
	pendingBind   = "bind"
	pendingUnbind = "unbind"
)

// pendingAction is a bind or unbind the person asked for (with a POST and
// its CSRF token) and that waits for a fresh sign-in.
type pendingAction struct {
	Action string // pendingBind or pendingUnbind
	Target string // the connector id to bind or unbind
}

// pendingFrom reads a pending action from form or query values; ok is
// false unless it names a known connector.
func (h *accountHandler) pendingFrom(v url.Values) (pendingAction, bool) {
	p := pendingAction{Action: v.Get("action"), Target: v.Get("target")}
	if p.Action != pendingBind && p.Action != pendingUnbind {
		return pendingAction{}, false
	}
	if _, ok := h.connectors[p.Target]; !ok {
		return pendingAction{}, false
	}
	return p, true
}

// askReauth sends the person back to the account page, which shows why
// (msg) and asks for a fresh sign-in before the pending action.
func (h *accountHandler) askReauth(w http.ResponseWriter, r *http.Request, msg msgID, p pendingAction) {
	q := url.Values{"error": {msg}, "action": {p.Action}, "target": {p.Target}}
	http.Redirect(w, r, h.url("/account")+"?"+q.Encode(), http.StatusSeeOther)
}

func (h *accountHandler) accountCSRF(s *browserSession) string {
	return h.mac("account", s.ID)
}

func (h *accountHandler) handleAccount(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess, err := h.currentSession(r)
	if err != nil {
		h.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	q, lang := r.URL.Query(), pickLang(r)
	v := &accountView{Status: statusMessages[q.Get("status")], Error: errorMessages[q.Get("error")]}
	h.accountErrorContext(r, v)
	v.Back = h.accountBack(w, r)
	if sess == nil {
		v.SignIn, v.Note = h.signInChoices(r)
		h.render(w, r, http.StatusOK, "account.html", pageData{Title: msgAccountTitle, Account: v})
		return
	}
	ids, err := h.store.ListIdentities(ctx, sess.UserID)
	if err != nil {
		h.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	p := h.identity.profileFrom(ids)
	v.UserID, v.Name, v.Picture = sess.UserID, p.Name, p.Picture
	v.CSRF = h.accountCSRF(sess)
	v.BindURL, v.UnbindURL, v.LogoutURL = h.url("/account/bind"), h.url("/account/unbind"), h.url("/logout")
	v.ProfileURL, v.PictureURL = h.url("/account/profile"), h.url("/account/picture")
	v.ReauthURL, v.EverywhereURL, v.AccountURL = h.url("/account/reauth"), h.url("/account/signout-everywhere"), h.url("/account")
	v.LogoutCSRF = h.logoutToken(sess)
	v.CanUnbind = len(ids) > 1
	if pa, ok := h.pendingFrom(q); ok {
		v.Action, v.Target = pa.Action, pa.Target
		if k, ok := h.connectors[pa.Target]; ok {
			v.TargetName = connectorName(k, lang)
		}
		switch {
		case v.Error == msgReauth || v.Error == msgReauthOtherPerson:
			// A fresh sign-in, only with the user's own identities.
			v.Reauth = h.reauthChoices(r, ids, pa)
		case q.Get("confirm") != "":
			v.Confirm = true
			v.ConfirmURL = v.BindURL
			if pa.Action == pendingUnbind {
				v.ConfirmURL = v.UnbindURL
			}
		}
	}
	bound := map[string]bool{}
	families := map[string]bool{} // of the bound connectors, for the note
	for _, id := range ids {
		bound[id.ConnectorID] = true
		name := id.ConnectorID
		web := false
		if k, ok := h.connectors[id.ConnectorID]; ok {
			families[family(k)] = true
			name = connectorName(k, lang)
			_, web = k.web()
		}
		v.Identities = append(v.Identities, identityView{
			ConnectorID: id.ConnectorID, Type: id.ConnectorType, Provider: name, Icon: h.iconURL(id.ConnectorID),
			DisplayName: id.DisplayName, Picture: id.Picture, BoundAt: id.BoundAt, Web: web,
			BoundLocal: localTime(id.BoundAt, lang),
		})
	}
	offered, hidden := h.offers(r, func(id string) bool { return !bound[id] })
	for _, k := range offered {
		v.Unbound = append(v.Unbound, h.newChoice(r, k, ""))
	}
	v.Note = offerNote(browserOf(r), offered, hidden, families)
	h.render(w, r, http.StatusOK, "account.html", pageData{Title: msgAccountTitle, Account: v})
}

// reauthChoices are the connectors a person may sign in with again before
// p: those of their own identities that work in this browser, except the
// one p unbinds, unless it is the only one.
func (h *accountHandler) reauthChoices(r *http.Request, ids []storage.Identity, p pendingAction) []choice {
	mine := map[string]bool{}
	for _, id := range ids {
		mine[id.ConnectorID] = true
	}
	var out []choice
	var target *choice
	offered, _ := h.browserConnectors(r, nil)
	for _, k := range offered {
		if !mine[k.ID] {
			continue
		}
		c := h.newChoice(r, k, "")
		if p.Action == pendingUnbind && k.ID == p.Target {
			target = &c
			continue
		}
		out = append(out, c)
	}
	if len(out) == 0 && target != nil {
		out = append(out, *target)
	}
	return out
}

// signInChoices are the account page's sign-in links, one per web
// connector usable in this browser, and the note about the others.
func (h *accountHandler) signInChoices(r *http.Request) ([]choice, msgID) {
	var out []choice
	offered, note := h.browserConnectors(r, nil)
	for _, k := range offered {
		out = append(out, h.newChoice(r, k, h.url("/account/login")+"?connector_id="+url.QueryEscape(k.ID)))
	}
	return out, note
}

func (s *site) redirectAccount(w http.ResponseWriter, r *http.Request, key string, msg string) {
	q := url.Values{}
	if key != "" {
		q.Set(key, msg)
	}
	target := s.url("/account")
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// handleAccountLogin signs the person in to the account page itself.
func (h *accountHandler) handleAccountLogin(w http.ResponseWriter, r *http.Request) {
	conn, ok := h.connectors[r.URL.Query().Get("connector_id")]
	if _, web := conn.web(); !ok || !web {
		h.errorPage(w, r, http.StatusBadRequest, msgUnknownConnector)
		return
	}
	h.flow.startUpstream(w, r, conn, pendingData{Purpose: purposeAccount, RequestedAt: h.now().UTC()})
}

// signedIn is the browser's session; without one it answers the request
// (503 page, or back to the account page to sign in) and returns nil.
func (h *accountHandler) signedIn(w http.ResponseWriter, r *http.Request) *browserSession {
	sess, err := h.currentSession(r)
	if err != nil {
		h.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return nil
	}
	if sess == nil {
		h.redirectAccount(w, r, "error", msgSignInFirst)
		return nil
	}
	return sess
}

// accountSession is signedIn for a form of the account page, whose CSRF
// token it checks too.
func (h *accountHandler) accountSession(w http.ResponseWriter, r *http.Request) *browserSession {
	sess := h.signedIn(w, r)
	if sess == nil {
		return nil
	}
	if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(h.accountCSRF(sess))) {
		h.errorPage(w, r, http.StatusForbidden, msgBadCSRF)
		return nil
	}
	return sess
}

func (h *accountHandler) handleAccountBind(w http.ResponseWriter, r *http.Request) {
	sess := h.accountSession(w, r)
	if sess == nil {
		return
	}
	conn, ok := h.connectors[r.PostForm.Get("connector_id")]
	if _, web := conn.web(); !ok || !web {
		h.redirectAccount(w, r, "error", msgUnknownConnector)
		return
	}
	if !h.recentSignIn(sess.AuthTime) {
		h.askReauth(w, r, msgReauth, pendingAction{Action: pendingBind, Target: conn.ID})
		return
	}
	h.flow.startUpstream(w, r, conn, pendingData{Purpose: purposeBind, UserID: sess.UserID, RequestedAt: h.now().UTC()})
}

func (h *accountHandler) handleAccountUnbind(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess := h.accountSession(w, r)
	if sess == nil {
		return
	}
	connectorID := r.PostForm.Get("connector_id")
	if !h.recentSignIn(sess.AuthTime) {
		if _, known := h.connectors[connectorID]; !known {
			h.redirectAccount(w, r, "error", msgUnknownConnector)
			return
		}
		h.askReauth(w, r, msgReauth, pendingAction{Action: pendingUnbind, Target: connectorID})
		return
	}
	err := h.identity.unbind(ctx, sess.UserID, connectorID, "")
	switch {
	case err == nil:
		// The store ended the sessions that came through the identity,
		// this one too if it did: then the page shows the signed-out view.
		h.redirectAccount(w, r, "status", msgUnboundOK)
	case errors.Is(err, storage.ErrLastIdentity):
		h.redirectAccount(w, r, "error", msgLastIdentity)
	case errors.Is(err, storage.ErrNotFound):
		h.redirectAccount(w, r, "error", msgUnknownConnector)
	default:
		h.log.Error("unbind failed", "err", err)
		h.redirectAccount(w, r, "error", msgUnavailable)
	}
}

// handleAccountReauth starts a fresh sign-in, with one of the user's own
// identities, for a bind or unbind the person asked for.
func (h *accountHandler) handleAccountReauth(w http.ResponseWriter, r *http.Request) {
	sess := h.accountSession(w, r)
	if sess == nil {
		return
	}
	p, ok := h.pendingFrom(r.PostForm)
	if !ok {
		h.redirectAccount(w, r, "error", msgUnknownConnector)
		return
	}
	ids, err := h.store.ListIdentities(r.Context(), sess.UserID)
	if err != nil {
		h.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	connectorID := r.PostForm.Get("connector_id")
	for _, c := range h.reauthChoices(r, ids, p) {
		if c.ID == connectorID {
			h.flow.startUpstream(w, r, h.connectors[c.ID], pendingData{
				Purpose: purposeReauth, UserID: sess.UserID, Action: p.Action, Target: p.Target,
				RequestedAt: h.now().UTC(),
			})
			return
		}
	}
	h.redirectAccount(w, r, "error", msgUnknownConnector)
}

// sessionOf is the browser's session when it belongs to userID, the user
// an account-page sign-in was started for; otherwise it answers the
// request (503 page, or back to the account page) and reports false.
func (h *accountHandler) sessionOf(w http.ResponseWriter, r *http.Request, userID string) (*browserSession, bool) {
	sess := h.signedIn(w, r)
	if sess == nil {
		return nil, false
	}
	if sess.UserID != userID {
		h.redirectAccount(w, r, "error", msgSignInFirst)
		return nil, false
	}
	return sess, true
}

// finishReauth completes a fresh sign-in asked for by the account page.
// Only an identity of the same user counts: anyone else's (or a new one)
// is refused, the session stays as it was, no user is created and the
// pending action is not performed. On success the person gets a new
// session and is asked once more to confirm the pending action.
func (h *accountHandler) finishReauth(w http.ResponseWriter, r *http.Request, conn *Connector, data pendingData, ident connectors.Identity) {
	ctx := r.Context()
	sess, ok := h.sessionOf(w, r, data.UserID)
	if !ok {
		return
	}
	existing, err := h.store.GetIdentity(ctx, conn.ID, ident.Subject)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.log.Error("re-authentication: loading identity", "err", err)
		h.redirectAccount(w, r, "error", msgUnavailable)
		return
	}
	if err != nil || existing.UserID != data.UserID {
		h.metrics.bindOperations.WithLabelValues(string(actionReauth), string(outcomeRefusedOtherPerson)).Inc()
		h.audit(ctx, r, storage.AuditEvent{Action: string(actionReauth), UserID: data.UserID, ConnectorID: conn.ID, Result: string(outcomeRefused),
			Detail: "signed in as another person"})
		h.askReauth(w, r, msgReauthOtherPerson, pendingAction{Action: data.Action, Target: data.Target})
		return
	}
	// The fresh session, the spent state and the audit event in one write.
	now := h.now().UTC()
	fresh, cookie := h.newBrowserSession(sess, data.UserID, conn.ID, ident.Subject, now)
	done := &signIn{sess: fresh, cookie: cookie, conn: conn.ID, req: r, login: data, c: storage.LoginCompletion{
		State:          data.State,
		StateConnector: conn.ID,
		StateExpiresAt: data.ExpiresAt,
		Session:        &fresh.Session,
		DeleteSession:  sess.ID,
		Audit:          []storage.AuditEvent{h.auditEvent(ctx, storage.AuditEvent{Action: string(actionReauth), UserID: data.UserID, ConnectorID: conn.ID, Result: string(outcomeSuccess)})},
	}}
	if !h.flow.writeSignIn(w, r, done) {
		return
	}
	h.metrics.bindOperations.WithLabelValues(string(actionReauth), string(outcomeSuccess)).Inc()
	q := url.Values{"confirm": {"1"}, "action": {data.Action}, "target": {data.Target}}
	http.Redirect(w, r, h.url("/account")+"?"+q.Encode(), http.StatusSeeOther)
}

// handleAccountSignOutEverywhere ends every browser session and revokes
// every token of the user.
func (h *accountHandler) handleAccountSignOutEverywhere(w http.ResponseWriter, r *http.Request) {
	sess := h.accountSession(w, r)
	if sess == nil {
		return
	}
	if err := h.identity.signOutEverywhere(r.Context(), sess.UserID, ""); err != nil {
		h.redirectAccount(w, r, "error", msgUnavailable)
		return
	}
	h.setCookie(w, sessionCookie, "", -1)
	h.redirectAccount(w, r, "status", msgSignedOutEverywhere)
}

// finishBind completes a bind started on the account page.
func (h *accountHandler) finishBind(w http.ResponseWriter, r *http.Request, conn *Connector, data pendingData, ident connectors.Identity) {
	sess, ok := h.sessionOf(w, r, data.UserID)
	if !ok {
		return
	}
	_, outcome, err := h.identity.bind(r.Context(), conn, ident, sess.UserID, "")
	switch {
	case err != nil:
		h.log.Error("bind failed", "err", err)
		h.redirectAccount(w, r, "error", msgUnavailable)
	case outcome == bindConflict:
		h.offerMerge(w, r, sess, conn, ident)
	case outcome == bindConnectorTaken:
		h.redirectAccount(w, r, "error", msgConnectorTaken)
	default:
		h.redirectAccount(w, r, "status", msgBoundOK)
	}
}

// ------------------------------------------------------------- API

type identityJSON struct {
	ConnectorID string `json:"connector_id"`
	Type        string `json:"type"`
	DisplayName string `json:"display_name"`
	Picture     string `json:"picture"`
	BoundAt     string `json:"bound_at"`
}

func toIdentityJSON(id storage.Identity) identityJSON {
	return identityJSON{
		ConnectorID: id.ConnectorID, Type: id.ConnectorType, DisplayName: id.DisplayName,
		Picture: id.Picture, BoundAt: id.BoundAt.UTC().Format(time.RFC3339),
	}
}

// apiGrant is an account API request's authenticated grant.
type apiGrant struct {
	userID   string
	client   *client
	clientID string
	scopes   fosite.Arguments
	authTime time.Time
}

// apiUser authenticates the bearer token, from the Authorization header
// only, and requires the account scope (RFC 6750 §3.1).
func (h *accountHandler) apiUser(w http.ResponseWriter, r *http.Request) (apiGrant, bool) {
	ar, err := h.tokens.bearer(r, false)
	if err != nil {
		h.tokens.writeBearerError(w, err)
		return apiGrant{}, false
	}
	g := apiGrant{userID: ar.GetSession().GetSubject(), scopes: ar.GetGrantedScopes()}
	g.client, _ = ar.GetClient().(*client)
	if g.client != nil {
		g.clientID = g.client.ID
	}
	if sess, ok := ar.GetSession().(*grantSession); ok && sess.Claims != nil {
		g.authTime = sess.Claims.AuthTime
	}
	if !g.scopes.Has(scopeAccount) || g.client == nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="qiao", error="insufficient_scope", scope="`+scopeAccount+`"`)
		writeJSON(w, http.StatusForbidden, oauthError{Error: "insufficient_scope",
			Description: "The account API needs a token with the account scope, which only clients with account_api may request."})
		return apiGrant{}, false
	}
	if _, err := h.store.GetUser(r.Context(), g.userID); errors.Is(err, storage.ErrNotFound) {
		h.tokens.writeBearerError(w, err)
		return apiGrant{}, false
	} else if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
		return apiGrant{}, false
	}
	if ok, wait := h.limits.allowClient(limitAccount, g.clientID, requestIP(r), h.now()); !ok {
		h.rateLimited(w, r, limitAccount, limitByClient, wait, true)
		return apiGrant{}, false
	}
	return g, true
}

// freshSignIn answers as RFC 9470 (OAuth 2.0 Step Up Authentication
// Challenge) does when the token's sign-in is older than reauthWithin:
// 401 with error="insufficient_user_authentication" and max_age, so that
// the app signs the person in again (max_age or prompt=login at /auth,
// or a new wx.login code for a mini-program) and retries.
func (h *accountHandler) freshSignIn(w http.ResponseWriter, g apiGrant) bool {
	if h.recentSignIn(g.authTime) {
		return true
	}
	maxAge := int64(h.reauthWithin() / time.Second)
	const desc = "A more recent sign-in is required to change the accounts bound to this user."
	w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="qiao", error="insufficient_user_authentication", error_description="%s", max_age=%d`, desc, maxAge))
	writeJSON(w, http.StatusUnauthorized, struct {
		oauthError
		MaxAge int64 `json:"max_age"`
	}{oauthError{Error: "insufficient_user_authentication", Description: desc}, maxAge})
	return false
}

// connectorDenied answers 403 when the client may not unbind the
// connector because it may not use it.
func connectorDenied(w http.ResponseWriter) {
	writeJSON(w, http.StatusForbidden, oauthError{Error: "access_denied",
		Description: "This application may only unbind connectors it may use."})
}

func (h *accountHandler) handleMe(w http.ResponseWriter, r *http.Request) {
	g, ok := h.apiUser(w, r)
	if !ok {
		return
	}
	ids, err := h.store.ListIdentities(r.Context(), g.userID)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
		return
	}
	profiles := g.scopes.Has("profile")
	out := struct {
		Sub        string         `json:"sub"`
		Name       string         `json:"name,omitempty"`
		Picture    string         `json:"picture,omitempty"`
		Identities []identityJSON `json:"identities"`
	}{Sub: g.userID, Identities: []identityJSON{}}
	if profiles {
		p := h.identity.profileFrom(ids)
		out.Name, out.Picture = p.Name, p.Picture
	}
	for _, id := range ids {
		j := toIdentityJSON(id)
		if !profiles {
			// Names and avatars are profile data, as at userinfo.
			j.DisplayName, j.Picture = "", ""
		}
		out.Identities = append(out.Identities, j)
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *accountHandler) handleBindAPI(w http.ResponseWriter, r *http.Request) {
	g, ok := h.apiUser(w, r)
	if !ok {
		return
	}
	var req struct {
		ConnectorID string `json:"connector_id"`
		Code        string `json:"code"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	if err := dec.Decode(&req); err != nil || req.ConnectorID == "" || req.Code == "" || len(req.Code) > 512 {
		writeJSON(w, http.StatusBadRequest, oauthError{Error: "invalid_request", Description: `The body must be JSON {"connector_id": "...", "code": "..."}.`})
		return
	}
	conn, found := h.connectors[req.ConnectorID]
	exchanger, isCode := conn.code()
	if !found || !isCode || !g.client.allows(conn.ID) {
		writeJSON(w, http.StatusBadRequest, oauthError{Error: "invalid_request", Description: "connector_id must name a mini-program connector this application may use."})
		return
	}
	if !h.freshSignIn(w, g) {
		return
	}
	ident, err := exchanger.ExchangeCode(r.Context(), req.Code)
	if err != nil {
		h.loginFailed(r.Context(), conn, g.clientID, err).write(w)
		return
	}
	row, outcome, err := h.identity.bind(r.Context(), conn, ident, g.userID, g.clientID)
	switch {
	case err != nil:
		h.log.Error("bind failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
	case outcome == bindConflict:
		writeJSON(w, http.StatusConflict, oauthError{Error: "identity_already_bound", Description: "This WeChat account is already bound to another user."})
	case outcome == bindConnectorTaken:
		writeJSON(w, http.StatusConflict, oauthError{Error: "connector_already_bound", Description: "The user already has an account of this connector bound; unbind it first."})
	case outcome == bindAlreadyMine:
		writeJSON(w, http.StatusOK, toIdentityJSON(row))
	default:
		writeJSON(w, http.StatusCreated, toIdentityJSON(row))
	}
}

func (h *accountHandler) handleUnbindAPI(w http.ResponseWriter, r *http.Request) {
	g, ok := h.apiUser(w, r)
	if !ok {
		return
	}
	connectorID := mux.Vars(r)["connector"]
	if !g.client.allows(connectorID) {
		connectorDenied(w)
		return
	}
	if !h.freshSignIn(w, g) {
		return
	}
	err := h.identity.unbind(r.Context(), g.userID, connectorID, g.clientID)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, storage.ErrLastIdentity):
		writeJSON(w, http.StatusConflict, oauthError{Error: "last_identity", Description: "The last identity of a user cannot be unbound."})
	case errors.Is(err, storage.ErrNotFound):
		writeJSON(w, http.StatusNotFound, oauthError{Error: "not_found", Description: "No identity of that connector is bound to this user."})
	default:
		h.log.Error("unbind failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
	}
}

// handleSignOutEverywhereAPI ends every browser session and revokes every
// token of the user, the calling one included.
func (h *accountHandler) handleSignOutEverywhereAPI(w http.ResponseWriter, r *http.Request) {
	g, ok := h.apiUser(w, r)
	if !ok {
		return
	}
	if err := h.identity.signOutEverywhere(r.Context(), g.userID, g.clientID); err != nil {
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
