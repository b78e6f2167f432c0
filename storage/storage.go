// Package storage defines what the broker needs from a persistent store.
//
// The store knows nothing about HTTP, OAuth flows or providers: it keeps
// users, their identities, opaque token records, signing keys, browser
// sessions, pending upstream logins, audit events, leases and a small
// cache. Backends live in sub-packages (sqlite, postgres) and are held to
// the same behaviour by storagetest.RunTests.
package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors every backend returns (wrapped with %w where context helps), so
// that callers can test them with errors.Is.
var (
	// ErrNotFound: the row does not exist (or has expired).
	ErrNotFound = errors.New("storage: not found")
	// ErrAlreadyExists: a unique key (user id, identity, token signature,
	// key id, ...) is taken.
	ErrAlreadyExists = errors.New("storage: already exists")
	// ErrConflict: a compare-and-swap precondition did not hold (a token
	// already deactivated, a signing key rotated by someone else, ...).
	ErrConflict = errors.New("storage: conflict")
	// ErrLastIdentity: unbinding would leave the user with no identity.
	ErrLastIdentity = errors.New("storage: last identity")
	// ErrStateUsed: CompleteLogin found its upstream state already spent
	// (a replayed callback). It is also an ErrAlreadyExists.
	ErrStateUsed = fmt.Errorf("%w: upstream state already used", ErrAlreadyExists)
	// ErrConnectorTaken: BindIdentity found the user already has an
	// identity of that connector (a user has at most one per connector).
	// It is also an ErrAlreadyExists.
	ErrConnectorTaken = fmt.Errorf("%w: the user already has an identity of this connector", ErrAlreadyExists)
)

// MergeConflictError is MergeUsers refusing because both users have an
// identity of the same connector (a user has at most one identity per
// connector). It is also ErrConflict.
type MergeConflictError struct {
	Connectors []string // the connector ids both users have, sorted
}

func (e *MergeConflictError) Error() string {
	return fmt.Sprintf("storage: both users have an identity of connector %s", strings.Join(e.Connectors, ", "))
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *MergeConflictError) Is(target error) bool { return target == ErrConflict }

// Merge says which user MergeUsers absorbs into which.
type Merge struct {
	From string // the user that disappears
	Into string // the user that stays and receives From's identities
	// Only, when set, is the one identity From must have: if From has
	// any other (or not this one), nothing changes and ErrConflict is
	// returned. The broker sets it when a person merges by proving
	// control of that identity alone.
	Only *IdentityKey
}

// OnlyHolds reports whether ids, From's identities, satisfy m.Only:
// exactly that one identity (always true when Only is nil).
func (m Merge) OnlyHolds(ids []Identity) bool {
	if m.Only == nil {
		return true
	}
	return len(ids) == 1 && ids[0].ConnectorID == m.Only.ConnectorID && ids[0].Subject == m.Only.Subject
}

// IdentityKey names an identity.
type IdentityKey struct {
	ConnectorID string
	Subject     string
}

// Storage is everything a backend provides. The broker's components each
// take the smaller interface they need.
type Storage interface {
	Users
	Profiles
	Tokens
	Keys
	Sessions
	Logins
	Audit
	Leases
	Cache
	Completions

	// Ping reports whether the store is reachable (for /readyz).
	Ping(ctx context.Context) error
	// GarbageCollect deletes every row whose expiry is before now, and
	// the audit events older than auditBefore (zero: keep them all), and
	// reports how many of each kind went.
	GarbageCollect(ctx context.Context, now, auditBefore time.Time) (GCResult, error)
	// Close releases the store's resources.
	Close() error
}

// GCResult counts the rows one garbage collection removed.
type GCResult struct {
	Tokens   int64
	Sessions int64
	Logins   int64
	Keys     int64
	Cache    int64
	Leases   int64
	Audit    int64
}

// ---------------------------------------------------------------- users

// User is the broker's own account. Its ID is the `sub` apps see.
type User struct {
	ID        string
	CreatedAt time.Time
}

// Identity is one provider account bound to a user, keyed by
// (ConnectorID, Subject) and unique across all users.
type Identity struct {
	ConnectorID   string // the connector's configured id
	Subject       string // the provider's per-app subject (openid, uid)
	UserID        string
	ConnectorType string // wechat, wechat_mp, wechat_miniprogram, qq, weibo, ...
	// UnionID is an optional linking index, namespaced by the caller
	// (e.g. "wechat:o6_bmasdasdsad6_2sgVt7hMZOPfL"); empty when none.
	UnionID     string
	DisplayName string
	Picture     string
	// RealProfile is false when DisplayName/Picture are a provider's
	// placeholder (WeChat's "微信用户" and grey avatar).
	RealProfile bool
	// Secret is opaque data the caller encrypts (e.g. a mini-program
	// session_key). The store keeps it as given.
	Secret     []byte
	BoundAt    time.Time
	LastUsedAt time.Time

	// OwnName and OwnPicture are what the identity's user set themselves
	// (see Profiles): filled in by GetIdentity, ListIdentities and
	// FindIdentitiesByUnionID, ignored by the methods that write.
	OwnName    string
	OwnPicture bool
}

// Users keeps users and their identities.
type Users interface {
	// CreateUser inserts a user together with its first identity, in one
	// transaction. ErrAlreadyExists if the user id or the identity
	// (ConnectorID, Subject) exists; then nothing is written.
	CreateUser(ctx context.Context, u User, first Identity) error
	GetUser(ctx context.Context, id string) (User, error)
	// ListUsers returns up to limit users with ID > after, ordered by ID.
	ListUsers(ctx context.Context, after string, limit int) ([]User, error)
	// DeleteUser removes the user, its identities, its browser sessions
	// and every token record whose Subject is the user id, in one
	// transaction. ErrNotFound if there is no such user.
	DeleteUser(ctx context.Context, id string) error

	GetIdentity(ctx context.Context, connectorID, subject string) (Identity, error)
	// ListIdentities returns a user's identities ordered by BoundAt.
	ListIdentities(ctx context.Context, userID string) ([]Identity, error)
	// FindIdentitiesByUnionID returns every identity carrying unionID,
	// ordered by BoundAt.
	FindIdentitiesByUnionID(ctx context.Context, unionID string) ([]Identity, error)
	// BindIdentity attaches a new identity to an existing user.
	// ErrNotFound if the user does not exist; ErrAlreadyExists if the
	// identity is bound (to anyone); ErrConnectorTaken if the user already
	// has another identity of that connector. Atomic: of two concurrent
	// binds of one identity, or of two identities of one connector to one
	// user, exactly one succeeds.
	BindIdentity(ctx context.Context, id Identity) error
	// UpdateIdentity rewrites the mutable fields (UnionID, DisplayName,
	// Picture, RealProfile, Secret, LastUsedAt) of an existing identity.
	// ErrNotFound if it does not exist.
	UpdateIdentity(ctx context.Context, id Identity) error
	// UnbindIdentity removes the user's identity of that connector and,
	// in the same transaction, every browser session and token record
	// that came through it: sessions of the user with that ConnectorID
	// and the identity's subject (or no recorded subject), and token
	// records of the user whose IdentityConnector and IdentitySubject
	// are the identity's (or whose IdentityConnector is empty: issued
	// before identities were recorded). ErrNotFound if the user has
	// none; ErrLastIdentity if it is the user's only identity (nothing
	// changes). Atomic.
	UnbindIdentity(ctx context.Context, userID, connectorID string) error
	// RevokeUserGrants removes every browser session of the user and
	// every token record whose Subject is the user id, in one
	// transaction ("sign out everywhere"); the user and its identities
	// stay. No user, or nothing to remove, is not an error.
	RevokeUserGrants(ctx context.Context, userID string) error
	// MergeUsers moves every identity of m.From to m.Into and deletes
	// m.From with its browser sessions and every token record whose
	// Subject is m.From, in one transaction, and returns the identities
	// it moved. ErrNotFound if either user does not exist;
	// *MergeConflictError (which is ErrConflict) if both have an identity
	// of the same connector; ErrConflict if m.From == m.Into or m.Only
	// does not hold. On any error nothing changes.
	MergeUsers(ctx context.Context, m Merge) ([]Identity, error)
}

// ------------------------------------------------------------- profiles

// UserProfile is what a person set themselves; it wins over the
// providers' profile. The zero value: nothing set.
type UserProfile struct {
	Name        string // "" : none
	Picture     []byte // nil: none
	PictureType string // image/png, image/jpeg or image/webp
	UpdatedAt   time.Time
}

// Profiles keeps the profiles people set themselves, with their user:
// DeleteUser removes it too.
type Profiles interface {
	// GetProfile returns the user's own profile (the zero value when
	// nothing is set). ErrNotFound if there is no such user.
	GetProfile(ctx context.Context, userID string) (UserProfile, error)
	// SetProfileName sets the name ("" clears it) and UpdatedAt.
	// ErrNotFound if there is no such user.
	SetProfileName(ctx context.Context, userID, name string, at time.Time) error
	// SetProfilePicture sets the picture and its type (nil clears both)
	// and UpdatedAt. ErrNotFound if there is no such user.
	SetProfilePicture(ctx context.Context, userID string, picture []byte, contentType string, at time.Time) error
}

// --------------------------------------------------------------- tokens

// TokenKind tells token records apart; a signature is unique per kind.
type TokenKind string

const (
	KindAuthorizeCode TokenKind = "authorize_code"
	KindAccessToken   TokenKind = "access_token"
	KindRefreshToken  TokenKind = "refresh_token"
	KindPKCE          TokenKind = "pkce"
	KindOIDC          TokenKind = "oidc"
)

// TokenRecord is one stored grant: an opaque serialized request under the
// HMAC signature of a code or token. RequestID ties together every record
// of one grant family (a code, the tokens it produced, and all their
// rotations).
type TokenRecord struct {
	Kind      TokenKind
	Signature string
	RequestID string
	ClientID  string
	Subject   string // the user id, empty for none
	Active    bool
	Data      []byte
	CreatedAt time.Time
	ExpiresAt time.Time

	// IdentityConnector and IdentitySubject are the identity (connector
	// id, provider subject) whose sign-in started the grant; empty when
	// unknown.
	IdentityConnector string
	IdentitySubject   string
}

// TokenOpType is what one TokenOp does.
type TokenOpType int

const (
	// OpCreate inserts Record (ErrAlreadyExists on a duplicate
	// (Kind, Signature)).
	OpCreate TokenOpType = iota + 1
	// OpDeactivate sets Active=false on (Kind, Signature) only if it is
	// active: ErrConflict if it is already inactive, ErrNotFound if absent.
	OpDeactivate
	// OpDelete removes (Kind, Signature); absent is not an error.
	OpDelete
	// OpRevokeRequest removes every record of Kind with RequestID.
	OpRevokeRequest
)

// TokenOp is one change applied by Tokens.ApplyTokenOps.
type TokenOp struct {
	Type      TokenOpType
	Kind      TokenKind
	Signature string      // OpDeactivate, OpDelete
	RequestID string      // OpRevokeRequest
	Record    TokenRecord // OpCreate
}

// Validate rejects an op that cannot be applied as given.
func (op TokenOp) Validate() error {
	switch op.Type {
	case OpCreate:
		if op.Record.Kind == "" || op.Record.Signature == "" {
			return errors.New("create needs a record with a kind and a signature")
		}
	case OpDeactivate, OpDelete:
		if op.Kind == "" || op.Signature == "" {
			return errors.New("op needs a kind and a signature")
		}
	case OpRevokeRequest:
		if op.Kind == "" || op.RequestID == "" {
			return errors.New("revoke needs a kind and a request id")
		}
	default:
		return fmt.Errorf("unknown op type %d", op.Type)
	}
	return nil
}

// Tokens keeps token records.
type Tokens interface {
	// ApplyTokenOps applies ops in order in one transaction: all or none.
	// The first failing op's error is returned (wrapped) and nothing is
	// written.
	ApplyTokenOps(ctx context.Context, ops ...TokenOp) error
	// GetToken returns the record, active or not. ErrNotFound if absent or
	// expired.
	GetToken(ctx context.Context, kind TokenKind, signature string) (TokenRecord, error)
}

// ----------------------------------------------------------------- keys

// SigningKey is one token-signing key. PrivateKey is opaque to the store
// (the broker encrypts it).
type SigningKey struct {
	ID         string // kid
	Algorithm  string // RS256, ES256, EdDSA
	PrivateKey []byte
	PublicJWK  []byte // the public JWK as JSON, served in the JWKS
	CreatedAt  time.Time
	// RetiredAt is zero while the key signs; set when a newer key
	// replaced it.
	RetiredAt time.Time
	// ExpiresAt is zero while the key signs; once retired it is the time
	// after which no token it signed can still be valid, and GC removes it.
	ExpiresAt time.Time
}

// Keys keeps signing keys.
type Keys interface {
	// ListSigningKeys returns every key not yet collected, newest first.
	ListSigningKeys(ctx context.Context) ([]SigningKey, error)
	// RotateSigningKey makes next the signing key of its algorithm, in one
	// transaction, if and only if the current key of next.Algorithm (the
	// newest unretired key of that algorithm) has the id prevID (""
	// meaning there is none yet): each algorithm rotates on its own. The
	// previous key is retired at next.CreatedAt and expires at
	// prevExpiresAt; keys of other algorithms are untouched. ErrConflict if
	// another rotation won; ErrAlreadyExists if next.ID is taken.
	RotateSigningKey(ctx context.Context, prevID string, next SigningKey, prevExpiresAt time.Time) error
	// RetireSigningKey retires the unretired key id at retiredAt, to
	// expire at expiresAt, with no successor (its algorithm is no longer
	// used). ErrConflict if it is already retired, ErrNotFound if there is
	// no such key.
	RetireSigningKey(ctx context.Context, id string, retiredAt, expiresAt time.Time) error
}

// ------------------------------------------------------------- sessions

// Session is the broker's browser SSO session. ID is what the cookie
// carries (the broker may store a hash of it).
type Session struct {
	ID          string
	UserID      string
	ConnectorID string // the connector of the login that created it
	AuthTime    time.Time
	ExpiresAt   time.Time
	Data        []byte // opaque to the store

	// IdentitySubject is the provider subject of the identity that
	// signed in (with ConnectorID); empty when unknown.
	IdentitySubject string
}

// Sessions keeps browser sessions.
type Sessions interface {
	CreateSession(ctx context.Context, s Session) error
	// GetSession: ErrNotFound if absent or expired.
	GetSession(ctx context.Context, id string) (Session, error)
	// UpdateSession rewrites UserID, ConnectorID, IdentitySubject,
	// AuthTime, ExpiresAt and Data. ErrNotFound if absent.
	UpdateSession(ctx context.Context, s Session) error
	DeleteSession(ctx context.Context, id string) error
}

// --------------------------------------------------------------- logins

// PendingLogin is an upstream login in flight, keyed by the upstream
// state value. Single use.
type PendingLogin struct {
	State       string
	ConnectorID string
	// Binding is a value derived from a browser cookie; the callback must
	// present the same one.
	Binding   string
	Data      []byte // opaque to the store
	CreatedAt time.Time
	ExpiresAt time.Time
}

// Logins keeps pending upstream logins. The broker no longer stores
// them (the browser's sealed login cookie carries a login in flight);
// the table now holds the spent states of LoginCompletion.
type Logins interface {
	CreateLogin(ctx context.Context, l PendingLogin) error
	// TakeLogin returns and deletes the login atomically: of concurrent
	// takers exactly one gets it. ErrNotFound if absent, taken or expired.
	TakeLogin(ctx context.Context, state string) (PendingLogin, error)
}

// ---------------------------------------------------------- completions

// LoginCompletion is everything a finished sign-in writes, applied by
// CompleteLogin in one transaction (one round trip on PostgreSQL): all
// or nothing. Every part is optional.
type LoginCompletion struct {
	// State is the upstream state value the sign-in spends. The store
	// keeps it (a row in the logins table with empty data) until
	// StateExpiresAt; a second completion with the same state fails with
	// ErrStateUsed and writes nothing. StateConnector is recorded with it.
	State          string
	StateConnector string
	StateExpiresAt time.Time
	// UpdateIdentity rewrites an existing identity as UpdateIdentity
	// does: ErrNotFound (nothing written) if it is gone.
	UpdateIdentity *Identity
	// Session is created (ErrAlreadyExists if its id is taken);
	// DeleteSession, if not empty, is the id of a session removed.
	Session       *Session
	DeleteSession string
	// Audit events are appended.
	Audit []AuditEvent
	// TokenOps are applied as ApplyTokenOps applies them.
	TokenOps []TokenOp
}

// Validate refuses a completion no store may apply: a token op that
// does not validate, or a session with an empty id. Stores call it
// before they write anything.
func (c LoginCompletion) Validate() error {
	for i, op := range c.TokenOps {
		if err := op.Validate(); err != nil {
			return fmt.Errorf("token op %d: %w", i, err)
		}
	}
	if c.Session != nil && c.Session.ID == "" {
		return errors.New("session with an empty id")
	}
	if c.State != "" && c.StateExpiresAt.IsZero() {
		// A spent state without an expiry would never be collected.
		return errors.New("state without an expiry")
	}
	return nil
}

// Completions finishes sign-ins.
type Completions interface {
	// CompleteLogin applies c in one transaction, in the order State,
	// UpdateIdentity, DeleteSession, Session, Audit, TokenOps; the first
	// failure is returned (wrapped) and nothing is written.
	CompleteLogin(ctx context.Context, c LoginCompletion) error
}

// Counts is how much work a store has sent to its database since it was
// opened: round trips (on SQLite: statements, since there is no network)
// and durable commits (write transactions, explicit or implicit). Tests
// and benchmarks read it to hold the login path to its budget.
type Counts struct {
	RoundTrips int64
	Commits    int64
}

// Sub returns c - o.
func (c Counts) Sub(o Counts) Counts {
	return Counts{RoundTrips: c.RoundTrips - o.RoundTrips, Commits: c.Commits - o.Commits}
}

// ---------------------------------------------------------------- audit

// AuditEvent records one thing that happened.
type AuditEvent struct {
	ID          int64 // assigned by the store
	Time        time.Time
	Action      string // login, bind, unbind, bind_conflict, admin_unbind, admin_delete, ...
	UserID      string
	ConnectorID string
	ClientID    string
	IP          string
	Result      string // success, failure, refused, ...
	Detail      string
}

// AuditFilter selects audit events; zero fields match everything.
type AuditFilter struct {
	UserID string
	Since  time.Time // inclusive
	Until  time.Time // exclusive
	Limit  int       // 0: no limit
}

// Audit keeps the audit log.
type Audit interface {
	AppendAudit(ctx context.Context, e AuditEvent) error
	// ListAudit returns matching events, newest first.
	ListAudit(ctx context.Context, f AuditFilter) ([]AuditEvent, error)
}

// --------------------------------------------------------------- leases

// Leases give one holder at a time a named lease (for key rotation,
// garbage collection, refreshing a provider token), across replicas.
type Leases interface {
	// AcquireLease takes or renews the lease name for holder until now+ttl.
	// It returns true if holder now has it, false if another holder's lease
	// has not expired.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error)
	// ReleaseLease gives the lease up if holder has it.
	ReleaseLease(ctx context.Context, name, holder string) error
}

// ---------------------------------------------------------------- cache

// Cache keeps small values shared across replicas (e.g. a provider's app
// access token). Values are opaque; the caller encrypts secrets.
type Cache interface {
	// PutCache sets key to value until expiresAt.
	PutCache(ctx context.Context, key string, value []byte, expiresAt time.Time) error
	// GetCache returns the value and its expiry. ErrNotFound if absent or
	// expired.
	GetCache(ctx context.Context, key string) ([]byte, time.Time, error)
}
