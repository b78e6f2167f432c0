package keys

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"

	"github.com/qiaoidp/qiao/broker/seal"
	"github.com/qiaoidp/qiao/storage"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

var testAlgs = []string{RS256, ES256, EdDSA}

var testSecret = []byte("test-secret-test-secret-test-secret!")

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Now().Truncate(time.Second)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func openStore(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	st, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newStore(t testing.TB) *sqlite.Store {
	t.Helper()
	return openStore(t, filepath.Join(t.TempDir(), "qiao.db"))
}

func newSealer(t testing.TB, secret []byte) *seal.Sealer {
	t.Helper()
	s, err := seal.New(secret, "signing-keys")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newManager(t testing.TB, store Store, opts Options) *Manager {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	m, err := NewManager(context.Background(), store, newSealer(t, testSecret), opts)
	if err != nil {
		t.Fatalf("NewManager: %v", err)
	}
	return m
}

func header(t *testing.T, token string) map[string]any {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func kids(set jose.JSONWebKeySet) []string {
	var ids []string
	for _, k := range set.Keys {
		ids = append(ids, k.KeyID)
	}
	return ids
}

func sign(t *testing.T, m *Manager, claims jwt.MapClaims) string {
	t.Helper()
	tok, _, err := m.Signer().Generate(context.Background(), claims, &jwt.Headers{})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return tok
}

// idTokenClaims are the claims of an ID token valid for an hour from now.
func idTokenClaims(sub string, exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{
		"iss": "https://qiao.example", "sub": sub, "aud": []string{"app"},
		"iat": time.Now().Unix(), "exp": exp.Unix(),
	}
}

func TestIDTokenVerifiesWithGoOIDC(t *testing.T) {
	for _, alg := range testAlgs {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			m := newManager(t, newStore(t), Options{Algorithm: alg})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_ = json.NewEncoder(w).Encode(m.JWKS())
			}))
			defer srv.Close()

			// Build the ID token the way the broker does: fosite's
			// strategy with our signer, at_hash from fosite's helper.
			strategy := &openid.DefaultStrategy{
				Signer: m.Signer(),
				Config: &fosite.Config{IDTokenIssuer: "https://qiao.example"},
			}
			sess := openid.NewDefaultSession()
			sess.Claims.Subject = "user-1"
			sess.Claims.AuthTime = time.Now().Truncate(time.Second).UTC()
			sess.Headers.Add("alg", m.HashAlgHint())
			accessToken := "opaque-access-token.signature"
			helper := &openid.IDTokenHandleHelper{IDTokenStrategy: strategy}
			atHash, err := helper.ComputeHash(ctx, sess, accessToken)
			if err != nil {
				t.Fatal(err)
			}
			sess.Claims.AccessTokenHash = atHash
			req := fosite.NewAccessRequest(sess)
			req.Client = &fosite.DefaultClient{ID: "app"}
			req.Form = url.Values{"nonce": {"nonce-0123456789"}}
			raw, err := strategy.GenerateIDToken(ctx, time.Hour, req)
			if err != nil {
				t.Fatalf("GenerateIDToken: %v", err)
			}

			h := header(t, raw)
			if h["kid"] != m.state.Load().current.id || h["typ"] != "JWT" || h["alg"] != alg {
				t.Fatalf("header = %v", h)
			}
			verifier := oidc.NewVerifier("https://qiao.example", oidc.NewRemoteKeySet(ctx, srv.URL),
				&oidc.Config{ClientID: "app", SupportedSigningAlgs: []string{alg}})
			idt, err := verifier.Verify(ctx, raw)
			if err != nil {
				t.Fatalf("go-oidc Verify: %v", err)
			}
			if idt.Subject != "user-1" || idt.Nonce != "nonce-0123456789" {
				t.Fatalf("claims: sub %q nonce %q", idt.Subject, idt.Nonce)
			}
			if err := idt.VerifyAccessToken(accessToken); err != nil {
				t.Fatalf("go-oidc at_hash: %v", err)
			}
			if err := idt.VerifyAccessToken(accessToken + "x"); err == nil {
				t.Fatal("go-oidc accepted the at_hash of another access token")
			}

			// The signer's own Hash agrees with what go-oidc checks.
			sum, err := m.Signer().Hash(ctx, []byte(accessToken))
			if err != nil {
				t.Fatal(err)
			}
			if n := m.Signer().GetSigningMethodLength(ctx); n != len(sum) {
				t.Fatalf("GetSigningMethodLength = %d, Hash gave %d bytes", n, len(sum))
			}
			if got := base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]); got != atHash {
				t.Fatalf("Signer.Hash at_hash %q, fosite helper %q", got, atHash)
			}
		})
	}
}

func TestGenerateHonoursExtraHeadersButKeepsKid(t *testing.T) {
	m := newManager(t, newStore(t), Options{Algorithm: ES256})
	h := &jwt.Headers{}
	h.Add("kid", "someone-elses-kid")
	h.Add("alg", "none")
	h.Add("jku", "https://evil.example/jwks")
	h.Add("x-qiao", "yes")
	tok, sig, err := m.Signer().Generate(context.Background(), idTokenClaims("u", time.Now().Add(time.Hour)), h)
	if err != nil {
		t.Fatal(err)
	}
	got := header(t, tok)
	if got["kid"] != m.state.Load().current.id || got["alg"] != ES256 || got["typ"] != "JWT" ||
		got["x-qiao"] != "yes" || got["jku"] != nil {
		t.Fatalf("header = %v", got)
	}
	if !strings.HasSuffix(tok, "."+sig) {
		t.Fatal("returned signature is not the token's")
	}
	if _, err := m.Signer().Decode(context.Background(), tok); err != nil {
		t.Fatalf("Decode of a token with extra headers: %v", err)
	}
	if _, _, err := m.Signer().Generate(context.Background(), nil, h); err == nil {
		t.Fatal("Generate signed nil claims")
	}
}

// foreignToken signs claims with a key the manager does not know, under
// the given kid.
func foreignToken(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// hmacWithPublicKey forges an HS256 token keyed with the public JWK's
// bytes, the classic algorithm-confusion attack.
func hmacWithPublicKey(t *testing.T, m *Manager, kid string) string {
	t.Helper()
	pub, err := json.Marshal(m.JWKS().Keys[0])
	if err != nil {
		t.Fatal(err)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: pub},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		t.Fatal(err)
	}
	jws, err := s.Sign([]byte(`{"sub":"user-1","exp":9999999999}`))
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := jws.CompactSerialize()
	return tok
}

func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	payload = bytes.Replace(payload, []byte(`"user-1"`), []byte(`"user-2"`), 1)
	parts[1] = base64.RawURLEncoding.EncodeToString(payload)
	return strings.Join(parts, ".")
}

func unsigned(tok string) string {
	parts := strings.Split(tok, ".")
	parts[0] = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	return parts[0] + "." + parts[1] + "."
}

func TestDecode(t *testing.T) {
	for _, alg := range testAlgs {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			m := newManager(t, newStore(t), Options{Algorithm: alg})
			other := newManager(t, newStore(t), Options{Algorithm: alg})
			kid := m.state.Load().current.id
			valid := sign(t, m, idTokenClaims("user-1", time.Now().Add(time.Hour)))
			expired := sign(t, m, idTokenClaims("user-1", time.Now().Add(-time.Hour)))

			for _, tc := range []struct {
				name      string
				token     string
				wantErr   uint32 // ValidationError bits; 0: valid
				wantValid bool
				wantSub   string // claims returned even with an error
			}{
				{name: "valid", token: valid, wantValid: true, wantSub: "user-1"},
				{name: "expired", token: expired, wantErr: jwt.ValidationErrorExpired, wantSub: "user-1"},
				{name: "tampered", token: tamper(valid), wantErr: jwt.ValidationErrorSignatureInvalid},
				{name: "other manager's key", token: sign(t, other, idTokenClaims("user-1", time.Now().Add(time.Hour))), wantErr: jwt.ValidationErrorUnverifiable},
				{name: "foreign key under our kid", token: foreignToken(t, kid, idTokenClaims("user-1", time.Now().Add(time.Hour))), wantErr: jwt.ValidationErrorUnverifiable | jwt.ValidationErrorSignatureInvalid},
				{name: "no kid", token: foreignToken(t, "", idTokenClaims("user-1", time.Now().Add(time.Hour))), wantErr: jwt.ValidationErrorUnverifiable},
				{name: "HS256 keyed with the public key", token: hmacWithPublicKey(t, m, kid), wantErr: jwt.ValidationErrorUnverifiable},
				{name: "alg none", token: unsigned(valid), wantErr: jwt.ValidationErrorMalformed | jwt.ValidationErrorUnverifiable},
				{name: "garbage", token: "not.a.jwt", wantErr: jwt.ValidationErrorMalformed},
				{name: "empty", token: "", wantErr: jwt.ValidationErrorMalformed},
			} {
				t.Run(tc.name, func(t *testing.T) {
					tok, err := m.Signer().Decode(ctx, tc.token)
					if tc.wantErr == 0 {
						if err != nil {
							t.Fatalf("Decode: %v", err)
						}
					} else {
						var ve *jwt.ValidationError
						if !errors.As(err, &ve) {
							t.Fatalf("Decode err = %v (%T), want a *jwt.ValidationError", err, err)
						}
						if ve.Errors&tc.wantErr == 0 {
							t.Fatalf("Decode error bits %b, want one of %b (%v)", ve.Errors, tc.wantErr, err)
						}
						if tc.wantErr != jwt.ValidationErrorExpired && ve.Has(jwt.ValidationErrorExpired) {
							t.Fatalf("a bad token reported only as expired: %v", err)
						}
					}
					if tok != nil && tok.Valid() != tc.wantValid {
						t.Fatalf("Valid() = %v, want %v", tok.Valid(), tc.wantValid)
					}
					if tc.wantSub != "" {
						if tok == nil || tok.Claims["sub"] != tc.wantSub {
							t.Fatalf("token = %+v, want sub %q", tok, tc.wantSub)
						}
					}
					sig, verr := m.Signer().Validate(ctx, tc.token)
					if (verr == nil) != (tc.wantErr == 0) {
						t.Fatalf("Validate err = %v", verr)
					}
					if verr == nil && !strings.HasSuffix(tc.token, "."+sig) {
						t.Fatalf("Validate returned %q, not the token's signature", sig)
					}
				})
			}
		})
	}
}

func TestFositeAcceptsExpiredIDTokenHint(t *testing.T) {
	for _, alg := range testAlgs {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			m := newManager(t, newStore(t), Options{Algorithm: alg})
			strategy := &openid.DefaultStrategy{
				Signer: m.Signer(),
				Config: &fosite.Config{IDTokenIssuer: "https://qiao.example"},
			}
			for _, tc := range []struct {
				name    string
				hint    string
				wantErr bool
			}{
				{"expired hint of the same subject", sign(t, m, idTokenClaims("user-1", time.Now().Add(-time.Hour))), false},
				{"valid hint of the same subject", sign(t, m, idTokenClaims("user-1", time.Now().Add(time.Hour))), false},
				{"hint of another subject", sign(t, m, idTokenClaims("user-2", time.Now().Add(time.Hour))), true},
				{"tampered hint", tamper(sign(t, m, idTokenClaims("user-1", time.Now().Add(-time.Hour)))), true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					sess := openid.NewDefaultSession()
					sess.Claims.Subject = "user-1"
					req := fosite.NewAccessRequest(sess)
					req.Client = &fosite.DefaultClient{ID: "app"}
					req.Form = url.Values{"id_token_hint": {tc.hint}}
					_, err := strategy.GenerateIDToken(ctx, time.Hour, req)
					if (err != nil) != tc.wantErr {
						t.Fatalf("GenerateIDToken err = %v, want error %v", err, tc.wantErr)
					}
				})
			}
		})
	}
}

func TestVerify(t *testing.T) {
	ctx := context.Background()
	m := newManager(t, newStore(t), Options{Algorithm: EdDSA})
	other := newManager(t, newStore(t), Options{Algorithm: EdDSA})
	kid := m.state.Load().current.id
	expired := sign(t, m, idTokenClaims("user-1", time.Now().Add(-time.Hour)))
	for _, tc := range []struct {
		name    string
		token   string
		wantSub string // "" means an error is expected
	}{
		{"valid", sign(t, m, idTokenClaims("user-1", time.Now().Add(time.Hour))), "user-1"},
		{"expired is accepted", expired, "user-1"},
		{"tampered", tamper(expired), ""},
		{"other manager's key", sign(t, other, idTokenClaims("user-1", time.Now().Add(time.Hour))), ""},
		{"foreign key under our kid", foreignToken(t, kid, map[string]any{"sub": "user-1"}), ""},
		{"HS256 keyed with the public key", hmacWithPublicKey(t, m, kid), ""},
		{"alg none", unsigned(expired), ""},
		{"garbage", "a.b.c", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			claims, err := m.Verify(ctx, tc.token)
			if tc.wantSub == "" {
				if !errors.Is(err, ErrInvalidToken) {
					t.Fatalf("Verify err = %v, want ErrInvalidToken", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if claims["sub"] != tc.wantSub {
				t.Fatalf("sub = %v", claims["sub"])
			}
		})
	}
}

func TestRotationKeepsRetiredKeyUntilTokensExpire(t *testing.T) {
	ctx := context.Background()
	clock := newFakeClock()
	store := newStore(t)
	const maxTTL = time.Hour
	m := newManager(t, store, Options{Algorithm: ES256, RotateEvery: 720 * time.Hour, MaxTokenTTL: maxTTL, Now: clock.Now})
	first := m.state.Load().current.id
	oldToken := sign(t, m, idTokenClaims("user-1", clock.Now().Add(maxTTL)))

	// Not yet within the publishing lead: nothing changes.
	clock.Advance(720*time.Hour - MaxPublishLead - time.Second)
	if err := m.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kids(m.JWKS()); len(got) != 1 || got[0] != first {
		t.Fatalf("before the lead: JWKS kids %v", got)
	}

	// Within the lead: the next key is published, the current one still signs.
	clock.Advance(time.Second)
	if err := m.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	published := kids(m.JWKS())
	if len(published) != 2 || published[1] != first {
		t.Fatalf("within the lead: JWKS kids %v, want [next %s]", published, first)
	}
	second := published[0]
	if h := header(t, sign(t, m, idTokenClaims("user-1", clock.Now().Add(maxTTL)))); h["kid"] != first {
		t.Fatalf("before the rotation tokens are signed by %v, want %s", h["kid"], first)
	}
	// Another manager (a replica) sees the same published key.
	if got := kids(newManager(t, store, Options{Algorithm: ES256, RotateEvery: 720 * time.Hour, MaxTokenTTL: maxTTL, Now: clock.Now}).JWKS()); len(got) != 2 || got[0] != second {
		t.Fatalf("replica within the lead: JWKS kids %v", got)
	}

	// Due: the published key signs, the old one is still published.
	clock.Advance(MaxPublishLead)
	retiredAt := clock.Now()
	if err := m.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if m.state.Load().current.id != second {
		t.Fatalf("after RotateEvery the current key is %s, want the published %s", m.state.Load().current.id, second)
	}
	if h := header(t, sign(t, m, idTokenClaims("user-1", clock.Now().Add(maxTTL)))); h["kid"] != second {
		t.Fatalf("new tokens signed by %v, want %s", h["kid"], second)
	}
	if got := kids(m.JWKS()); len(got) != 2 || got[0] != second || got[1] != first {
		t.Fatalf("after rotation: JWKS kids %v, want [%s %s]", got, second, first)
	}
	if _, err := m.Verify(ctx, oldToken); err != nil {
		t.Fatalf("Verify of a token of the retired key: %v", err)
	}
	if _, err := m.Signer().Decode(ctx, oldToken); err != nil {
		t.Fatalf("Decode of a token of the retired key: %v", err)
	}
	stored, err := store.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range stored {
		if k.ID == first && !k.ExpiresAt.Equal(retiredAt.Add(maxTTL+ClockSkew)) {
			t.Fatalf("retired key expires at %v, want %v", k.ExpiresAt, retiredAt.Add(maxTTL+ClockSkew))
		}
	}

	// Just before its expiry the retired key is still published; at its
	// expiry it disappears, even before the store's GC removes it.
	clock.Advance(maxTTL + ClockSkew - time.Second)
	if got := kids(m.JWKS()); len(got) != 2 {
		t.Fatalf("just before expiry: JWKS kids %v", got)
	}
	clock.Advance(time.Second)
	if got := kids(m.JWKS()); len(got) != 1 || got[0] != second {
		t.Fatalf("at expiry, before refresh: JWKS kids %v", got)
	}
	if _, err := m.Verify(ctx, oldToken); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("Verify of a token of an expired key: err = %v", err)
	}
	var ve *jwt.ValidationError
	if _, err := m.Signer().Decode(ctx, oldToken); !errors.As(err, &ve) || !ve.Has(jwt.ValidationErrorUnverifiable) {
		t.Fatalf("Decode of a token of an expired key: err = %v", err)
	}
	fresh := newManager(t, store, Options{Algorithm: ES256, MaxTokenTTL: maxTTL, Now: clock.Now})
	if got := kids(fresh.JWKS()); len(got) != 1 || got[0] != second {
		t.Fatalf("new manager after expiry: JWKS kids %v", got)
	}
	gc, err := store.GarbageCollect(ctx, clock.Now(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if gc.Keys != 1 {
		t.Fatalf("GC removed %d keys, want 1", gc.Keys)
	}
	if err := m.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got := kids(m.JWKS()); len(got) != 1 || got[0] != second {
		t.Fatalf("after GC: JWKS kids %v", got)
	}
}

func TestAlgorithmChangeRotatesAtOnce(t *testing.T) {
	store := newStore(t)
	rs := newManager(t, store, Options{Algorithm: RS256})
	old := rs.state.Load().current.id
	ed := newManager(t, store, Options{Algorithm: EdDSA})
	cur := ed.state.Load().current
	if cur.id == old || cur.alg != EdDSA {
		t.Fatalf("current key %s (%s), want a new EdDSA key", cur.id, cur.alg)
	}
	if got := kids(ed.JWKS()); len(got) != 2 || got[1] != old {
		t.Fatalf("JWKS kids %v, want the new key and the retired RS256 key", got)
	}
	if ed.Algorithm() != EdDSA || ed.HashAlgHint() != "Ed512" {
		t.Fatalf("Algorithm %q, hint %q", ed.Algorithm(), ed.HashAlgHint())
	}
}

// listBarrier, once armed, holds ListSigningKeys calls until n of them
// are waiting, so that n replicas all see the same current key and all
// try to rotate it.
type listBarrier struct {
	mu      sync.Mutex
	n       int
	waiting int
	release chan struct{}
}

func (b *listBarrier) arm(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.n, b.waiting, b.release = n, 0, make(chan struct{})
}

func (b *listBarrier) wait(ctx context.Context) error {
	b.mu.Lock()
	ch := b.release
	if ch != nil {
		b.waiting++
		if b.waiting == b.n {
			close(ch)
			b.release = nil
		}
	}
	b.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// refreshTogether refreshes the replicas concurrently and fails the test
// if any of them fails.
func refreshTogether(t *testing.T, ctx context.Context, ms ...*Manager) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(ms))
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = m.Refresh(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
	}
}

// gatedStore is a real store whose listings pass a listBarrier.
type gatedStore struct {
	Store
	b *listBarrier
}

func (g gatedStore) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	keys, err := g.Store.ListSigningKeys(ctx)
	if werr := g.b.wait(ctx); werr != nil {
		return nil, werr
	}
	return keys, err
}

// rotationCounter counts successful rotations.
type rotationCounter struct {
	Store
	mu        sync.Mutex
	rotations int
	conflicts int
}

func (c *rotationCounter) RotateSigningKey(ctx context.Context, prevID string, next storage.SigningKey, prevExpiresAt time.Time) error {
	err := c.Store.RotateSigningKey(ctx, prevID, next, prevExpiresAt)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		c.rotations++
	case errors.Is(err, storage.ErrConflict):
		c.conflicts++
	}
	return err
}

func TestConcurrentRotationMakesOneKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "qiao.db")
	barrier := &listBarrier{}
	// Two replicas: two store handles on one database.
	storeA := &rotationCounter{Store: gatedStore{Store: openStore(t, path), b: barrier}}
	storeB := &rotationCounter{Store: gatedStore{Store: openStore(t, path), b: barrier}}
	a := newManager(t, storeA, Options{Algorithm: EdDSA, Now: clock.Now})
	b := newManager(t, storeB, Options{Algorithm: EdDSA, Now: clock.Now})
	first := a.state.Load().current.id
	if b.state.Load().current.id != first {
		t.Fatal("the second replica made its own first key")
	}

	storeA.rotations, storeA.conflicts = 0, 0 // count from here on
	clock.Advance(DefaultRotateEvery)
	barrier.arm(2) // both replicas list the old key before either rotates
	refreshTogether(t, ctx, a, b)
	if r, c := storeA.rotations+storeB.rotations, storeA.conflicts+storeB.conflicts; r != 1 || c != 1 {
		t.Fatalf("%d rotations and %d conflicts, want 1 and 1", r, c)
	}
	stored, err := storeA.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 {
		t.Fatalf("%d keys stored, want the first and exactly one new", len(stored))
	}
	ka, kb := a.state.Load().current.id, b.state.Load().current.id
	if ka != kb || ka == first || ka != stored[0].ID {
		t.Fatalf("replicas sign with %s and %s (first %s, newest stored %s)", ka, kb, first, stored[0].ID)
	}
}

func TestKeysSurviveReload(t *testing.T) {
	for _, alg := range testAlgs {
		t.Run(alg, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "qiao.db")
			m1 := newManager(t, openStore(t, path), Options{Algorithm: alg})
			tok := sign(t, m1, idTokenClaims("user-1", time.Now().Add(time.Hour)))
			m2 := newManager(t, openStore(t, path), Options{Algorithm: alg})
			if a, b := m1.state.Load().current.id, m2.state.Load().current.id; a != b {
				t.Fatalf("kid after reload %s, before %s", b, a)
			}
			if h := header(t, sign(t, m2, idTokenClaims("user-1", time.Now().Add(time.Hour)))); h["kid"] != m1.state.Load().current.id {
				t.Fatalf("reloaded manager signs with %v", h["kid"])
			}
			if _, err := m2.Signer().Decode(context.Background(), tok); err != nil {
				t.Fatalf("reloaded manager rejects a token of the same key: %v", err)
			}
		})
	}
}

func TestPrivateKeyIsStoredSealed(t *testing.T) {
	for _, alg := range testAlgs {
		t.Run(alg, func(t *testing.T) {
			ctx := context.Background()
			store := newStore(t)
			newManager(t, store, Options{Algorithm: alg})
			stored, err := store.ListSigningKeys(ctx)
			if err != nil || len(stored) != 1 {
				t.Fatalf("stored %d keys, err %v", len(stored), err)
			}
			k := stored[0]
			plain, err := newSealer(t, testSecret).Open(k.PrivateKey, []byte(k.ID))
			if err != nil {
				t.Fatalf("open the stored private key: %v", err)
			}
			var jwk struct {
				D string `json:"d"`
			}
			if err := json.Unmarshal(plain, &jwk); err != nil || jwk.D == "" {
				t.Fatalf("sealed value is not a private JWK (err %v)", err)
			}
			for name, b := range map[string][]byte{"PrivateKey": k.PrivateKey, "PublicJWK": k.PublicJWK} {
				if bytes.Contains(b, []byte(`"d"`)) || bytes.Contains(b, []byte(jwk.D)) {
					t.Errorf("%s holds the private key in clear", name)
				}
			}
			if _, err := newSealer(t, testSecret).Open(k.PrivateKey, []byte("other-kid")); err == nil {
				t.Error("the sealed key opens under another kid")
			}
		})
	}
}

func TestWrongSecretFailsWithoutRotating(t *testing.T) {
	ctx := context.Background()
	store := newStore(t)
	m := newManager(t, store, Options{Algorithm: EdDSA})
	other, err := seal.New([]byte("another-secret-another-secret-another"), "signing-keys")
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewManager(ctx, store, other, Options{Algorithm: EdDSA, Logger: quietLogger()})
	if err == nil || !strings.Contains(err.Error(), "secret") {
		t.Fatalf("NewManager with another secret: err = %v", err)
	}
	stored, _ := store.ListSigningKeys(ctx)
	if len(stored) != 1 || stored[0].ID != m.state.Load().current.id {
		t.Fatalf("store changed: %d keys", len(stored))
	}
}

func TestNewManagerRejectsBadOptions(t *testing.T) {
	store := newStore(t)
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"unknown algorithm", Options{Algorithm: "HS256"}},
		{"negative rotation", Options{RotateEvery: -time.Hour}},
		{"negative ttl", Options{MaxTokenTTL: -time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewManager(context.Background(), store, newSealer(t, testSecret), tc.opts); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if _, err := NewManager(context.Background(), store, nil, Options{}); err == nil {
		t.Fatal("accepted a nil sealer")
	}
}

func TestRunRotatesWhenDue(t *testing.T) {
	clock := newFakeClock()
	m := newManager(t, newStore(t), Options{Algorithm: EdDSA, Now: clock.Now})
	first := m.state.Load().current.id
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		m.Run(ctx, 5*time.Millisecond)
		close(done)
	}()
	clock.Advance(DefaultRotateEvery)
	deadline := time.Now().Add(10 * time.Second)
	for m.state.Load().current.id == first {
		if time.Now().After(deadline) {
			t.Fatal("Run did not rotate the due key")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestFirstKeyFromAReplicaWhoseClockIsAhead: a replica whose clock is a
// little behind the one that created the first key signs with that key
// rather than failing with no active key or creating another one.
func TestFirstKeyFromAReplicaWhoseClockIsAhead(t *testing.T) {
	store := newStore(t)
	ahead := newFakeClock()
	behind := newFakeClock()
	behind.Advance(-2 * time.Second)
	a := newManager(t, store, Options{Algorithm: ES256, Now: ahead.Now})
	b := newManager(t, store, Options{Algorithm: ES256, Now: behind.Now})
	if a.state.Load().current.id != b.state.Load().current.id {
		t.Fatalf("replicas sign with %s and %s", a.state.Load().current.id, b.state.Load().current.id)
	}
	stored, err := store.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 1 {
		t.Fatalf("%d keys stored, want 1", len(stored))
	}
}
