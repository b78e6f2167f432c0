// Package storagetest is the conformance suite every storage backend
// passes: each backend's tests call RunTests and RunReopenTests with a
// function that opens a store, so that SQLite and PostgreSQL behave alike.
//
// The suite does not assume an empty database: every test uses ids with a
// random suffix, so a backend may hand every test the same database, and
// may run the suite again on a database an earlier run filled. It does
// assume nothing else writes to that database while it runs (the signing
// key tests read "the current key" and expect it to stay put).
//
// A backend's test uses it like this:
//
//	func TestConformance(t *testing.T) {
//		storagetest.RunTests(t, func(t *testing.T) storage.Storage {
//			s, err := mybackend.Open(t.Context(), dsnFor(t))
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
//	func TestReopen(t *testing.T) {
//		storagetest.RunReopenTests(t, func(t *testing.T, name string) storage.Storage {
//			s, err := mybackend.Open(t.Context(), dsnNamed(name))
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s // the suite closes it
//		})
//	}
//
// Behaviour the suite pins beyond the comments in package storage:
//   - every time comes back in UTC, equal to what was stored at least to
//     the millisecond; a zero time comes back zero;
//   - a zero ExpiresAt (token, session, login, cache entry) never expires;
//   - nil and empty byte slices are the same value;
//   - ListIdentities of a user without identities is empty, not an error;
//   - FindIdentitiesByUnionID("") matches nothing;
//   - an expiry equal to GarbageCollect's now counts as expired.
package storagetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

// racers is how many goroutines the concurrency tests run at once.
const racers = 16

// suiteTest is one behaviour, run on a store from open.
type suiteTest struct {
	name string
	fn   func(t *testing.T, s storage.Storage)
}

// RunTests runs the conformance suite. open is called once per sub-test
// and returns a ready store; it is responsible for closing it (typically
// with t.Cleanup), and may hand out the same database every time.
func RunTests(t *testing.T, open func(t *testing.T) storage.Storage) {
	groups := []struct {
		name  string
		tests []suiteTest
	}{
		{"Users", userTests()},
		{"Profiles", profileTests()},
		{"Tokens", tokenTests()},
		{"Keys", keyTests()},
		{"Sessions", sessionTests()},
		{"Logins", loginTests()},
		{"Audit", auditTests()},
		{"Leases", leaseTests()},
		{"Cache", cacheTests()},
		{"Completions", completionTests()},
		{"Store", storeTests()},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					tc.fn(t, open(t))
				})
			}
		})
	}
}

// ---------------------------------------------------------------- helpers

// uniq returns prefix followed by a random suffix.
func uniq(prefix string) string {
	b := make([]byte, 8)
	rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// cst is a non-UTC zone: inputs use it so that the suite can see a
// backend hand back UTC.
func cst() *time.Location { return time.FixedZone("CST", 8*3600) }

// now returns the current time in a non-UTC zone with full precision.
func now() time.Time { return time.Now().In(cst()) }

// wantErr fails unless errors.Is(err, target).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// must fails on err.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// ms normalizes a time to what every backend keeps: UTC milliseconds.
func ms(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.Truncate(time.Millisecond).UTC()
}

// by normalizes a byte slice: nil and empty are the same value.
func by(b []byte) []byte {
	if len(b) == 0 {
		return []byte{}
	}
	return b
}

// checkUTC fails for any non-zero time not in UTC.
func checkUTC(t *testing.T, what string, ts ...time.Time) {
	t.Helper()
	for i, tm := range ts {
		if !tm.IsZero() && tm.Location() != time.UTC {
			t.Errorf("%s: time %d is in %v, want UTC", what, i, tm.Location())
		}
	}
}

// same fails unless got and want are deeply equal after norm.
func same[T any](t *testing.T, what string, got, want T, norm func(T) T) {
	t.Helper()
	if g, w := norm(got), norm(want); !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, g, w)
	}
}

func normUser(u storage.User) storage.User {
	u.CreatedAt = ms(u.CreatedAt)
	return u
}

func normIdentity(id storage.Identity) storage.Identity {
	id.Secret = by(id.Secret)
	id.BoundAt, id.LastUsedAt = ms(id.BoundAt), ms(id.LastUsedAt)
	return id
}

func normIdentities(ids []storage.Identity) []storage.Identity {
	out := make([]storage.Identity, len(ids))
	for i, id := range ids {
		out[i] = normIdentity(id)
	}
	return out
}

func normToken(r storage.TokenRecord) storage.TokenRecord {
	r.Data = by(r.Data)
	r.CreatedAt, r.ExpiresAt = ms(r.CreatedAt), ms(r.ExpiresAt)
	return r
}

func normKey(k storage.SigningKey) storage.SigningKey {
	k.PrivateKey, k.PublicJWK = by(k.PrivateKey), by(k.PublicJWK)
	k.CreatedAt, k.RetiredAt, k.ExpiresAt = ms(k.CreatedAt), ms(k.RetiredAt), ms(k.ExpiresAt)
	return k
}

func normSession(s storage.Session) storage.Session {
	s.Data = by(s.Data)
	s.AuthTime, s.ExpiresAt = ms(s.AuthTime), ms(s.ExpiresAt)
	return s
}

func normLogin(l storage.PendingLogin) storage.PendingLogin {
	l.Data = by(l.Data)
	l.CreatedAt, l.ExpiresAt = ms(l.CreatedAt), ms(l.ExpiresAt)
	return l
}

func normAudit(e storage.AuditEvent) storage.AuditEvent {
	e.Time = ms(e.Time)
	return e
}

// race runs f(0..n-1) in n goroutines released at once and returns
// their errors by index.
func race(n int, f func(i int) error) []error {
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// oneWinner checks that exactly one error is nil and every other one is
// loserErr, and returns the winner's index.
func oneWinner(t *testing.T, what string, errs []error, loserErr error) int {
	t.Helper()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("%s: both %d and %d succeeded", what, winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, loserErr):
			t.Errorf("%s: racer %d: got error %v, want %v", what, i, err, loserErr)
		}
	}
	if winner < 0 {
		t.Fatalf("%s: no racer succeeded", what)
	}
	return winner
}

// winnerHasTheIdentity checks that the contested identity went to the
// winner w of a race: its user has two identities, every other racer's
// user its own one.
func winnerHasTheIdentity(ctx context.Context, t *testing.T, s storage.Storage, users []storage.User, w int) {
	t.Helper()
	for i, u := range users {
		ids, err := s.ListIdentities(ctx, u.ID)
		must(t, "ListIdentities", err)
		want := 1
		if i == w {
			want = 2
		}
		if len(ids) != want {
			t.Errorf("racer %d's user has %d identities, want %d", i, len(ids), want)
		}
	}
}

// ------------------------------------------------------------- fixtures

func newIdentity(userID, connectorID string, boundAt time.Time) storage.Identity {
	return storage.Identity{
		ConnectorID:   connectorID,
		Subject:       uniq("o6_bmasdasdsad6"),
		UserID:        userID,
		ConnectorType: "wechat",
		DisplayName:   "微信用户",
		Picture:       "https://thirdwx.qlogo.cn/mmopen/vi_32/POgEwh4mIHO4nibH0KlMECNjjGxQ/132",
		RealProfile:   false,
		Secret:        []byte{0, 1, 2, 0xfe, 0xff, 0},
		BoundAt:       boundAt,
		LastUsedAt:    boundAt.Add(time.Minute),
	}
}

// createUser creates a fresh user with one identity of connector "wechat".
func createUser(t *testing.T, s storage.Storage) (storage.User, storage.Identity) {
	t.Helper()
	u := storage.User{ID: uniq("user"), CreatedAt: now()}
	id := newIdentity(u.ID, "wechat", u.CreatedAt)
	must(t, "CreateUser", s.CreateUser(t.Context(), u, id))
	return u, id
}

func newToken(kind storage.TokenKind, requestID, subject string) storage.TokenRecord {
	n := now()
	return storage.TokenRecord{
		Kind:      kind,
		Signature: uniq("sig"),
		RequestID: requestID,
		ClientID:  "app-1",
		Subject:   subject,
		Active:    true,
		Data:      []byte(`{"requested_scope":["openid"],"session":{"subject":"u"}}` + "\x00\xff"),
		CreatedAt: n,
		ExpiresAt: n.Add(time.Hour),

		IdentityConnector: "wechat",
		IdentitySubject:   uniq("o6_subject"),
	}
}

func create(r storage.TokenRecord) storage.TokenOp {
	return storage.TokenOp{Type: storage.OpCreate, Record: r}
}

func deactivate(kind storage.TokenKind, sig string) storage.TokenOp {
	return storage.TokenOp{Type: storage.OpDeactivate, Kind: kind, Signature: sig}
}

func del(kind storage.TokenKind, sig string) storage.TokenOp {
	return storage.TokenOp{Type: storage.OpDelete, Kind: kind, Signature: sig}
}

func revoke(kind storage.TokenKind, requestID string) storage.TokenOp {
	return storage.TokenOp{Type: storage.OpRevokeRequest, Kind: kind, RequestID: requestID}
}

func createTokens(t *testing.T, s storage.Storage, rs ...storage.TokenRecord) {
	t.Helper()
	for _, r := range rs {
		must(t, "create token", s.ApplyTokenOps(t.Context(), create(r)))
	}
}

// tokenIs checks that the token exists with the given activity.
func tokenIs(t *testing.T, s storage.Storage, r storage.TokenRecord, active bool) {
	t.Helper()
	got, err := s.GetToken(t.Context(), r.Kind, r.Signature)
	if err != nil {
		t.Fatalf("GetToken(%s): %v", r.Kind, err)
	}
	if got.Active != active {
		t.Errorf("GetToken(%s).Active = %v, want %v", r.Kind, got.Active, active)
	}
}

// tokenGone checks that the token is not found.
// nothingLeft checks that the user userID (what it is, for messages) has
// no identities, its session sessionID is gone, and so are its tokens.
func nothingLeft(t *testing.T, s storage.Storage, what, userID, sessionID string, tokens ...storage.TokenRecord) {
	t.Helper()
	ids, err := s.ListIdentities(t.Context(), userID)
	must(t, "ListIdentities of "+what, err)
	if len(ids) != 0 {
		t.Errorf("%s still has %d identities, want none", what, len(ids))
	}
	_, err = s.GetSession(t.Context(), sessionID)
	wantErr(t, "GetSession of "+what, err, storage.ErrNotFound)
	for _, r := range tokens {
		tokenGone(t, s, r)
	}
}

func tokenGone(t *testing.T, s storage.Storage, r storage.TokenRecord) {
	t.Helper()
	_, err := s.GetToken(t.Context(), r.Kind, r.Signature)
	wantErr(t, "GetToken of a removed token", err, storage.ErrNotFound)
}

// currentKey returns the id of the newest unretired RS256 key (newKey's
// algorithm), or "".
func currentKey(t *testing.T, s storage.Storage) string {
	t.Helper()
	return currentKeyOf(t, s, "RS256")
}

// currentKeyOf returns the id of the newest unretired key of alg, or "".
func currentKeyOf(t *testing.T, s storage.Storage, alg string) string {
	t.Helper()
	ks, err := s.ListSigningKeys(t.Context())
	must(t, "ListSigningKeys", err)
	for _, k := range ks {
		if k.RetiredAt.IsZero() && k.Algorithm == alg {
			return k.ID
		}
	}
	return ""
}

func newKey(created time.Time) storage.SigningKey {
	return storage.SigningKey{
		ID:         uniq("kid"),
		Algorithm:  "RS256",
		PrivateKey: []byte("\x00encrypted private key\xff"),
		PublicJWK:  []byte(`{"kty":"RSA","n":"xyz","e":"AQAB"}`),
		CreatedAt:  created,
	}
}

// findKey returns the key with that id from the list.
func findKey(ks []storage.SigningKey, id string) (storage.SigningKey, bool) {
	for _, k := range ks {
		if k.ID == id {
			return k, true
		}
	}
	return storage.SigningKey{}, false
}
