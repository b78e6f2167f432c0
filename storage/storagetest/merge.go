package storagetest

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

func mergeTests() []suiteTest {
	return []suiteTest{
		{"MergeUsersMovesIdentitiesAndDeletesFromWithSessionsAndTokens", testMerge},
		{"MergeUsersWithSharedConnectorIsRefusedNamingIt", testMergeSharedConnector},
		{"MergeUsersOfMissingUserIsNotFound", testMergeMissing},
		{"MergeUserIntoItselfIsRefused", testMergeSelf},
		{"MergeUsersOnlyHoldsOrNothingChanges", testMergeOnly},
		{"ConcurrentMergesOfOneUserHaveOneWinner", testMergeRace},
	}
}

// createUserWith creates a user whose first identity is of connectorID.
func createUserWith(t *testing.T, s storage.Storage, connectorID string) (storage.User, storage.Identity) {
	t.Helper()
	u := storage.User{ID: uniq("user"), CreatedAt: now()}
	id := newIdentity(u.ID, connectorID, u.CreatedAt)
	must(t, "CreateUser", s.CreateUser(t.Context(), u, id))
	return u, id
}

func newUserSession(t *testing.T, s storage.Storage, userID string) storage.Session {
	t.Helper()
	sess := storage.Session{ID: uniq("sess"), UserID: userID, ConnectorID: "qq", AuthTime: now(), ExpiresAt: now().Add(time.Hour)}
	must(t, "CreateSession", s.CreateSession(t.Context(), sess))
	return sess
}

// unchanged checks that a refused merge left both users as they were.
func unchanged(t *testing.T, s storage.Storage, users map[string][]storage.Identity) {
	t.Helper()
	for uid, want := range users {
		_, err := s.GetUser(t.Context(), uid)
		must(t, "GetUser after a refused merge", err)
		got, err := s.ListIdentities(t.Context(), uid)
		must(t, "ListIdentities after a refused merge", err)
		same(t, "identities after a refused merge", got, want, normIdentities)
	}
}

func testMerge(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	from, fromQQ := createUserWith(t, s, "qq")
	fromWeibo := newIdentity(from.ID, "weibo", now().Add(time.Second))
	must(t, "BindIdentity", s.BindIdentity(ctx, fromWeibo))
	fromSess := newUserSession(t, s, from.ID)
	fromAccess := newToken(storage.KindAccessToken, uniq("req"), from.ID)
	fromRefresh := newToken(storage.KindRefreshToken, fromAccess.RequestID, from.ID)
	createTokens(t, s, fromAccess, fromRefresh)

	into, intoWeChat := createUserWith(t, s, "wechat")
	intoSess := newUserSession(t, s, into.ID)
	intoTok := newToken(storage.KindAccessToken, uniq("req"), into.ID)
	createTokens(t, s, intoTok)

	moved, err := s.MergeUsers(ctx, storage.Merge{From: from.ID, Into: into.ID})
	must(t, "MergeUsers", err)
	fromQQ.UserID, fromWeibo.UserID = into.ID, into.ID
	same(t, "moved identities", moved, []storage.Identity{fromQQ, fromWeibo}, normIdentities)

	_, err = s.GetUser(ctx, from.ID)
	wantErr(t, "GetUser of the absorbed user", err, storage.ErrNotFound)
	ids, err := s.ListIdentities(ctx, into.ID)
	must(t, "ListIdentities", err)
	same(t, "identities of the remaining user", ids, []storage.Identity{fromQQ, intoWeChat, fromWeibo}, normIdentities)
	got, err := s.GetIdentity(ctx, fromQQ.ConnectorID, fromQQ.Subject)
	must(t, "GetIdentity of a moved identity", err)
	if got.UserID != into.ID {
		t.Errorf("moved identity belongs to %q, want %q", got.UserID, into.ID)
	}
	nothingLeft(t, s, "the absorbed user", from.ID, fromSess.ID, fromAccess, fromRefresh)

	_, err = s.GetSession(ctx, intoSess.ID)
	must(t, "GetSession of the remaining user", err)
	tokenIs(t, s, intoTok, true)
	// The absorbed id is gone for good: merging it again is not found.
	_, err = s.MergeUsers(ctx, storage.Merge{From: from.ID, Into: into.ID})
	wantErr(t, "MergeUsers again", err, storage.ErrNotFound)
}

func testMergeSharedConnector(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	from, fromWeChat := createUserWith(t, s, "wechat")
	fromQQ := newIdentity(from.ID, "qq", now().Add(time.Second))
	must(t, "BindIdentity", s.BindIdentity(ctx, fromQQ))
	fromTok := newToken(storage.KindAccessToken, uniq("req"), from.ID)
	createTokens(t, s, fromTok)
	into, intoWeChat := createUserWith(t, s, "wechat")
	intoQQ := newIdentity(into.ID, "qq", now().Add(time.Second))
	must(t, "BindIdentity", s.BindIdentity(ctx, intoQQ))

	_, err := s.MergeUsers(ctx, storage.Merge{From: from.ID, Into: into.ID})
	wantErr(t, "MergeUsers with shared connectors", err, storage.ErrConflict)
	var mc *storage.MergeConflictError
	if !errors.As(err, &mc) {
		t.Fatalf("MergeUsers error %v is not a *MergeConflictError", err)
	}
	if want := []string{"qq", "wechat"}; !reflect.DeepEqual(mc.Connectors, want) {
		t.Errorf("conflicting connectors = %v, want %v", mc.Connectors, want)
	}
	unchanged(t, s, map[string][]storage.Identity{
		from.ID: {fromWeChat, fromQQ},
		into.ID: {intoWeChat, intoQQ},
	})
	tokenIs(t, s, fromTok, true)
}

func testMergeMissing(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, id := createUserWith(t, s, "qq")
	_, err := s.MergeUsers(ctx, storage.Merge{From: uniq("nobody"), Into: u.ID})
	wantErr(t, "MergeUsers from a missing user", err, storage.ErrNotFound)
	_, err = s.MergeUsers(ctx, storage.Merge{From: u.ID, Into: uniq("nobody")})
	wantErr(t, "MergeUsers into a missing user", err, storage.ErrNotFound)
	unchanged(t, s, map[string][]storage.Identity{u.ID: {id}})
}

func testMergeSelf(t *testing.T, s storage.Storage) {
	u, id := createUserWith(t, s, "qq")
	_, err := s.MergeUsers(t.Context(), storage.Merge{From: u.ID, Into: u.ID})
	wantErr(t, "MergeUsers into itself", err, storage.ErrConflict)
	unchanged(t, s, map[string][]storage.Identity{u.ID: {id}})
}

func testMergeOnly(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	into, intoWeChat := createUserWith(t, s, "wechat")
	// A user with two identities is not merged on the proof of one.
	two, twoQQ := createUserWith(t, s, "qq")
	twoWeibo := newIdentity(two.ID, "weibo", now().Add(time.Second))
	must(t, "BindIdentity", s.BindIdentity(ctx, twoWeibo))
	_, err := s.MergeUsers(ctx, storage.Merge{From: two.ID, Into: into.ID,
		Only: &storage.IdentityKey{ConnectorID: twoQQ.ConnectorID, Subject: twoQQ.Subject}})
	wantErr(t, "MergeUsers with Only and two identities", err, storage.ErrConflict)
	// Nor on the proof of an identity it does not have.
	one, oneQQ := createUserWith(t, s, "qq")
	_, err = s.MergeUsers(ctx, storage.Merge{From: one.ID, Into: into.ID,
		Only: &storage.IdentityKey{ConnectorID: "qq", Subject: uniq("someone-else")}})
	wantErr(t, "MergeUsers with Only naming another identity", err, storage.ErrConflict)
	unchanged(t, s, map[string][]storage.Identity{
		into.ID: {intoWeChat},
		two.ID:  {twoQQ, twoWeibo},
		one.ID:  {oneQQ},
	})
	moved, err := s.MergeUsers(ctx, storage.Merge{From: one.ID, Into: into.ID,
		Only: &storage.IdentityKey{ConnectorID: oneQQ.ConnectorID, Subject: oneQQ.Subject}})
	must(t, "MergeUsers with Only holding", err)
	oneQQ.UserID = into.ID
	same(t, "moved identities", moved, []storage.Identity{oneQQ}, normIdentities)
	_, err = s.GetUser(ctx, one.ID)
	wantErr(t, "GetUser of the absorbed user", err, storage.ErrNotFound)
}

func testMergeRace(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	from, fromQQ := createUserWith(t, s, "qq")
	intos := make([]storage.User, racers)
	for i := range intos {
		intos[i], _ = createUserWith(t, s, "wechat")
	}
	errs := race(racers, func(i int) error {
		_, err := s.MergeUsers(ctx, storage.Merge{From: from.ID, Into: intos[i].ID})
		return err
	})
	w := oneWinner(t, "concurrent MergeUsers", errs, storage.ErrNotFound)
	got, err := s.GetIdentity(ctx, fromQQ.ConnectorID, fromQQ.Subject)
	must(t, "GetIdentity", err)
	if got.UserID != intos[w].ID {
		t.Errorf("identity belongs to %q, want the winner %q", got.UserID, intos[w].ID)
	}
	winnerHasTheIdentity(ctx, t, s, intos, w)
}
