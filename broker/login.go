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
	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

// ---------------------------------------------------------- authorize

func hasPrompt(ar fosite.AuthorizeRequester, p string) bool {
	for _, v := range strings.Fields(ar.GetRequestForm().Get("prompt")) {
		if v == p {
			return true
		}
	}
	return false
}

func (b *Broker) handleAuthorize(w http.ResponseWriter, r *http.Request) {
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
			b.errorPageText(w, r, http.StatusBadRequest, msgBadAuthRequest, "The redirect_uri must not carry a user name or password.")
			return
		}
	}
	ar, err := b.provider.NewAuthorizeRequest(ctx, r)
	if err != nil {
		b.writeAuthorizeError(w, r, ar, err)
		return
	}
	if unsupported != nil {
		b.writeAuthorizeError(w, r, ar, unsupported)
		return
	}
	c, _ := ar.GetClient().(*client)
	if c == nil {
		b.writeAuthorizeError(w, r, ar, fosite.ErrInvalidClient)
		return
	}
	if err := checkAuthorizeRequest(ar); err != nil {
		b.writeAuthorizeError(w, r, ar, err)
		return
	}
	form := ar.GetRequestForm()
	connectorID := form.Get("connector_id")
	if connectorID != "" {
		conn, ok := b.connectors[connectorID]
		if !ok || !conn.browserLogin() || !c.allows(connectorID) {
			b.writeAuthorizeError(w, r, ar, fosite.ErrInvalidRequest.WithHintf("The connector_id %q is unknown or not allowed for this client.", connectorID))
			return
		}
	}
	sess, err := b.currentSession(r)
	if err != nil {
		b.writeAuthorizeError(w, r, ar, fosite.ErrTemporarilyUnavailable.WithWrap(err))
		return
	}
	now := b.now().UTC()
	// The answer to this session's consent page continues the request the
	// page was shown for, which already had its sign-in (prompt=login and
	// max_age were honoured then): asking the provider again would loop.
	if sess != nil && b.answersConsent(r, sess, c) {
		b.authorizeWithSession(w, r, ar, c, sess, sess.AuthTime)
		return
	}
	if sess != nil && b.sessionUsable(sess, ar, c, connectorID, now) {
		b.authorizeWithSession(w, r, ar, c, sess, now)
		return
	}
	if hasPrompt(ar, "none") {
		b.writeAuthorizeError(w, r, ar, fosite.ErrLoginRequired.WithHint("The user is not signed in."))
		return
	}
	if connectorID == "" {
		choices, note := b.chooserConnectors(r, c)
		if len(choices) == 1 && note == "" {
			connectorID = choices[0].ID
		} else {
			b.renderChooser(w, r, c, form, choices, note)
			return
		}
	}
	query, err := keptAuthQuery(form)
	if err != nil {
		b.writeAuthorizeError(w, r, ar, fosite.ErrInvalidRequest.WithHintf(
			"The authorization request is too large: its parameters may take at most %d bytes.", maxAuthQuery))
		return
	}
	b.startUpstream(w, r, b.connectors[connectorID], pendingData{
		Purpose:     purposeLogin,
		AuthQuery:   query,
		RequestedAt: now,
	})
}

// sessionUsable reports whether the SSO session may answer this request
// without the provider.
func (b *Broker) sessionUsable(s *browserSession, ar fosite.AuthorizeRequester, c *client, connectorID string, now time.Time) bool {
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
func (b *Broker) answersConsent(r *http.Request, s *browserSession, c *client) bool {
	return r.Method == http.MethodPost && r.PostForm.Get("consent_action") != "" &&
		hmac.Equal([]byte(r.PostForm.Get("consent_csrf")), []byte(b.consentToken(s, c)))
}

// authorizeWithSession answers the request from session s. requestedAt is
// when the request counts as made: now, or for the answer to a consent
// page, the sign-in that page followed.
func (b *Broker) authorizeWithSession(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, c *client, s *browserSession, requestedAt time.Time) {
	if b.needsConsent(r, ar, c, s) {
		if hasPrompt(ar, "none") {
			b.writeAuthorizeError(w, r, ar, fosite.ErrConsentRequired.WithHint("The user has not approved this application."))
			return
		}
		switch r.PostForm.Get("consent_action") {
		case "":
			b.renderConsent(w, r, ar, c, s)
			return
		case "allow":
			if !hmac.Equal([]byte(r.PostForm.Get("consent_csrf")), []byte(b.consentToken(s, c))) {
				b.errorPage(w, r, http.StatusBadRequest, msgBadCSRF)
				return
			}
			s.data.Consents = append(s.data.Consents, c.ID)
			if err := b.saveSession(r.Context(), s); err != nil {
				b.writeAuthorizeError(w, r, ar, fosite.ErrTemporarilyUnavailable.WithWrap(err))
				return
			}
		default:
			b.writeAuthorizeError(w, r, ar, fosite.ErrAccessDenied.WithHint("The user denied the request."))
			return
		}
	}
	b.finishAuthorize(w, r, ar, s.UserID, s.ConnectorID, s.IdentitySubject, s.AuthTime, requestedAt, nil, nil)
}

func (b *Broker) needsConsent(r *http.Request, ar fosite.AuthorizeRequester, c *client, s *browserSession) bool {
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

func (b *Broker) consentToken(s *browserSession, c *client) string {
	return b.mac("consent", s.ID+"\x00"+c.ID)
}

// finishAuthorize issues the code for user and redirects to the client.
//
// idp and subject are the identity that signed in. known is the user's
// profile when the caller already has it (a login that just used an
// identity with a real profile), saving a query. done, for a sign-in that
// just happened, is that sign-in's writes: the code is stored in the same
// transaction, and the sign-in's cookies are set once it has committed.
func (b *Broker) finishAuthorize(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, userID, idp, subject string, authTime, requestedAt time.Time, known *profile, done *signIn) {
	ctx := r.Context()
	for _, s := range ar.GetRequestedScopes() {
		for _, ok := range scopesSupported {
			if s == ok {
				ar.GrantScope(s)
			}
		}
	}
	sess, err := b.newUserSession(ctx, userID, idp, subject, authTime, requestedAt, ar.GetGrantedScopes(), known)
	if err != nil {
		b.writeAuthorizeError(w, r, ar, fosite.ErrTemporarilyUnavailable.WithWrap(err))
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
	err = b.fstore.inTxWith(ctx, flush, func(ctx context.Context) (err error) {
		resp, err = b.provider.NewAuthorizeResponse(ctx, ar, sess)
		return err
	})
	if err != nil {
		if done != nil && done.failed(w, r, err) {
			return
		}
		b.writeAuthorizeError(w, r, ar, err)
		return
	}
	if done != nil {
		done.committed(w)
	}
	b.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
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
func (b *Broker) newUserSession(ctx context.Context, userID, idp, idpSubject string, authTime, requestedAt time.Time, scopes fosite.Arguments, known *profile) (*grantSession, error) {
	return b.sessions.new(ctx, userID, idp, idpSubject, authTime, requestedAt, scopes, known)
}

func (b *Broker) writeAuthorizeError(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, err error) {
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.ErrorField == fosite.ErrServerError.ErrorField {
		if errors.Is(err, context.Canceled) || r.Context().Err() != nil {
			// The browser went away mid-request: nothing for the admin.
			b.log.Info("authorization request abandoned by the client", "cause", errorCause(err))
		} else {
			b.log.Error("authorization failure", "cause", errorCause(err), "debug", rfc.DebugField)
		}
		rfc = fosite.ErrTemporarilyUnavailable.WithHint("The service is temporarily unavailable. Please try again.")
	}
	b.metrics.httpErrors.WithLabelValues("authorize", rfc.ErrorField).Inc()
	if ar != nil && ar.IsRedirectURIValid() {
		b.provider.WriteAuthorizeError(r.Context(), w, ar, rfc)
		return
	}
	b.errorPageText(w, r, http.StatusBadRequest, msgBadAuthRequest, rfc.GetDescription())
}

// chooserConnectors lists the connectors the chooser offers this client
// in this browser, and a note about the ones it cannot offer here.
func (b *Broker) chooserConnectors(r *http.Request, c *client) ([]*Connector, msgID) {
	offered, hidden := b.offersOf(r, c.allows, (*Connector).browserLogin)
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
func (b *Broker) startUpstream(w http.ResponseWriter, r *http.Request, conn *Connector, data pendingData) {
	ctx := r.Context()
	if sc, ok := conn.scanner(); ok && data.Purpose == purposeLogin {
		b.startScan(w, r, conn, sc, data)
		return
	}
	web, ok := conn.web()
	if !ok {
		b.errorPage(w, r, http.StatusBadRequest, msgUnknownConnector)
		return
	}
	data.State = randomString(32)
	data.ConnectorID = conn.ID
	data.ExpiresAt = b.now().UTC().Add(loginTTL)
	u, connData, err := web.LoginURL(ctx, connectors.LoginRequest{
		State:       data.State,
		CallbackURL: b.callbackURL(conn.ID),
		Mobile:      isMobile(r),
	})
	if err == nil && len(connData) > connectors.MaxLoginData {
		err = fmt.Errorf("%d bytes of per-login data, more than %d", len(connData), connectors.MaxLoginData)
	}
	if errors.Is(err, connectors.ErrUnavailable) {
		// A provider that must be asked first (discovery) is down.
		b.log.Warn("upstream provider unavailable", "connector", conn.ID, "err", err)
		b.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	} else if err != nil {
		b.log.Error("building provider login URL", "connector", conn.ID, "err", err)
		b.errorPage(w, r, http.StatusBadGateway, msgProviderConfig)
		return
	}
	data.ConnData = connData
	b.setLoginCookie(w, r, data)
	http.Redirect(w, r, u, http.StatusFound)
}

func (b *Broker) callbackURL(connectorID string) string {
	return b.url("/callback/" + connectorID)
}

// handleCallback finishes an upstream login.
func (b *Broker) handleCallback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	id := mux.Vars(r)["connector"]
	conn, ok := b.connectors[id]
	web, isWeb := conn.web()
	if !ok || !isWeb {
		b.errorPage(w, r, http.StatusNotFound, msgUnknownConnector)
		return
	}
	if err := r.ParseForm(); err != nil {
		b.errorPage(w, r, http.StatusBadRequest, msgBadRequest)
		return
	}
	state := r.Form.Get("state")
	if !validState(state) {
		b.errorPage(w, r, http.StatusBadRequest, msgBadState)
		return
	}
	data, err := b.openLogin(r, state)
	if errors.Is(err, http.ErrNoCookie) {
		b.loginDeadEnd(w, r, conn, state, msgNoLoginCookie)
		return
	} else if err != nil {
		b.loginDeadEnd(w, r, conn, state, msgLoginExpired)
		return
	}
	if data.ConnectorID != id || !sameState(data.State, state) {
		// Not this browser's login (or another tab's): the cookie stays,
		// so that the rightful callback still works.
		b.log.Warn("callback refused: state issued for another browser or connector", "connector", id)
		b.errorPage(w, r, http.StatusBadRequest, msgBadState)
		return
	}
	ident, err := web.HandleCallback(ctx, connectors.LoginRequest{State: state, CallbackURL: b.callbackURL(id), Mobile: isMobile(r), Data: data.ConnData}, r.Form)
	if err != nil {
		b.upstreamFailed(w, r, conn, data, err)
		return
	}
	switch data.Purpose {
	case purposeBind:
		// Spend the state first: a bind writes on its own.
		if err := b.store.CompleteLogin(ctx, storage.LoginCompletion{State: data.State, StateConnector: id, StateExpiresAt: data.ExpiresAt}); err != nil {
			b.signInFailed(w, r, err)
			return
		}
		b.spendLogin(w, r, data)
		b.account.finishBind(w, r, conn, data, ident)
		return
	case purposeReauth:
		b.account.finishReauth(w, r, conn, data, ident)
		return
	}
	userID, known, update, err := b.identity.resolveIdentity(ctx, conn, ident)
	if err != nil {
		b.metrics.logins.WithLabelValues(conn.ID, string(outcomeError)).Inc()
		b.log.Error("resolving the user of a login", "connector", conn.ID, "err", err)
		b.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	now := b.now().UTC()
	old, _ := b.currentSession(r)
	sess, cookie := b.newBrowserSession(old, userID, conn.ID, ident.Subject, now)
	done := &signIn{
		b:      b,
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
		ar, err = b.resumeAuthorize(r, data.AuthQuery)
		if err == nil {
			clientID = ar.GetClient().GetID()
		} else {
			clientID = clientOf(data.AuthQuery)
		}
	}
	done.c.Audit = []storage.AuditEvent{b.auditEvent(ctx, storage.AuditEvent{Action: string(actionLogin), UserID: userID, ConnectorID: conn.ID, ClientID: clientID, Result: string(outcomeSuccess)})}
	if data.Purpose == purposeAccount || err != nil {
		// The sign-in stands even if the stored request no longer passes.
		if !done.write(w, r) {
			return
		}
		if data.Purpose == purposeAccount {
			b.redirectAccount(w, r, "", "")
		} else {
			b.writeAuthorizeError(w, r, ar, err)
		}
		return
	}
	b.consentOrFinish(w, r, ar, sess, userID, conn.ID, ident.Subject, now, data.RequestedAt, known, done)
}

// consentOrFinish ends a sign-in's authorization request: the consent
// page when the client needs it, else the answer to the client.
func (b *Broker) consentOrFinish(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, sess *browserSession, userID, idp, subject string, authTime, requestedAt time.Time, known *profile, done *signIn) {
	c, _ := ar.GetClient().(*client)
	if c != nil && b.needsConsent(r, ar, c, sess) {
		if done.write(w, r) {
			b.renderConsent(w, r, ar, c, sess)
		}
		return
	}
	b.finishAuthorize(w, r, ar, userID, idp, subject, authTime, requestedAt, known, done)
}

// signIn is a sign-in that happened at the provider and is not yet
// written: its completion (spent state, identity, session, audit), and
// the session cookie to set once it is.
type signIn struct {
	b      *Broker
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
	return s.b.store.CompleteLogin(ctx, c)
}

// write stores the sign-in alone and sets its cookies; on failure it
// answers the request and returns false.
func (s *signIn) write(w http.ResponseWriter, r *http.Request) bool {
	if err := s.complete(r.Context(), nil); err != nil {
		s.b.signInFailed(w, r, err)
		return false
	}
	s.committed(w)
	return true
}

// committed sets the cookies of a written sign-in: the new session's,
// and the spent login cookie removed.
func (s *signIn) committed(w http.ResponseWriter) {
	s.b.setCookie(w, sessionCookie, s.cookie, int(s.b.cfg.SessionTTL/time.Second))
	s.b.spendLogin(w, s.req, s.login)
	s.b.metrics.logins.WithLabelValues(s.conn, string(outcomeSuccess)).Inc()
}

// writeSignIn stores a sign-in the account page completed (a
// re-authentication) and sets its cookies; on failure it answers the
// request and returns false.
func (b *Broker) writeSignIn(w http.ResponseWriter, r *http.Request, done *signIn) bool {
	done.b = b
	return done.write(w, r)
}

// failed answers a sign-in whose writes failed with the store's reason,
// if it is one (true), or leaves the answer to the caller (false).
func (s *signIn) failed(w http.ResponseWriter, r *http.Request, err error) bool {
	if errors.Is(err, storage.ErrStateUsed) || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrAlreadyExists) {
		s.b.signInFailed(w, r, err)
		return true
	}
	return false
}

// signInFailed answers a callback whose writes failed: a replayed
// callback (its state already spent) gets the "expired or completed"
// page, anything else the "unavailable" one.
func (b *Broker) signInFailed(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, storage.ErrStateUsed) {
		b.log.Info("callback refused: its state was already used")
		b.errorPage(w, r, http.StatusBadRequest, msgLoginExpired)
		return
	}
	b.log.Error("storing a sign-in", "err", err)
	b.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
}

func clientOf(authQuery string) string {
	q, _ := url.ParseQuery(authQuery)
	return q.Get("client_id")
}

// resumeAuthorize re-parses (and so re-validates) the stored authorization
// request.
func (b *Broker) resumeAuthorize(r *http.Request, query string) (fosite.AuthorizeRequester, error) {
	u, err := url.Parse(b.url("/auth") + "?" + query)
	if err != nil {
		return nil, fosite.ErrInvalidRequest.WithWrap(err)
	}
	req := r.Clone(r.Context())
	req.Method = http.MethodGet
	req.URL = u
	req.Form, req.PostForm, req.Body = nil, nil, http.NoBody
	req.Header.Del("Content-Type")
	return b.provider.NewAuthorizeRequest(r.Context(), req)
}

// upstreamFailed tells the user (and the client, where there is one) why
// the provider login did not work, and the admin in a structured log line.
func (b *Broker) upstreamFailed(w http.ResponseWriter, r *http.Request, conn *Connector, data pendingData, err error) {
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
		b.log.Info("upstream login refused", attrs...)
	case outcomeUnavailable:
		b.log.Warn("upstream provider unavailable", attrs...)
	case outcomeInvalidCode:
		b.log.Warn("upstream code refused", attrs...)
	default:
		b.log.Error("upstream login failed: check the connector configuration", attrs...)
	}
	rfc := f.rfc(nil)
	b.metrics.logins.WithLabelValues(conn.ID, result).Inc()
	b.audit(ctx, r, storage.AuditEvent{Action: string(data.Purpose), UserID: data.UserID, ConnectorID: conn.ID, ClientID: clientOf(data.AuthQuery), Result: result, Detail: rfc.HintField})
	if data.Purpose == purposeBind || data.Purpose == purposeReauth {
		// The account page shows only the messages it knows.
		switch f.Result {
		case outcomeDenied:
			b.redirectAccountCancelled(w, r, conn, err)
		case outcomeUnavailable:
			b.redirectAccount(w, r, "error", msgUnavailable)
		default:
			b.redirectAccount(w, r, "error", msgProviderFailed)
		}
		return
	}
	ar, perr := b.resumeAuthorize(r, data.AuthQuery)
	if perr != nil || !ar.IsRedirectURIValid() {
		b.providerFailedPage(w, r, conn, data, err)
		return
	}
	b.provider.WriteAuthorizeError(ctx, w, ar, rfc)
}
