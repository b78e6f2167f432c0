package storagetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

func keyTests() []suiteTest {
	return []suiteTest{
		{"RotateRetiresPreviousKeyAndListsNewestFirst", testRotateChain},
		{"RotateWithStalePrevIDIsConflict", testRotateStale},
		{"RotateToTakenIDIsAlreadyExists", testRotateTakenID},
		{"ConcurrentRotationsHaveOneWinner", testRotateRace},
		{"GarbageCollectRemovesExpiredRetiredKeys", testKeyGC},
		{"EachAlgorithmRotatesOnItsOwn", testRotatePerAlgorithm},
		{"RetireKeyWithoutSuccessor", testRetireKey},
	}
}

// rotate makes a fresh key current and returns it.
func rotate(t *testing.T, s storage.Storage, created time.Time, prevExpires time.Time) storage.SigningKey {
	t.Helper()
	k := newKey(created)
	must(t, "RotateSigningKey", s.RotateSigningKey(t.Context(), currentKey(t, s), k, prevExpires))
	return k
}

func testRotateChain(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	prev := currentKey(t, s)
	// A wrong prevID for the state we found: conflict.
	wrong := ""
	if prev == "" {
		wrong = uniq("kid")
	}
	k0 := newKey(now())
	wantErr(t, "RotateSigningKey with a wrong prevID", s.RotateSigningKey(ctx, wrong, k0, now().Add(time.Hour)), storage.ErrConflict)

	base := now()
	k1 := newKey(base)
	exp0 := base.Add(24 * time.Hour)
	must(t, "RotateSigningKey", s.RotateSigningKey(ctx, prev, k1, exp0))
	k2 := newKey(base.Add(time.Second))
	k2.PrivateKey = nil
	exp1 := base.Add(48 * time.Hour)
	must(t, "RotateSigningKey", s.RotateSigningKey(ctx, k1.ID, k2, exp1))

	if cur := currentKey(t, s); cur != k2.ID {
		t.Fatalf("current key = %q, want %q", cur, k2.ID)
	}
	ks, err := s.ListSigningKeys(ctx)
	must(t, "ListSigningKeys", err)
	if len(ks) < 2 || ks[0].ID != k2.ID || ks[1].ID != k1.ID {
		ids := make([]string, len(ks))
		for i, k := range ks {
			ids[i] = k.ID
		}
		t.Fatalf("ListSigningKeys = %v, want %q then %q first", ids, k2.ID, k1.ID)
	}
	for _, k := range ks {
		checkUTC(t, "ListSigningKeys", k.CreatedAt, k.RetiredAt, k.ExpiresAt)
	}
	same(t, "current key", ks[0], k2, normKey)
	wantK1 := k1
	wantK1.RetiredAt, wantK1.ExpiresAt = k2.CreatedAt, exp1
	same(t, "retired key", ks[1], wantK1, normKey)
	if prev != "" {
		p, ok := findKey(ks, prev)
		if !ok {
			t.Fatalf("the previous key %q vanished", prev)
		}
		if !ms(p.RetiredAt).Equal(ms(k1.CreatedAt)) || !ms(p.ExpiresAt).Equal(ms(exp0)) {
			t.Errorf("previous key retired at %v until %v, want %v until %v", p.RetiredAt, p.ExpiresAt, ms(k1.CreatedAt), ms(exp0))
		}
	}
	if _, ok := findKey(ks, k0.ID); ok {
		t.Errorf("the refused key %q was stored", k0.ID)
	}
}

func testRotateStale(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	k1 := rotate(t, s, now(), now().Add(time.Hour))
	k2 := rotate(t, s, now().Add(time.Millisecond), now().Add(time.Hour))
	stale := newKey(now().Add(2 * time.Millisecond))
	wantErr(t, "RotateSigningKey from a retired key", s.RotateSigningKey(ctx, k1.ID, stale, now().Add(time.Hour)), storage.ErrConflict)
	if cur := currentKey(t, s); cur != k2.ID {
		t.Errorf("current key = %q after a refused rotation, want %q", cur, k2.ID)
	}
	ks, err := s.ListSigningKeys(ctx)
	must(t, "ListSigningKeys", err)
	if _, ok := findKey(ks, stale.ID); ok {
		t.Errorf("the refused key was stored")
	}
}

func testRotateTakenID(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	k1 := rotate(t, s, now(), now().Add(time.Hour))
	k2 := rotate(t, s, now().Add(time.Millisecond), now().Add(time.Hour))
	again := newKey(now().Add(2 * time.Millisecond))
	again.ID = k1.ID
	wantErr(t, "RotateSigningKey to a taken id", s.RotateSigningKey(ctx, k2.ID, again, now().Add(time.Hour)), storage.ErrAlreadyExists)
	ks, err := s.ListSigningKeys(ctx)
	must(t, "ListSigningKeys", err)
	got, ok := findKey(ks, k2.ID)
	if !ok || !got.RetiredAt.IsZero() {
		t.Errorf("a refused rotation retired the current key: %+v", got)
	}
	if cur := currentKey(t, s); cur != k2.ID {
		t.Errorf("current key = %q, want %q", cur, k2.ID)
	}
}

func testRotateRace(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	prev := rotate(t, s, now(), now().Add(time.Hour))
	created := now().Add(time.Millisecond)
	next := make([]storage.SigningKey, racers)
	for i := range next {
		next[i] = newKey(created)
		next[i].ID = fmt.Sprintf("%s-racer-%d", uniq("kid"), i)
	}
	errs := race(racers, func(i int) error {
		return s.RotateSigningKey(ctx, prev.ID, next[i], now().Add(time.Hour))
	})
	w := oneWinner(t, "concurrent RotateSigningKey", errs, storage.ErrConflict)
	if cur := currentKey(t, s); cur != next[w].ID {
		t.Errorf("current key = %q, want the winner %q", cur, next[w].ID)
	}
	ks, err := s.ListSigningKeys(ctx)
	must(t, "ListSigningKeys", err)
	for i, k := range next {
		if _, ok := findKey(ks, k.ID); ok != (i == w) {
			t.Errorf("racer %d's key stored = %v, want %v", i, ok, i == w)
		}
	}
}

func testKeyGC(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	old := rotate(t, s, now().Add(-2*time.Hour), now().Add(time.Hour))
	// Retire old with an expiry already past.
	mid := rotate(t, s, now().Add(-time.Hour), now().Add(-time.Minute))
	// Retire mid with an expiry still ahead.
	cur := rotate(t, s, now(), now().Add(time.Hour))

	gcAt := time.Now()
	res, err := s.GarbageCollect(ctx, gcAt, time.Time{})
	must(t, "GarbageCollect", err)
	if res.Keys < 1 {
		t.Errorf("GarbageCollect removed %d keys, want at least 1", res.Keys)
	}
	ks, err := s.ListSigningKeys(ctx)
	must(t, "ListSigningKeys", err)
	if _, ok := findKey(ks, old.ID); ok {
		t.Errorf("expired retired key %q survived GC", old.ID)
	}
	for _, k := range []storage.SigningKey{mid, cur} {
		if _, ok := findKey(ks, k.ID); !ok {
			t.Errorf("key %q that has not expired was collected", k.ID)
		}
	}
	for _, k := range ks {
		if !k.ExpiresAt.IsZero() && !k.ExpiresAt.After(gcAt) {
			t.Errorf("key %q expired at %v is still listed after GC", k.ID, k.ExpiresAt)
		}
	}
}

// keyOf returns a fresh key of alg created at created.
func keyOf(alg string, created time.Time) storage.SigningKey {
	k := newKey(created)
	k.Algorithm = alg
	return k
}

func testRotatePerAlgorithm(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	// Algorithms of their own, so that other tests on a shared store do
	// not meddle.
	a, b := uniq("alg-a"), uniq("alg-b")
	a1 := keyOf(a, now())
	must(t, "RotateSigningKey first key of a", s.RotateSigningKey(ctx, "", a1, now().Add(time.Hour)))
	b1 := keyOf(b, now().Add(time.Millisecond))
	must(t, "RotateSigningKey first key of b", s.RotateSigningKey(ctx, "", b1, now().Add(time.Hour)))
	if cur := currentKeyOf(t, s, a); cur != a1.ID {
		t.Fatalf("a's current key = %q after b's first key, want %q (untouched)", cur, a1.ID)
	}
	// The compare-and-swap is on the key of next's algorithm.
	wantErr(t, "RotateSigningKey of b from a's key", s.RotateSigningKey(ctx, a1.ID, keyOf(b, now()), now().Add(time.Hour)), storage.ErrConflict)
	wantErr(t, "RotateSigningKey of a from none", s.RotateSigningKey(ctx, "", keyOf(a, now()), now().Add(time.Hour)), storage.ErrConflict)
	a2 := keyOf(a, now().Add(2*time.Millisecond))
	must(t, "RotateSigningKey of a", s.RotateSigningKey(ctx, a1.ID, a2, now().Add(time.Hour)))
	ks, err := s.ListSigningKeys(ctx)
	must(t, "ListSigningKeys", err)
	for _, want := range []struct {
		k       storage.SigningKey
		retired bool
	}{{a1, true}, {a2, false}, {b1, false}} {
		got, ok := findKey(ks, want.k.ID)
		if !ok || got.RetiredAt.IsZero() == want.retired || got.Algorithm != want.k.Algorithm {
			t.Errorf("key %s (%s): found %v, retired at %v; want retired %v", want.k.ID, want.k.Algorithm, ok, got.RetiredAt, want.retired)
		}
	}
	// Racers on two algorithms at once: one winner each.
	var next []storage.SigningKey
	for i := 0; i < racers; i++ {
		alg := a
		if i%2 == 1 {
			alg = b
		}
		k := keyOf(alg, now().Add(3*time.Millisecond))
		k.ID = fmt.Sprintf("%s-racer-%d", uniq("kid"), i)
		next = append(next, k)
	}
	errs := race(racers, func(i int) error {
		prev := a2.ID
		if i%2 == 1 {
			prev = b1.ID
		}
		return s.RotateSigningKey(ctx, prev, next[i], now().Add(time.Hour))
	})
	wins := map[string]int{}
	for i, err := range errs {
		switch {
		case err == nil:
			wins[next[i].Algorithm]++
		case !errors.Is(err, storage.ErrConflict):
			t.Errorf("racer %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if wins[a] != 1 || wins[b] != 1 {
		t.Errorf("winners per algorithm = %v, want one each", wins)
	}
}

func testRetireKey(t *testing.T, s storage.Storage) {
	ctx := t.Context()
	alg := uniq("alg")
	k := keyOf(alg, now())
	must(t, "RotateSigningKey", s.RotateSigningKey(ctx, "", k, now().Add(time.Hour)))
	retired, expires := now().Add(time.Second), now().Add(2*time.Hour)
	must(t, "RetireSigningKey", s.RetireSigningKey(ctx, k.ID, retired, expires))
	ks, err := s.ListSigningKeys(ctx)
	must(t, "ListSigningKeys", err)
	got, ok := findKey(ks, k.ID)
	if !ok || !ms(got.RetiredAt).Equal(ms(retired)) || !ms(got.ExpiresAt).Equal(ms(expires)) {
		t.Fatalf("retired key %+v (found %v), want retired at %v until %v", got, ok, ms(retired), ms(expires))
	}
	checkUTC(t, "ListSigningKeys", got.RetiredAt, got.ExpiresAt)
	wantErr(t, "RetireSigningKey twice", s.RetireSigningKey(ctx, k.ID, now(), now().Add(time.Hour)), storage.ErrConflict)
	wantErr(t, "RetireSigningKey of an unknown key", s.RetireSigningKey(ctx, uniq("kid"), now(), now().Add(time.Hour)), storage.ErrNotFound)
	// The algorithm has no current key now: a new first key is accepted.
	must(t, "RotateSigningKey after retiring", s.RotateSigningKey(ctx, "", keyOf(alg, now().Add(2*time.Second)), now().Add(time.Hour)))
}
