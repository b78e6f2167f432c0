package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

func tokenTests() []suiteTest {
	return []suiteTest{
		{"CreatedTokenRoundTrips", testTokenRoundTrip},
		{"SignatureIsUniquePerKindOnly", testTokenKinds},
		{"CreateDuplicateTokenIsAlreadyExists", testTokenDuplicate},
		{"MissingTokenIsNotFound", testTokenMissing},
		{"ExpiredTokenIsNotFoundBeforeGC", testTokenExpired},
		{"ZeroExpiryTokenNeverExpires", testTokenZeroExpiry},
		{"DeactivateKeepsRecordInactive", testDeactivate},
		{"DeactivateInactiveTokenIsConflict", testDeactivateInactive},
		{"DeactivateMissingTokenIsNotFound", testDeactivateMissing},
		{"DeleteRemovesTokenAndIgnoresMissing", testDeleteToken},
		{"RevokeRequestRemovesFamilyOfThatKind", testRevokeRequest},
		{"FailingOpWritesNothing", testOpsAllOrNothing},
		{"UnknownOpTypeIsErrorAndWritesNothing", testUnknownOp},
		{"NoOpsIsNoError", testNoOps},
		{"ConcurrentCodeUseSucceedsOnce", testCodeRace},
		{"ConcurrentRefreshRotationSucceedsOnce", testRefreshRace},
	}
}

func testTokenRoundTrip(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	for _, kind := range []storage.TokenKind{
		storage.KindAuthorizeCode, storage.KindAccessToken, storage.KindRefreshToken,
		storage.KindPKCE, storage.KindOIDC,
	} {
		r := newToken(kind, uniq("req"), uniq("user"))
		createTokens(t, s, r)
		got, err := s.GetToken(ctx, kind, r.Signature)
		must(t, "GetToken", err)
		same(t, "GetToken("+string(kind)+")", got, r, normToken)
		checkUTC(t, "GetToken", got.CreatedAt, got.ExpiresAt)
	}
	// Inactive at creation, no subject, no data.
	r := newToken(storage.KindAccessToken, uniq("req"), "")
	r.Active, r.Data = false, nil
	createTokens(t, s, r)
	got, err := s.GetToken(ctx, r.Kind, r.Signature)
	must(t, "GetToken", err)
	same(t, "GetToken of an inactive record", got, r, normToken)
}

func testTokenKinds(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	access := newToken(storage.KindAccessToken, uniq("req"), "u")
	refresh := newToken(storage.KindRefreshToken, uniq("req"), "u")
	refresh.Signature = access.Signature
	createTokens(t, s, access, refresh)
	got, err := s.GetToken(ctx, storage.KindRefreshToken, access.Signature)
	must(t, "GetToken", err)
	if got.RequestID != refresh.RequestID {
		t.Errorf("refresh record has request %q, want %q", got.RequestID, refresh.RequestID)
	}
	_, err = s.GetToken(ctx, storage.KindAuthorizeCode, access.Signature)
	wantErr(t, "GetToken of another kind", err, storage.ErrNotFound)
}

func testTokenDuplicate(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	r := newToken(storage.KindAuthorizeCode, uniq("req"), "u")
	createTokens(t, s, r)
	dup := r
	dup.RequestID, dup.Active = uniq("req"), false
	wantErr(t, "create duplicate", s.ApplyTokenOps(ctx, create(dup)), storage.ErrAlreadyExists)
	got, err := s.GetToken(ctx, r.Kind, r.Signature)
	must(t, "GetToken", err)
	same(t, "token after refused duplicate", got, r, normToken)
}

func testTokenMissing(t *testing.T, s storage.Storage) {
	_, err := s.GetToken(t.Context(), storage.KindAccessToken, uniq("sig"))
	wantErr(t, "GetToken", err, storage.ErrNotFound)
}

func testTokenExpired(t *testing.T, s storage.Storage) {
	r := newToken(storage.KindAccessToken, uniq("req"), "u")
	r.CreatedAt, r.ExpiresAt = now().Add(-2*time.Hour), now().Add(-time.Second)
	createTokens(t, s, r)
	tokenGone(t, s, r)
}

func testTokenZeroExpiry(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	r := newToken(storage.KindPKCE, uniq("req"), "u")
	r.ExpiresAt = time.Time{}
	createTokens(t, s, r)
	_, err := s.GarbageCollect(ctx, time.Now(), time.Time{})
	must(t, "GarbageCollect", err)
	got, err := s.GetToken(ctx, r.Kind, r.Signature)
	must(t, "GetToken of a token without expiry", err)
	if !got.ExpiresAt.IsZero() {
		t.Errorf("ExpiresAt = %v, want zero", got.ExpiresAt)
	}
}

func testDeactivate(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	r := newToken(storage.KindRefreshToken, uniq("req"), "u")
	createTokens(t, s, r)
	must(t, "deactivate", s.ApplyTokenOps(ctx, deactivate(r.Kind, r.Signature)))
	got, err := s.GetToken(ctx, r.Kind, r.Signature)
	must(t, "GetToken", err)
	want := r
	want.Active = false
	same(t, "deactivated token", got, want, normToken)
}

func testDeactivateInactive(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	r := newToken(storage.KindAuthorizeCode, uniq("req"), "u")
	createTokens(t, s, r)
	must(t, "first deactivate", s.ApplyTokenOps(ctx, deactivate(r.Kind, r.Signature)))
	wantErr(t, "second deactivate", s.ApplyTokenOps(ctx, deactivate(r.Kind, r.Signature)), storage.ErrConflict)

	born := newToken(storage.KindAuthorizeCode, uniq("req"), "u")
	born.Active = false
	createTokens(t, s, born)
	wantErr(t, "deactivate of a record created inactive", s.ApplyTokenOps(ctx, deactivate(born.Kind, born.Signature)), storage.ErrConflict)
}

func testDeactivateMissing(t *testing.T, s storage.Storage) {
	err := s.ApplyTokenOps(t.Context(), deactivate(storage.KindAuthorizeCode, uniq("sig")))
	wantErr(t, "deactivate", err, storage.ErrNotFound)
}

func testDeleteToken(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	r := newToken(storage.KindPKCE, uniq("req"), "u")
	keep := newToken(storage.KindOIDC, r.RequestID, "u")
	keep.Signature = r.Signature
	createTokens(t, s, r, keep)
	must(t, "delete", s.ApplyTokenOps(ctx, del(r.Kind, r.Signature)))
	tokenGone(t, s, r)
	tokenIs(t, s, keep, true)
	must(t, "delete of a missing token", s.ApplyTokenOps(ctx, del(r.Kind, r.Signature)))
}

func testRevokeRequest(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	req := uniq("req")
	a1 := newToken(storage.KindAccessToken, req, "u")
	a2 := newToken(storage.KindAccessToken, req, "u")
	a2.Active = false
	refresh := newToken(storage.KindRefreshToken, req, "u")
	otherReq := newToken(storage.KindAccessToken, uniq("req"), "u")
	createTokens(t, s, a1, a2, refresh, otherReq)

	must(t, "revoke access tokens", s.ApplyTokenOps(ctx, revoke(storage.KindAccessToken, req)))
	tokenGone(t, s, a1)
	tokenGone(t, s, a2)
	tokenIs(t, s, refresh, true)
	tokenIs(t, s, otherReq, true)

	must(t, "revoke refresh tokens", s.ApplyTokenOps(ctx, revoke(storage.KindRefreshToken, req)))
	tokenGone(t, s, refresh)
	must(t, "revoke of an unknown request", s.ApplyTokenOps(ctx, revoke(storage.KindRefreshToken, uniq("req"))))
}

func testOpsAllOrNothing(t *testing.T, s storage.Storage) {
	tests := []struct {
		name    string
		failing func(t *testing.T) storage.TokenOp
		want    error
	}{
		{"DuplicateCreate", func(t *testing.T) storage.TokenOp {
			r := newToken(storage.KindAccessToken, uniq("req"), "u")
			createTokens(t, s, r)
			return create(r)
		}, storage.ErrAlreadyExists},
		{"DeactivateInactive", func(t *testing.T) storage.TokenOp {
			r := newToken(storage.KindRefreshToken, uniq("req"), "u")
			r.Active = false
			createTokens(t, s, r)
			return deactivate(r.Kind, r.Signature)
		}, storage.ErrConflict},
		{"DeactivateMissing", func(t *testing.T) storage.TokenOp {
			return deactivate(storage.KindRefreshToken, uniq("sig"))
		}, storage.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			toDeactivate := newToken(storage.KindRefreshToken, uniq("req"), "u")
			toDelete := newToken(storage.KindPKCE, uniq("req"), "u")
			family := newToken(storage.KindAccessToken, uniq("req"), "u")
			createTokens(t, s, toDeactivate, toDelete, family)
			fresh := newToken(storage.KindAccessToken, uniq("req"), "u")
			freshAfter := newToken(storage.KindRefreshToken, uniq("req"), "u")
			failing := tc.failing(t)

			err := s.ApplyTokenOps(ctx,
				create(fresh),
				deactivate(toDeactivate.Kind, toDeactivate.Signature),
				del(toDelete.Kind, toDelete.Signature),
				revoke(family.Kind, family.RequestID),
				failing,
				create(freshAfter),
			)
			wantErr(t, "ApplyTokenOps", err, tc.want)
			tokenGone(t, s, fresh)
			tokenGone(t, s, freshAfter)
			tokenIs(t, s, toDeactivate, true)
			tokenIs(t, s, toDelete, true)
			tokenIs(t, s, family, true)
		})
	}
}

func testUnknownOp(t *testing.T, s storage.Storage) {
	fresh := newToken(storage.KindAccessToken, uniq("req"), "u")
	err := s.ApplyTokenOps(t.Context(), create(fresh), storage.TokenOp{Type: 99, Kind: storage.KindAccessToken, Signature: "x"})
	if err == nil {
		t.Fatal("ApplyTokenOps with an unknown op type succeeded")
	}
	for _, sentinel := range []error{storage.ErrNotFound, storage.ErrAlreadyExists, storage.ErrConflict} {
		if errors.Is(err, sentinel) {
			t.Errorf("unknown op type reported as %v", sentinel)
		}
	}
	tokenGone(t, s, fresh)
}

func testNoOps(t *testing.T, s storage.Storage) {
	must(t, "ApplyTokenOps()", s.ApplyTokenOps(t.Context()))
}

func testCodeRace(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	code := newToken(storage.KindAuthorizeCode, uniq("req"), "u")
	createTokens(t, s, code)
	errs := race(racers, func(int) error {
		return s.ApplyTokenOps(ctx, deactivate(code.Kind, code.Signature))
	})
	oneWinner(t, "concurrent code deactivation", errs, storage.ErrConflict)
	tokenIs(t, s, code, false)
}

func testRefreshRace(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	req := uniq("req")
	old := newToken(storage.KindRefreshToken, req, "u")
	createTokens(t, s, old)
	access := make([]storage.TokenRecord, racers)
	refresh := make([]storage.TokenRecord, racers)
	for i := range racers {
		access[i] = newToken(storage.KindAccessToken, req, "u")
		refresh[i] = newToken(storage.KindRefreshToken, req, "u")
	}
	errs := race(racers, func(i int) error {
		return s.ApplyTokenOps(ctx,
			deactivate(old.Kind, old.Signature),
			create(access[i]),
			create(refresh[i]),
		)
	})
	w := oneWinner(t, "concurrent refresh rotation", errs, storage.ErrConflict)
	tokenIs(t, s, old, false)
	for i := range racers {
		if i == w {
			tokenIs(t, s, access[i], true)
			tokenIs(t, s, refresh[i], true)
			continue
		}
		tokenGone(t, s, access[i])
		tokenGone(t, s, refresh[i])
	}
}
