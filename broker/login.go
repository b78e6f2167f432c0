package broker

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

const (
	sessionCookie = "qiao_session"
	loginCookie   = "qiao_login"
	// loginTTL is how long an upstream login may take.
	loginTTL = 10 * time.Minute
)

const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// randomString returns n random characters of [A-Za-z0-9] (WeChat's rule
// for state values).
func randomString(n int) string {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the platform is broken
	}
	for i, c := range buf {
		buf[i] = alnum[int(c)%len(alnum)]
	}
	return string(buf)
}

func newUserID() string {
	buf := make([]byte, 15)
	if _, err := rand.Read(buf); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err))
	}
	return strings.ToLower(base32.StdEncoding.EncodeToString(buf))
}

// validState reports whether s looks like a state we issued.
func validState(s string) bool {
	if len(s) < 16 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(alnum, rune(s[i])) {
			return false
		}
	}
	return true
}

// mac keys a cookie value so the store never holds what the browser holds.
func (b *Broker) mac(label, v string) string {
	m := hmac.New(sha256.New, b.cookieKey)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(v))
	return hex.EncodeToString(m.Sum(nil))
}

// cookieName is the name a cookie has on the wire. Under https the
// session and login cookies carry the __Host- prefix: the browser then
// accepts them only from this host, over https, for the whole host, so a
// sibling subdomain or a network attacker cannot plant them (login CSRF).
func (b *Broker) cookieName(name string) string {
	if b.secure {
		return "__Host-" + name
	}
	return name
}

func (b *Broker) cookie(r *http.Request, name string) (*http.Cookie, error) {
	return r.Cookie(b.cookieName(name))
}

func (b *Broker) setCookie(w http.ResponseWriter, name, value string, maxAge int) {
	path := b.prefix + "/"
	if b.secure {
		path = "/" // required by the __Host- prefix
	}
	http.SetCookie(w, &http.Cookie{
		Name:     b.cookieName(name),
		Value:    value,
		Path:     path,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   b.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

func isWeChatBrowser(r *http.Request) bool {
	return strings.Contains(r.UserAgent(), "MicroMessenger")
}

func isMobile(r *http.Request) bool {
	ua := r.UserAgent()
	return strings.Contains(ua, "Mobile") || strings.Contains(ua, "Android") || strings.Contains(ua, "iPhone")
}

// ------------------------------------------------------ browser session

// sessionData is what a browser session remembers besides the user.
type sessionData struct {
	Consents []string `json:"consents,omitempty"` // clients the user approved
}

type browserSession struct {
	storage.Session
	data sessionData
}

// currentSession returns the browser's live session, or nil.
func (b *Broker) currentSession(r *http.Request) (*browserSession, error) {
	c, err := b.cookie(r, sessionCookie)
	if err != nil || c.Value == "" {
		return nil, nil
	}
	s, err := b.store.GetSession(r.Context(), b.mac("session", c.Value))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	bs := &browserSession{Session: s}
	if len(s.Data) > 0 {
		_ = json.Unmarshal(s.Data, &bs.data)
	}
	return bs, nil
}

// startSession creates a fresh session for user (a new id on every login,
// so a fixed cookie cannot be planted) and sets its cookie.
func (b *Broker) startSession(ctx context.Context, w http.ResponseWriter, old *browserSession, userID, connectorID string, authTime time.Time) (*browserSession, error) {
	value := randomString(43)
	s := storage.Session{
		ID:          b.mac("session", value),
		UserID:      userID,
		ConnectorID: connectorID,
		AuthTime:    authTime,
		ExpiresAt:   authTime.Add(b.cfg.SessionTTL),
	}
	bs := &browserSession{Session: s}
	if old != nil && old.UserID == userID {
		bs.data = old.data
	}
	bs.Data, _ = json.Marshal(bs.data)
	if err := b.store.CreateSession(ctx, bs.Session); err != nil {
		return nil, err
	}
	if old != nil {
		_ = b.store.DeleteSession(ctx, old.ID)
	}
	b.setCookie(w, sessionCookie, value, int(b.cfg.SessionTTL/time.Second))
	return bs, nil
}

func (b *Broker) saveSession(ctx context.Context, s *browserSession) error {
	s.Data, _ = json.Marshal(s.data)
	return b.store.UpdateSession(ctx, s.Session)
}

// ---------------------------------------------------------- authorize

// pendingData is what a pending upstream login carries to the callback.
type pendingData struct {
	Purpose     string    `json:"purpose"`        // "login", "bind" or "account"
	AuthQuery   string    `json:"auth,omitempty"` // the authorization request, for login
	UserID      string    `json:"user,omitempty"` // the user to bind to, for bind
	RequestedAt time.Time `json:"requested_at"`   // when the request arrived
}

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
		if _, web := conn.webOK(); !ok || !web || !c.allows(connectorID) {
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
	if sess != nil && b.sessionUsable(sess, ar, c, connectorID, now) {
		b.authorizeWithSession(w, r, ar, c, sess, now)
		return
	}
	if hasPrompt(ar, "none") {
		b.writeAuthorizeError(w, r, ar, fosite.ErrLoginRequired.WithHint("The user is not signed in."))
		return
	}
	if connectorID == "" {
		choices := b.chooserConnectors(r, c)
		if len(choices) == 1 {
			connectorID = choices[0].ID
		} else {
			b.renderChooser(w, r, c, form, choices)
			return
		}
	}
	b.startUpstream(w, r, b.connectors[connectorID], pendingData{
		Purpose:     "login",
		AuthQuery:   form.Encode(),
		RequestedAt: now,
	})
}

func (c *Connector) webOK() (WebConnector, bool) {
	if c == nil {
		return nil, false
	}
	return c.web()
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

func (b *Broker) authorizeWithSession(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, c *client, s *browserSession, now time.Time) {
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
	b.finishAuthorize(w, r, ar, s.UserID, s.ConnectorID, s.AuthTime, now, nil)
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
// known is the user's profile when the caller already has it (a login that
// just used an identity with a real profile), saving a query.
func (b *Broker) finishAuthorize(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, userID, idp string, authTime, requestedAt time.Time, known *profile) {
	ctx := r.Context()
	for _, s := range ar.GetRequestedScopes() {
		for _, ok := range scopesSupported {
			if s == ok {
				ar.GrantScope(s)
			}
		}
	}
	sess, err := b.newUserSession(ctx, userID, idp, authTime, requestedAt, ar.GetGrantedScopes(), known)
	if err != nil {
		b.writeAuthorizeError(w, r, ar, fosite.ErrTemporarilyUnavailable.WithWrap(err))
		return
	}
	// The code, its PKCE challenge and its OIDC session in one write.
	var resp fosite.AuthorizeResponder
	err = b.fstore.inTx(ctx, func(ctx context.Context) (err error) {
		resp, err = b.provider.NewAuthorizeResponse(ctx, ar, sess)
		return err
	})
	if err != nil {
		b.writeAuthorizeError(w, r, ar, err)
		return
	}
	b.provider.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// newUserSession builds the claims of a grant for user.
func (b *Broker) newUserSession(ctx context.Context, userID, idp string, authTime, requestedAt time.Time, scopes fosite.Arguments, known *profile) (*Session, error) {
	sess := newSession()
	sess.Subject = userID
	sess.IDP = idp
	sess.Claims.Subject = userID
	sess.Claims.Issuer = b.issuerString()
	sess.Claims.AuthTime = authTime.UTC().Truncate(time.Second)
	sess.Claims.RequestedAt = requestedAt.UTC().Truncate(time.Second)
	sess.Claims.Extra["idp"] = idp
	// fosite computes at_hash from this header's hash size, not from the
	// signer: EdDSA needs SHA-512 (the hint never reaches the token).
	sess.Headers.Add("alg", b.keys.HashAlgHint())
	if scopes.Has("profile") {
		if known == nil {
			p, err := b.profile(ctx, userID)
			if err != nil && !errors.Is(err, storage.ErrNotFound) {
				return nil, err
			}
			known = &p
		}
		known.addTo(sess.Claims.Extra)
	}
	return sess, nil
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

// chooserConnectors lists the web connectors this client may use that make
// sense in this browser: inside WeChat the Official Account login, outside
// it the QR code.
func (b *Broker) chooserConnectors(r *http.Request, c *client) []*Connector {
	inWeChat := isWeChatBrowser(r)
	var out []*Connector
	for _, k := range b.order {
		if _, ok := k.web(); !ok || !c.allows(k.ID) {
			continue
		}
		if (k.Type == "wechat" && inWeChat) || (k.Type == "wechat_mp" && !inWeChat) {
			continue
		}
		out = append(out, k)
	}
	return out
}

// startUpstream records a pending login and sends the browser to the
// provider.
func (b *Broker) startUpstream(w http.ResponseWriter, r *http.Request, conn *Connector, data pendingData) {
	ctx := r.Context()
	web, ok := conn.webOK()
	if !ok {
		b.errorPage(w, r, http.StatusBadRequest, msgUnknownConnector)
		return
	}
	binding := ""
	if c, err := b.cookie(r, loginCookie); err == nil && len(c.Value) >= 32 {
		binding = c.Value
	} else {
		binding = randomString(32)
		b.setCookie(w, loginCookie, binding, 0)
	}
	state := randomString(32)
	raw, _ := json.Marshal(data)
	now := b.now().UTC()
	if err := b.store.CreateLogin(ctx, storage.PendingLogin{
		State:       state,
		ConnectorID: conn.ID,
		Binding:     b.mac("login", binding),
		Data:        raw,
		CreatedAt:   now,
		ExpiresAt:   now.Add(loginTTL),
	}); err != nil {
		b.log.Error("storing pending login", "err", err)
		b.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	u, err := web.LoginURL(ctx, connectors.LoginRequest{
		State:       state,
		CallbackURL: b.callbackURL(conn.ID),
		Mobile:      isMobile(r),
	})
	if err != nil {
		b.log.Error("building provider login URL", "connector", conn.ID, "err", err)
		b.errorPage(w, r, http.StatusBadGateway, msgProviderConfig)
		return
	}
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
	web, isWeb := conn.webOK()
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
	cookie, err := b.cookie(r, loginCookie)
	if err != nil || cookie.Value == "" {
		b.errorPage(w, r, http.StatusBadRequest, msgNoLoginCookie)
		return
	}
	pl, err := b.store.TakeLogin(ctx, state)
	if errors.Is(err, storage.ErrNotFound) {
		b.errorPage(w, r, http.StatusBadRequest, msgLoginExpired)
		return
	} else if err != nil {
		b.log.Error("loading pending login", "err", err)
		b.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	if pl.ConnectorID != id || !hmac.Equal([]byte(pl.Binding), []byte(b.mac("login", cookie.Value))) {
		b.log.Warn("callback refused: state issued for another browser or connector", "connector", id)
		// Put it back: someone who learnt the state cannot spend the
		// rightful browser's login.
		if err := b.store.CreateLogin(ctx, pl); err != nil {
			b.log.Warn("restoring a pending login", "err", err)
		}
		b.errorPage(w, r, http.StatusBadRequest, msgBadState)
		return
	}
	var data pendingData
	if err := json.Unmarshal(pl.Data, &data); err != nil {
		b.errorPage(w, r, http.StatusBadRequest, msgLoginExpired)
		return
	}
	ident, err := web.HandleCallback(ctx, connectors.LoginRequest{State: state, CallbackURL: b.callbackURL(id), Mobile: isMobile(r)}, r.Form)
	if err != nil {
		b.upstreamFailed(w, r, conn, data, err)
		return
	}
	if data.Purpose == "bind" {
		b.finishBind(w, r, conn, data, ident)
		return
	}
	userID, known, err := b.resolveIdentity(ctx, conn, ident)
	if err != nil {
		b.metrics.logins.WithLabelValues(conn.ID, "error").Inc()
		b.log.Error("resolving the user of a login", "connector", conn.ID, "err", err)
		b.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	now := b.now().UTC()
	old, _ := b.currentSession(r)
	sess, err := b.startSession(ctx, w, old, userID, conn.ID, now)
	if err != nil {
		b.log.Error("creating browser session", "err", err)
		b.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	b.metrics.logins.WithLabelValues(conn.ID, "success").Inc()
	b.audit(ctx, r, storage.AuditEvent{Action: "login", UserID: userID, ConnectorID: conn.ID, ClientID: clientOf(data.AuthQuery), Result: "success"})
	if data.Purpose == "account" {
		b.redirectAccount(w, r, "", "")
		return
	}

	ar, err := b.resumeAuthorize(r, data.AuthQuery)
	if err != nil {
		b.writeAuthorizeError(w, r, ar, err)
		return
	}
	c, _ := ar.GetClient().(*client)
	if c != nil && b.needsConsent(r, ar, c, sess) {
		b.renderConsent(w, r, ar, c, sess)
		return
	}
	b.finishAuthorize(w, r, ar, userID, conn.ID, now, data.RequestedAt, known)
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
	var rfc *fosite.RFC6749Error
	var result string
	switch {
	case errors.Is(err, connectors.ErrAccessDenied):
		result = "denied"
		rfc = fosite.ErrAccessDenied.WithHint(b.userMessage(err))
		b.log.Info("upstream login refused", attrs...)
	case errors.Is(err, connectors.ErrUnavailable):
		result = "unavailable"
		rfc = fosite.ErrTemporarilyUnavailable.WithHint("The provider is busy or unreachable. Please try again.")
		b.log.Warn("upstream provider unavailable", attrs...)
	case errors.Is(err, connectors.ErrInvalidCode):
		result = "invalid_code"
		rfc = fosite.ErrAccessDenied.WithHint("The provider did not accept the login (its code was invalid or already used). Please try again.")
		b.log.Warn("upstream code refused", attrs...)
	default:
		result = "error"
		rfc = fosite.ErrServerError.WithHint("The provider refused this application's configuration. The administrator has been told.")
		b.log.Error("upstream login failed: check the connector configuration", attrs...)
	}
	b.metrics.logins.WithLabelValues(conn.ID, result).Inc()
	b.audit(ctx, r, storage.AuditEvent{Action: data.Purpose, UserID: data.UserID, ConnectorID: conn.ID, ClientID: clientOf(data.AuthQuery), Result: result, Detail: rfc.HintField})
	if data.Purpose == "bind" {
		// The account page shows only the messages it knows.
		msg := msgProviderFailed
		if result == "unavailable" {
			msg = msgUnavailable
		}
		b.redirectAccount(w, r, "error", msg)
		return
	}
	ar, perr := b.resumeAuthorize(r, data.AuthQuery)
	if perr != nil || !ar.IsRedirectURIValid() {
		b.errorPageText(w, r, http.StatusBadGateway, msgProviderFailed, rfc.HintField)
		return
	}
	b.provider.WriteAuthorizeError(ctx, w, ar, rfc)
}

func (b *Broker) userMessage(err error) string {
	var pe *connectors.ProviderError
	if errors.As(err, &pe) && pe.Message != "" {
		return pe.Message
	}
	return "The sign-in was cancelled or refused at the provider."
}

// ------------------------------------------------------------- users

// unionKey is the namespaced union id of an identity, and whether the
// configuration links identities by it.
func (b *Broker) unionKey(conn *Connector, ident connectors.Identity) (string, bool) {
	if ident.UnionID == "" {
		return "", false
	}
	switch conn.Type {
	case "wechat", "wechat_mp", "wechat_miniprogram":
		return "wechat:" + ident.UnionID, b.cfg.Linking.WeChatUnionID
	case "qq":
		return "qq:" + ident.UnionID, b.cfg.Linking.QQUnionID
	}
	return conn.Type + ":" + ident.UnionID, false
}

func (b *Broker) identityRow(conn *Connector, ident connectors.Identity, userID string, now time.Time) storage.Identity {
	union, _ := b.unionKey(conn, ident)
	row := storage.Identity{
		ConnectorID:   conn.ID,
		Subject:       ident.Subject,
		UserID:        userID,
		ConnectorType: conn.Type,
		UnionID:       union,
		DisplayName:   ident.DisplayName,
		Picture:       safePicture(ident.Picture),
		RealProfile:   ident.RealProfile,
		BoundAt:       now,
		LastUsedAt:    now,
	}
	if len(ident.Secret) > 0 {
		row.Secret = b.idSealer.Seal(ident.Secret, []byte(conn.ID+"\x00"+ident.Subject))
	}
	return row
}

// safePicture keeps an avatar URL only if it is an absolute http(s) URL
// with a host and no userinfo: apps put it in <img src> (or worse, href),
// so a javascript: or data: value from a provider must not reach them.
func safePicture(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return ""
	}
	return s
}

// resolveIdentity returns the user of a provider identity, creating the
// user (or joining the user of the same WeChat unionid) on first sight.
// When the identity has a real profile it is now the user's most recently
// used one, so that profile is the user's: it is returned to save a query.
func (b *Broker) resolveIdentity(ctx context.Context, conn *Connector, ident connectors.Identity) (string, *profile, error) {
	if ident.Subject == "" {
		return "", nil, errors.New("the provider returned no subject")
	}
	now := b.now().UTC()
	for attempt := 0; attempt < 3; attempt++ {
		existing, err := b.store.GetIdentity(ctx, conn.ID, ident.Subject)
		if err == nil {
			row := b.identityRow(conn, ident, existing.UserID, now)
			row.BoundAt = existing.BoundAt
			if !ident.RealProfile && existing.RealProfile {
				// Keep the real profile we had over a placeholder.
				row.DisplayName, row.Picture, row.RealProfile = existing.DisplayName, existing.Picture, true
			}
			if row.Secret == nil {
				row.Secret = existing.Secret
			}
			if err := b.store.UpdateIdentity(ctx, row); err != nil {
				return "", nil, err
			}
			return existing.UserID, profileOfRow(row), nil
		} else if !errors.Is(err, storage.ErrNotFound) {
			return "", nil, err
		}
		if union, link := b.unionKey(conn, ident); link {
			others, err := b.store.FindIdentitiesByUnionID(ctx, union)
			if err != nil {
				return "", nil, err
			}
			if len(others) > 0 {
				row := b.identityRow(conn, ident, others[0].UserID, now)
				err := b.store.BindIdentity(ctx, row)
				if errors.Is(err, storage.ErrAlreadyExists) {
					continue // created by a concurrent login: read it again
				}
				if err != nil {
					return "", nil, err
				}
				b.audit(ctx, nil, storage.AuditEvent{Action: "link_unionid", UserID: others[0].UserID, ConnectorID: conn.ID, Result: "success"})
				return others[0].UserID, profileOfRow(row), nil
			}
		}
		userID := newUserID()
		row := b.identityRow(conn, ident, userID, now)
		err = b.store.CreateUser(ctx, storage.User{ID: userID, CreatedAt: now}, row)
		if errors.Is(err, storage.ErrAlreadyExists) {
			continue
		}
		if err != nil {
			return "", nil, err
		}
		// A new user's only identity is their whole profile, real or not.
		if known := profileOfRow(row); known != nil {
			return userID, known, nil
		}
		return userID, &profile{}, nil
	}
	return "", nil, errors.New("identity kept changing under concurrent logins")
}

// profileOfRow is the profile an identity that was just used gives its
// user, or nil when the user's profile must be looked up (a placeholder
// profile leaves the user's earlier real one in force).
func profileOfRow(row storage.Identity) *profile {
	if !row.RealProfile {
		return nil
	}
	return &profile{Name: row.DisplayName, Picture: row.Picture}
}

// profile is a user's display name and picture: those of the most recently
// used identity with a real profile.
type profile struct {
	Name, Picture string
}

func (p profile) addTo(claims map[string]any) {
	if p.Name != "" {
		claims["name"] = p.Name
	}
	if p.Picture != "" {
		claims["picture"] = p.Picture
	}
}

func (b *Broker) profile(ctx context.Context, userID string) (profile, error) {
	ids, err := b.store.ListIdentities(ctx, userID)
	if err != nil {
		return profile{}, err
	}
	return profileOf(ids), nil
}

func profileOf(ids []storage.Identity) profile {
	var best *storage.Identity
	for i := range ids {
		id := &ids[i]
		if !id.RealProfile {
			continue
		}
		if best == nil || id.LastUsedAt.After(best.LastUsedAt) {
			best = id
		}
	}
	if best == nil {
		return profile{}
	}
	return profile{Name: best.DisplayName, Picture: best.Picture}
}

// audit records an event; failures are logged, never fatal.
func (b *Broker) audit(ctx context.Context, r *http.Request, e storage.AuditEvent) {
	if e.Time.IsZero() {
		e.Time = b.now().UTC()
	}
	if e.IP == "" {
		if r != nil {
			ctx = r.Context()
		}
		e.IP, _ = ctx.Value(ipKey{}).(string)
	}
	if err := b.store.AppendAudit(ctx, e); err != nil {
		b.log.Warn("audit log write failed", "action", e.Action, "err", err)
	}
}

// ipKey is the context key of the client's address, set by the middleware.
type ipKey struct{}

// clientIP is the address of the client: the connecting address, or, when
// that is a trusted reverse proxy, the nearest address in X-Forwarded-For
// that is not one.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !isTrusted(addr, trusted) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed entry: trust nothing beyond it
		}
		addr = hop.Unmap()
		if !isTrusted(addr, trusted) {
			break
		}
	}
	return addr.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
