package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// signInAllocs is what one sign-in's store calls (BenchmarkSignIn's:
// identity read, CompleteLogin, code read, token transaction) may
// allocate, the test's own records and names included. It was 319 before
// the login's statements ran on the driver connections directly.
const signInAllocs = 244

// TestSignInAllocationBudget holds a sign-in's store calls to their
// allocations (garbage the broker's collector has to sweep on every
// login): a change that adds some fails it.
func TestSignInAllocationBudget(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage instrumentation allocates")
	}
	s := storeWithoutCheckpointer(t)
	ctx := context.Background()
	login := signInLoop(t, s)
	i := 0
	run := func() {
		if err := login(ctx, i); err != nil {
			t.Fatal(err)
		}
		i++
	}
	for range 100 { // statements prepared, pools warm
		run()
	}
	if got := testing.AllocsPerRun(200, run); got > signInAllocs {
		t.Errorf("a sign-in's store calls allocate %.0f times, want at most %d", got, signInAllocs)
	} else {
		t.Logf("a sign-in's store calls allocate %.0f times (budget %d)", got, signInAllocs)
	}
}

// signInWALPages is how many pages one sign-in's two commits may write to
// the WAL, on average over 300 (29.1: every B-tree a row goes into is a
// page; page splits make the average vary a little). BenchmarkSignIn
// measured 31.7 before the identity's union index stopped being
// rewritten on every login and the logins table lost its expiry index.
const signInWALPages = 30.0

// TestSignInWALPageBudget holds a sign-in's commits to the WAL pages
// they write (each page is two write system calls now and a copy at the
// next checkpoint): a new index on a table every login writes fails it.
func TestSignInWALPageBudget(t *testing.T) {
	s := storeWithoutCheckpointer(t)
	ctx := context.Background()
	login := signInLoop(t, s)
	const warm, n = 1000, 300
	for i := range warm + n {
		if i == warm {
			if _, err := s.w.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
				t.Fatal(err)
			}
		}
		if err := login(ctx, i); err != nil {
			t.Fatal(err)
		}
	}
	var busy, pages, copied int64
	if err := s.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &pages, &copied); err != nil {
		t.Fatal(err)
	}
	if got := float64(pages) / n; got > signInWALPages {
		t.Errorf("a sign-in writes %.2f WAL pages, want at most %.1f", got, signInWALPages)
	} else {
		t.Logf("a sign-in writes %.2f WAL pages (budget %.1f)", got, signInWALPages)
	}
}

// storeWithoutCheckpointer opens a store in a temporary directory, closed
// when the test ends, with its checkpointer stopped: it allocates and
// writes on its own schedule, which the budgets must not count.
func storeWithoutCheckpointer(t *testing.T) *Store {
	t.Helper()
	s, err := open(context.Background(), filepath.Join(t.TempDir(), "qiao.db"), options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	stopCheckpointer(t, s)
	return s
}

// stopCheckpointer stops s's background checkpointer.
func stopCheckpointer(tb testing.TB, s *Store) {
	tb.Helper()
	if err := s.ckpt.close(); err != nil {
		tb.Fatal(err)
	}
	s.ckpt = nil
}
