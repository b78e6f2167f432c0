package broker

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/ory/fosite"

	"github.com/qiaoidp/qiao/storage"
)

// tokenStore is the subset of storage the fosite adapter needs.
type tokenStore interface {
	ApplyTokenOps(ctx context.Context, ops ...storage.TokenOp) error
	GetToken(ctx context.Context, kind storage.TokenKind, signature string) (storage.TokenRecord, error)
}

// fositeStore adapts storage.Tokens and the configured clients to the
// storage interfaces of fosite's handlers. Writes made between BeginTX and
// Commit are buffered and applied in one storage transaction, so a
// code redemption or a refresh rotation is all or nothing, and its
// compare-and-swap (OpDeactivate) decides which of concurrent requests
// wins.
type fositeStore struct {
	tokens  tokenStore
	clients *clientRegistry
	now     func() time.Time
}

type txKey struct{}

// txBuffer collects a transaction's writes. Transactions nest: the broker
// opens one around a whole token or authorization response, and fosite's
// handlers open their own inside it; only the outermost commit writes.
type txBuffer struct {
	ops   []storage.TokenOp
	depth int
}

func (s *fositeStore) apply(ctx context.Context, ops ...storage.TokenOp) error {
	if tx, ok := ctx.Value(txKey{}).(*txBuffer); ok {
		tx.ops = append(tx.ops, ops...)
		return nil
	}
	return s.tokens.ApplyTokenOps(ctx, ops...)
}

// BeginTX implements fosite's storage.Transactional.
func (s *fositeStore) BeginTX(ctx context.Context) (context.Context, error) {
	if tx, ok := ctx.Value(txKey{}).(*txBuffer); ok {
		tx.depth++
		return ctx, nil
	}
	return context.WithValue(ctx, txKey{}, &txBuffer{}), nil
}

// Commit applies the buffered writes atomically (at the outermost level).
func (s *fositeStore) Commit(ctx context.Context) error {
	tx, ok := ctx.Value(txKey{}).(*txBuffer)
	if !ok {
		return errors.New("commit without a transaction")
	}
	if tx.depth > 0 {
		tx.depth--
		return nil
	}
	ops := tx.ops
	tx.ops = nil
	if err := s.tokens.ApplyTokenOps(ctx, ops...); err != nil {
		if errors.Is(err, storage.ErrConflict) || errors.Is(err, storage.ErrNotFound) {
			// Another request used the same code or refresh token first
			// (ErrConflict), or revoked its whole family on detecting a
			// reuse (ErrNotFound): this request lost the race.
			return fmt.Errorf("%w: %w", fosite.ErrInactiveToken, err)
		}
		return err
	}
	return nil
}

// Rollback drops the buffered writes. An inner rollback leaves them to the
// outer transaction, which sees the error and rolls back too.
func (s *fositeStore) Rollback(ctx context.Context) error {
	tx, ok := ctx.Value(txKey{}).(*txBuffer)
	if !ok {
		return nil
	}
	if tx.depth > 0 {
		tx.depth--
		return nil
	}
	tx.ops = nil
	return nil
}

// inTx runs fn inside one transaction and commits it if fn succeeds.
func (s *fositeStore) inTx(ctx context.Context, fn func(ctx context.Context) error) error {
	ctx, _ = s.BeginTX(ctx)
	if err := fn(ctx); err != nil {
		_ = s.Rollback(ctx)
		return err
	}
	if err := s.Commit(ctx); err != nil {
		return fosite.ErrServerError.WithWrap(err)
	}
	return nil
}

// ---------------------------------------------------------- clients

func (s *fositeStore) GetClient(_ context.Context, id string) (fosite.Client, error) {
	c, ok := s.clients.get(id)
	if !ok {
		return nil, fosite.ErrNotFound
	}
	return c, nil
}

// Clients have no keys, so JWT client assertions never verify; there is no
// JTI to remember.
func (s *fositeStore) ClientAssertionJWTValid(context.Context, string) error { return nil }
func (s *fositeStore) SetClientAssertionJWT(context.Context, string, time.Time) error {
	return nil
}

// ----------------------------------------------------- serialization

// storedRequest is a fosite.Requester as it is kept in TokenRecord.Data.
type storedRequest struct {
	ID                string          `json:"id"`
	RequestedAt       time.Time       `json:"requested_at"`
	ClientID          string          `json:"client_id"`
	RequestedScope    []string        `json:"scope,omitempty"`
	GrantedScope      []string        `json:"granted_scope,omitempty"`
	RequestedAudience []string        `json:"audience,omitempty"`
	GrantedAudience   []string        `json:"granted_audience,omitempty"`
	Form              url.Values      `json:"form,omitempty"`
	Session           json.RawMessage `json:"session"`
}

func (s *fositeStore) record(kind storage.TokenKind, signature string, r fosite.Requester, expiryOf fosite.TokenType) (storage.TokenRecord, error) {
	sess, err := json.Marshal(r.GetSession())
	if err != nil {
		return storage.TokenRecord{}, fmt.Errorf("encoding session: %w", err)
	}
	data, err := json.Marshal(storedRequest{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt(),
		ClientID:          r.GetClient().GetID(),
		RequestedScope:    r.GetRequestedScopes(),
		GrantedScope:      r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              r.GetRequestForm(),
		Session:           sess,
	})
	if err != nil {
		return storage.TokenRecord{}, fmt.Errorf("encoding request: %w", err)
	}
	now := s.now()
	exp := r.GetSession().GetExpiresAt(expiryOf)
	if exp.IsZero() {
		// fosite leaves a zero expiry for tokens that do not expire; keep
		// such records for a long but finite time so GC can remove them.
		exp = now.Add(10 * 365 * 24 * time.Hour)
	}
	rec := storage.TokenRecord{
		Kind:      kind,
		Signature: signature,
		RequestID: r.GetID(),
		ClientID:  r.GetClient().GetID(),
		Subject:   r.GetSession().GetSubject(),
		Active:    true,
		Data:      data,
		CreatedAt: now,
		ExpiresAt: exp,
	}
	// The identity that signed in, when it is known (both parts, or
	// neither: an unknown identity is revoked with any unbind).
	if s, ok := r.GetSession().(*Session); ok && s.IDP != "" && s.IdentitySubject != "" {
		rec.IdentityConnector, rec.IdentitySubject = s.IDP, s.IdentitySubject
	}
	return rec, nil
}

// errStoreFailed marks a read that failed in the store (not a missing
// token). fosite reports any failed read during token introspection as an
// invalid token; the bearer and introspection endpoints look for this to
// answer 503 instead, so that an outage does not look like a revocation.
var errStoreFailed = errors.New("store failure")

func (s *fositeStore) load(ctx context.Context, kind storage.TokenKind, signature string, session fosite.Session) (*fosite.Request, bool, error) {
	rec, err := s.tokens.GetToken(ctx, kind, signature)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, false, fosite.ErrNotFound
	} else if err != nil {
		return nil, false, fmt.Errorf("%w: %w", errStoreFailed, err)
	}
	var sr storedRequest
	if err := json.Unmarshal(rec.Data, &sr); err != nil {
		return nil, false, fmt.Errorf("decoding stored request: %w", err)
	}
	client, ok := s.clients.get(sr.ClientID)
	if !ok {
		// The client was removed from the configuration: its grants die with it.
		return nil, false, fosite.ErrNotFound
	}
	if session == nil {
		session = newSession()
	}
	if err := json.Unmarshal(sr.Session, session); err != nil {
		return nil, false, fmt.Errorf("decoding stored session: %w", err)
	}
	return &fosite.Request{
		ID:                sr.ID,
		RequestedAt:       sr.RequestedAt,
		Client:            client,
		RequestedScope:    sr.RequestedScope,
		GrantedScope:      sr.GrantedScope,
		RequestedAudience: sr.RequestedAudience,
		GrantedAudience:   sr.GrantedAudience,
		Form:              sr.Form,
		Session:           session,
	}, rec.Active, nil
}

func (s *fositeStore) create(ctx context.Context, kind storage.TokenKind, signature string, r fosite.Requester, expiryOf fosite.TokenType) error {
	rec, err := s.record(kind, signature, r, expiryOf)
	if err != nil {
		return err
	}
	return s.apply(ctx, storage.TokenOp{Type: storage.OpCreate, Kind: kind, Record: rec})
}

func (s *fositeStore) delete(ctx context.Context, kind storage.TokenKind, signature string) error {
	return s.apply(ctx, storage.TokenOp{Type: storage.OpDelete, Kind: kind, Signature: signature})
}

// codeKey turns a raw authorization code (fosite keys OIDC sessions by the
// code itself, not its signature) into a key that reveals nothing.
func codeKey(code string) string {
	sum := sha256.Sum256([]byte(code))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ------------------------------------------------------ oauth2 core

func (s *fositeStore) CreateAuthorizeCodeSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, storage.KindAuthorizeCode, signature, r, fosite.AuthorizeCode)
}

func (s *fositeStore) GetAuthorizeCodeSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	r, active, err := s.load(ctx, storage.KindAuthorizeCode, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return r, fosite.ErrInvalidatedAuthorizeCode
	}
	return r, nil
}

func (s *fositeStore) InvalidateAuthorizeCodeSession(ctx context.Context, signature string) error {
	return s.apply(ctx, storage.TokenOp{Type: storage.OpDeactivate, Kind: storage.KindAuthorizeCode, Signature: signature})
}

func (s *fositeStore) CreateAccessTokenSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, storage.KindAccessToken, signature, r, fosite.AccessToken)
}

func (s *fositeStore) GetAccessTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	r, active, err := s.load(ctx, storage.KindAccessToken, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return nil, fosite.ErrNotFound
	}
	return r, nil
}

func (s *fositeStore) DeleteAccessTokenSession(ctx context.Context, signature string) error {
	return s.delete(ctx, storage.KindAccessToken, signature)
}

func (s *fositeStore) CreateRefreshTokenSession(ctx context.Context, signature, _ string, r fosite.Requester) error {
	return s.create(ctx, storage.KindRefreshToken, signature, r, fosite.RefreshToken)
}

func (s *fositeStore) GetRefreshTokenSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	r, active, err := s.load(ctx, storage.KindRefreshToken, signature, session)
	if err != nil {
		return nil, err
	}
	if !active {
		return r, fosite.ErrInactiveToken
	}
	return r, nil
}

func (s *fositeStore) DeleteRefreshTokenSession(ctx context.Context, signature string) error {
	return s.delete(ctx, storage.KindRefreshToken, signature)
}

// RotateRefreshToken retires the used refresh token (kept, inactive, so
// that a later reuse is detected) and the family's access tokens.
func (s *fositeStore) RotateRefreshToken(ctx context.Context, requestID, signature string) error {
	return s.apply(ctx,
		storage.TokenOp{Type: storage.OpDeactivate, Kind: storage.KindRefreshToken, Signature: signature},
		storage.TokenOp{Type: storage.OpRevokeRequest, Kind: storage.KindAccessToken, RequestID: requestID},
	)
}

func (s *fositeStore) RevokeRefreshToken(ctx context.Context, requestID string) error {
	return s.apply(ctx, storage.TokenOp{Type: storage.OpRevokeRequest, Kind: storage.KindRefreshToken, RequestID: requestID})
}

func (s *fositeStore) RevokeAccessToken(ctx context.Context, requestID string) error {
	return s.apply(ctx, storage.TokenOp{Type: storage.OpRevokeRequest, Kind: storage.KindAccessToken, RequestID: requestID})
}

// ------------------------------------------------------------ PKCE

func (s *fositeStore) CreatePKCERequestSession(ctx context.Context, signature string, r fosite.Requester) error {
	return s.create(ctx, storage.KindPKCE, signature, r, fosite.AuthorizeCode)
}

func (s *fositeStore) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	r, _, err := s.load(ctx, storage.KindPKCE, signature, session)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// heldOps collects writes that the token endpoint applies later, with the
// response's transaction; heldKey puts it in the request's context.
type heldOps struct{ ops []storage.TokenOp }

type heldKey struct{}

func (s *fositeStore) DeletePKCERequestSession(ctx context.Context, signature string) error {
	op := storage.TokenOp{Type: storage.OpDelete, Kind: storage.KindPKCE, Signature: signature}
	if held, ok := ctx.Value(heldKey{}).(*heldOps); ok {
		if _, inTx := ctx.Value(txKey{}).(*txBuffer); !inTx {
			held.ops = append(held.ops, op)
			return nil
		}
	}
	return s.apply(ctx, op)
}

// ------------------------------------------------------------ OIDC

func (s *fositeStore) CreateOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) error {
	return s.create(ctx, storage.KindOIDC, codeKey(code), r, fosite.AuthorizeCode)
}

func (s *fositeStore) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	req, _, err := s.load(ctx, storage.KindOIDC, codeKey(code), r.GetSession())
	if err != nil {
		return nil, err
	}
	return req, nil
}

func (s *fositeStore) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	return s.delete(ctx, storage.KindOIDC, codeKey(code))
}
