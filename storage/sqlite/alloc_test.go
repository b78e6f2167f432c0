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
	s, err := open(context.Background(), filepath.Join(t.TempDir(), "qiao.db"), options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The checkpointer allocates on its own schedule.
	if err := s.ckpt.close(); err != nil {
		t.Fatal(err)
	}
	s.ckpt = nil
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
