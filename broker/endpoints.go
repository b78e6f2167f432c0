package broker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"

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

func (b *Broker) handleDiscovery(w http.ResponseWriter, _ *http.Request) {
	// RS256 always (OpenID Connect Discovery §3), then the other
	// configured algorithms.
	algs := b.cfg.signingAlgorithms()
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                        b.issuerString(),
		"authorization_endpoint":                        b.url("/auth"),
		"token_endpoint":                                b.url("/token"),
		"userinfo_endpoint":                             b.url("/userinfo"),
		"jwks_uri":                                      b.url("/keys"),
		"revocation_endpoint":                           b.url("/revoke"),
		"introspection_endpoint":                        b.url("/introspect"),
		"end_session_endpoint":                          b.url("/logout"),
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
		"qiao_connectors":                         b.connectorIDs(),
		"qiao_token_exchange_subject_token_types": b.subjectTokenTypes(),
	})
}

func (b *Broker) connectorIDs() []string {
	ids := make([]string, 0, len(b.order))
	for _, c := range b.order {
		ids = append(ids, c.ID)
	}
	return ids
}

func (b *Broker) handleJWKS(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(b.keys.JWKS())
}

// handleToken is the token endpoint: authorization code, refresh token and
// the mini-program token exchange, all through fosite's handlers.
func (b *Broker) handleToken(w http.ResponseWriter, r *http.Request) {
	// The PKCE session that checking the request spends is deleted with
	// the response's writes (or, if the request fails, on its own): one
	// store transaction fewer per code redemption.
	if gt := r.PostForm.Get("grant_type"); gt != "" && !grantTypes[gt] {
		b.metrics.httpErrors.WithLabelValues("token", "unsupported_grant_type").Inc()
		writeJSON(w, http.StatusBadRequest, oauthError{Error: "unsupported_grant_type", Description: "The grant type " + gt + " is not supported."})
		return
	}
	clientID := requestClientID(r)
	if !b.checkClientAuth(w, r, limitToken, clientID) {
		return
	}
	held := &heldOps{}
	check := &secretCheck{}
	ctx := withReadCache(context.WithValue(context.WithValue(r.Context(), heldKey{}, held), secretCheckKey{}, check))
	sess := newSession()
	ar, err := b.provider.NewAccessRequest(ctx, r, sess)
	if check.done {
		b.clientAuthResult(r, clientID, check.ok)
	}
	if err != nil {
		failed := append(held.ops, held.onFailure...)
		if herr := b.fstore.tokens.ApplyTokenOps(r.Context(), failed...); herr != nil &&
			!errors.Is(herr, storage.ErrConflict) && !errors.Is(herr, storage.ErrNotFound) {
			b.log.Warn("spending a code whose PKCE check failed", "err", herr)
		}
		b.writeTokenError(w, r, ar, err)
		return
	}
	// One store transaction for everything the response writes (with
	// the sign-in of a token exchange).
	var flush func(context.Context, []storage.TokenOp) error
	if held.login != nil {
		flush = func(ctx context.Context, ops []storage.TokenOp) error {
			c := *held.login
			c.TokenOps = ops
			return b.store.CompleteLogin(ctx, c)
		}
	}
	var resp fosite.AccessResponder
	err = b.fstore.inTxWith(ctx, flush, func(ctx context.Context) (err error) {
		if err := b.fstore.apply(ctx, held.ops...); err != nil {
			return err
		}
		resp, err = b.provider.NewAccessResponse(ctx, ar)
		return err
	})
	if err != nil {
		b.writeTokenError(w, r, ar, err)
		return
	}
	for _, gt := range ar.GetGrantTypes() {
		b.metrics.tokens.WithLabelValues(gt).Inc()
	}
	b.provider.WriteAccessResponse(ctx, w, ar, resp)
}

func (b *Broker) writeTokenError(w http.ResponseWriter, r *http.Request, ar fosite.AccessRequester, err error) {
	err = mapStorageError(err)
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.CodeField >= 500 {
		b.log.Warn("token endpoint unavailable", "error", rfc.ErrorField, "cause", errorCause(err), "debug", rfc.DebugField)
	} else {
		b.log.Info("token request refused", "error", rfc.ErrorField, "hint", rfc.HintField)
	}
	b.metrics.httpErrors.WithLabelValues("token", rfc.ErrorField).Inc()
	if ar == nil {
		ar = fosite.NewAccessRequest(newSession())
	}
	b.provider.WriteAccessError(r.Context(), w, ar, rfc)
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

func (b *Broker) handleRevoke(w http.ResponseWriter, r *http.Request) {
	clientID := requestClientID(r)
	if !b.checkClientAuth(w, r, "revoke", clientID) {
		return
	}
	check := &secretCheck{}
	err := b.provider.NewRevocationRequest(context.WithValue(r.Context(), secretCheckKey{}, check), r)
	if check.done {
		b.clientAuthResult(r, clientID, check.ok)
	}
	if err != nil {
		b.metrics.httpErrors.WithLabelValues("revoke", fosite.ErrorToRFC6749Error(err).ErrorField).Inc()
	}
	b.provider.WriteRevocationResponse(r.Context(), w, err)
}

// handleIntrospect answers RFC 7662 for authenticated confidential
// clients only (HTTP Basic or client_secret_post), about the tokens issued
// to that client (any token with introspect_any).
func (b *Broker) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if ok {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if !b.checkClientAuth(w, r, "introspect", id) {
		return
	}
	c, found := b.clients.get(id)
	authenticated := found && !c.Public && secret != "" && b.clients.hasher.Compare(r.Context(), c.Secret, []byte(secret)) == nil
	b.clientAuthResult(r, id, authenticated)
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
	tu, ar, err := b.provider.IntrospectToken(r.Context(), token, use, newSession())
	if err != nil {
		var rfc *fosite.RFC6749Error
		if errors.As(err, &rfc) && rfc.ErrorField == fosite.ErrServerError.ErrorField || errors.Is(err, errStoreFailed) {
			b.log.Error("introspection failure", "cause", errorCause(err))
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
		"iss":        b.issuerString(),
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
func (b *Broker) bearer(r *http.Request, form bool) (fosite.AccessRequester, error) {
	token, err := bearerToken(r, form)
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, fosite.ErrRequestUnauthorized.WithHint("A bearer access token is required.")
	}
	_, ar, err := b.provider.IntrospectToken(r.Context(), token, fosite.AccessToken, newSession())
	if err != nil {
		return nil, err
	}
	return ar, nil
}

func (b *Broker) writeBearerError(w http.ResponseWriter, err error) {
	if errors.Is(err, errTokenInQuery) {
		const desc = "Send the access token in the Authorization header, not in the URL."
		w.Header().Set("WWW-Authenticate", `Bearer realm="qiao", error="invalid_request", error_description="`+desc+`"`)
		writeJSON(w, http.StatusBadRequest, oauthError{Error: "invalid_request", Description: desc})
		return
	}
	rfc := fosite.ErrorToRFC6749Error(err)
	if rfc.ErrorField == fosite.ErrServerError.ErrorField || errors.Is(err, errStoreFailed) {
		b.log.Error("bearer token check failed", "cause", errorCause(err))
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="qiao", error="invalid_token"`)
	writeJSON(w, http.StatusUnauthorized, oauthError{Error: "invalid_token", Description: "The access token is missing, invalid, expired or revoked."})
}

// handleUserinfo returns the profile claims the token's scopes allow.
func (b *Broker) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	ar, err := b.bearer(r, true)
	if err != nil {
		b.writeBearerError(w, err)
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
		p, err := b.identity.profile(r.Context(), sub)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			b.log.Error("userinfo: loading profile", "err", err)
			writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
			return
		}
		p.addTo(claims)
	}
	writeJSON(w, http.StatusOK, claims)
}
