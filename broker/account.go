package broker

import (
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/mux"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

// recentSignIn is how fresh a sign-in must be to unbind an identity.
const recentSignIn = 15 * time.Minute

func (b *Broker) accountRoutes(s *mux.Router) {
	s.HandleFunc("/account", b.handleAccount).Methods(http.MethodGet)
	s.HandleFunc("/account/login", b.handleAccountLogin).Methods(http.MethodGet)
	s.HandleFunc("/account/bind", b.handleAccountBind).Methods(http.MethodPost)
	s.HandleFunc("/account/unbind", b.handleAccountUnbind).Methods(http.MethodPost)
	s.HandleFunc("/api/v1/me", b.handleMe).Methods(http.MethodGet)
	s.HandleFunc("/api/v1/me/identities", b.handleBindAPI).Methods(http.MethodPost)
	s.HandleFunc("/api/v1/me/identities/{connector}", b.handleUnbindAPI).Methods(http.MethodDelete)
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
	msgBoundOK: msgBoundOK, msgUnboundOK: msgUnboundOK,
}
var errorMessages = map[string]msgID{
	msgAlreadyBound: msgAlreadyBound, msgLastIdentity: msgLastIdentity,
	msgReauth: msgReauth, msgUnavailable: msgUnavailable,
	msgProviderFailed: msgProviderFailed, msgBadCSRF: msgBadCSRF,
	msgSignInFirst: msgSignInFirst, msgUnknownConnector: msgUnknownConnector,
}

func (b *Broker) accountCSRF(s *browserSession) string {
	return b.mac("account", s.ID)
}

func (b *Broker) handleAccount(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess, err := b.currentSession(r)
	if err != nil {
		b.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	v := &accountView{Status: statusMessages[r.URL.Query().Get("status")], Error: errorMessages[r.URL.Query().Get("error")]}
	if sess == nil {
		v.SignIn, v.Note = b.signInChoices(r)
		b.render(w, r, http.StatusOK, "account.html", pageData{Title: msgAccountTitle, Account: v})
		return
	}
	ids, err := b.store.ListIdentities(ctx, sess.UserID)
	if err != nil {
		b.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	p := profileOf(ids)
	v.UserID, v.Name, v.Picture = sess.UserID, p.Name, p.Picture
	v.CSRF = b.accountCSRF(sess)
	v.BindURL, v.UnbindURL, v.LogoutURL = b.url("/account/bind"), b.url("/account/unbind"), b.url("/logout")
	v.LogoutCSRF = b.logoutToken(sess)
	v.CanUnbind = len(ids) > 1
	if v.Error == msgReauth {
		// Offer a fresh sign-in right here, with the user's own providers.
		v.SignIn, _ = b.signInChoices(r)
	}
	bound := map[string]bool{}
	families := map[string]bool{} // of the bound connectors, for the note
	for _, id := range ids {
		bound[id.ConnectorID] = true
		name := id.ConnectorID
		web := false
		if k, ok := b.connectors[id.ConnectorID]; ok {
			families[family(k)] = true
			name = connectorName(k, pickLang(r))
			_, web = k.web()
		}
		v.Identities = append(v.Identities, identityView{
			ConnectorID: id.ConnectorID, Type: id.ConnectorType, Provider: name, Icon: b.iconURL(id.ConnectorID),
			DisplayName: id.DisplayName, Picture: id.Picture, BoundAt: id.BoundAt, Web: web,
			BoundLocal: localTime(id.BoundAt, pickLang(r)),
		})
	}
	offered, hidden := b.offers(r, func(id string) bool { return !bound[id] })
	for _, k := range offered {
		v.Unbound = append(v.Unbound, b.newChoice(r, k, ""))
	}
	v.Note = offerNote(browserOf(r), offered, hidden, families)
	b.render(w, r, http.StatusOK, "account.html", pageData{Title: msgAccountTitle, Account: v})
}

// signInChoices are the account page's sign-in links, one per web
// connector usable in this browser, and the note about the others.
func (b *Broker) signInChoices(r *http.Request) ([]choice, msgID) {
	var out []choice
	offered, note := b.browserConnectors(r, nil)
	for _, k := range offered {
		out = append(out, b.newChoice(r, k, b.url("/account/login")+"?connector_id="+url.QueryEscape(k.ID)))
	}
	return out, note
}

func (b *Broker) redirectAccount(w http.ResponseWriter, r *http.Request, key string, msg string) {
	q := url.Values{}
	if key != "" {
		q.Set(key, msg)
	}
	target := b.url("/account")
	if len(q) > 0 {
		target += "?" + q.Encode()
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// handleAccountLogin signs the person in to the account page itself.
func (b *Broker) handleAccountLogin(w http.ResponseWriter, r *http.Request) {
	conn, ok := b.connectors[r.URL.Query().Get("connector_id")]
	if _, web := conn.web(); !ok || !web {
		b.errorPage(w, r, http.StatusBadRequest, msgUnknownConnector)
		return
	}
	b.startUpstream(w, r, conn, pendingData{Purpose: "account", RequestedAt: b.now().UTC()})
}

func (b *Broker) accountSession(w http.ResponseWriter, r *http.Request) *browserSession {
	sess, err := b.currentSession(r)
	if err != nil {
		b.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return nil
	}
	if sess == nil {
		b.redirectAccount(w, r, "error", msgSignInFirst)
		return nil
	}
	if !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(b.accountCSRF(sess))) {
		b.errorPage(w, r, http.StatusForbidden, msgBadCSRF)
		return nil
	}
	return sess
}

func (b *Broker) handleAccountBind(w http.ResponseWriter, r *http.Request) {
	sess := b.accountSession(w, r)
	if sess == nil {
		return
	}
	conn, ok := b.connectors[r.PostForm.Get("connector_id")]
	if _, web := conn.web(); !ok || !web {
		b.redirectAccount(w, r, "error", msgUnknownConnector)
		return
	}
	b.startUpstream(w, r, conn, pendingData{Purpose: "bind", UserID: sess.UserID, RequestedAt: b.now().UTC()})
}

func (b *Broker) handleAccountUnbind(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess := b.accountSession(w, r)
	if sess == nil {
		return
	}
	if b.now().Sub(sess.AuthTime) > recentSignIn {
		b.redirectAccount(w, r, "error", msgReauth)
		return
	}
	connectorID := r.PostForm.Get("connector_id")
	err := b.store.UnbindIdentity(ctx, sess.UserID, connectorID)
	b.recordUnbind(r, sess.UserID, connectorID, "", err)
	switch {
	case err == nil:
		b.redirectAccount(w, r, "status", msgUnboundOK)
	case errors.Is(err, storage.ErrLastIdentity):
		b.redirectAccount(w, r, "error", msgLastIdentity)
	case errors.Is(err, storage.ErrNotFound):
		b.redirectAccount(w, r, "error", msgUnknownConnector)
	default:
		b.log.Error("unbind failed", "err", err)
		b.redirectAccount(w, r, "error", msgUnavailable)
	}
}

func (b *Broker) recordUnbind(r *http.Request, userID, connectorID, clientID string, err error) {
	result := "success"
	switch {
	case errors.Is(err, storage.ErrLastIdentity):
		result = "refused_last_identity"
	case errors.Is(err, storage.ErrNotFound):
		result = "not_found"
	case err != nil:
		result = "error"
	}
	b.metrics.bindOperations.WithLabelValues("unbind", result).Inc()
	b.audit(r.Context(), r, storage.AuditEvent{Action: "unbind", UserID: userID, ConnectorID: connectorID, ClientID: clientID, Result: result})
}

// bindOutcome is the result of attaching an identity to a user.
type bindOutcome int

const (
	bindCreated bindOutcome = iota
	bindAlreadyMine
	bindConflict
)

// bindIdentity attaches ident to userID atomically: an identity of
// another user is refused and nothing changes.
func (b *Broker) bindIdentity(r *http.Request, conn *Connector, ident connectors.Identity, userID, clientID string) (storage.Identity, bindOutcome, error) {
	ctx := r.Context()
	now := b.now().UTC()
	existing, err := b.store.GetIdentity(ctx, conn.ID, ident.Subject)
	if err == nil {
		if existing.UserID == userID {
			b.metrics.bindOperations.WithLabelValues("bind", "already_bound").Inc()
			return existing, bindAlreadyMine, nil
		}
		b.bindRefused(r, conn, userID, clientID)
		return storage.Identity{}, bindConflict, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return storage.Identity{}, 0, err
	}
	row := b.identityRow(conn, ident, userID, now)
	err = b.store.BindIdentity(ctx, row)
	if errors.Is(err, storage.ErrAlreadyExists) {
		// Bound by someone else in the meantime (or by ourselves).
		if got, gerr := b.store.GetIdentity(ctx, conn.ID, ident.Subject); gerr == nil && got.UserID == userID {
			return got, bindAlreadyMine, nil
		}
		b.bindRefused(r, conn, userID, clientID)
		return storage.Identity{}, bindConflict, nil
	}
	if err != nil {
		return storage.Identity{}, 0, err
	}
	b.metrics.bindOperations.WithLabelValues("bind", "success").Inc()
	b.audit(ctx, r, storage.AuditEvent{Action: "bind", UserID: userID, ConnectorID: conn.ID, ClientID: clientID, Result: "success"})
	return row, bindCreated, nil
}

func (b *Broker) bindRefused(r *http.Request, conn *Connector, userID, clientID string) {
	b.metrics.bindOperations.WithLabelValues("bind", "conflict").Inc()
	b.audit(r.Context(), r, storage.AuditEvent{Action: "bind_conflict", UserID: userID, ConnectorID: conn.ID, ClientID: clientID, Result: "refused", Detail: "identity bound to another user"})
}

// finishBind completes a bind started on the account page.
func (b *Broker) finishBind(w http.ResponseWriter, r *http.Request, conn *Connector, data pendingData, ident connectors.Identity) {
	sess, err := b.currentSession(r)
	if err != nil {
		b.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	if sess == nil || sess.UserID != data.UserID {
		b.redirectAccount(w, r, "error", msgSignInFirst)
		return
	}
	_, outcome, err := b.bindIdentity(r, conn, ident, sess.UserID, "")
	switch {
	case err != nil:
		b.log.Error("bind failed", "err", err)
		b.redirectAccount(w, r, "error", msgUnavailable)
	case outcome == bindConflict:
		b.redirectAccount(w, r, "error", msgAlreadyBound)
	default:
		b.redirectAccount(w, r, "status", msgBoundOK)
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

// apiUser authenticates the bearer token and returns its user and client.
func (b *Broker) apiUser(w http.ResponseWriter, r *http.Request) (userID string, c *client, ok bool) {
	ar, err := b.bearer(r)
	if err != nil {
		b.writeBearerError(w, err)
		return "", nil, false
	}
	userID = ar.GetSession().GetSubject()
	if _, err := b.store.GetUser(r.Context(), userID); errors.Is(err, storage.ErrNotFound) {
		b.writeBearerError(w, err)
		return "", nil, false
	} else if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
		return "", nil, false
	}
	c, _ = ar.GetClient().(*client)
	return userID, c, true
}

func (b *Broker) handleMe(w http.ResponseWriter, r *http.Request) {
	userID, _, ok := b.apiUser(w, r)
	if !ok {
		return
	}
	ids, err := b.store.ListIdentities(r.Context(), userID)
	if err != nil {
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
		return
	}
	p := profileOf(ids)
	out := struct {
		Sub        string         `json:"sub"`
		Name       string         `json:"name,omitempty"`
		Picture    string         `json:"picture,omitempty"`
		Identities []identityJSON `json:"identities"`
	}{Sub: userID, Name: p.Name, Picture: p.Picture, Identities: []identityJSON{}}
	for _, id := range ids {
		out.Identities = append(out.Identities, toIdentityJSON(id))
	}
	writeJSON(w, http.StatusOK, out)
}

func (b *Broker) handleBindAPI(w http.ResponseWriter, r *http.Request) {
	userID, c, ok := b.apiUser(w, r)
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
	conn, found := b.connectors[req.ConnectorID]
	exchanger, isCode := conn.code()
	if !found || !isCode || (c != nil && !c.allows(conn.ID)) {
		writeJSON(w, http.StatusBadRequest, oauthError{Error: "invalid_request", Description: "connector_id must name a mini-program connector this application may use."})
		return
	}
	clientID := ""
	if c != nil {
		clientID = c.ID
	}
	ident, err := exchanger.ExchangeCode(r.Context(), req.Code)
	if err != nil {
		b.loginFailed(r.Context(), conn, clientID, err)
		switch {
		case errors.Is(err, connectors.ErrInvalidCode), errors.Is(err, connectors.ErrAccessDenied):
			writeJSON(w, http.StatusBadRequest, oauthError{Error: "invalid_grant", Description: "The code is invalid, expired or already used."})
		default:
			writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable", Description: "WeChat is busy or unreachable. Please retry."})
		}
		return
	}
	row, outcome, err := b.bindIdentity(r, conn, ident, userID, clientID)
	switch {
	case err != nil:
		b.log.Error("bind failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
	case outcome == bindConflict:
		writeJSON(w, http.StatusConflict, oauthError{Error: "identity_already_bound", Description: "This WeChat account is already bound to another user."})
	case outcome == bindAlreadyMine:
		writeJSON(w, http.StatusOK, toIdentityJSON(row))
	default:
		writeJSON(w, http.StatusCreated, toIdentityJSON(row))
	}
}

func (b *Broker) handleUnbindAPI(w http.ResponseWriter, r *http.Request) {
	userID, c, ok := b.apiUser(w, r)
	if !ok {
		return
	}
	connectorID := mux.Vars(r)["connector"]
	clientID := ""
	if c != nil {
		clientID = c.ID
	}
	err := b.store.UnbindIdentity(r.Context(), userID, connectorID)
	b.recordUnbind(r, userID, connectorID, clientID, err)
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
	case errors.Is(err, storage.ErrLastIdentity):
		writeJSON(w, http.StatusConflict, oauthError{Error: "last_identity", Description: "The last identity of a user cannot be unbound."})
	case errors.Is(err, storage.ErrNotFound):
		writeJSON(w, http.StatusNotFound, oauthError{Error: "not_found", Description: "No identity of that connector is bound to this user."})
	default:
		b.log.Error("unbind failed", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
	}
}
