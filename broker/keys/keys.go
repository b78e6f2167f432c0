// Package keys manages the broker's token-signing keys: it keeps one
// signing key for each configured algorithm, generates them, keeps their
// private halves sealed in the store, rotates each algorithm's key on
// schedule (once across replicas, by the store's compare-and-swap on that
// algorithm's key), publishes the current and recently retired public
// keys as a JWKS, and signs and verifies JWTs for fosite.
//
// Keys are parsed once when loaded and kept in memory; signing costs a
// JSON encoding and the signature itself.
package keys

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/qiaoidp/qiao/broker/seal"
	"github.com/qiaoidp/qiao/storage"
)

// Supported signing algorithms.
const (
	RS256 = "RS256"
	ES256 = "ES256"
	EdDSA = "EdDSA"
)

// Defaults for Options.
const (
	DefaultAlgorithm   = RS256
	DefaultRotateEvery = 720 * time.Hour
	DefaultMaxTokenTTL = 24 * time.Hour
	// ClockSkew is added to MaxTokenTTL when a retired key's expiry is
	// set, for verifiers whose clocks run behind.
	ClockSkew = 5 * time.Minute
	// MaxPublishLead is how long before it starts signing a new key is
	// published in the JWKS (less for short rotation periods: half of
	// RotateEvery), so that every replica serves it, and every relying
	// party that caches the JWKS for up to 5 minutes has it, before the
	// first token it signs.
	MaxPublishLead = 10 * time.Minute
	rsaBits        = 2048
)

// Store is the part of storage.Keys the manager uses.
type Store interface {
	ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error)
	RotateSigningKey(ctx context.Context, prevID string, next storage.SigningKey, prevExpiresAt time.Time) error
	RetireSigningKey(ctx context.Context, id string, retiredAt, expiresAt time.Time) error
}

// Options configure a Manager. Zero fields take the defaults.
type Options struct {
	// Algorithm is RS256 (the default), ES256 or EdDSA: the algorithm
	// tokens are signed with unless the signer is asked for another.
	Algorithm string
	// Algorithms are further algorithms to keep a signing key for (an
	// OpenID provider must offer RS256; a client may ask for another).
	// Keys of any other algorithm are retired.
	Algorithms []string
	// RotateEvery is the age at which the signing key is replaced (720h
	// by default).
	RotateEvery time.Duration
	// MaxTokenTTL is the longest life of any token a key signs (the
	// larger of the ID and access token lifetimes; 24h by default). A
	// retired key stays published for MaxTokenTTL + ClockSkew after it
	// was retired.
	MaxTokenTTL time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives rotations and Run's errors; nil means
	// slog.Default().
	Logger *slog.Logger
}

// Errors the manager returns (wrapped).
var (
	// ErrInvalidToken: a token is malformed, signed by an unknown or
	// expired key, or its signature does not verify.
	ErrInvalidToken = errors.New("keys: invalid token")
	// ErrNoKey: the manager holds no signing key (it failed to load).
	ErrNoKey = errors.New("keys: no signing key")
)

// Manager holds the signing keys. It is safe for concurrent use.
type Manager struct {
	store       Store
	sealer      *seal.Sealer
	alg         string
	algs        []string // alg first, then Options.Algorithms
	rotateEvery time.Duration
	maxTokenTTL time.Duration
	now         func() time.Time
	log         *slog.Logger

	refreshMu sync.Mutex // one Refresh at a time in this process
	state     atomic.Pointer[keyState]
}

// key is one loaded key. Immutable once built.
type key struct {
	id        string
	alg       string
	createdAt time.Time
	retiredAt time.Time
	expiresAt time.Time // zero while it signs
	public    jose.JSONWebKey
	publicKey crypto.PublicKey // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
	// Set only on the current key.
	private crypto.Signer
	signer  jose.Signer // signs with typ JWT and this kid
}

// keyState is an immutable snapshot of the loaded keys.
type keyState struct {
	current *key            // the default algorithm's signing key
	signing map[string]*key // each kept algorithm's signing key
	keys    []*key          // newest first, signing keys included
	byID    map[string]*key
}

// published reports whether k may still verify tokens at now.
func (k *key) published(now time.Time) bool {
	return k.expiresAt.IsZero() || now.Before(k.expiresAt)
}

// lead is how long before its activation the next key is published.
func (m *Manager) lead() time.Duration {
	return min(m.rotateEvery/2, MaxPublishLead)
}

// NewManager loads the keys from store, generates the first key of each
// algorithm that has none, rotates at once a key older than RotateEvery,
// and retires the keys of algorithms no longer kept.
func NewManager(ctx context.Context, store Store, sealer *seal.Sealer, opts Options) (*Manager, error) {
	if store == nil || sealer == nil {
		return nil, errors.New("keys: a store and a sealer are required")
	}
	m := &Manager{
		store:       store,
		sealer:      sealer,
		alg:         opts.Algorithm,
		rotateEvery: opts.RotateEvery,
		maxTokenTTL: opts.MaxTokenTTL,
		now:         opts.Now,
		log:         opts.Logger,
	}
	if m.alg == "" {
		m.alg = DefaultAlgorithm
	}
	m.algs = []string{m.alg}
	for _, a := range opts.Algorithms {
		if !slices.Contains(m.algs, a) {
			m.algs = append(m.algs, a)
		}
	}
	for _, a := range m.algs {
		if !supported(a) {
			return nil, fmt.Errorf("keys: unsupported algorithm %q (want RS256, ES256 or EdDSA)", a)
		}
	}
	switch {
	case m.rotateEvery == 0:
		m.rotateEvery = DefaultRotateEvery
	case m.rotateEvery < 0:
		return nil, fmt.Errorf("keys: negative rotation period %s", m.rotateEvery)
	}
	switch {
	case m.maxTokenTTL == 0:
		m.maxTokenTTL = DefaultMaxTokenTTL
	case m.maxTokenTTL < 0:
		return nil, fmt.Errorf("keys: negative max token TTL %s", m.maxTokenTTL)
	}
	if m.now == nil {
		m.now = time.Now
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if err := m.Refresh(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

func supported(alg string) bool {
	return alg == RS256 || alg == ES256 || alg == EdDSA
}

// Algorithm reports the algorithm of the current signing key.
func (m *Manager) Algorithm() string {
	if st := m.state.Load(); st != nil && st.current != nil {
		return st.current.alg
	}
	return m.alg
}

// Algorithms reports the algorithms the manager keeps a signing key for,
// the default first.
func (m *Manager) Algorithms() []string {
	return slices.Clone(m.algs)
}

// Refresh reloads the keys from the store and rotates each algorithm's
// key if its rotation is due. It is safe to call concurrently and from
// several replicas: of concurrent rotations of one algorithm exactly one
// wins in the store and the others reload it.
func (m *Manager) Refresh(ctx context.Context) error {
	m.refreshMu.Lock()
	defer m.refreshMu.Unlock()

	stored, err := m.store.ListSigningKeys(ctx)
	if err != nil {
		return fmt.Errorf("keys: list signing keys: %w", err)
	}
	now := m.now()
	changed := false
	for _, alg := range m.algs {
		ok, err := m.refreshAlg(ctx, alg, ofAlg(stored, alg), now)
		if err != nil {
			return err
		}
		changed = changed || ok
	}
	// A key of an algorithm no longer kept stops signing now and stays
	// published until the tokens it signed have expired.
	for _, k := range stored {
		if k.RetiredAt.IsZero() && !slices.Contains(m.algs, k.Algorithm) {
			err := m.store.RetireSigningKey(ctx, k.ID, now, now.Add(m.maxTokenTTL+ClockSkew))
			switch {
			case err == nil:
				m.log.InfoContext(ctx, "signing key retired: its algorithm is no longer configured", "kid", k.ID, "alg", k.Algorithm)
				changed = true
			case errors.Is(err, storage.ErrConflict), errors.Is(err, storage.ErrNotFound):
				changed = true // another replica did it
			default:
				return fmt.Errorf("keys: retire signing key: %w", err)
			}
		}
	}
	if changed {
		if stored, err = m.store.ListSigningKeys(ctx); err != nil {
			return fmt.Errorf("keys: list signing keys: %w", err)
		}
	}
	st, err := m.load(ctx, stored, now)
	if err != nil {
		return err
	}
	m.state.Store(st)
	return nil
}

// ofAlg returns the stored keys of alg.
func ofAlg(stored []storage.SigningKey, alg string) []storage.SigningKey {
	var out []storage.SigningKey
	for _, k := range stored {
		if k.Algorithm == alg {
			out = append(out, k)
		}
	}
	return out
}

// refreshAlg rotates alg's key if it has none or its rotation is due;
// stored are alg's keys. It reports whether the store changed.
func (m *Manager) refreshAlg(ctx context.Context, alg string, stored []storage.SigningKey, now time.Time) (bool, error) {
	cur, next := currentOf(stored, now), nextOf(stored, now)
	// The store's compare-and-swap is on the algorithm's newest unretired
	// key: the published next key if there is one, else the current key.
	prevID := ""
	switch {
	case next != nil:
		prevID = next.ID
	case cur != nil:
		prevID = cur.ID
	}
	activate, reason := now, ""
	switch {
	case cur == nil:
		reason = "no signing key"
	case next == nil && !now.Before(cur.CreatedAt.Add(m.rotateEvery-m.lead())):
		// Publish the next key now; it signs from when the current one
		// is due (or at once, if that has passed).
		reason = "key due for rotation"
		if due := cur.CreatedAt.Add(m.rotateEvery); due.After(now) {
			activate = due
		}
	}
	if reason == "" {
		return false, nil
	}
	rotated, err := m.rotate(ctx, alg, prevID, activate)
	if err != nil {
		return false, err
	}
	if rotated != "" {
		m.log.InfoContext(ctx, "signing key rotated", "kid", rotated, "alg", alg, "previous_kid", prevID,
			"reason", reason, "signs_from", activate.UTC().Format(time.RFC3339))
	}
	return true, nil
}

// currentOf returns the key that signs at now: the newest one already
// active (created at or before now) and not yet retired or expired; nil if
// none.
func currentOf(stored []storage.SigningKey, now time.Time) *storage.SigningKey {
	var cur *storage.SigningKey
	for i := range stored {
		k := &stored[i]
		if k.CreatedAt.After(now) || (!k.RetiredAt.IsZero() && !now.Before(k.RetiredAt)) ||
			(!k.ExpiresAt.IsZero() && !now.Before(k.ExpiresAt)) {
			continue
		}
		if cur == nil || k.CreatedAt.After(cur.CreatedAt) {
			cur = k
		}
	}
	if cur == nil {
		// Nothing active yet (a first key another replica created a moment
		// "later" by our clock): the next key signs at once.
		cur = nextOf(stored, now)
	}
	return cur
}

// nextOf returns the published key that will sign from a later time, or
// nil.
func nextOf(stored []storage.SigningKey, now time.Time) *storage.SigningKey {
	for i := range stored {
		if k := &stored[i]; k.CreatedAt.After(now) && k.RetiredAt.IsZero() {
			return k
		}
	}
	return nil
}

// rotate generates a key of alg that signs from activate, if prevID is
// still the id of alg's newest unretired key; the previous key retires at
// activate. It returns the new kid, or "" if another rotation won.
func (m *Manager) rotate(ctx context.Context, alg, prevID string, activate time.Time) (string, error) {
	next, err := generate(alg, m.sealer, activate)
	if err != nil {
		return "", err
	}
	err = m.store.RotateSigningKey(ctx, prevID, next, activate.Add(m.maxTokenTTL+ClockSkew))
	switch {
	case errors.Is(err, storage.ErrConflict):
		return "", nil
	case err != nil:
		return "", fmt.Errorf("keys: rotate signing key: %w", err)
	}
	return next.ID, nil
}

// generate makes a fresh key: its private JWK sealed (aad: the kid) and
// its public JWK, with a thumbprint kid.
func generate(alg string, sealer *seal.Sealer, now time.Time) (storage.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, rsaBits)
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		err = fmt.Errorf("unsupported algorithm %q", alg)
	}
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("keys: generate %s key: %w", alg, err)
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Algorithm: alg, Use: "sig"}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("keys: thumbprint: %w", err)
	}
	kid := base64.RawURLEncoding.EncodeToString(thumb)
	pub.KeyID = kid
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("keys: encode public key: %w", err)
	}
	full := jose.JSONWebKey{Key: priv, KeyID: kid, Algorithm: alg, Use: "sig"}
	privJSON, err := full.MarshalJSON()
	if err != nil {
		return storage.SigningKey{}, fmt.Errorf("keys: encode private key: %w", err)
	}
	return storage.SigningKey{
		ID:         kid,
		Algorithm:  alg,
		PrivateKey: sealer.Seal(privJSON, []byte(kid)),
		PublicJWK:  pubJSON,
		CreatedAt:  now,
	}, nil
}

// load builds a snapshot from the stored keys, reusing keys already
// parsed. Expired keys are left out. Each kept algorithm's current key has
// its private half opened; a current key that cannot be opened is an
// error (the secret differs from the one that sealed it), a retired key
// whose public half cannot be parsed is left out and logged.
func (m *Manager) load(ctx context.Context, stored []storage.SigningKey, now time.Time) (*keyState, error) {
	old := m.state.Load()
	currentIDs := map[string]string{} // kid -> alg, of the signing keys
	for _, alg := range m.algs {
		cur := currentOf(ofAlg(stored, alg), now)
		if cur == nil {
			return nil, fmt.Errorf("%w for %s", ErrNoKey, alg)
		}
		currentIDs[cur.ID] = alg
	}
	st := &keyState{byID: make(map[string]*key, len(stored)), signing: map[string]*key{}}
	for i := range stored {
		sk := &stored[i]
		if !sk.ExpiresAt.IsZero() && !now.Before(sk.ExpiresAt) {
			continue
		}
		_, isCurrent := currentIDs[sk.ID]
		var prev *key
		if old != nil {
			prev = old.byID[sk.ID]
		}
		k, err := m.loadKey(sk, prev, isCurrent)
		if err != nil {
			if isCurrent {
				return nil, err
			}
			m.log.ErrorContext(ctx, "retired signing key left out of the JWKS", "kid", sk.ID, "err", err)
			continue
		}
		if _, dup := st.byID[k.id]; dup {
			continue
		}
		st.byID[k.id] = k
		st.keys = append(st.keys, k)
		if isCurrent {
			st.signing[k.alg] = k
		}
	}
	st.current = st.signing[m.alg]
	return st, nil
}

// loadKey parses one stored key, or reuses prev when it was parsed
// before and nothing that matters changed.
func (m *Manager) loadKey(sk *storage.SigningKey, prev *key, isCurrent bool) (*key, error) {
	if prev != nil && prev.alg == sk.Algorithm && (!isCurrent || prev.private != nil) {
		if prev.retiredAt.Equal(sk.RetiredAt) && prev.expiresAt.Equal(sk.ExpiresAt) {
			return prev, nil
		}
		k := *prev
		k.retiredAt, k.expiresAt = sk.RetiredAt, sk.ExpiresAt
		if !isCurrent {
			k.private, k.signer = nil, nil
		}
		return &k, nil
	}
	if !supported(sk.Algorithm) {
		return nil, fmt.Errorf("keys: key %s: unsupported algorithm %q", sk.ID, sk.Algorithm)
	}
	k := &key{
		id:        sk.ID,
		alg:       sk.Algorithm,
		createdAt: sk.CreatedAt,
		retiredAt: sk.RetiredAt,
		expiresAt: sk.ExpiresAt,
	}
	if err := k.public.UnmarshalJSON(sk.PublicJWK); err != nil {
		return nil, fmt.Errorf("keys: key %s: parse public key: %w", sk.ID, err)
	}
	if k.public.KeyID != sk.ID || !k.public.IsPublic() || !keyMatchesAlg(k.public.Key, sk.Algorithm) {
		return nil, fmt.Errorf("keys: key %s: public key does not match its id or algorithm", sk.ID)
	}
	k.publicKey = k.public.Key
	if isCurrent {
		if err := k.openPrivate(m.sealer, sk.PrivateKey); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// openPrivate unseals and parses the private key, checks it matches the
// public key, and builds the cached go-jose signer.
func (k *key) openPrivate(sealer *seal.Sealer, sealed []byte) error {
	raw, err := sealer.Open(sealed, []byte(k.id))
	if err != nil {
		return fmt.Errorf("keys: key %s: open private key (was the secret changed?): %w", k.id, err)
	}
	var jwk jose.JSONWebKey
	if err := jwk.UnmarshalJSON(raw); err != nil {
		return fmt.Errorf("keys: key %s: parse private key: %w", k.id, err)
	}
	priv, ok := jwk.Key.(crypto.Signer)
	if !ok || jwk.IsPublic() || !keyMatchesAlg(priv.Public(), k.alg) {
		return fmt.Errorf("keys: key %s: stored private key is not a %s key", k.id, k.alg)
	}
	if rk, ok := priv.(*rsa.PrivateKey); ok {
		if err := rk.Validate(); err != nil {
			return fmt.Errorf("keys: key %s: invalid RSA key: %w", k.id, err)
		}
		rk.Precompute()
	}
	if !samePublic(priv.Public(), k.publicKey) {
		return fmt.Errorf("keys: key %s: private key does not match the published key", k.id)
	}
	opts := (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.id)
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: priv}, opts)
	if err != nil {
		return fmt.Errorf("keys: key %s: signer: %w", k.id, err)
	}
	k.private, k.signer = priv, s
	return nil
}

func keyMatchesAlg(pub any, alg string) bool {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		return alg == RS256 && p.N.BitLen() >= rsaBits
	case *ecdsa.PublicKey:
		return alg == ES256 && p.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == EdDSA && len(p) == ed25519.PublicKeySize
	}
	return false
}

func samePublic(a, b crypto.PublicKey) bool {
	eq, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && eq.Equal(b)
}

// Run calls Refresh every interval until ctx is done, logging errors. A
// replica keeps signing with the key it loaded last, so every should be
// well under ClockSkew (a minute is a good value; 0 or less means one
// minute): then a token it signs after another replica rotated still
// expires before its key leaves the JWKS.
func (m *Manager) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = time.Minute
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.Refresh(ctx); err != nil && ctx.Err() == nil {
				m.log.ErrorContext(ctx, "signing key refresh failed", "err", err)
			}
		}
	}
}

// JWKS returns the public keys of every algorithm's current key, of a
// next key published ahead of its rotation, and of every retired key that
// has not expired, newest first.
func (m *Manager) JWKS() jose.JSONWebKeySet {
	st := m.state.Load()
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	if st == nil {
		return set
	}
	now := m.now()
	for _, k := range st.keys {
		if k.published(now) {
			set.Keys = append(set.Keys, k.public)
		}
	}
	return set
}

// lookup returns the published key kid, or an error naming why not.
func (m *Manager) lookup(kid, alg string) (*key, error) {
	st := m.state.Load()
	if st == nil {
		return nil, ErrNoKey
	}
	if kid == "" {
		return nil, fmt.Errorf("%w: no kid in header", ErrInvalidToken)
	}
	k, ok := st.byID[kid]
	if !ok || !k.published(m.now()) {
		return nil, fmt.Errorf("%w: unknown signing key", ErrInvalidToken)
	}
	if alg != k.alg {
		return nil, fmt.Errorf("%w: algorithm %q does not match the key's", ErrInvalidToken, alg)
	}
	return k, nil
}

var allAlgs = []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA}

// Verify checks a compact JWS against the published key its kid names
// and returns its claims (JSON numbers as float64). It does not check
// exp or any other claim: it serves id_token_hint at logout, which may
// be expired.
func (m *Manager) Verify(ctx context.Context, token string) (map[string]any, error) {
	jws, err := jose.ParseSignedCompact(token, allAlgs)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed", ErrInvalidToken)
	}
	if len(jws.Signatures) != 1 {
		return nil, fmt.Errorf("%w: want one signature", ErrInvalidToken)
	}
	h := jws.Signatures[0].Protected
	k, err := m.lookup(h.KeyID, h.Algorithm)
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(k.publicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: signature does not verify", ErrInvalidToken)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil || claims == nil {
		return nil, fmt.Errorf("%w: claims are not a JSON object", ErrInvalidToken)
	}
	return claims, nil
}
