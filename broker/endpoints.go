package broker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/gorilla/mux"
	"github.com/ory/fosite"

	"github.com/qiaoidp/qiao/storage"
)

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// oauthError is an RFC 6749 error body.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// oauthStore is what the OAuth endpoints write besides tokens: a token
// exchange's sign-in with its tokens, the end of a browser session.
type oauthStore interface {
	CompleteLogin(ctx context.Context, c storage.LoginCompletion) error
	DeleteSession(ctx context.Context, id string) error
}

// signingKeys publishes the signing keys and verifies what they signed.
type signingKeys interface {
	JWKS() jose.JSONWebKeySet
	Verify(ctx context.Context, token string) (map[string]any, error)
}

// oauthHandler is the OAuth 2.0 and OpenID Connect endpoints programs
// call (discovery, keys, token, userinfo, revocation, introspection) and
// RP-initiated logout, over fosite's provider.
type oauthHandler struct {
	*site
	provider fosite.OAuth2Provider
	fstore   *fositeStore
	store    oauthStore
	keys     signingKeys
	profiles profileReader
	// algs are the ID token signing algorithms, RS256 first;
	// tokenTypes the token exchange's subject_token_types.
	algs, tokenTypes []string
}

// Mount adds the endpoints' routes to s, the router under the issuer.
func (h *oauthHandler) Mount(s *mux.Router) {
	s.HandleFunc("/.well-known/openid-configuration", h.handleDiscovery).Methods(http.MethodGet)
	s.HandleFunc("/keys", h.handleJWKS).Methods(http.MethodGet)
	s.HandleFunc("/token", h.limited(limitToken, true, requestClientID, h.handleToken)).Methods(http.MethodPost)
	s.HandleFunc("/userinfo", h.handleUserinfo).Methods(http.MethodGet, http.MethodPost)
	s.HandleFunc("/revoke", h.handleRevoke).Methods(http.MethodPost)
	s.HandleFunc("/introspect", h.handleIntrospect).Methods(http.MethodPost)
	s.HandleFunc("/logout", h.handleLogout).Methods(http.MethodGet, http.MethodPost)
}

func (h *oauthHandler) handleDiscovery(w http.ResponseWriter, _ *http.Request) {
	// RS256 always (OpenID Connect Discovery §3), then the other
	// configured algorithms.
	algs := h.algs
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                        h.issuer,
		"authorization_endpoint":                        h.url("/auth"),
		"token_endpoint":                                h.url("/token"),
		"userinfo_endpoint":                             h.url("/userinfo"),
		"jwks_uri":                                      h.url("/keys"),
		"revocation_endpoint":                           h.url("/revoke"),
		"introspection_endpoint":                        h.url("/introspect"),
		"end_session_endpoint":                          h.url("/logout"),
		"response_types_supported":                      []string{"code"},
		"response_modes_supported":                      []string{"query"},
		"grant_types_supported":                         []string{"authorization_code", "refresh_token", grantTokenExchange},
		"subject_types_supported":                       []string{"public"},
		"id_token_signing_alg_values_supported":         algs,
		"scopes_supported":                              scopesSupported,
		"token_endpoint_auth_methods_supported":         []string{"client_secret_basic", "client_secret_post", "none"},
		"revocation_endpoint_auth_methods_supported":    []string{"client_secret_basic", "client_secret_post", "none"},
		"introspection_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":              []string{"S256"},
		"claims_supported": []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
			"idp", "name", "picture", "phone_number", "phone_number_verified"},
		"prompt_values_supported":                 []string{"none", "login", "consent"},
		"claims_parameter_supported":              false,
		"request_parameter_supported":             false,
		"request_uri_parameter_supported":         false,
		"frontchannel_logout_supported":           false,
		"backchannel_logout_supported":            false,
		"ui_locales_supported":                    []string{"zh-CN", "en"},
		"qiao_connectors":                         h.connectorIDs(),
		"qiao_token_exchange_subject_token_types": h.tokenTypes,
	})
}

func (h *oauthHandler) connectorIDs() []string {
	ids := make([]string, 0, len(h.order))
	for _, c := range h.order {
		ids = append(ids, c.ID)
	}
	return ids
}

func (h *oauthHandler) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(h.keys.JWKS())
}

// handleToken is the token endpoint: authorization code, refresh token and
// the mini-program token exchange, all through fosite's handlers.
func (h *oauthHandler) handleToken(w http.ResponseWriter, r *http.Request) {
	// The PKCE session that checking the request spends is deleted with
	// the response's writes (or, if the request fails, on its own): one
	// store transaction fewer per code redemption.
	if gt := r.PostForm.Get("grant_type"); gt != "" && !grantTypes[gt] {
		h.metrics.httpErrors.WithLabelValues("token", "unsupported_grant_type").Inc()
		writeJSON(w, http.StatusBadRequest, oauthError{Error: "unsupported_grant_type", Description: "The grant type " + gt + " is not supported."})
		return
	}
	clientID := requestClientID(r)
	if !h.checkClientAuth(w, r, limitToken, clientID) {
		return
	}
	held := &heldOps{}
	check := &secretCheck{}
	ctx := withReadCache(context.WithValue(context.WithValue(r.Context(), heldKey{}, held), secretCheckKey{}, check))
	sess := newSession()
	ar, err := h.provider.NewAccessRequest(ctx, r, sess)
	if check.done {
		h.clientAuthResult(r, clientID, check.ok)
	}
	if err != nil {
		failed := append(held.ops, held.onFailure...)
		if herr := h.fstore.tokens.ApplyTokenOps(r.Context(), failed...); herr != nil &&
			!errors.Is(herr, storage.ErrConflict) && !errors.Is(herr, storage.ErrNotFound) {
			h.log.Warn("spending a code whose PKCE check failed", "err", herr)
		}
		h.writeTokenError(w, r, ar, err)
		return
	}
	// One store transaction for everything the response writes (with
	// the sign-in of a token exchange).
	var flush func(context.Context, []storage.TokenOp) error
	if held.login != nil {
		flush = func(ctx context.Context, ops []storage.TokenOp) error {
			c := *held.login
			c.TokenOps = ops
			return h.store.CompleteLogin(ctx, c)
		}
	}
	var resp fosite.AccessResponder
	err = h.fstore.inTxWith(ctx, flush, func(ctx context.Context) (err error) {
		if err := h.fstore.apply(ctx, held.ops...); err != nil {
			return err
		}
		resp, err = h.provider.NewAccessResponse(ctx, ar)
		return err
	})
	if err != nil {
		h.writeTokenError(w, r, ar, err)
		return
	}
	for _, gt := range ar.GetGrantTypes() {
		h.metrics.tokens.WithLabelValues(gt).Inc()
	}
	h.provider.WriteAccessResponse(ctx, w, ar, resp)
}

func (h *oauthHandler) writeTokenError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	err = mapStorageError(err)
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField >= 500 {
		h.log.Warn("token endpoint unavailable", "error", rfc.ErrorField, "cause", errorCause(err), "debug", rfc.DebugField)
	} else {
		h.log.Info("token request refused", "error", rfc.ErrorField, "hint", rfc.HintField)
	}
	h.metrics.httpErrors.WithLabelValues("token", rfc.ErrorField).Inc()
	if ar == nil {
		ar = fosite.NewAccessRequest(newSession())
	}
	h.provider.WriteAccessError(r.Context(), w, ar, rfc)
}

// mapStorageError turns the loser of a race on a code or refresh token
// (fositeStore.Commit reports a failed compare-and-swap as
// ErrInactiveToken, or fosite finds the code invalidated) into
// invalid_grant rather than a 500, and a store outage into
// temporarily_unavailable.
func mapStorageError(err error) error {
	switch {
	case errors.Is(err, fosite.ErrInactiveToken),
		// fosite reads the code again when it populates the response; if
		// a concurrent redemption invalidated it in between, it reports
		// this as a server error.
		errors.Is(err, fosite.ErrInvalidatedAuthorizeCode):
		return fosite.ErrInvalidGrant.WithHint("The authorization code or refresh token was already used.").WithWrap(err)
	case isUnavailable(err):
		return fosite.ErrTemporarilyUnavailable.WithHint("The service is temporarily unavailable. Please retry.").WithWrap(err)
	}
	return err
}

// isUnavailable reports a server-side failure (the store down): fosite
// wraps it as server_error, which we answer as a 503.
func isUnavailable(err error) bool {
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) {
		return rfc.ErrorField == fosite.ErrServerError.ErrorField
	}
	return false
}

func errorCause(err error) string {
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) && rfc.Unwrap() != nil {
		return rfc.Unwrap().Error()
	}
	return ""
}

func (h *oauthHandler) handleRevoke(w http.ResponseWriter, r *http.Request) {
	clientID := requestClientID(r)
	if !h.checkClientAuth(w, r, "revoke", clientID) {
		return
	}
	check := &secretCheck{}
	err := h.provider.NewRevocationRequest(context.WithValue(r.Context(), secretCheckKey{}, check), r)
	if check.done {
		h.clientAuthResult(r, clientID, check.ok)
	}
	if err != nil {
		h.metrics.httpErrors.WithLabelValues("revoke", fosite.ErrorToRFC6749Error(err).ErrorField).Inc()
	}
	h.provider.WriteRevocationResponse(r.Context(), w, err)
}

// handleIntrospect answers RFC 7662 for authenticated confidential
// clients only (HTTP Basic or client_secret_post), about the tokens issued
// to that client (any token with introspect_any).
func (h *oauthHandler) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if !h.checkClientAuth(w, r, "introspect", id) {
		return
	}
	c, found := h.clients.get(id)
	authenticated := found && !c.Public && secret != "" && h.clients.hasher.Compare(r.Context(), c.Secret, []byte(secret)) == nil
	h.clientAuthResult(r, id, authenticated)
	if !authenticated {
		w.Header().Set("WWW-Authenticate", `Basic realm="qiao"`)
		writeJSON(w, http.StatusUnauthorized, oauthError{Error: "invalid_client", Description: "Introspection requires an authenticated confidential client."})
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		writeJSON(w, http.StatusBadRequest, oauthError{Error: "invalid_request", Description: "The token parameter is missing."})
		return
	}
	use := fosite.AccessToken
	if r.PostForm.Get("token_type_hint") == "refresh_token" {
		use = fosite.RefreshToken
	}
	tu, ar, err := h.provider.IntrospectToken(r.Context(), token, use, newSession())
	if err != nil {
		var rfc *fosite.RFC6749Error
		if errors.As(err, &rfc) && rfc.ErrorField == fosite.ErrServerError.ErrorField || errors.Is(err, errStoreFailed) {
			h.log.Error("introspection failure", "cause", errorCause(err))
			writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	// A client learns only about its own tokens, unless its config lets
	// it introspect any (a resource server): no probing of other apps'
	// tokens.
	if ar.GetClient().GetID() != c.ID && !c.IntrospectAny {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	sess, _ := ar.GetSession().(*grantSession)
	resp := map[string]any{
		"active":     true,
		"client_id":  ar.GetClient().GetID(),
		"scope":      strings.Join(ar.GetGrantedScopes(), " "),
		"iat":        ar.GetRequestedAt().Unix(),
		"exp":        ar.GetSession().GetExpiresAt(tu).Unix(),
		"sub":        ar.GetSession().GetSubject(),
		"iss":        h.issuer,
		"token_type": "Bearer",
		"token_use":  "access_token",
	}
	if tu == fosite.RefreshToken {
		resp["token_type"] = "refresh_token"
		resp["token_use"] = "refresh_token"
	}
	if sess != nil && sess.IDP != "" {
		resp["idp"] = sess.IDP
	}
	resp["aud"] = []string{ar.GetClient().GetID()}
	if len(ar.GetGrantedAudience()) > 0 {
		resp["aud"] = ar.GetGrantedAudience()
	}
	writeJSON(w, http.StatusOK, resp)
}

// errTokenInQuery refuses an access token in the URL (RFC 6750 §2.3): it
// ends up in logs, browser history and Referer headers.
var errTokenInQuery = errors.New("access token in the URL query")

// bearerToken is the request's access token: from the Authorization
// header, or, when form is true, from an application/x-www-form-urlencoded
// POST body (RFC 6750 §2.2). A token in the query is refused.
func bearerToken(r *http.Request, form bool) (string, error) {
	if r.URL.Query().Has("access_token") {
		return "", errTokenInQuery
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if ok && strings.EqualFold(scheme, "bearer") {
		return strings.TrimSpace(token), nil
	}
	if form && r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return r.PostForm.Get("access_token"), nil
	}
	return "", nil
}

// bearer validates the request's bearer access token (see bearerToken)
// and returns its grant.
func (h *oauthHandler) bearer(r *http.Request, form bool) (fosite.AccessRequester, error) {
	token, err := bearerToken(r, form)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, fosite.ErrRequestUnauthorized.WithHint("A bearer access token is required.")
	}
	_, ar, err := h.provider.IntrospectToken(r.Context(), token, fosite.AccessToken, newSession())
	if err != nil {
		return nil, err
	}
	return ar, nil
}

func (h *oauthHandler) writeBearerError(w http.ResponseWriter, err error) {
	if errors.Is(err, errTokenInQuery) {
		const desc = "Send the access token in the Authorization header, not in the URL."
		w.Header().Set("WWW-Authenticate", `Bearer realm="qiao", error="invalid_request", error_description="`+desc+`"`)
		writeJSON(w, http.StatusBadRequest, oauthError{Error: "invalid_request", Description: desc})
		return
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.ErrorField == fosite.ErrServerError.ErrorField || errors.Is(err, errStoreFailed) {
		h.log.Error("bearer token check failed", "cause", errorCause(err))
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="qiao", error="invalid_token"`)
	writeJSON(w, http.StatusUnauthorized, oauthError{Error: "invalid_token", Description: "The access token is missing, invalid, expired or revoked."})
}

// handleUserinfo returns the profile claims the token's scopes allow.
func (h *oauthHandler) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	ar, err := h.bearer(r, true)
	if err != nil {
		h.writeBearerError(w, err)
		return
	}
	if !ar.GetGrantedScopes().Has("openid") {
		w.Header().Set("WWW-Authenticate", `Bearer realm="qiao", error="insufficient_scope", scope="openid"`)
		writeJSON(w, http.StatusForbidden, oauthError{Error: "insufficient_scope"})
		return
	}
	sub := ar.GetSession().GetSubject()
	claims := map[string]any{"sub": sub}
	if sess, ok := ar.GetSession().(*grantSession); ok {
		if sess.IDP != "" {
			claims["idp"] = sess.IDP
		}
		if ar.GetGrantedScopes().Has("phone") {
			for _, k := range []string{"phone_number", "phone_number_verified"} {
				if v, ok := sess.Claims.Extra[k]; ok {
					claims[k] = v
				}
			}
		}
	}
	if ar.GetGrantedScopes().Has("profile") {
		p, err := h.profiles.profile(r.Context(), sub)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			h.log.Error("userinfo: loading profile", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
			return
		}
		p.addTo(claims)
	}
	writeJSON(w, http.StatusOK, claims)
}
