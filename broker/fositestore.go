package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

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
	// codeSignature is the stored signature of a raw authorization code:
	// fosite keys OIDC sessions by the code, codes by its signature.
	codeSignature func(ctx context.Context, code string) string
}

type txKey struct{}

// txBuffer collects a transaction's writes. Transactions nest: the broker
// opens one around a whole token or authorization response, and fosite's
// handlers open their own inside it; only the outermost commit writes.
type txBuffer struct {
	ops   []storage.TokenOp
	depth int
	// codes are the authorization codes created in this transaction, by
	// signature: their PKCE and OIDC parts join the code's record, which
	// is encoded at commit.
	codes map[string]*codeRecord
	// flush, if set, writes the ops instead of ApplyTokenOps (a sign-in
	// writes its code with the rest of the sign-in).
	flush func(ctx context.Context, ops []storage.TokenOp) error
	// lastSession was encoded as lastSessionJSON by the last record.
	lastSession     fosite.Session
	lastSessionJSON []byte
}

// codeRecord is a code's record being built: ops[op] creates it.
type codeRecord struct {
	op      int
	sr      storedRequest
	session fosite.Session
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
	for _, c := range tx.codes {
		data, err := encodeRequest(&c.sr)
		if err != nil {
			return fmt.Errorf("encoding request: %w", err)
		}
		ops[c.op].Record.Data = data
	}
	tx.codes = nil
	apply := s.tokens.ApplyTokenOps
	if tx.flush != nil {
		apply = func(ctx context.Context, ops ...storage.TokenOp) error { return tx.flush(ctx, ops) }
	}
	if err := apply(ctx, ops...); err != nil {
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
	tx.ops, tx.codes, tx.lastSession, tx.lastSessionJSON = nil, nil, nil, nil
	return nil
}

// inTxWith runs fn inside one transaction and commits it if fn
// succeeds; the commit writes through flush, unless it is nil.
func (s *fositeStore) inTxWith(ctx context.Context, flush func(context.Context, []storage.TokenOp) error, fn func(ctx context.Context) error) error {
	ctx, _ = s.BeginTX(ctx)
	if tx, ok := ctx.Value(txKey{}).(*txBuffer); ok && tx.depth == 0 {
		tx.flush = flush
	}
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
	Form              storedForm      `json:"form,omitempty"`
	Session           json.RawMessage `json:"session"`

	// A code's record (V 2) carries its PKCE and OIDC parts, which
	// differ from the code's only in the form fosite keeps with them.
	V        int        `json:"v,omitempty"`
	HasPKCE  bool       `json:"has_pkce,omitempty"`
	PKCEForm storedForm `json:"pkce_form,omitempty"`
	HasOIDC  bool       `json:"has_oidc,omitempty"`
	OIDCForm storedForm `json:"oidc_form,omitempty"`
}

// storedForm is a request's form, kept as its URL encoding (one JSON
// string, far cheaper to encode and decode than a JSON object of arrays);
// records written before keep the object, which still decodes.
type storedForm url.Values

func (f storedForm) MarshalJSON() ([]byte, error) {
	return json.Marshal(url.Values(f).Encode())
}

func (f *storedForm) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var q string
		if plain, ok := formString(b); ok {
			q = plain
		} else if err := json.Unmarshal(b, &q); err != nil {
			return err
		}
		v, err := url.ParseQuery(q)
		*f = storedForm(v)
		return err
	}
	return json.Unmarshal(b, (*url.Values)(f))
}

// formString reads the JSON string of a form as encodeRequest writes it:
// query-escaped text, whose only JSON escape is the "&" between pairs
// (\u0026). ok is false for anything else, which encoding/json reads.
func formString(b []byte) (string, bool) {
	if len(b) < 2 || b[len(b)-1] != '"' {
		return "", false
	}
	b = b[1 : len(b)-1]
	n := 0 // bytes of the result
	for i := 0; i < len(b); i++ {
		switch c := b[i]; {
		case c == '\\':
			if !bytes.HasPrefix(b[i:], []byte(`\u0026`)) {
				return "", false
			}
			i += len(`\u0026`) - 1
		case c < 0x20 || c == '"' || c >= utf8.RuneSelf:
			return "", false
		}
		n++
	}
	var out strings.Builder
	out.Grow(n)
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' {
			out.WriteByte('&')
			i += len(`\u0026`) - 1
			continue
		}
		out.WriteByte(b[i])
	}
	return out.String(), true
}

func (s *fositeStore) record(ctx context.Context, kind storage.TokenKind, signature string, r fosite.Requester, expiryOf fosite.TokenType) (storage.TokenRecord, error) {
	rec, sr, err := s.recordParts(ctx, kind, signature, r, expiryOf)
	if err != nil {
		return storage.TokenRecord{}, err
	}
	if rec.Data, err = encodeRequest(&sr); err != nil {
		return storage.TokenRecord{}, fmt.Errorf("encoding request: %w", err)
	}
	return rec, nil
}

// recordParts is record with the request not yet encoded.
//
// Within a transaction, a record of the same session as the one before
// (the access and refresh token of one response) reuses its encoding.
func (s *fositeStore) recordParts(ctx context.Context, kind storage.TokenKind, signature string, r fosite.Requester, expiryOf fosite.TokenType) (storage.TokenRecord, storedRequest, error) {
	tx, _ := ctx.Value(txKey{}).(*txBuffer)
	var sess []byte
	if tx != nil && tx.lastSession != nil && tx.lastSession == r.GetSession() {
		sess = tx.lastSessionJSON
	} else {
		var err error
		if sess, err = encodeSession(r.GetSession()); err != nil {
			return storage.TokenRecord{}, storedRequest{}, fmt.Errorf("encoding session: %w", err)
		}
		if tx != nil {
			tx.lastSession, tx.lastSessionJSON = r.GetSession(), sess
		}
	}
	sr := storedRequest{
		ID:                r.GetID(),
		RequestedAt:       r.GetRequestedAt(),
		ClientID:          r.GetClient().GetID(),
		RequestedScope:    r.GetRequestedScopes(),
		GrantedScope:      r.GetGrantedScopes(),
		RequestedAudience: r.GetRequestedAudience(),
		GrantedAudience:   r.GetGrantedAudience(),
		Form:              storedForm(r.GetRequestForm()),
		Session:           sess,
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
		CreatedAt: now,
		ExpiresAt: exp,
	}
	// The identity that signed in, when it is known (both parts, or
	// neither: an unknown identity is revoked with any unbind).
	if s, ok := r.GetSession().(*grantSession); ok && s.IDP != "" && s.IdentitySubject != "" {
		rec.IdentityConnector, rec.IdentitySubject = s.IDP, s.IdentitySubject
	}
	return rec, sr, nil
}

// errStoreFailed marks a read that failed in the store (not a missing
// token). fosite reports any failed read during token introspection as an
// invalid token; the bearer and introspection endpoints look for this to
// answer 503 instead, so that an outage does not look like a revocation.
var errStoreFailed = errors.New("store failure")

// readCache keeps the records one token request read, so that fosite's
// handlers, which read the code up to four times (code twice, PKCE, OIDC),
// cost one read and one decoding; handleToken puts one in the context.
type readCache struct {
	recs map[readKey]*cachedRecord
}

type readKey struct {
	kind storage.TokenKind
	sig  string
}

type cachedRecord struct {
	rec     storage.TokenRecord
	sr      storedRequest
	decoded fosite.Session // the session sr.Session was last decoded into
}

type readCacheKey struct{}

func withReadCache(ctx context.Context) context.Context {
	return context.WithValue(ctx, readCacheKey{}, &readCache{recs: map[readKey]*cachedRecord{}})
}

// read returns the record and its decoded request, from the request's
// cache if it has one.
func (s *fositeStore) read(ctx context.Context, kind storage.TokenKind, signature string) (*cachedRecord, error) {
	cache, _ := ctx.Value(readCacheKey{}).(*readCache)
	if cache != nil {
		if c, ok := cache.recs[readKey{kind, signature}]; ok {
			return c, nil
		}
	}
	rec, err := s.tokens.GetToken(ctx, kind, signature)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fosite.ErrNotFound
	} else if err != nil {
		return nil, fmt.Errorf("%w: %w", errStoreFailed, err)
	}
	c := &cachedRecord{rec: rec}
	if err := json.Unmarshal(rec.Data, &c.sr); err != nil {
		return nil, fmt.Errorf("decoding stored request: %w", err)
	}
	if cache != nil {
		cache.recs[readKey{kind, signature}] = c
	}
	return c, nil
}

func (s *fositeStore) load(ctx context.Context, kind storage.TokenKind, signature string, session fosite.Session) (*fosite.Request, bool, error) {
	c, err := s.read(ctx, kind, signature)
	if err != nil {
		return nil, false, err
	}
	r, err := s.request(c, url.Values(c.sr.Form), session)
	return r, c.rec.Active, err
}

// request builds the fosite request of a read record with form, decoding
// the session into session (a new one if nil) unless it already was.
func (s *fositeStore) request(c *cachedRecord, form url.Values, session fosite.Session) (*fosite.Request, error) {
	client, ok := s.clients.get(c.sr.ClientID)
	if !ok {
		// The client was removed from the configuration: its grants die with it.
		return nil, fosite.ErrNotFound
	}
	if session == nil {
		session = newSession()
	}
	if session != c.decoded {
		if err := json.Unmarshal(c.sr.Session, session); err != nil {
			return nil, fmt.Errorf("decoding stored session: %w", err)
		}
		c.decoded = session
	}
	return &fosite.Request{
		ID:                c.sr.ID,
		RequestedAt:       c.sr.RequestedAt,
		Client:            client,
		RequestedScope:    c.sr.RequestedScope,
		GrantedScope:      c.sr.GrantedScope,
		RequestedAudience: c.sr.RequestedAudience,
		GrantedAudience:   c.sr.GrantedAudience,
		Form:              form,
		Session:           session,
	}, nil
}

// codePart loads the PKCE (pkce true) or OIDC part of the code with this
// signature. found is false when the code's record is of the old layout
// (separate records), which the caller then reads.
func (s *fositeStore) codePart(ctx context.Context, signature string, pkce bool, session fosite.Session) (r *fosite.Request, found bool, err error) {
	c, err := s.read(ctx, storage.KindAuthorizeCode, signature)
	if errors.Is(err, fosite.ErrNotFound) {
		return nil, false, nil
	} else if err != nil {
		return nil, true, err
	}
	if c.sr.V < 2 {
		return nil, false, nil
	}
	has, form := c.sr.HasOIDC, url.Values(c.sr.OIDCForm)
	if pkce {
		has, form = c.sr.HasPKCE, url.Values(c.sr.PKCEForm)
	}
	if !has || !c.rec.Active {
		// A spent code's PKCE and OIDC parts are gone, as their separate
		// records were deleted when it was redeemed.
		return nil, true, fosite.ErrNotFound
	}
	if form == nil {
		form = url.Values{}
	}
	r, err = s.request(c, form, session)
	return r, true, err
}

func (s *fositeStore) create(ctx context.Context, kind storage.TokenKind, signature string, r fosite.Requester, expiryOf fosite.TokenType) error {
	rec, err := s.record(ctx, kind, signature, r, expiryOf)
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

// CreateAuthorizeCodeSession creates the code's record. Inside a
// transaction its PKCE and OIDC parts join it before it is encoded.
func (s *fositeStore) CreateAuthorizeCodeSession(ctx context.Context, signature string, r fosite.Requester) error {
	tx, ok := ctx.Value(txKey{}).(*txBuffer)
	if !ok {
		return s.create(ctx, storage.KindAuthorizeCode, signature, r, fosite.AuthorizeCode)
	}
	rec, sr, err := s.recordParts(ctx, storage.KindAuthorizeCode, signature, r, fosite.AuthorizeCode)
	if err != nil {
		return err
	}
	sr.V = 2
	if tx.codes == nil {
		tx.codes = map[string]*codeRecord{}
	}
	tx.codes[signature] = &codeRecord{op: len(tx.ops), sr: sr, session: r.GetSession()}
	tx.ops = append(tx.ops, storage.TokenOp{Type: storage.OpCreate, Kind: storage.KindAuthorizeCode, Record: rec})
	return nil
}

// joinCode adds a PKCE or OIDC part to a code created in this
// transaction, and reports whether it could (same request session).
func (s *fositeStore) joinCode(ctx context.Context, signature string, r fosite.Requester, pkce bool) bool {
	tx, ok := ctx.Value(txKey{}).(*txBuffer)
	if !ok {
		return false
	}
	c, ok := tx.codes[signature]
	if !ok || c.session != r.GetSession() || c.sr.ID != r.GetID() {
		return false
	}
	if pkce {
		c.sr.HasPKCE, c.sr.PKCEForm = true, storedForm(r.GetRequestForm())
	} else {
		c.sr.HasOIDC, c.sr.OIDCForm = true, storedForm(r.GetRequestForm())
	}
	return true
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
	if s.joinCode(ctx, signature, r, true) {
		return nil
	}
	return s.create(ctx, storage.KindPKCE, signature, r, fosite.AuthorizeCode)
}

func (s *fositeStore) GetPKCERequestSession(ctx context.Context, signature string, session fosite.Session) (fosite.Requester, error) {
	if r, found, err := s.codePart(ctx, signature, true, session); found {
		if err != nil {
			return nil, err
		}
		return r, nil
	}
	r, _, err := s.load(ctx, storage.KindPKCE, signature, session)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// heldOps collects writes that the token endpoint applies later, with the
// response's transaction (ops), or only if the request fails (onFailure);
// heldKey puts it in the request's context.
type heldOps struct {
	ops, onFailure []storage.TokenOp
	// login is a sign-in the request made (the mini-program token
	// exchange), written with the response's tokens.
	login *storage.LoginCompletion
}

type heldKey struct{}

// DeletePKCERequestSession spends the PKCE part of a code once its
// verifier was checked. A code's own record holds the part: a redeemed
// code is deactivated anyway, so the part goes with it; a request that
// fails deactivates the code (as deleting a separate PKCE record made
// the code unusable), so that a verifier cannot be guessed.
func (s *fositeStore) DeletePKCERequestSession(ctx context.Context, signature string) error {
	if cache, ok := ctx.Value(readCacheKey{}).(*readCache); ok {
		if c, ok := cache.recs[readKey{storage.KindAuthorizeCode, signature}]; ok && c.sr.V >= 2 {
			if held, ok := ctx.Value(heldKey{}).(*heldOps); ok {
				held.onFailure = append(held.onFailure, storage.TokenOp{Type: storage.OpDeactivate, Kind: storage.KindAuthorizeCode, Signature: signature})
				return nil
			}
			return s.apply(ctx, storage.TokenOp{Type: storage.OpDeactivate, Kind: storage.KindAuthorizeCode, Signature: signature})
		}
	}
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
	if s.joinCode(ctx, s.codeSignature(ctx, code), r, false) {
		return nil
	}
	return s.create(ctx, storage.KindOIDC, codeKey(code), r, fosite.AuthorizeCode)
}

func (s *fositeStore) GetOpenIDConnectSession(ctx context.Context, code string, r fosite.Requester) (fosite.Requester, error) {
	if req, found, err := s.codePart(ctx, s.codeSignature(ctx, code), false, r.GetSession()); found {
		if err != nil {
			return nil, err
		}
		return req, nil
	}
	req, _, err := s.load(ctx, storage.KindOIDC, codeKey(code), r.GetSession())
	if err != nil {
		return nil, err
	}
	return req, nil
}

// DeleteOpenIDConnectSession spends the OIDC part of a code: nothing to
// do for a code's own record (redeeming deactivates it).
func (s *fositeStore) DeleteOpenIDConnectSession(ctx context.Context, code string) error {
	if cache, ok := ctx.Value(readCacheKey{}).(*readCache); ok {
		if c, ok := cache.recs[readKey{storage.KindAuthorizeCode, s.codeSignature(ctx, code)}]; ok && c.sr.V >= 2 {
			return nil
		}
	}
	return s.delete(ctx, storage.KindOIDC, codeKey(code))
}
