package broker

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"
	fstorage "github.com/ory/fosite/storage"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

const (
	grantTokenExchange   = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
)

// subjectTokenTyper is a code connector that says which RFC 8693
// subject_token_type its codes come as (the mini-program's
// urn:qiao:params:oauth:token-type:wechat-js-code).
type subjectTokenTyper interface {
	SubjectTokenType() string
}

// exchangeConnector is the connector issuer names when it takes codes of
// tokenType: a code connector whose SubjectTokenType is tokenType.
func (b *Broker) exchangeConnector(issuer, tokenType string) (*Connector, CodeConnector, bool) {
	conn, ok := b.connectors[issuer]
	if !ok {
		return nil, nil, false
	}
	x, isCode := conn.code()
	t, typed := conn.Impl.(subjectTokenTyper)
	if !isCode || !typed || t.SubjectTokenType() != tokenType {
		return nil, nil, false
	}
	return conn, x, true
}

// tokenExchangeHandler is the mini-program login (RFC 8693): a wx.login()
// code, as subject_token, becomes the same tokens a web login gives.
type tokenExchangeHandler struct {
	b        *Broker
	strategy *compose.CommonStrategy
	ids      *openid.IDTokenHandleHelper
}

func (b *Broker) tokenExchangeFactory(strategy *compose.CommonStrategy) compose.Factory {
	return func(fosite.Configurator, interface{}, interface{}) interface{} {
		return &tokenExchangeHandler{b: b, strategy: strategy, ids: &openid.IDTokenHandleHelper{IDTokenStrategy: b.oidc}}
	}
}

var _ fosite.TokenEndpointHandler = (*tokenExchangeHandler)(nil)

func (h *tokenExchangeHandler) CanSkipClientAuth(context.Context, fosite.AccessRequester) bool {
	return false
}

func (h *tokenExchangeHandler) CanHandleTokenEndpointRequest(_ context.Context, r fosite.AccessRequester) bool {
	return r.GetGrantTypes().ExactOne(grantTokenExchange)
}

func (h *tokenExchangeHandler) HandleTokenEndpointRequest(ctx context.Context, r fosite.AccessRequester) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	b := h.b
	c, ok := r.GetClient().(*client)
	if !ok || !c.GetGrantTypes().Has(grantTokenExchange) {
		return fosite.ErrUnauthorizedClient.WithHint("The client may not use the token exchange grant.")
	}
	form := r.GetRequestForm()
	tokenTypes := b.subjectTokenTypes()
	tokenType := form.Get("subject_token_type")
	if !contains(tokenTypes, tokenType) {
		return fosite.ErrInvalidRequest.WithHintf("Unsupported subject_token_type; use %s.", strings.Join(tokenTypes, " or "))
	}
	issuer := form.Get("subject_issuer")
	conn, exchanger, ok := b.exchangeConnector(issuer, tokenType)
	if !ok || !c.allows(issuer) {
		return fosite.ErrInvalidRequest.WithHint("The subject_issuer is not a mini-program connector this client may use.")
	}
	code := form.Get("subject_token")
	if code == "" || len(code) > 512 {
		return fosite.ErrInvalidRequest.WithHint("The subject_token (the wx.login code) is missing or malformed.")
	}
	// As /auth does (fosite checks it there): a scope the client may not
	// request, such as "account" without account_api, is refused.
	for _, s := range r.GetRequestedScopes() {
		if !b.fconf.GetScopeStrategy(ctx)(c.GetScopes(), s) {
			return fosite.ErrInvalidScope.WithHintf("The client is not allowed to request scope '%s'.", s)
		}
	}
	for _, s := range r.GetRequestedScopes() {
		for _, ok := range scopesSupported {
			if s == ok {
				r.GrantScope(s)
			}
		}
	}

	ident, err := exchanger.ExchangeCode(ctx, code)
	if err != nil {
		return b.loginFailed(ctx, conn, c.ID, err).rfc(err)
	}
	var phone string
	if pc := form.Get("phone_code"); pc != "" && r.GetGrantedScopes().Has("phone") {
		pcn, ok := conn.Impl.(PhoneConnector)
		if !ok {
			return fosite.ErrInvalidRequest.WithHint("This connector cannot fetch phone numbers.")
		}
		if phone, err = pcn.PhoneNumber(ctx, pc); err != nil {
			return b.loginFailed(ctx, conn, c.ID, err).rfc(err)
		}
	}
	userID, known, update, err := b.resolveIdentity(ctx, conn, ident)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	now := b.now().UTC()
	sess, err := b.newUserSession(ctx, userID, conn.ID, ident.Subject, now, now, r.GetGrantedScopes(), known)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	signFor(sess, c)
	if phone != "" {
		sess.Claims.Extra["phone_number"] = phone
		sess.Claims.Extra["phone_number_verified"] = true
	}
	sess.SetExpiresAt(fosite.AccessToken, now.Add(b.cfg.Tokens.AccessTokenTTL).Round(time.Second))
	if r.GetGrantedScopes().Has("offline_access") {
		sess.SetExpiresAt(fosite.RefreshToken, now.Add(b.cfg.Tokens.RefreshTokenTTL).Round(time.Second))
	}
	r.SetSession(sess)
	b.metrics.logins.WithLabelValues(conn.ID, string(outcomeSuccess)).Inc()
	login := storage.LoginCompletion{
		UpdateIdentity: update,
		Audit:          []storage.AuditEvent{b.auditEvent(ctx, storage.AuditEvent{Action: string(actionLogin), UserID: userID, ConnectorID: conn.ID, ClientID: c.ID, Result: string(outcomeSuccess)})},
	}
	if held, ok := ctx.Value(heldKey{}).(*heldOps); ok {
		// Written with the tokens, in the token response's transaction.
		held.login = &login
		return nil
	}
	if err := b.store.CompleteLogin(ctx, login); err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	return nil
}

// subjectTokenTypes are the subject_token_types of the configured code
// connectors, each once, in configuration order.
func (b *Broker) subjectTokenTypes() []string {
	out := []string{}
	for _, k := range b.order {
		if t, ok := k.Impl.(subjectTokenTyper); ok && !contains(out, t.SubjectTokenType()) {
			out = append(out, t.SubjectTokenType())
		}
	}
	return out
}

// loginFailed counts, audits and logs a failed mini-program code exchange
// and returns how to answer it.
func (b *Broker) loginFailed(ctx context.Context, conn *Connector, clientID string, err error) failure {
	f := classifyCode(err)
	result := string(f.Result)
	attrs := []any{"connector", conn.ID, "type", conn.Type, "result", result, "err", err.Error()}
	var pe *connectors.ProviderError
	if errors.As(err, &pe) {
		attrs = append(attrs, "provider", pe.Provider, "endpoint", pe.Endpoint, "code", pe.Code)
	}
	b.log.Warn("mini-program login failed", attrs...)
	b.metrics.logins.WithLabelValues(conn.ID, result).Inc()
	b.audit(ctx, nil, storage.AuditEvent{Action: string(actionLogin), ConnectorID: conn.ID, ClientID: clientID, Result: string(result)})
	return f
}

func (h *tokenExchangeHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	b := h.b
	access, accessSig, err := h.strategy.GenerateAccessToken(ctx, r)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	var refresh, refreshSig string
	if r.GetGrantedScopes().Has("offline_access") {
		if refresh, refreshSig, err = h.strategy.GenerateRefreshToken(ctx, r); err != nil {
			return fosite.ErrServerError.WithWrap(err)
		}
	}
	ctx, _ = fstorage.MaybeBeginTx(ctx, b.fstore)
	stored := r.Sanitize(nil)
	if err := b.fstore.CreateAccessTokenSession(ctx, accessSig, stored); err != nil {
		_ = b.fstore.Rollback(ctx)
		return fosite.ErrServerError.WithWrap(err)
	}
	if refreshSig != "" {
		if err := b.fstore.CreateRefreshTokenSession(ctx, refreshSig, accessSig, stored); err != nil {
			_ = b.fstore.Rollback(ctx)
			return fosite.ErrServerError.WithWrap(err)
		}
	}
	if err := b.fstore.Commit(ctx); err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	resp.SetAccessToken(access)
	resp.SetTokenType("Bearer")
	resp.SetExpiresIn(time.Until(r.GetSession().GetExpiresAt(fosite.AccessToken)).Round(time.Second))
	resp.SetScopes(r.GetGrantedScopes())
	resp.SetExtra("issued_token_type", tokenTypeAccessToken)
	if refresh != "" {
		resp.SetExtra("refresh_token", refresh)
	}
	if r.GetGrantedScopes().Has("openid") {
		if sess, ok := r.GetSession().(*grantSession); ok {
			sess.Claims.AccessTokenHash = h.ids.GetAccessTokenHash(ctx, r, resp)
		}
		if err := h.ids.IssueExplicitIDToken(ctx, b.cfg.Tokens.IDTokenTTL, r, resp); err != nil {
			return err
		}
	}
	return nil
}
