package broker

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"

	"github.com/qiaoidp/qiao/broker/keys"
	"github.com/qiaoidp/qiao/broker/seal"
	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

// loginStore is what the browser login flow writes and reads besides
// browser sessions: pending scan logins, the scan status cache, the
// sign-ins it completes.
type loginStore interface {
	CreateLogin(ctx context.Context, l storage.PendingLogin) error
	TakeLogin(ctx context.Context, state string) (storage.PendingLogin, error)
	PutCache(ctx context.Context, key string, value []byte, expiresAt time.Time) error
	GetCache(ctx context.Context, key string) ([]byte, time.Time, error)
	UpdateIdentity(ctx context.Context, id storage.Identity) error
	CompleteLogin(ctx context.Context, c storage.LoginCompletion) error
}

// loginHandler is the browser login flow: the authorization endpoint
// (chooser, consent, single sign-on), the provider login and its
// callback, the scan login, and the dead ends of each (login.go,
// logincookie.go, deadends.go, scan.go). Binds and re-authentications
// the account page started end at the account handler.
type loginHandler struct {
	*site
	provider fosite.OAuth2Provider
	fstore   *fositeStore
	store    loginStore
	identity *identityService
	grants   *grantSessions // the claims of new grants
	account  *accountHandler
	// loginSealer seals pending upstream logins into the login cookie,
	// resumes the browser's last request into the resume cookie.
	loginSealer, resumes *seal.Sealer
}

// Mount adds the flow's routes to s, the router under the issuer.
func (h *loginHandler) Mount(s *mux.Router) {
	s.HandleFunc("/auth", h.limited(limitAuth, false, requestClientID, h.handleAuthorize)).Methods(http.MethodGet, http.MethodPost)
	s.HandleFunc("/callback/{connector}", h.limited(limitCallback, false, nil, h.handleCallback)).Methods(http.MethodGet, http.MethodPost)
	h.scanRoutes(s)
}

// ---------------------------------------------------------- authorize

func hasPrompt(ar fosite.AuthorizeRequester, p string) bool {
	for _, v := range strings.Fields(ar.GetRequestForm().Get("prompt")) {
		if v == p {
			return true
		}
	}
	return false
}

func (h *loginHandler) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// Request objects are not supported (OIDC Core 6): take them out so that
	// fosite validates the redirect URI, then refuse with a redirect.
	var unsupported *fosite.RFC6749Error
	if err := r.ParseForm(); err == nil {
		switch {
		case r.Form.Has("request"):
			unsupported = fosite.ErrRequestNotSupported
		case r.Form.Has("request_uri"):
			unsupported = fosite.ErrRequestURINotSupported
		}
		r.Form.Del("request")
		r.Form.Del("request_uri")
		// fosite's RFC 8252 loopback matching ignores a userinfo part
		// (http://user@127.0.0.1/cb); no registered URI has one.
		if u, err := url.Parse(r.Form.Get("redirect_uri")); err == nil && u.User != nil {
			h.errorPageText(w, r, http.StatusBadRequest, msgBadAuthRequest, "The redirect_uri must not carry a user name or password.")
			return
		}
	}
	ar, err := h.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		h.writeAuthorizeError(w, r, ar, err)
		return
	}
	if unsupported != nil {
		h.writeAuthorizeError(w, r, ar, unsupported)
		return
	}
	c, _ := ar.GetClient().(*client)
	if c == nil {
		h.writeAuthorizeError(w, r, ar, fosite.ErrInvalidClient)
		return
	}
	if err := checkAuthorizeRequest(ar); err != nil {
		h.writeAuthorizeError(w, r, ar, err)
		return
	}
	form := ar.GetRequestForm()
	connectorID := form.Get("connector_id")
	if connectorID != "" {
		conn, ok := h.connectors[connectorID]
		if !ok || !conn.browserLogin() || !c.allows(connectorID) {
			h.writeAuthorizeError(w, r, ar, fosite.ErrInvalidRequest.WithHintf("The connector_id %q is unknown or not allowed for this client.", connectorID))
			return
		}
	}
	sess, err := h.currentSession(r)
	if err != nil {
		h.writeAuthorizeError(w, r, ar, fosite.ErrTemporarilyUnavailable.WithWrap(err))
		return
	}
	now := h.now().UTC()
	// The answer to this session's consent page continues the request the
	// page was shown for, which already had its sign-in (prompt=login and
	// max_age were honoured then): asking the provider again would loop.
	if sess != nil && h.answersConsent(r, sess, c) {
		h.authorizeWithSession(w, r, ar, c, sess, sess.AuthTime)
		return
	}
	if sess != nil && h.sessionUsable(sess, ar, c, connectorID, now) {
		h.authorizeWithSession(w, r, ar, c, sess, now)
		return
	}
	if hasPrompt(ar, "none") {
		h.writeAuthorizeError(w, r, ar, fosite.ErrLoginRequired.WithHint("The user is not signed in."))
		return
	}
	if connectorID == "" {
		choices, note := h.chooserConnectors(r, c)
		if len(choices) == 1 && note == "" {
			connectorID = choices[0].ID
		} else {
			h.renderChooser(w, r, c, form, choices, note)
			return
		}
	}
	query, err := keptAuthQuery(form)
	if err != nil {
		h.writeAuthorizeError(w, r, ar, fosite.ErrInvalidRequest.WithHintf(
			"The authorization request is too large: its parameters may take at most %d bytes.", maxAuthQuery))
		return
	}
	h.startUpstream(w, r, h.connectors[connectorID], pendingData{
		Purpose:     purposeLogin,
		AuthQuery:   query,
		RequestedAt: now,
	})
}

// sessionUsable reports whether the SSO session may answer this request
// without the provider.
func (h *loginHandler) sessionUsable(s *browserSession, ar fosite.AuthorizeRequester, c *client, connectorID string, now time.Time) bool {
	if hasPrompt(ar, "login") {
		return false
	}
	if connectorID != "" && connectorID != s.ConnectorID {
		return false
	}
	if !c.allows(s.ConnectorID) {
		return false
	}
	if ma := ar.GetRequestForm().Get("max_age"); ma != "" {
		if n, err := strconv.ParseInt(ma, 10, 64); err == nil && n >= 0 && s.AuthTime.Add(time.Duration(n)*time.Second).Before(now) {
			return false
		}
	}
	return true
}

// answersConsent reports whether r is the POST of the consent page this
// broker rendered for session s and client c.
func (h *loginHandler) answersConsent(r *http.Request, s *browserSession, c *client) bool {
	return r.Method == http.MethodPost && r.PostForm.Get("consent_action") != "" &&
		hmac.Equal([]byte(r.PostForm.Get("consent_csrf")), []byte(h.consentToken(s, c)))
}

// authorizeWithSession answers the request from session s. requestedAt is
// when the request counts as made: now, or for the answer to a consent
// page, the sign-in that page followed.
func (h *loginHandler) authorizeWithSession(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, c *client, s *browserSession, requestedAt time.Time) {
	if h.needsConsent(r, ar, c, s) {
		if hasPrompt(ar, "none") {
			h.writeAuthorizeError(w, r, ar, fosite.ErrConsentRequired.WithHint("The user has not approved this application."))
			return
		}
		switch r.PostForm.Get("consent_action") {
		case "":
			h.renderConsent(w, r, ar, c, s)
			return
		case "allow":
			if !hmac.Equal([]byte(r.PostForm.Get("consent_csrf")), []byte(h.consentToken(s, c))) {
				h.errorPage(w, r, http.StatusBadRequest, msgBadCSRF)
				return
			}
			s.data.Consents = append(s.data.Consents, c.ID)
			if err := h.saveSession(r.Context(), s); err != nil {
				h.writeAuthorizeError(w, r, ar, fosite.ErrTemporarilyUnavailable.WithWrap(err))
				return
			}
		default:
			h.writeAuthorizeError(w, r, ar, fosite.ErrAccessDenied.WithHint("The user denied the request."))
			return
		}
	}
	h.finishAuthorize(w, r, ar, s.UserID, s.ConnectorID, s.IdentitySubject, s.AuthTime, requestedAt, nil, nil)
}

func (h *loginHandler) needsConsent(r *http.Request, ar fosite.AuthorizeRequester, c *client, s *browserSession) bool {
	if hasPrompt(ar, "consent") && r.PostForm.Get("consent_action") == "" {
		return true
	}
	if !c.RequireConsent {
		return hasPrompt(ar, "consent")
	}
	for _, id := range s.data.Consents {
		if id == c.ID {
			return hasPrompt(ar, "consent")
		}
	}
	return true
}

func (h *loginHandler) consentToken(s *browserSession, c *client) string {
	return h.mac("consent", s.ID+"\x00"+c.ID)
}

// finishAuthorize issues the code for user and redirects to the client.
//
// idp and subject are the identity that signed in. known is the user's
// profile when the caller already has it (a login that just used an
// identity with a real profile), saving a query. done, for a sign-in that
// just happened, is that sign-in's writes: the code is stored in the same
// transaction, and the sign-in's cookies are set once it has committed.
func (h *loginHandler) finishAuthorize(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, userID, idp, subject string, authTime, requestedAt time.Time, known *profile, done *signIn) {
	ctx := r.Context()
	for _, s := range ar.GetRequestedScopes() {
		for _, ok := range scopesSupported {
			if s == ok {
				ar.GrantScope(s)
			}
		}
	}
	sess, err := h.newUserSession(ctx, userID, idp, subject, authTime, requestedAt, ar.GetGrantedScopes(), known)
	if err != nil {
		h.writeAuthorizeError(w, r, ar, fosite.ErrTemporarilyUnavailable.WithWrap(err))
		return
	}
	signFor(sess, ar.GetClient())
	// The code (with its PKCE challenge and OIDC session, one record) in
	// one write, together with the sign-in's writes if there is one.
	var flush func(ctx context.Context, ops []storage.TokenOp) error
	if done != nil {
		flush = done.complete
	}
	var resp fosite.AuthorizeResponder
	err = h.fstore.inTxWith(ctx, flush, func(ctx context.Context) (err error) {
		resp, err = h.provider.NewAuthorizeResponse(ctx, ar, sess)
		return err
	})
	if err != nil {
		if done != nil && done.failed(w, r, err) {
			return
		}
		h.writeAuthorizeError(w, r, ar, err)
		return
	}
	if done != nil {
		done.committed(w)
	}
	h.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// signFor makes the grant's ID tokens signed with the client's algorithm
// (id_token_signed_response_alg, else keys.algorithm). The choice stays
// with the grant, so its refreshed ID tokens use it too.
func signFor(sess *grantSession, c fosite.Client) {
	if cl, ok := c.(*client); ok && cl.IDTokenAlg != "" {
		sess.Headers.Add("alg", keys.AlgHint(cl.IDTokenAlg))
	}
}

// newUserSession builds the claims of a grant for user (grantSessions.new).
func (h *loginHandler) newUserSession(ctx context.Context, userID, idp, idpSubject string, authTime, requestedAt time.Time, scopes fosite.Arguments, known *profile) (*grantSession, error) {
	return h.grants.new(ctx, userID, idp, idpSubject, authTime, requestedAt, scopes, known)
}

func (h *loginHandler) writeAuthorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.ErrorField == fosite.ErrServerError.ErrorField {
		if errors.Is(err, context.Canceled) || r.Context().Err() != nil {
			// The browser went away mid-request: nothing for the admin.
			h.log.Info("authorization request abandoned by the client", "cause", errorCause(err))
		} else {
			h.log.Error("authorization failure", "cause", errorCause(err), "debug", rfc.DebugField)
		}
		rfc = fosite.ErrTemporarilyUnavailable.WithHint("The service is temporarily unavailable. Please try again.")
	}
	h.metrics.httpErrors.WithLabelValues("authorize", rfc.ErrorField).Inc()
	if ar != nil && ar.IsRedirectURIValid() {
		h.provider.WriteAuthorizeError(r.Context(), w, ar, rfc)
		return
	}
	h.errorPageText(w, r, http.StatusBadRequest, msgBadAuthRequest, rfc.GetDescription())
}

// chooserConnectors lists the connectors the chooser offers this client
// in this browser, and a note about the ones it cannot offer here.
func (h *loginHandler) chooserConnectors(r *http.Request, c *client) ([]*Connector, msgID) {
	offered, hidden := h.offersOf(r, c.allows, (*Connector).browserLogin)
	return offered, offerNote(browserOf(r), offered, hidden, nil)
}

// browserOffer is a web connector offered in some browsers only (WeChat's
// QR code outside WeChat on a computer, the Official Account inside
// WeChat). A connector without it is offered everywhere.
type browserOffer interface {
	OfferedIn(connectors.Browser) bool
}

func offeredIn(k *Connector, br connectors.Browser) bool {
	o, ok := k.Impl.(browserOffer)
	return !ok || o.OfferedIn(br)
}

func browserOf(r *http.Request) connectors.Browser {
	return connectors.Browser{WeChat: isWeChatBrowser(r), Mobile: isMobile(r)}
}

// family groups connectors of one provider account (the union
// namespace, "wechat" for the three WeChat connectors), for the note.
func family(k *Connector) string {
	if u, ok := k.Impl.(unionLinker); ok {
		ns, _ := u.UnionNamespace()
		return ns
	}
	return "connector:" + k.ID
}

// browserConnectors lists the web connectors (that allowed accepts; nil:
// all) offered in this browser, and the note about the others (see
// offerNote).
func (s *site) browserConnectors(r *http.Request, allowed func(string) bool) ([]*Connector, msgID) {
	offered, hidden := s.offers(r, allowed)
	return offered, offerNote(browserOf(r), offered, hidden, nil)
}

// offers splits the web connectors that allowed accepts (nil: all) into
// those offered in this browser and those hidden here.
func (s *site) offers(r *http.Request, allowed func(string) bool) (offered, hidden []*Connector) {
	return s.offersOf(r, allowed, func(k *Connector) bool { _, ok := k.web(); return ok })
}

// offersOf is offers over the connectors kind accepts (web connectors;
// for the chooser, also mini-programs with scan login).
func (s *site) offersOf(r *http.Request, allowed func(string) bool, kind func(*Connector) bool) (offered, hidden []*Connector) {
	br := browserOf(r)
	for _, k := range s.order {
		if !kind(k) || (allowed != nil && !allowed(k.ID)) {
			continue
		}
		if offeredIn(k, br) {
			offered = append(offered, k)
		} else {
			hidden = append(hidden, k)
		}
	}
	return offered, hidden
}

// offerNote says where a hidden connector works when no connector of its
// family is offered (or in covered, a family the person already has): in
// WeChat (msgOpenInWeChat: a phone outside WeChat, where the QR code
// cannot be scanned) or on a computer (msgOpenOnComputer); "" otherwise.
func offerNote(br connectors.Browser, offered, hidden []*Connector, covered map[string]bool) msgID {
	has := map[string]bool{}
	for f := range covered {
		has[f] = true
	}
	for _, k := range offered {
		has[family(k)] = true
	}
	var note msgID
	for _, k := range hidden {
		switch {
		case has[family(k)]:
		case !br.WeChat && offeredIn(k, connectors.Browser{WeChat: true, Mobile: br.Mobile}):
			note = msgOpenInWeChat
		case br.Mobile && note == "" && offeredIn(k, connectors.Browser{}):
			note = msgOpenOnComputer
		}
	}
	return note
}

// startUpstream seals the pending login into a fresh login cookie and
// sends the browser to the provider. Nothing is stored.
func (h *loginHandler) startUpstream(w http.ResponseWriter, r *http.Request, conn *Connector, data pendingData) {
	ctx := r.Context()
	if sc, ok := conn.scanner(); ok && data.Purpose == purposeLogin {
		h.startScan(w, r, conn, sc, data)
		return
	}
	web, ok := conn.web()
	if !ok {
		h.errorPage(w, r, http.StatusBadRequest, msgUnknownConnector)
		return
	}
	data.State = randomString(32)
	data.ConnectorID = conn.ID
	data.ExpiresAt = h.now().UTC().Add(loginTTL)
	u, connData, err := web.LoginURL(ctx, connectors.LoginRequest{
		State:       data.State,
		CallbackURL: h.callbackURL(conn.ID),
		Mobile:      isMobile(r),
	})
	if err == nil && len(connData) > connectors.MaxLoginData {
		err = fmt.Errorf("%d bytes of per-login data, more than %d", len(connData), connectors.MaxLoginData)
	}
	if errors.Is(err, connectors.ErrUnavailable) {
		// A provider that must be asked first (discovery) is down.
		h.log.Warn("upstream provider unavailable", "connector", conn.ID, "err", err)
		h.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	} else if err != nil {
		h.log.Error("building provider login URL", "connector", conn.ID, "err", err)
		h.errorPage(w, r, http.StatusBadGateway, msgProviderConfig)
		return
	}
	data.ConnData = connData
	h.setLoginCookie(w, r, data)
	http.Redirect(w, r, u, http.StatusFound)
}

func (h *loginHandler) callbackURL(connectorID string) string {
	return h.url("/callback/" + connectorID)
}

// handleCallback finishes an upstream login.
func (h *loginHandler) handleCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := mux.Vars(r)["connector"]
	conn, ok := h.connectors[id]
	web, isWeb := conn.web()
	if !ok || !isWeb {
		h.errorPage(w, r, http.StatusNotFound, msgUnknownConnector)
		return
	}
	if err := r.ParseForm(); err != nil {
		h.errorPage(w, r, http.StatusBadRequest, msgBadRequest)
		return
	}
	state := r.Form.Get("state")
	if !validState(state) {
		h.errorPage(w, r, http.StatusBadRequest, msgBadState)
		return
	}
	data, err := h.openLogin(r, state)
	if errors.Is(err, http.ErrNoCookie) {
		h.loginDeadEnd(w, r, conn, state, msgNoLoginCookie)
		return
	} else if err != nil {
		h.loginDeadEnd(w, r, conn, state, msgLoginExpired)
		return
	}
	if data.ConnectorID != id || !sameState(data.State, state) {
		// Not this browser's login (or another tab's): the cookie stays,
		// so that the rightful callback still works.
		h.log.Warn("callback refused: state issued for another browser or connector", "connector", id)
		h.errorPage(w, r, http.StatusBadRequest, msgBadState)
		return
	}
	ident, err := web.HandleCallback(ctx, connectors.LoginRequest{State: state, CallbackURL: h.callbackURL(id), Mobile: isMobile(r), Data: data.ConnData}, r.Form)
	if err != nil {
		h.upstreamFailed(w, r, conn, data, err)
		return
	}
	switch data.Purpose {
	case purposeBind:
		// Spend the state first: a bind writes on its own.
		if err := h.store.CompleteLogin(ctx, storage.LoginCompletion{State: data.State, StateConnector: id, StateExpiresAt: data.ExpiresAt}); err != nil {
			h.signInFailed(w, r, err)
			return
		}
		h.spendLogin(w, r, data)
		h.account.finishBind(w, r, conn, data, ident)
		return
	case purposeReauth:
		h.account.finishReauth(w, r, conn, data, ident)
		return
	}
	userID, known, update, err := h.identity.resolveIdentity(ctx, conn, ident)
	if err != nil {
		h.metrics.logins.WithLabelValues(conn.ID, string(outcomeError)).Inc()
		h.log.Error("resolving the user of a login", "connector", conn.ID, "err", err)
		h.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	now := h.now().UTC()
	old, _ := h.currentSession(r)
	sess, cookie := h.newBrowserSession(old, userID, conn.ID, ident.Subject, now)
	done := &signIn{
		flow:   h,
		sess:   sess,
		cookie: cookie,
		conn:   conn.ID,
		req:    r,
		login:  data,
		c: storage.LoginCompletion{
			State:          data.State,
			StateConnector: conn.ID,
			StateExpiresAt: data.ExpiresAt,
			UpdateIdentity: update,
			Session:        &sess.Session,
		},
	}
	if old != nil {
		done.c.DeleteSession = old.ID
	}
	var ar fosite.AuthorizeRequester
	clientID := ""
	if data.Purpose != purposeAccount {
		ar, err = h.resumeAuthorize(r, data.AuthQuery)
		if err == nil {
			clientID = ar.GetClient().GetID()
		} else {
			clientID = clientOf(data.AuthQuery)
		}
	}
	done.c.Audit = []storage.AuditEvent{h.auditEvent(ctx, storage.AuditEvent{Action: string(actionLogin), UserID: userID, ConnectorID: conn.ID, ClientID: clientID, Result: string(outcomeSuccess)})}
	if data.Purpose == purposeAccount || err != nil {
		// The sign-in stands even if the stored request no longer passes.
		if !done.write(w, r) {
			return
		}
		if data.Purpose == purposeAccount {
			h.redirectAccount(w, r, "", "")
		} else {
			h.writeAuthorizeError(w, r, ar, err)
		}
		return
	}
	h.consentOrFinish(w, r, ar, sess, userID, conn.ID, ident.Subject, now, data.RequestedAt, known, done)
}

// consentOrFinish ends a sign-in's authorization request: the consent
// page when the client needs it, else the answer to the client.
func (h *loginHandler) consentOrFinish(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, sess *browserSession, userID, idp, subject string, authTime, requestedAt time.Time, known *profile, done *signIn) {
	c, _ := ar.GetClient().(*client)
	if c != nil && h.needsConsent(r, ar, c, sess) {
		if done.write(w, r) {
			h.renderConsent(w, r, ar, c, sess)
		}
		return
	}
	h.finishAuthorize(w, r, ar, userID, idp, subject, authTime, requestedAt, known, done)
}

// signIn is a sign-in that happened at the provider and is not yet
// written: its completion (spent state, identity, session, audit), and
// the session cookie to set once it is.
type signIn struct {
	flow   *loginHandler
	c      storage.LoginCompletion
	sess   *browserSession
	cookie string
	conn   string
	// req and login are the callback and the login it spends, whose
	// cookie goes (login.State alone for a scan login).
	req   *http.Request
	login pendingData
}

// complete writes the sign-in together with a transaction's token ops.
func (s *signIn) complete(ctx context.Context, ops []storage.TokenOp) error {
	c := s.c
	c.TokenOps = ops
	return s.flow.store.CompleteLogin(ctx, c)
}

// write stores the sign-in alone and sets its cookies; on failure it
// answers the request and returns false.
func (s *signIn) write(w http.ResponseWriter, r *http.Request) bool {
	if err := s.complete(r.Context(), nil); err != nil {
		s.flow.signInFailed(w, r, err)
		return false
	}
	s.committed(w)
	return true
}

// committed sets the cookies of a written sign-in: the new session's,
// and the spent login cookie removed.
func (s *signIn) committed(w http.ResponseWriter) {
	s.flow.setCookie(w, sessionCookie, s.cookie, int(s.flow.sessionTTL/time.Second))
	s.flow.spendLogin(w, s.req, s.login)
	s.flow.metrics.logins.WithLabelValues(s.conn, string(outcomeSuccess)).Inc()
}

// writeSignIn stores a sign-in the account page completed (a
// re-authentication) and sets its cookies; on failure it answers the
// request and returns false.
func (h *loginHandler) writeSignIn(w http.ResponseWriter, r *http.Request, done *signIn) bool {
	done.flow = h
	return done.write(w, r)
}

// failed answers a sign-in whose writes failed with the store's reason,
// if it is one (true), or leaves the answer to the caller (false).
func (s *signIn) failed(w http.ResponseWriter, r *http.Request, err error) bool {
	if errors.Is(err, storage.ErrStateUsed) || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrAlreadyExists) {
		s.flow.signInFailed(w, r, err)
		return true
	}
	return false
}

// signInFailed answers a callback whose writes failed: a replayed
// callback (its state already spent) gets the "expired or completed"
// page, anything else the "unavailable" one.
func (h *loginHandler) signInFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, storage.ErrStateUsed) {
		h.log.Info("callback refused: its state was already used")
		h.errorPage(w, r, http.StatusBadRequest, msgLoginExpired)
		return
	}
	h.log.Error("storing a sign-in", "err", err)
	h.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
}

func clientOf(authQuery string) string {
	q, _ := url.ParseQuery(authQuery)
	return q.Get("client_id")
}

// resumeAuthorize re-parses (and so re-validates) the stored authorization
// request.
func (h *loginHandler) resumeAuthorize(r *http.Request, query string) (fosite.AuthorizeRequester, error) {
	u, err := url.Parse(h.url("/auth") + "?" + query)
	if err != nil {
		return nil, fosite.ErrInvalidRequest.WithWrap(err)
	}
	req := r.Clone(r.Context())
	req.Method = http.MethodGet
	req.URL = u
	req.Form, req.PostForm, req.Body = nil, nil, http.NoBody
	req.Header.Del("Content-Type")
	return h.provider.NewAuthorizeRequest(r.Context(), req)
}

// upstreamFailed tells the user (and the client, where there is one) why
// the provider login did not work, and the admin in a structured log line.
func (h *loginHandler) upstreamFailed(w http.ResponseWriter, r *http.Request, conn *Connector, data pendingData, err error) {
	ctx := r.Context()
	attrs := []any{"connector", conn.ID, "type", conn.Type, "err", err.Error()}
	var pe *connectors.ProviderError
	if errors.As(err, &pe) {
		attrs = append(attrs, "provider", pe.Provider, "endpoint", pe.Endpoint, "code", pe.Code)
	}
	f := classify(err)
	result := string(f.Result)
	switch f.Result {
	case outcomeDenied:
		f.Hint = cancelledHint(conn, err)
		h.log.Info("upstream login refused", attrs...)
	case outcomeUnavailable:
		h.log.Warn("upstream provider unavailable", attrs...)
	case outcomeInvalidCode:
		h.log.Warn("upstream code refused", attrs...)
	default:
		h.log.Error("upstream login failed: check the connector configuration", attrs...)
	}
	rfc := f.rfc(nil)
	h.metrics.logins.WithLabelValues(conn.ID, result).Inc()
	h.audit(ctx, r, storage.AuditEvent{Action: string(data.Purpose), UserID: data.UserID, ConnectorID: conn.ID, ClientID: clientOf(data.AuthQuery), Result: result, Detail: rfc.HintField})
	if data.Purpose == purposeBind || data.Purpose == purposeReauth {
		// The account page shows only the messages it knows.
		switch f.Result {
		case outcomeDenied:
			h.redirectAccountCancelled(w, r, conn, err)
		case outcomeUnavailable:
			h.redirectAccount(w, r, "error", msgUnavailable)
		default:
			h.redirectAccount(w, r, "error", msgProviderFailed)
		}
		return
	}
	ar, perr := h.resumeAuthorize(r, data.AuthQuery)
	if perr != nil || !ar.IsRedirectURIValid() {
		h.providerFailedPage(w, r, conn, data, err)
		return
	}
	h.provider.WriteAuthorizeError(ctx, w, ar, rfc)
}
