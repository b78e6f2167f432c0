package storagetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

func userTests() []suiteTest {
	return append([]suiteTest{
		{"CreateUserStoresUserAndFirstIdentity", testCreateUser},
		{"CreateUserWithTakenIDWritesNothing", testCreateUserTakenID},
		{"CreateUserWithTakenIdentityWritesNothing", testCreateUserTakenIdentity},
		{"MissingUserAndIdentityAreNotFound", testMissingUser},
		{"ListUsersPagesInIDOrder", testListUsers},
		{"DeleteUserRemovesIdentitiesSessionsAndTokens", testDeleteUser},
		{"DeleteMissingUserIsNotFound", testDeleteMissingUser},
		{"BindIdentityAddsIdentityListedByBoundAt", testBindIdentity},
		{"BindIdentityToMissingUserIsNotFound", testBindMissingUser},
		{"BindTakenIdentityIsAlreadyExists", testBindTaken},
		{"ConcurrentBindsOfOneIdentityHaveOneWinner", testBindRace},
		{"BindSecondIdentityOfAConnectorIsConnectorTaken", testBindConnectorTaken},
		{"ConcurrentBindsOfOneConnectorToOneUserHaveOneWinner", testBindConnectorRace},
		{"UpdateIdentityRewritesOnlyMutableFields", testUpdateIdentity},
		{"UpdateMissingIdentityIsNotFound", testUpdateMissingIdentity},
		{"UnbindIdentityRemovesThatConnector", testUnbind},
		{"UnbindLastIdentityIsRefused", testUnbindLast},
		{"UnbindUnboundConnectorIsNotFound", testUnbindMissing},
		{"ConcurrentUnbindsLeaveOneIdentity", testUnbindRace},
		{"UnbindIdentityRevokesSessionsAndTokensThatCameThroughIt", testUnbindRevokes},
		{"RefusedUnbindRevokesNothing", testUnbindRefusedRevokesNothing},
		{"RevokeUserGrantsEndsEverySessionAndTokenOfTheUserOnly", testRevokeUserGrants},
		{"FindIdentitiesByUnionIDOrderedByBoundAt", testFindByUnionID},
		{"ListIdentitiesOfUnknownUserIsEmpty", testListIdentitiesUnknown},
		{"IdentitySecretBytesRoundTrip", testIdentitySecretBytes},
	}, mergeTests()...)
}

func testCreateUser(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u := storage.User{ID: uniq("user"), CreatedAt: now()}
	id := newIdentity("", "wechat", now())
	id.UnionID = uniq("wechat:union")
	id.RealProfile = true
	must(t, "CreateUser", s.CreateUser(ctx, u, id))

	gotU, err := s.GetUser(ctx, u.ID)
	must(t, "GetUser", err)
	same(t, "GetUser", gotU, u, normUser)
	checkUTC(t, "GetUser", gotU.CreatedAt)

	id.UserID = u.ID
	gotID, err := s.GetIdentity(ctx, id.ConnectorID, id.Subject)
	must(t, "GetIdentity", err)
	same(t, "GetIdentity", gotID, id, normIdentity)
	checkUTC(t, "GetIdentity", gotID.BoundAt, gotID.LastUsedAt)

	ids, err := s.ListIdentities(ctx, u.ID)
	must(t, "ListIdentities", err)
	same(t, "ListIdentities", ids, []storage.Identity{id}, normIdentities)
}

func testCreateUserTakenID(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, _ := createUser(t, s)
	other := newIdentity(u.ID, "qq", now())
	wantErr(t, "CreateUser with a taken id", s.CreateUser(ctx, u, other), storage.ErrAlreadyExists)
	_, err := s.GetIdentity(ctx, other.ConnectorID, other.Subject)
	wantErr(t, "GetIdentity of the refused identity", err, storage.ErrNotFound)
	ids, err := s.ListIdentities(ctx, u.ID)
	must(t, "ListIdentities", err)
	if len(ids) != 1 {
		t.Errorf("user has %d identities after a refused CreateUser, want 1", len(ids))
	}
}

func testCreateUserTakenIdentity(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u1, id := createUser(t, s)
	u2 := storage.User{ID: uniq("user"), CreatedAt: now()}
	wantErr(t, "CreateUser with a taken identity", s.CreateUser(ctx, u2, id), storage.ErrAlreadyExists)
	_, err := s.GetUser(ctx, u2.ID)
	wantErr(t, "GetUser of the refused user", err, storage.ErrNotFound)
	got, err := s.GetIdentity(ctx, id.ConnectorID, id.Subject)
	must(t, "GetIdentity", err)
	if got.UserID != u1.ID {
		t.Errorf("identity moved to %q, want it to stay with %q", got.UserID, u1.ID)
	}
}

func testMissingUser(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	_, err := s.GetUser(ctx, uniq("nobody"))
	wantErr(t, "GetUser", err, storage.ErrNotFound)
	_, err = s.GetIdentity(ctx, "wechat", uniq("nobody"))
	wantErr(t, "GetIdentity", err, storage.ErrNotFound)
}

func testListUsers(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	prefix := uniq("list")
	var want []string
	// Insert out of order: the listing must sort.
	for _, suffix := range []string{"c", "a", "e", "b", "d"} {
		u := storage.User{ID: prefix + "-" + suffix, CreatedAt: now()}
		must(t, "CreateUser", s.CreateUser(ctx, u, newIdentity(u.ID, "wechat", now())))
		want = append(want, u.ID)
	}
	slices.Sort(want)

	// IDs with our prefix sort together, right after the prefix itself.
	var got []string
	after := prefix
	for page := 0; ; page++ {
		if page > len(want) {
			t.Fatalf("ListUsers did not reach the end of %d users in %d pages", len(want), page)
		}
		us, err := s.ListUsers(ctx, after, 2)
		must(t, "ListUsers", err)
		if len(us) > 2 {
			t.Fatalf("ListUsers(limit 2) returned %d users", len(us))
		}
		done := len(us) == 0
		for _, u := range us {
			if !strings.HasPrefix(u.ID, prefix) {
				done = true
				break
			}
			checkUTC(t, "ListUsers", u.CreatedAt)
			got = append(got, u.ID)
			after = u.ID
		}
		if done {
			break
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("paged ListUsers = %v, want %v", got, want)
	}
}

func testDeleteUser(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, id1 := createUser(t, s)
	id2 := newIdentity(u.ID, "qq", now())
	must(t, "BindIdentity", s.BindIdentity(ctx, id2))
	sess := storage.Session{ID: uniq("sess"), UserID: u.ID, ConnectorID: "wechat", AuthTime: now(), ExpiresAt: now().Add(time.Hour)}
	must(t, "CreateSession", s.CreateSession(ctx, sess))
	access := newToken(storage.KindAccessToken, uniq("req"), u.ID)
	refresh := newToken(storage.KindRefreshToken, access.RequestID, u.ID)
	createTokens(t, s, access, refresh)

	// Someone else's rows must survive.
	other, otherID := createUser(t, s)
	otherSess := storage.Session{ID: uniq("sess"), UserID: other.ID, ConnectorID: "wechat", AuthTime: now(), ExpiresAt: now().Add(time.Hour)}
	must(t, "CreateSession", s.CreateSession(ctx, otherSess))
	otherTok := newToken(storage.KindAccessToken, uniq("req"), other.ID)
	createTokens(t, s, otherTok)

	must(t, "DeleteUser", s.DeleteUser(ctx, u.ID))

	_, err := s.GetUser(ctx, u.ID)
	wantErr(t, "GetUser after delete", err, storage.ErrNotFound)
	for _, id := range []storage.Identity{id1, id2} {
		_, err := s.GetIdentity(ctx, id.ConnectorID, id.Subject)
		wantErr(t, "GetIdentity after delete", err, storage.ErrNotFound)
	}
	nothingLeft(t, s, "a deleted user", u.ID, sess.ID, access, refresh)

	_, err = s.GetUser(ctx, other.ID)
	must(t, "GetUser of another user", err)
	_, err = s.GetIdentity(ctx, otherID.ConnectorID, otherID.Subject)
	must(t, "GetIdentity of another user", err)
	_, err = s.GetSession(ctx, otherSess.ID)
	must(t, "GetSession of another user", err)
	tokenIs(t, s, otherTok, true)
}

func testDeleteMissingUser(t *testing.T, s storage.Storage) {
	wantErr(t, "DeleteUser", s.DeleteUser(t.Context(), uniq("nobody")), storage.ErrNotFound)
}

func testBindIdentity(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, first := createUser(t, s)
	// Bound "earlier" than the first: the listing follows BoundAt, not
	// insertion order.
	earlier := newIdentity(u.ID, "weibo", first.BoundAt.Add(-time.Hour))
	earlier.ConnectorType = "weibo"
	later := newIdentity(u.ID, "qq", first.BoundAt.Add(time.Hour))
	later.ConnectorType = "qq"
	later.Secret = nil
	must(t, "BindIdentity", s.BindIdentity(ctx, earlier))
	must(t, "BindIdentity", s.BindIdentity(ctx, later))

	got, err := s.GetIdentity(ctx, earlier.ConnectorID, earlier.Subject)
	must(t, "GetIdentity", err)
	same(t, "GetIdentity", got, earlier, normIdentity)

	ids, err := s.ListIdentities(ctx, u.ID)
	must(t, "ListIdentities", err)
	same(t, "ListIdentities", ids, []storage.Identity{earlier, first, later}, normIdentities)
}

func testBindMissingUser(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	id := newIdentity(uniq("nobody"), "qq", now())
	wantErr(t, "BindIdentity", s.BindIdentity(ctx, id), storage.ErrNotFound)
	_, err := s.GetIdentity(ctx, id.ConnectorID, id.Subject)
	wantErr(t, "GetIdentity of the refused identity", err, storage.ErrNotFound)
}

func testBindTaken(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	owner, id := createUser(t, s)
	other, _ := createUser(t, s)
	for _, to := range []string{other.ID, owner.ID} {
		again := id
		again.UserID = to
		again.DisplayName = "someone else"
		wantErr(t, "BindIdentity of a bound identity", s.BindIdentity(ctx, again), storage.ErrAlreadyExists)
	}
	got, err := s.GetIdentity(ctx, id.ConnectorID, id.Subject)
	must(t, "GetIdentity", err)
	same(t, "identity after refused binds", got, id, normIdentity)
}

func testBindRace(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	users := make([]storage.User, racers)
	for i := range users {
		users[i], _ = createUser(t, s)
	}
	contested := newIdentity("", "qq", now())
	errs := race(racers, func(i int) error {
		id := contested
		id.UserID = users[i].ID
		return s.BindIdentity(ctx, id)
	})
	w := oneWinner(t, "concurrent BindIdentity", errs, storage.ErrAlreadyExists)
	got, err := s.GetIdentity(ctx, contested.ConnectorID, contested.Subject)
	must(t, "GetIdentity", err)
	if got.UserID != users[w].ID {
		t.Errorf("identity bound to %q, want the winner %q", got.UserID, users[w].ID)
	}
	winnerHasTheIdentity(ctx, t, s, users, w)
}

// A user has at most one identity per connector: a second one is refused
// and nothing is written.
func testBindConnectorTaken(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, first := createUser(t, s)
	second := newIdentity(u.ID, first.ConnectorID, now().Add(time.Second))
	err := s.BindIdentity(ctx, second)
	wantErr(t, "BindIdentity of a second identity of a connector", err, storage.ErrConnectorTaken)
	wantErr(t, "BindIdentity of a second identity of a connector", err, storage.ErrAlreadyExists)
	_, err = s.GetIdentity(ctx, second.ConnectorID, second.Subject)
	wantErr(t, "GetIdentity of the refused identity", err, storage.ErrNotFound)
	ids, err := s.ListIdentities(ctx, u.ID)
	must(t, "ListIdentities", err)
	same(t, "identities after the refused bind", ids, []storage.Identity{first}, normIdentities)
	// Another connector still binds.
	must(t, "BindIdentity of another connector", s.BindIdentity(ctx, newIdentity(u.ID, "qq", now().Add(2*time.Second))))
}

// Of concurrent binds of different identities of one connector to one
// user, exactly one wins.
func testBindConnectorRace(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, _ := createUser(t, s)
	errs := race(racers, func(i int) error {
		return s.BindIdentity(ctx, newIdentity(u.ID, "qq", now()))
	})
	oneWinner(t, "concurrent BindIdentity of one connector", errs, storage.ErrConnectorTaken)
	ids, err := s.ListIdentities(ctx, u.ID)
	must(t, "ListIdentities", err)
	qq := 0
	for _, id := range ids {
		if id.ConnectorID == "qq" {
			qq++
		}
	}
	if len(ids) != 2 || qq != 1 {
		t.Errorf("user has %d identities, %d of qq, want 2 and 1", len(ids), qq)
	}
}

func testUpdateIdentity(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, id := createUser(t, s)
	other, _ := createUser(t, s)

	upd := id
	upd.UnionID = uniq("wechat:union")
	upd.DisplayName = "张三"
	upd.Picture = "https://example.com/zhangsan.png"
	upd.RealProfile = true
	upd.Secret = []byte("new session key")
	upd.LastUsedAt = now().Add(2 * time.Hour)
	// Immutable fields: ignored.
	upd.UserID = other.ID
	upd.ConnectorType = "qq"
	upd.BoundAt = now().Add(-48 * time.Hour)
	must(t, "UpdateIdentity", s.UpdateIdentity(ctx, upd))

	want := id
	want.UnionID, want.DisplayName, want.Picture = upd.UnionID, upd.DisplayName, upd.Picture
	want.RealProfile, want.Secret, want.LastUsedAt = upd.RealProfile, upd.Secret, upd.LastUsedAt
	got, err := s.GetIdentity(ctx, id.ConnectorID, id.Subject)
	must(t, "GetIdentity", err)
	same(t, "updated identity", got, want, normIdentity)
	if got.UserID != u.ID {
		t.Errorf("UpdateIdentity moved the identity to %q", got.UserID)
	}

	// Clearing the secret and the union id.
	upd = want
	upd.UnionID, upd.Secret, upd.RealProfile = "", nil, false
	must(t, "UpdateIdentity", s.UpdateIdentity(ctx, upd))
	got, err = s.GetIdentity(ctx, id.ConnectorID, id.Subject)
	must(t, "GetIdentity", err)
	same(t, "cleared identity", got, upd, normIdentity)
}

func testUpdateMissingIdentity(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, _ := createUser(t, s)
	id := newIdentity(u.ID, "qq", now())
	wantErr(t, "UpdateIdentity", s.UpdateIdentity(ctx, id), storage.ErrNotFound)
	_, err := s.GetIdentity(ctx, id.ConnectorID, id.Subject)
	wantErr(t, "GetIdentity after a refused update", err, storage.ErrNotFound)
}

func testUnbind(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, first := createUser(t, s)
	second := newIdentity(u.ID, "qq", now())
	must(t, "BindIdentity", s.BindIdentity(ctx, second))
	must(t, "UnbindIdentity", s.UnbindIdentity(ctx, u.ID, "qq"))
	_, err := s.GetIdentity(ctx, second.ConnectorID, second.Subject)
	wantErr(t, "GetIdentity after unbind", err, storage.ErrNotFound)
	ids, err := s.ListIdentities(ctx, u.ID)
	must(t, "ListIdentities", err)
	same(t, "identities after unbind", ids, []storage.Identity{first}, normIdentities)
	// The freed identity can be bound again.
	must(t, "BindIdentity after unbind", s.BindIdentity(ctx, second))
}

func testUnbindLast(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, id := createUser(t, s)
	wantErr(t, "UnbindIdentity", s.UnbindIdentity(ctx, u.ID, id.ConnectorID), storage.ErrLastIdentity)
	_, err := s.GetIdentity(ctx, id.ConnectorID, id.Subject)
	must(t, "GetIdentity after a refused unbind", err)
}

func testUnbindMissing(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, _ := createUser(t, s)
	wantErr(t, "UnbindIdentity of an unbound connector", s.UnbindIdentity(ctx, u.ID, "weibo"), storage.ErrNotFound)
	wantErr(t, "UnbindIdentity of an unknown user", s.UnbindIdentity(ctx, uniq("nobody"), "wechat"), storage.ErrNotFound)
}

func testUnbindRace(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	for round := range 8 {
		u, first := createUser(t, s)
		second := newIdentity(u.ID, "qq", now())
		must(t, "BindIdentity", s.BindIdentity(ctx, second))
		conns := []string{first.ConnectorID, second.ConnectorID}
		errs := race(2, func(i int) error { return s.UnbindIdentity(ctx, u.ID, conns[i]) })
		oneWinner(t, "concurrent UnbindIdentity", errs, storage.ErrLastIdentity)
		ids, err := s.ListIdentities(ctx, u.ID)
		must(t, "ListIdentities", err)
		if len(ids) != 1 {
			t.Fatalf("round %d: user has %d identities after racing unbinds, want 1", round, len(ids))
		}
	}

	// Many identities unbound at once: all but one go.
	u, first := createUser(t, s)
	conns := []string{first.ConnectorID}
	for i := 1; i < racers; i++ {
		id := newIdentity(u.ID, fmt.Sprintf("conn-%d", i), now())
		must(t, "BindIdentity", s.BindIdentity(ctx, id))
		conns = append(conns, id.ConnectorID)
	}
	errs := race(racers, func(i int) error { return s.UnbindIdentity(ctx, u.ID, conns[i]) })
	refused := 0
	for i, err := range errs {
		switch {
		case errors.Is(err, storage.ErrLastIdentity):
			refused++
		case err != nil:
			t.Errorf("racer %d: %v", i, err)
		}
	}
	ids, err := s.ListIdentities(ctx, u.ID)
	must(t, "ListIdentities", err)
	if refused != 1 || len(ids) != 1 {
		t.Errorf("%d racing unbinds: %d refused and %d identities left, want 1 and 1", racers, refused, len(ids))
	}
}

func testFindByUnionID(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	union := uniq("wechat:union")
	base := now()
	u1, _ := createUser(t, s)
	u2, _ := createUser(t, s)
	a := newIdentity(u1.ID, "wechat_mp", base.Add(2*time.Minute))
	b := newIdentity(u2.ID, "wechat_miniprogram", base.Add(-time.Minute))
	c := newIdentity(u1.ID, "wechat_web", base.Add(time.Minute))
	unrelated := newIdentity(u2.ID, "wechat_web", base)
	unrelated.UnionID = uniq("wechat:union")
	for _, id := range []*storage.Identity{&a, &b, &c} {
		id.UnionID = union
	}
	for _, id := range []storage.Identity{a, b, c, unrelated} {
		must(t, "BindIdentity", s.BindIdentity(ctx, id))
	}

	got, err := s.FindIdentitiesByUnionID(ctx, union)
	must(t, "FindIdentitiesByUnionID", err)
	same(t, "FindIdentitiesByUnionID", got, []storage.Identity{b, c, a}, normIdentities)

	got, err = s.FindIdentitiesByUnionID(ctx, uniq("wechat:union"))
	must(t, "FindIdentitiesByUnionID of an unknown union id", err)
	if len(got) != 0 {
		t.Errorf("unknown union id matched %d identities", len(got))
	}
	got, err = s.FindIdentitiesByUnionID(ctx, "")
	must(t, "FindIdentitiesByUnionID(\"\")", err)
	if len(got) != 0 {
		t.Errorf("empty union id matched %d identities, want none", len(got))
	}
}

func testListIdentitiesUnknown(t *testing.T, s storage.Storage) {
	ids, err := s.ListIdentities(t.Context(), uniq("nobody"))
	must(t, "ListIdentities", err)
	if len(ids) != 0 {
		t.Errorf("ListIdentities of an unknown user = %d identities", len(ids))
	}
}

func testIdentitySecretBytes(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, _ := createUser(t, s)
	for i, secret := range [][]byte{nil, {}, {0}, {0, 0, 0xff, 0x80, '\''}, make([]byte, 4096)} {
		id := newIdentity(u.ID, uniq("conn"), now())
		id.Secret = secret
		must(t, "BindIdentity", s.BindIdentity(ctx, id))
		got, err := s.GetIdentity(ctx, id.ConnectorID, id.Subject)
		must(t, "GetIdentity", err)
		if string(got.Secret) != string(secret) {
			t.Errorf("secret %d: got %x, want %x", i, got.Secret, secret)
		}
	}
}

// grantsOf makes a browser session and a token family (code, access and
// refresh token) of user u that came through identity id.
func grantsOf(t *testing.T, s storage.Storage, u storage.User, id storage.Identity) (storage.Session, []storage.TokenRecord) {
	t.Helper()
	sess := storage.Session{ID: uniq("sess"), UserID: u.ID, ConnectorID: id.ConnectorID, IdentitySubject: id.Subject,
		AuthTime: now(), ExpiresAt: now().Add(time.Hour)}
	must(t, "CreateSession", s.CreateSession(t.Context(), sess))
	req := uniq("req")
	var toks []storage.TokenRecord
	for _, k := range []storage.TokenKind{storage.KindAuthorizeCode, storage.KindAccessToken, storage.KindRefreshToken} {
		tok := newToken(k, req, u.ID)
		tok.IdentityConnector, tok.IdentitySubject = id.ConnectorID, id.Subject
		toks = append(toks, tok)
	}
	createTokens(t, s, toks...)
	return sess, toks
}

func sessionKept(t *testing.T, s storage.Storage, what string, sess storage.Session) {
	t.Helper()
	if _, err := s.GetSession(t.Context(), sess.ID); err != nil {
		t.Errorf("%s: session gone: %v", what, err)
	}
}

func sessionGone(t *testing.T, s storage.Storage, what string, sess storage.Session) {
	t.Helper()
	_, err := s.GetSession(t.Context(), sess.ID)
	wantErr(t, what+": GetSession", err, storage.ErrNotFound)
}

func tokensKept(t *testing.T, s storage.Storage, what string, toks []storage.TokenRecord) {
	t.Helper()
	for _, tok := range toks {
		if _, err := s.GetToken(t.Context(), tok.Kind, tok.Signature); err != nil {
			t.Errorf("%s: %s gone: %v", what, tok.Kind, err)
		}
	}
}

func testUnbindRevokes(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, wechat := createUser(t, s)
	qq := newIdentity(u.ID, "qq", now())
	must(t, "BindIdentity", s.BindIdentity(ctx, qq))
	qqSess, qqToks := grantsOf(t, s, u, qq)
	wechatSess, wechatToks := grantsOf(t, s, u, wechat)
	// A session and a token from before identities were recorded: their
	// origin is unknown, so they go with the unbind too.
	legacySess := storage.Session{ID: uniq("sess"), UserID: u.ID, ConnectorID: "qq", AuthTime: now(), ExpiresAt: now().Add(time.Hour)}
	must(t, "CreateSession", s.CreateSession(ctx, legacySess))
	legacyTok := newToken(storage.KindRefreshToken, uniq("req"), u.ID)
	legacyTok.IdentityConnector, legacyTok.IdentitySubject = "", ""
	createTokens(t, s, legacyTok)
	// Another user's grants through an identity of the same connector stay.
	other, _ := createUser(t, s)
	otherQQ := newIdentity(other.ID, "qq", now())
	must(t, "BindIdentity", s.BindIdentity(ctx, otherQQ))
	otherSess, otherToks := grantsOf(t, s, other, otherQQ)

	must(t, "UnbindIdentity", s.UnbindIdentity(ctx, u.ID, "qq"))

	sessionGone(t, s, "session of the unbound identity", qqSess)
	for _, tok := range qqToks {
		tokenGone(t, s, tok)
	}
	sessionGone(t, s, "session of unknown identity of the unbound connector", legacySess)
	tokenGone(t, s, legacyTok)
	sessionKept(t, s, "session of the identity that stays", wechatSess)
	tokensKept(t, s, "tokens of the identity that stays", wechatToks)
	sessionKept(t, s, "another user's session", otherSess)
	tokensKept(t, s, "another user's tokens", otherToks)
}

func testUnbindRefusedRevokesNothing(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, wechat := createUser(t, s)
	sess, toks := grantsOf(t, s, u, wechat)
	wantErr(t, "UnbindIdentity of the last identity", s.UnbindIdentity(ctx, u.ID, "wechat"), storage.ErrLastIdentity)
	wantErr(t, "UnbindIdentity of an unbound connector", s.UnbindIdentity(ctx, u.ID, "qq"), storage.ErrNotFound)
	sessionKept(t, s, "after a refused unbind", sess)
	tokensKept(t, s, "after a refused unbind", toks)
}

func testRevokeUserGrants(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, wechat := createUser(t, s)
	qq := newIdentity(u.ID, "qq", now())
	must(t, "BindIdentity", s.BindIdentity(ctx, qq))
	s1, t1 := grantsOf(t, s, u, wechat)
	s2, t2 := grantsOf(t, s, u, qq)
	other, otherID := createUser(t, s)
	otherSess, otherToks := grantsOf(t, s, other, otherID)

	must(t, "RevokeUserGrants", s.RevokeUserGrants(ctx, u.ID))
	for _, sess := range []storage.Session{s1, s2} {
		sessionGone(t, s, "after RevokeUserGrants", sess)
	}
	for _, tok := range append(t1, t2...) {
		tokenGone(t, s, tok)
	}
	ids, err := s.ListIdentities(ctx, u.ID)
	must(t, "ListIdentities", err)
	if len(ids) != 2 {
		t.Errorf("RevokeUserGrants left %d identities, want 2", len(ids))
	}
	sessionKept(t, s, "another user's session", otherSess)
	tokensKept(t, s, "another user's tokens", otherToks)
	must(t, "RevokeUserGrants of a user with nothing left", s.RevokeUserGrants(ctx, u.ID))
	must(t, "RevokeUserGrants of an unknown user", s.RevokeUserGrants(ctx, uniq("nobody")))
}
