package broker

import (
	"context"
	"strings"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"
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

// identityResolver finds (or creates) the user of a provider identity.
type identityResolver interface {
	resolveIdentity(ctx context.Context, conn *Connector, ident connectors.Identity) (userID string, known *profile, update *storage.Identity, err error)
}

// loginCompleter writes what a sign-in changes.
type loginCompleter interface {
	CompleteLogin(ctx context.Context, c storage.LoginCompletion) error
}

// exchangeTokenStore keeps the tokens the exchange issues, in one
// transaction.
type exchangeTokenStore interface {
	fstorage.Transactional
	CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error
	CreateRefreshTokenSession(ctx context.Context, signature, accessSignature string, r fosite.Requester) error
}

// tokenExchangeHandler is the mini-program login (RFC 8693): a wx.login()
// code, as subject_token, becomes the same tokens a web login gives. Like
// fosite's own grant handlers it holds what it uses.
type tokenExchangeHandler struct {
	// Connectors are the configured connectors by ID; TokenTypes the
	// subject_token_types their code connectors take, each once.
	Connectors map[string]*Connector
	TokenTypes []string

	Identities identityResolver
	Sessions   *grantSessions
	Logins     loginCompleter
	Tokens     exchangeTokenStore

	AccessTokens  oauth2.AccessTokenStrategy
	RefreshTokens oauth2.RefreshTokenStrategy
	IDTokens      *openid.IDTokenHandleHelper
	ScopeStrategy fosite.ScopeStrategy

	AccessTokenTTL, RefreshTokenTTL, IDTokenTTL time.Duration
	Now                                         func() time.Time
	Events                                      *recorder
}

// factory hands the handler to compose.Compose.
func (h *tokenExchangeHandler) factory() compose.Factory {
	return func(fosite.Configurator, interface{}, interface{}) interface{} { return h }
}

var _ fosite.TokenEndpointHandler = (*tokenExchangeHandler)(nil)

// exchangeConnector is the connector issuer names when it takes codes of
// tokenType: a code connector whose SubjectTokenType is tokenType.
func (h *tokenExchangeHandler) exchangeConnector(issuer, tokenType string) (*Connector, CodeConnector, bool) {
	conn, ok := h.Connectors[issuer]
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
	c, ok := r.GetClient().(*client)
	if !ok || !c.GetGrantTypes().Has(grantTokenExchange) {
		return fosite.ErrUnauthorizedClient.WithHint("The client may not use the token exchange grant.")
	}
	form := r.GetRequestForm()
	tokenTypes := h.TokenTypes
	tokenType := form.Get("subject_token_type")
	if !contains(tokenTypes, tokenType) {
		return fosite.ErrInvalidRequest.WithHintf("Unsupported subject_token_type; use %s.", strings.Join(tokenTypes, " or "))
	}
	issuer := form.Get("subject_issuer")
	conn, exchanger, ok := h.exchangeConnector(issuer, tokenType)
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
		if !h.ScopeStrategy(c.GetScopes(), s) {
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
		return h.Events.codeLoginFailed(ctx, conn, c.ID, err).rfc(err)
	}
	var phone string
	if pc := form.Get("phone_code"); pc != "" && r.GetGrantedScopes().Has("phone") {
		pcn, ok := conn.Impl.(PhoneConnector)
		if !ok {
			return fosite.ErrInvalidRequest.WithHint("This connector cannot fetch phone numbers.")
		}
		if phone, err = pcn.PhoneNumber(ctx, pc); err != nil {
			return h.Events.codeLoginFailed(ctx, conn, c.ID, err).rfc(err)
		}
	}
	userID, known, update, err := h.Identities.resolveIdentity(ctx, conn, ident)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	now := h.Now().UTC()
	sess, err := h.Sessions.new(ctx, userID, conn.ID, ident.Subject, now, now, r.GetGrantedScopes(), known)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	signFor(sess, c)
	if phone != "" {
		sess.Claims.Extra["phone_number"] = phone
		sess.Claims.Extra["phone_number_verified"] = true
	}
	sess.SetExpiresAt(fosite.AccessToken, now.Add(h.AccessTokenTTL).Round(time.Second))
	if r.GetGrantedScopes().Has("offline_access") {
		sess.SetExpiresAt(fosite.RefreshToken, now.Add(h.RefreshTokenTTL).Round(time.Second))
	}
	r.SetSession(sess)
	h.Events.metrics.logins.WithLabelValues(conn.ID, string(outcomeSuccess)).Inc()
	login := storage.LoginCompletion{
		UpdateIdentity: update,
		Audit:          []storage.AuditEvent{h.Events.auditEvent(ctx, storage.AuditEvent{Action: string(actionLogin), UserID: userID, ConnectorID: conn.ID, ClientID: c.ID, Result: string(outcomeSuccess)})},
	}
	if held, ok := ctx.Value(heldKey{}).(*heldOps); ok {
		// Written with the tokens, in the token response's transaction.
		held.login = &login
		return nil
	}
	if err := h.Logins.CompleteLogin(ctx, login); err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	return nil
}

// subjectTokenTypes are the subject_token_types of the code connectors
// in order, each once.
func subjectTokenTypes(order []*Connector) []string {
	out := []string{}
	for _, k := range order {
		if t, ok := k.Impl.(subjectTokenTyper); ok && !contains(out, t.SubjectTokenType()) {
			out = append(out, t.SubjectTokenType())
		}
	}
	return out
}

func (h *tokenExchangeHandler) PopulateTokenEndpointResponse(ctx context.Context, r fosite.AccessRequester, resp fosite.AccessResponder) error {
	if !h.CanHandleTokenEndpointRequest(ctx, r) {
		return fosite.ErrUnknownRequest
	}
	access, accessSig, err := h.AccessTokens.GenerateAccessToken(ctx, r)
	if err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	var refresh, refreshSig string
	if r.GetGrantedScopes().Has("offline_access") {
		if refresh, refreshSig, err = h.RefreshTokens.GenerateRefreshToken(ctx, r); err != nil {
			return fosite.ErrServerError.WithWrap(err)
		}
	}
	ctx, _ = fstorage.MaybeBeginTx(ctx, h.Tokens)
	stored := r.Sanitize(nil)
	if err := h.Tokens.CreateAccessTokenSession(ctx, accessSig, stored); err != nil {
		_ = h.Tokens.Rollback(ctx)
		return fosite.ErrServerError.WithWrap(err)
	}
	if refreshSig != "" {
		if err := h.Tokens.CreateRefreshTokenSession(ctx, refreshSig, accessSig, stored); err != nil {
			_ = h.Tokens.Rollback(ctx)
			return fosite.ErrServerError.WithWrap(err)
		}
	}
	if err := h.Tokens.Commit(ctx); err != nil {
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
			sess.Claims.AccessTokenHash = h.IDTokens.GetAccessTokenHash(ctx, r, resp)
		}
		if err := h.IDTokens.IssueExplicitIDToken(ctx, h.IDTokenTTL, r, resp); err != nil {
			return err
		}
	}
	return nil
}
