package storagetest

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

// ------------------------------------------------------------- sessions

func sessionTests() []suiteTest {
	return []suiteTest{
		{"CreatedSessionRoundTrips", testSessionRoundTrip},
		{"CreateDuplicateSessionIsAlreadyExists", testSessionDuplicate},
		{"MissingSessionIsNotFound", testSessionMissing},
		{"ExpiredSessionIsNotFoundBeforeGC", testSessionExpired},
		{"UpdateSessionRewritesFields", testSessionUpdate},
		{"UpdateMissingSessionIsNotFound", testSessionUpdateMissing},
		{"DeleteSessionRemovesItAndIgnoresMissing", testSessionDelete},
	}
}

func newSession() storage.Session {
	n := now()
	return storage.Session{
		ID:          uniq("sess"),
		UserID:      uniq("user"),
		ConnectorID: "wechat",
		AuthTime:    n,
		ExpiresAt:   n.Add(24 * time.Hour),
		Data:        []byte{'{', 0, 0xff, '}'},

		IdentitySubject: uniq("o6_subject"),
	}
}

func testSessionRoundTrip(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	for _, sess := range []storage.Session{
		newSession(),
		func() storage.Session { x := newSession(); x.Data, x.ExpiresAt = nil, time.Time{}; return x }(),
	} {
		must(t, "CreateSession", s.CreateSession(ctx, sess))
		got, err := s.GetSession(ctx, sess.ID)
		must(t, "GetSession", err)
		same(t, "GetSession", got, sess, normSession)
		checkUTC(t, "GetSession", got.AuthTime, got.ExpiresAt)
	}
}

func testSessionDuplicate(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	sess := newSession()
	must(t, "CreateSession", s.CreateSession(ctx, sess))
	dup := sess
	dup.UserID = uniq("user")
	wantErr(t, "CreateSession with a taken id", s.CreateSession(ctx, dup), storage.ErrAlreadyExists)
	got, err := s.GetSession(ctx, sess.ID)
	must(t, "GetSession", err)
	same(t, "session after a refused duplicate", got, sess, normSession)
}

func testSessionMissing(t *testing.T, s storage.Storage) {
	_, err := s.GetSession(t.Context(), uniq("sess"))
	wantErr(t, "GetSession", err, storage.ErrNotFound)
}

func testSessionExpired(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	sess := newSession()
	sess.ExpiresAt = now().Add(-time.Second)
	must(t, "CreateSession", s.CreateSession(ctx, sess))
	_, err := s.GetSession(ctx, sess.ID)
	wantErr(t, "GetSession of an expired session", err, storage.ErrNotFound)
}

func testSessionUpdate(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	sess := newSession()
	must(t, "CreateSession", s.CreateSession(ctx, sess))
	upd := storage.Session{
		ID:          sess.ID,
		UserID:      uniq("user"),
		ConnectorID: "qq",
		AuthTime:    now().Add(time.Minute),
		ExpiresAt:   now().Add(48 * time.Hour),
		Data:        []byte("updated"),

		IdentitySubject: uniq("qq-openid"),
	}
	must(t, "UpdateSession", s.UpdateSession(ctx, upd))
	got, err := s.GetSession(ctx, sess.ID)
	must(t, "GetSession", err)
	same(t, "updated session", got, upd, normSession)
}

func testSessionUpdateMissing(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	sess := newSession()
	wantErr(t, "UpdateSession", s.UpdateSession(ctx, sess), storage.ErrNotFound)
	_, err := s.GetSession(ctx, sess.ID)
	wantErr(t, "GetSession after a refused update", err, storage.ErrNotFound)
}

func testSessionDelete(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	sess, keep := newSession(), newSession()
	must(t, "CreateSession", s.CreateSession(ctx, sess))
	must(t, "CreateSession", s.CreateSession(ctx, keep))
	must(t, "DeleteSession", s.DeleteSession(ctx, sess.ID))
	_, err := s.GetSession(ctx, sess.ID)
	wantErr(t, "GetSession after delete", err, storage.ErrNotFound)
	_, err = s.GetSession(ctx, keep.ID)
	must(t, "GetSession of another session", err)
	must(t, "DeleteSession of a missing session", s.DeleteSession(ctx, sess.ID))
}

// --------------------------------------------------------------- logins

func loginTests() []suiteTest {
	return []suiteTest{
		{"TakeLoginReturnsItOnce", testTakeLogin},
		{"CreateDuplicateLoginIsAlreadyExists", testLoginDuplicate},
		{"TakeMissingLoginIsNotFound", testLoginMissing},
		{"TakeExpiredLoginIsNotFound", testLoginExpired},
		{"ConcurrentTakersGetLoginOnce", testLoginRace},
	}
}

func newLogin() storage.PendingLogin {
	n := now()
	return storage.PendingLogin{
		State:       uniq("state"),
		ConnectorID: "qq",
		Binding:     uniq("binding"),
		Data:        []byte(`{"client_id":"app-1","nonce":"n"}`),
		CreatedAt:   n,
		ExpiresAt:   n.Add(10 * time.Minute),
	}
}

func testTakeLogin(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	for _, l := range []storage.PendingLogin{
		newLogin(),
		func() storage.PendingLogin { x := newLogin(); x.Data, x.ExpiresAt = nil, time.Time{}; return x }(),
	} {
		must(t, "CreateLogin", s.CreateLogin(ctx, l))
		got, err := s.TakeLogin(ctx, l.State)
		must(t, "TakeLogin", err)
		same(t, "TakeLogin", got, l, normLogin)
		checkUTC(t, "TakeLogin", got.CreatedAt, got.ExpiresAt)
		_, err = s.TakeLogin(ctx, l.State)
		wantErr(t, "second TakeLogin", err, storage.ErrNotFound)
	}
}

func testLoginDuplicate(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	l := newLogin()
	must(t, "CreateLogin", s.CreateLogin(ctx, l))
	dup := l
	dup.Binding = "attacker"
	wantErr(t, "CreateLogin with a taken state", s.CreateLogin(ctx, dup), storage.ErrAlreadyExists)
	got, err := s.TakeLogin(ctx, l.State)
	must(t, "TakeLogin", err)
	same(t, "login after a refused duplicate", got, l, normLogin)
}

func testLoginMissing(t *testing.T, s storage.Storage) {
	_, err := s.TakeLogin(t.Context(), uniq("state"))
	wantErr(t, "TakeLogin", err, storage.ErrNotFound)
}

func testLoginExpired(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	l := newLogin()
	l.CreatedAt, l.ExpiresAt = now().Add(-time.Hour), now().Add(-time.Second)
	must(t, "CreateLogin", s.CreateLogin(ctx, l))
	_, err := s.TakeLogin(ctx, l.State)
	wantErr(t, "TakeLogin of an expired login", err, storage.ErrNotFound)
}

func testLoginRace(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	l := newLogin()
	must(t, "CreateLogin", s.CreateLogin(ctx, l))
	got := make([]storage.PendingLogin, racers)
	errs := race(racers, func(i int) error {
		var err error
		got[i], err = s.TakeLogin(ctx, l.State)
		return err
	})
	w := oneWinner(t, "concurrent TakeLogin", errs, storage.ErrNotFound)
	same(t, "the winner's login", got[w], l, normLogin)
}

// ---------------------------------------------------------------- audit

func auditTests() []suiteTest {
	return []suiteTest{
		{"ListAuditFiltersNewestFirst", testAuditFilters},
		{"ListAuditByTimeRangeAlone", testAuditTimeRange},
		{"GarbageCollectRemovesAuditOlderThanTheCutoff", testAuditRetention},
	}
}

// testAuditRetention: GarbageCollect removes the audit events strictly
// older than auditBefore, keeps the rest, and keeps everything when
// auditBefore is zero. The old events lie in 2001, where no other test
// writes, so a shared database does not disturb the counts.
func testAuditRetention(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	user := uniq("user")
	cutoff := time.Date(2001, 6, 1, 0, 0, 0, 0, time.UTC)
	times := []time.Time{cutoff.Add(-90 * 24 * time.Hour), cutoff.Add(-time.Millisecond), cutoff, cutoff.Add(time.Hour), now()}
	for _, at := range times {
		must(t, "AppendAudit", s.AppendAudit(ctx, storage.AuditEvent{Time: at, Action: "login", UserID: user, Result: "success"}))
	}
	count := func() int {
		evs, err := s.ListAudit(ctx, storage.AuditFilter{UserID: user})
		must(t, "ListAudit", err)
		return len(evs)
	}
	res, err := s.GarbageCollect(ctx, time.Now(), time.Time{})
	must(t, "GarbageCollect keeping the audit log", err)
	if res.Audit != 0 || count() != len(times) {
		t.Fatalf("a zero cutoff removed audit events: result %d, %d of %d left", res.Audit, count(), len(times))
	}
	res, err = s.GarbageCollect(ctx, time.Now(), cutoff)
	must(t, "GarbageCollect", err)
	if res.Audit < 2 {
		t.Errorf("GarbageCollect reports %d audit events removed, want at least 2", res.Audit)
	}
	evs, err := s.ListAudit(ctx, storage.AuditFilter{UserID: user})
	must(t, "ListAudit", err)
	if len(evs) != 3 {
		t.Fatalf("%d events left, want the 3 at or after the cutoff", len(evs))
	}
	for _, e := range evs {
		if e.Time.Before(cutoff) {
			t.Errorf("event of %v survived the cutoff %v", e.Time, cutoff)
		}
	}
}

func testAuditFilters(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	user := uniq("user")
	base := now().Add(-time.Hour)
	var events []storage.AuditEvent // oldest first
	for i, action := range []string{"login", "bind", "bind_conflict", "unbind", "login"} {
		e := storage.AuditEvent{
			Time:        base.Add(time.Duration(i) * time.Minute),
			Action:      action,
			UserID:      user,
			ConnectorID: "wechat",
			ClientID:    "app-1",
			IP:          "2001:db8::1",
			Result:      "success",
			Detail:      fmt.Sprintf("event %d, 中文", i),
		}
		events = append(events, e)
	}
	// Appended out of order: the listing sorts by time.
	for _, i := range []int{2, 0, 4, 1, 3} {
		must(t, "AppendAudit", s.AppendAudit(ctx, events[i]))
	}
	must(t, "AppendAudit of another user", s.AppendAudit(ctx, storage.AuditEvent{
		Time: base.Add(2 * time.Minute), Action: "login", UserID: uniq("user"), Result: "failure",
	}))

	newestFirst := func(idx ...int) []storage.AuditEvent {
		var out []storage.AuditEvent
		for _, i := range idx {
			out = append(out, events[i])
		}
		return out
	}
	tests := []struct {
		name   string
		filter storage.AuditFilter
		want   []storage.AuditEvent
	}{
		{"User", storage.AuditFilter{UserID: user}, newestFirst(4, 3, 2, 1, 0)},
		{"Limit", storage.AuditFilter{UserID: user, Limit: 2}, newestFirst(4, 3)},
		{"SinceIsInclusive", storage.AuditFilter{UserID: user, Since: events[3].Time}, newestFirst(4, 3)},
		{"UntilIsExclusive", storage.AuditFilter{UserID: user, Until: events[1].Time}, newestFirst(0)},
		{"Range", storage.AuditFilter{UserID: user, Since: events[1].Time, Until: events[4].Time}, newestFirst(3, 2, 1)},
		{"RangeWithLimit", storage.AuditFilter{UserID: user, Since: events[1].Time, Until: events[4].Time, Limit: 1}, newestFirst(3)},
		{"EmptyRange", storage.AuditFilter{UserID: user, Since: events[4].Time.Add(time.Minute)}, nil},
		{"UnknownUser", storage.AuditFilter{UserID: uniq("user")}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ListAudit(ctx, tc.filter)
			must(t, "ListAudit", err)
			if len(got) != len(tc.want) {
				t.Fatalf("ListAudit returned %d events, want %d: %+v", len(got), len(tc.want), got)
			}
			seen := map[int64]bool{}
			for i := range got {
				if got[i].ID <= 0 || seen[got[i].ID] {
					t.Errorf("event %d has id %d: want a positive id, unique", i, got[i].ID)
				}
				seen[got[i].ID] = true
				checkUTC(t, "ListAudit", got[i].Time)
				g := got[i]
				g.ID = 0
				same(t, fmt.Sprintf("event %d", i), g, tc.want[i], normAudit)
			}
		})
	}
}

func testAuditTimeRange(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	// A window no other test writes into: a random 10-second slot in
	// 1990-2009.
	var b [4]byte
	rand.Read(b[:])
	slot := binary.BigEndian.Uint32(b[:]) % (20 * 365 * 8640)
	base := time.Date(1990, 1, 1, 0, 0, 0, 0, cst()).Add(time.Duration(slot) * 10 * time.Second)
	var want []string
	for i := range 3 {
		d := uniq("detail")
		must(t, "AppendAudit", s.AppendAudit(ctx, storage.AuditEvent{
			Time: base.Add(time.Duration(i) * time.Second), Action: "admin_delete", UserID: uniq("user"), Detail: d,
		}))
		want = append([]string{d}, want...)
	}
	got, err := s.ListAudit(ctx, storage.AuditFilter{Since: base, Until: base.Add(3 * time.Second)})
	must(t, "ListAudit", err)
	var details []string
	for _, e := range got {
		details = append(details, e.Detail)
	}
	if fmt.Sprint(details) != fmt.Sprint(want) {
		t.Errorf("ListAudit over a time range = %v, want %v", details, want)
	}
}

// --------------------------------------------------------------- leases

func leaseTests() []suiteTest {
	return []suiteTest{
		{"LeaseHasOneHolderAtATime", testLeaseHolders},
		{"ExpiredLeaseGoesToAnotherHolder", testLeaseExpiry},
		{"ConcurrentAcquireHasOneWinner", testLeaseRace},
	}
}

func acquire(t *testing.T, s storage.Storage, name, holder string, ttl time.Duration, want bool) {
	t.Helper()
	got, err := s.AcquireLease(t.Context(), name, holder, ttl)
	must(t, "AcquireLease", err)
	if got != want {
		t.Fatalf("AcquireLease(%q) = %v, want %v", holder, got, want)
	}
}

func testLeaseHolders(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	name := uniq("lease")
	acquire(t, s, name, "a", time.Minute, true)
	acquire(t, s, name, "b", time.Minute, false)
	acquire(t, s, name, "a", time.Minute, true) // renewal
	must(t, "ReleaseLease by a non-holder", s.ReleaseLease(ctx, name, "b"))
	acquire(t, s, name, "b", time.Minute, false)
	must(t, "ReleaseLease", s.ReleaseLease(ctx, name, "a"))
	acquire(t, s, name, "b", time.Minute, true)
	acquire(t, s, name, "a", time.Minute, false)
	// Another lease name is independent.
	acquire(t, s, uniq("lease"), "a", time.Minute, true)
	must(t, "ReleaseLease of an unknown lease", s.ReleaseLease(ctx, uniq("lease"), "a"))
}

func testLeaseExpiry(t *testing.T, s storage.Storage) {
	name := uniq("lease")
	// Long enough that b's first try comes before the lease lapses even
	// on a loaded machine (a 50 ms lease lapsed between two statements).
	ttl := 1500 * time.Millisecond
	acquire(t, s, name, "a", ttl, true)
	acquire(t, s, name, "b", time.Minute, false)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := s.AcquireLease(t.Context(), name, "b", time.Minute)
		must(t, "AcquireLease", err)
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease with a %v ttl still held after 10s", ttl)
		}
		time.Sleep(20 * time.Millisecond) // polling for the lease to lapse
	}
	acquire(t, s, name, "a", time.Minute, false)
}

func testLeaseRace(t *testing.T, s storage.Storage) {
	name := uniq("lease")
	won := make([]bool, racers)
	errs := race(racers, func(i int) error {
		ok, err := s.AcquireLease(t.Context(), name, fmt.Sprintf("holder-%d", i), time.Minute)
		won[i] = ok
		return err
	})
	winners := 0
	for i, err := range errs {
		must(t, fmt.Sprintf("racer %d", i), err)
		if won[i] {
			winners++
		}
	}
	if winners != 1 {
		t.Errorf("%d holders got the lease, want exactly 1", winners)
	}
}

// ---------------------------------------------------------------- cache

func cacheTests() []suiteTest {
	return []suiteTest{
		{"PutThenGetAndOverwrite", testCachePut},
		{"MissingOrExpiredEntryIsNotFound", testCacheMissing},
	}
}

func testCachePut(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	key := uniq("wechat:access_token")
	exp := now().Add(2 * time.Hour)
	must(t, "PutCache", s.PutCache(ctx, key, []byte("ACCESS_TOKEN\x00"), exp))
	v, gotExp, err := s.GetCache(ctx, key)
	must(t, "GetCache", err)
	if string(v) != "ACCESS_TOKEN\x00" || !gotExp.Equal(ms(exp)) {
		t.Errorf("GetCache = %q, %v; want %q, %v", v, gotExp, "ACCESS_TOKEN\x00", ms(exp))
	}
	checkUTC(t, "GetCache", gotExp)

	must(t, "PutCache overwrite", s.PutCache(ctx, key, nil, time.Time{}))
	v, gotExp, err = s.GetCache(ctx, key)
	must(t, "GetCache", err)
	if len(v) != 0 || !gotExp.IsZero() {
		t.Errorf("GetCache after overwrite = %q, %v; want empty, zero (never expires)", v, gotExp)
	}
}

func testCacheMissing(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	_, _, err := s.GetCache(ctx, uniq("key"))
	wantErr(t, "GetCache of a missing key", err, storage.ErrNotFound)
	key := uniq("key")
	must(t, "PutCache", s.PutCache(ctx, key, []byte("v"), now().Add(-time.Second)))
	_, _, err = s.GetCache(ctx, key)
	wantErr(t, "GetCache of an expired entry", err, storage.ErrNotFound)
	// An expired entry can be replaced.
	must(t, "PutCache", s.PutCache(ctx, key, []byte("w"), now().Add(time.Hour)))
	v, _, err := s.GetCache(ctx, key)
	must(t, "GetCache", err)
	if string(v) != "w" {
		t.Errorf("GetCache = %q, want %q", v, "w")
	}
}

// ---------------------------------------------------------------- store

func storeTests() []suiteTest {
	return []suiteTest{
		{"PingSucceeds", func(t *testing.T, s storage.Storage) { must(t, "Ping", s.Ping(t.Context())) }},
		{"GarbageCollectRemovesExpiredRowsOnly", testGC},
	}
}

func testGC(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	past := now().Add(-time.Minute)

	deadTok := newToken(storage.KindAccessToken, uniq("req"), "u")
	deadTok.ExpiresAt = past
	liveTok := newToken(storage.KindAccessToken, uniq("req"), "u")
	foreverTok := newToken(storage.KindOIDC, uniq("req"), "u")
	foreverTok.ExpiresAt = time.Time{}
	createTokens(t, s, deadTok, liveTok, foreverTok)

	deadSess, liveSess := newSession(), newSession()
	deadSess.ExpiresAt = past
	must(t, "CreateSession", s.CreateSession(ctx, deadSess))
	must(t, "CreateSession", s.CreateSession(ctx, liveSess))

	deadLogin, liveLogin := newLogin(), newLogin()
	deadLogin.ExpiresAt = past
	must(t, "CreateLogin", s.CreateLogin(ctx, deadLogin))
	must(t, "CreateLogin", s.CreateLogin(ctx, liveLogin))

	deadKey, liveKey := uniq("key"), uniq("key")
	must(t, "PutCache", s.PutCache(ctx, deadKey, []byte("x"), past))
	must(t, "PutCache", s.PutCache(ctx, liveKey, []byte("y"), now().Add(time.Hour)))

	deadLease, liveLease := uniq("lease"), uniq("lease")
	acquire(t, s, deadLease, "a", time.Millisecond, true)
	acquire(t, s, liveLease, "a", time.Hour, true)
	leaseEnd := time.Now().Add(time.Millisecond)

	old := rotate(t, s, now().Add(-time.Hour), past) // retires the previous key, expired
	rotate(t, s, now(), now().Add(time.Hour))        // retires old, still valid for an hour

	for time.Now().Before(leaseEnd.Add(2 * time.Millisecond)) {
		time.Sleep(time.Millisecond) // let the 1 ms lease lapse
	}
	res, err := s.GarbageCollect(ctx, time.Now(), time.Time{})
	must(t, "GarbageCollect", err)
	for _, c := range []struct {
		kind string
		n    int64
	}{
		{"tokens", res.Tokens}, {"sessions", res.Sessions}, {"logins", res.Logins},
		{"cache", res.Cache}, {"leases", res.Leases},
	} {
		if c.n < 1 {
			t.Errorf("GarbageCollect removed %d %s, want at least 1", c.n, c.kind)
		}
	}

	tokenIs(t, s, liveTok, true)
	tokenIs(t, s, foreverTok, true)
	_, err = s.GetSession(ctx, liveSess.ID)
	must(t, "GetSession of a live session after GC", err)
	_, err = s.TakeLogin(ctx, liveLogin.State)
	must(t, "TakeLogin of a live login after GC", err)
	_, _, err = s.GetCache(ctx, liveKey)
	must(t, "GetCache of a live entry after GC", err)
	acquire(t, s, liveLease, "b", time.Minute, false)
	acquire(t, s, deadLease, "b", time.Minute, true)
	ks, err := s.ListSigningKeys(ctx)
	must(t, "ListSigningKeys", err)
	if _, ok := findKey(ks, old.ID); !ok {
		t.Errorf("retired key %q that is still valid was collected", old.ID)
	}
}
