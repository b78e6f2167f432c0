package storagetest

import (
	"errors"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

// ---------------------------------------------------------- completions

func completionTests() []suiteTest {
	return []suiteTest{
		{"CompleteLoginWritesEveryPart", testCompleteLoginAll},
		{"CompleteLoginRefusesASpentState", testCompleteLoginReplay},
		{"CompleteLoginOfAGoneIdentityWritesNothing", testCompleteLoginIdentityGone},
		{"CompleteLoginWithAFailingTokenOpWritesNothing", testCompleteLoginTokenOpFails},
		{"CompleteLoginSpendsAStateOnce", testCompleteLoginRace},
		{"CompleteLoginUpdatesTheUnionID", testCompleteLoginUnionID},
		{"CompleteLoginRefusesAStateWithoutExpiry", testCompleteLoginStateWithoutExpiry},
	}
}

// completion returns a completion for user's identity id: a fresh state,
// the identity's update, a session, an audit event and a token.
func completion(u storage.User, id storage.Identity) storage.LoginCompletion {
	n := now()
	id.DisplayName, id.RealProfile, id.LastUsedAt = uniq("Alice"), true, n.Add(time.Hour)
	sess := newSession()
	sess.UserID = u.ID
	return storage.LoginCompletion{
		State:          uniq("state"),
		StateConnector: id.ConnectorID,
		StateExpiresAt: n.Add(10 * time.Minute),
		UpdateIdentity: &id,
		Session:        &sess,
		Audit:          []storage.AuditEvent{{Time: n, Action: "login", UserID: u.ID, ConnectorID: id.ConnectorID, Result: "success", Detail: uniq("d")}},
		TokenOps:       []storage.TokenOp{create(newToken(storage.KindAuthorizeCode, uniq("req"), u.ID))},
	}
}

// checkCompleted reports whether every part of c is in the store.
func checkCompleted(t *testing.T, s storage.Storage, c storage.LoginCompletion, want bool) {
	t.Helper()
	ctx := t.Context()
	_, err := s.GetSession(ctx, c.Session.ID)
	if want {
		must(t, "GetSession of the completion", err)
	} else {
		wantErr(t, "GetSession of an undone completion", err, storage.ErrNotFound)
	}
	rec := c.TokenOps[0].Record
	_, err = s.GetToken(ctx, rec.Kind, rec.Signature)
	if want {
		must(t, "GetToken of the completion", err)
	} else {
		wantErr(t, "GetToken of an undone completion", err, storage.ErrNotFound)
	}
	es, err := s.ListAudit(ctx, storage.AuditFilter{UserID: c.Audit[0].UserID})
	must(t, "ListAudit", err)
	found := false
	for _, e := range es {
		found = found || e.Detail == c.Audit[0].Detail
	}
	if found != want {
		t.Errorf("the completion's audit event stored: %v, want %v", found, want)
	}
	if c.UpdateIdentity != nil {
		got, err := s.GetIdentity(ctx, c.UpdateIdentity.ConnectorID, c.UpdateIdentity.Subject)
		if err == nil && (got.DisplayName == c.UpdateIdentity.DisplayName) != want {
			t.Errorf("identity display name %q after the completion (applied: want %v)", got.DisplayName, want)
		}
	}
}

func testCompleteLoginAll(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, id := createUser(t, s)
	old := newSession()
	old.UserID = u.ID
	must(t, "CreateSession", s.CreateSession(ctx, old))
	c := completion(u, id)
	c.DeleteSession = old.ID
	must(t, "CompleteLogin", s.CompleteLogin(ctx, c))
	checkCompleted(t, s, c, true)
	got, err := s.GetIdentity(ctx, id.ConnectorID, id.Subject)
	must(t, "GetIdentity", err)
	same(t, "the updated identity", got, *c.UpdateIdentity, normIdentity)
	_, err = s.GetSession(ctx, old.ID)
	wantErr(t, "GetSession of the replaced session", err, storage.ErrNotFound)
	// Only some parts: a state alone, then tokens alone.
	must(t, "CompleteLogin with a state only", s.CompleteLogin(ctx, storage.LoginCompletion{
		State: uniq("state"), StateConnector: "wechat", StateExpiresAt: now().Add(time.Minute)}))
	must(t, "CompleteLogin with no state", s.CompleteLogin(ctx, storage.LoginCompletion{
		TokenOps: []storage.TokenOp{create(newToken(storage.KindAccessToken, uniq("req"), u.ID))}}))
}

func testCompleteLoginReplay(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, id := createUser(t, s)
	first := completion(u, id)
	must(t, "CompleteLogin", s.CompleteLogin(ctx, first))
	replay := completion(u, id)
	replay.State = first.State
	err := s.CompleteLogin(ctx, replay)
	wantErr(t, "CompleteLogin with a spent state", err, storage.ErrStateUsed)
	wantErr(t, "CompleteLogin with a spent state", err, storage.ErrAlreadyExists)
	checkCompleted(t, s, replay, false)
}

func testCompleteLoginIdentityGone(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, id := createUser(t, s)
	gone := id
	gone.Subject = uniq("nobody")
	c := completion(u, gone)
	err := s.CompleteLogin(ctx, c)
	wantErr(t, "CompleteLogin updating an absent identity", err, storage.ErrNotFound)
	if errors.Is(err, storage.ErrStateUsed) {
		t.Errorf("CompleteLogin of an absent identity reported a spent state: %v", err)
	}
	checkCompleted(t, s, c, false)
	// The state was not spent: the same state completes afterwards.
	ok := completion(u, id)
	ok.State = c.State
	must(t, "CompleteLogin with the state of an undone completion", s.CompleteLogin(ctx, ok))
}

func testCompleteLoginTokenOpFails(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, id := createUser(t, s)
	c := completion(u, id)
	c.TokenOps = append(c.TokenOps, storage.TokenOp{Type: storage.OpDeactivate, Kind: storage.KindAuthorizeCode, Signature: uniq("absent")})
	wantErr(t, "CompleteLogin with a failing token op", s.CompleteLogin(ctx, c), storage.ErrNotFound)
	checkCompleted(t, s, c, false)
}

func testCompleteLoginStateWithoutExpiry(t *testing.T, s storage.Storage) {
	u, id := createUser(t, s)
	c := completion(u, id)
	c.StateExpiresAt = time.Time{}
	if err := s.CompleteLogin(t.Context(), c); err == nil {
		t.Fatal("CompleteLogin stored a state that never expires")
	}
	checkCompleted(t, s, c, false)
}

func testCompleteLoginRace(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, id := createUser(t, s)
	state := uniq("state")
	cs := make([]storage.LoginCompletion, racers)
	for i := range cs {
		cs[i] = completion(u, id)
		cs[i].State = state
	}
	errs := race(racers, func(i int) error { return s.CompleteLogin(ctx, cs[i]) })
	w := oneWinner(t, "CompleteLogin racing on one state", errs, storage.ErrStateUsed)
	for i, c := range cs {
		if i != w {
			checkCompleted(t, s, c, false)
		}
	}
	checkCompleted(t, s, cs[w], true)
}

// testCompleteLoginUnionID: the identity's update sets its union id, new
// or changed, and the union id lookup follows it; an update that keeps
// it changes the rest.
func testCompleteLoginUnionID(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	u, id := createUser(t, s)
	find := func(union string) int {
		t.Helper()
		ids, err := s.FindIdentitiesByUnionID(ctx, union)
		must(t, "FindIdentitiesByUnionID", err)
		n := 0
		for _, got := range ids {
			if got.ConnectorID == id.ConnectorID && got.Subject == id.Subject {
				n++
			}
		}
		return n
	}
	for _, union := range []string{uniq("union"), uniq("union"), ""} {
		old := id.UnionID
		id.UnionID = union
		c := completion(u, id)
		must(t, "CompleteLogin", s.CompleteLogin(ctx, c))
		got, err := s.GetIdentity(ctx, id.ConnectorID, id.Subject)
		must(t, "GetIdentity", err)
		same(t, "the identity with union id "+union, got, *c.UpdateIdentity, normIdentity)
		if union != "" && find(union) != 1 {
			t.Errorf("union id %q: the identity is not found by it after CompleteLogin", union)
		}
		if old != "" && find(old) != 0 {
			t.Errorf("union id %q: the identity is still found by its old union id", old)
		}
		// The same union id again: the rest of the identity changes.
		c = completion(u, id)
		must(t, "CompleteLogin keeping the union id", s.CompleteLogin(ctx, c))
		got, err = s.GetIdentity(ctx, id.ConnectorID, id.Subject)
		must(t, "GetIdentity", err)
		same(t, "the identity updated with the same union id", got, *c.UpdateIdentity, normIdentity)
	}
}
