package storagetest

import (
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

// RunReopenTests checks that what a store wrote survives closing it and
// opening the same database again. open(t, name) opens the database name
// (a file name, a schema: the backend decides; the same name must reach
// the same data). The suite closes every store it opens.
func RunReopenTests(t *testing.T, open func(t *testing.T, name string) storage.Storage) {
	t.Run("DataSurvivesReopen", func(t *testing.T) { testReopen(t, open) })
}

func testReopen(t *testing.T, open func(t *testing.T, name string) storage.Storage) {
	name := uniq("reopen")
	s := open(t, name)
	ctx := t.Context()

	u, id := createUser(t, s)
	tok := newToken(storage.KindRefreshToken, uniq("req"), u.ID)
	createTokens(t, s, tok)
	must(t, "deactivate", s.ApplyTokenOps(ctx, deactivate(tok.Kind, tok.Signature)))
	tok.Active = false
	key := rotate(t, s, now(), now().Add(time.Hour))
	sess := newSession()
	sess.UserID = u.ID
	must(t, "CreateSession", s.CreateSession(ctx, sess))
	login := newLogin()
	must(t, "CreateLogin", s.CreateLogin(ctx, login))
	ev := storage.AuditEvent{Time: now(), Action: "login", UserID: u.ID, ConnectorID: "wechat", Result: "success"}
	must(t, "AppendAudit", s.AppendAudit(ctx, ev))
	cacheKey := uniq("cache")
	must(t, "PutCache", s.PutCache(ctx, cacheKey, []byte("v"), now().Add(time.Hour)))
	lease := uniq("lease")
	acquire(t, s, lease, "a", time.Hour, true)
	must(t, "Close", s.Close())

	// Twice: the second reopen meets a database that is already current.
	for round := range 2 {
		s = open(t, name)
		gotU, err := s.GetUser(ctx, u.ID)
		must(t, "GetUser after reopen", err)
		same(t, "user after reopen", gotU, u, normUser)
		gotID, err := s.GetIdentity(ctx, id.ConnectorID, id.Subject)
		must(t, "GetIdentity after reopen", err)
		same(t, "identity after reopen", gotID, id, normIdentity)
		gotTok, err := s.GetToken(ctx, tok.Kind, tok.Signature)
		must(t, "GetToken after reopen", err)
		same(t, "token after reopen", gotTok, tok, normToken)
		if cur := currentKey(t, s); cur != key.ID {
			t.Errorf("current key after reopen = %q, want %q", cur, key.ID)
		}
		gotSess, err := s.GetSession(ctx, sess.ID)
		must(t, "GetSession after reopen", err)
		same(t, "session after reopen", gotSess, sess, normSession)
		evs, err := s.ListAudit(ctx, storage.AuditFilter{UserID: u.ID})
		must(t, "ListAudit after reopen", err)
		if len(evs) != 1 {
			t.Errorf("ListAudit after reopen = %d events, want 1", len(evs))
		}
		v, _, err := s.GetCache(ctx, cacheKey)
		must(t, "GetCache after reopen", err)
		if string(v) != "v" {
			t.Errorf("GetCache after reopen = %q", v)
		}
		acquire(t, s, lease, "b", time.Hour, false)
		if round == 0 {
			gotLogin, err := s.TakeLogin(ctx, login.State)
			must(t, "TakeLogin after reopen", err)
			same(t, "login after reopen", gotLogin, login, normLogin)
		} else {
			_, err := s.TakeLogin(ctx, login.State)
			wantErr(t, "TakeLogin of a login taken before reopen", err, storage.ErrNotFound)
		}
		must(t, "Close", s.Close())
	}
}
