package replicas

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/pgtest"
)

// tally counts outcomes across goroutines.
type tally struct {
	mu       sync.Mutex
	counts   map[string]int
	failures []string
}

func newTally() *tally { return &tally{counts: map[string]int{}} }

func (t *tally) add(what string) {
	t.mu.Lock()
	t.counts[what]++
	t.mu.Unlock()
}

func (t *tally) fail(format string, args ...any) {
	t.mu.Lock()
	if len(t.failures) < 20 {
		t.failures = append(t.failures, fmt.Sprintf(format, args...))
	}
	t.counts["failure"]++
	t.mu.Unlock()
}

func (t *tally) get(what string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.counts[what]
}

func (t *tally) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.counts))
	for k := range t.counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, t.counts[k])
	}
	return b.String()
}

// isRaceLoss reports a refused grant, the answer a race loser must get.
func isRaceLoss(r tokenReply) bool {
	return r.status == http.StatusBadRequest && (r.str("error") == "invalid_grant" || r.str("error") == "invalid_request")
}

// TestConcurrentClientsOnPostgres runs 16 clients against two replicas
// for several seconds: logins, code redemptions, refresh rotations, and
// deliberate races on one code and on one refresh token. Nothing may
// answer 5xx, every plain request must succeed, and of two requests racing
// on one grant at most one wins (exactly one, for a code).
func TestConcurrentClientsOnPostgres(t *testing.T) {
	const (
		clients   = 16
		duration  = 8 * time.Second
		refreshes = 3 // rotations per chain before its race
	)
	dsn := pgtest.Shared(t).NewDatabase(t)
	c := newCluster(t, clusterOptions{replicas: 2, dsn: dsn})
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	tl := newTally()
	persons := []string{"alice", "bob", "carol"}

	// check classifies one answer; race says a refusal is acceptable.
	check := func(what string, r tokenReply, err error, race bool) bool {
		switch {
		case err != nil:
			if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
				return false // the test's end, not a failure
			}
			tl.fail("%s: %v", what, err)
		case r.status >= 500:
			tl.add("5xx")
			tl.fail("%s: %s", what, r)
		case r.status == http.StatusOK:
			tl.add(what + " ok")
			return true
		case race && isRaceLoss(r):
			tl.add(what + " refused")
		default:
			tl.fail("%s: %s", what, r)
		}
		return false
	}
	start := time.Now()
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			person := persons[i%len(persons)]
			for n := 0; ctx.Err() == nil; n++ {
				br := c.newBrowser() // no SSO session: a full login at Weibo each time
				p := c.authRequest()
				code, err := c.authorize(ctx, br, p, person, anyReplica, anyReplica)
				if err != nil {
					if ctx.Err() == nil {
						var se *statusError
						if errors.As(err, &se) && se.status >= 500 {
							tl.add("5xx")
						}
						tl.fail("login: %v", err)
					}
					continue
				}
				tl.add("login ok")
				if n%4 == 3 {
					// The same code redeemed twice at once.
					var r [2]tokenReply
					var e [2]error
					var race sync.WaitGroup
					for j := range 2 {
						race.Go(func() { r[j], e[j] = c.redeem(ctx, code, p, anyReplica) })
					}
					race.Wait()
					wins := 0
					for j := range 2 {
						if check("code race", r[j], e[j], true) {
							wins++
						}
					}
					if e[0] == nil && e[1] == nil && wins != 1 {
						tl.fail("code race: %d winners, want 1: %s / %s", wins, r[0], r[1])
					}
					continue
				}
				tr, err := c.redeem(ctx, code, p, anyReplica)
				if !check("redeem", tr, err, false) {
					continue
				}
				rt := tr.str("refresh_token")
				ok := true
				for range refreshes {
					rr, err := c.refresh(ctx, rt, anyReplica)
					if ok = check("refresh", rr, err, false); !ok {
						break
					}
					rt = rr.str("refresh_token")
				}
				if !ok {
					continue
				}
				// The same refresh token sent twice at once.
				var r [2]tokenReply
				var e [2]error
				var race sync.WaitGroup
				for j := range 2 {
					race.Go(func() { r[j], e[j] = c.refresh(ctx, rt, anyReplica) })
				}
				race.Wait()
				wins := 0
				for j := range 2 {
					if check("refresh race", r[j], e[j], true) {
						wins++
					}
				}
				if wins > 1 {
					tl.fail("refresh race: both won, one refresh token rotated twice: %s / %s", r[0], r[1])
				}
				if wins == 1 {
					tl.add("refresh race with one winner")
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d clients, %s: %s", clients, elapsed.Round(time.Millisecond), tl)
	t.Logf("throughput: %.0f logins/s, %.0f token requests/s", float64(tl.get("login ok"))/elapsed.Seconds(),
		float64(tl.get("redeem ok")+tl.get("refresh ok")+2*tl.get("code race ok")+2*tl.get("refresh race ok")+tl.get("code race refused")+tl.get("refresh race refused"))/elapsed.Seconds())
	for _, f := range tl.failures {
		t.Error(f)
	}
	if n := tl.get("5xx"); n != 0 {
		t.Errorf("%d answers were 5xx, want none", n)
	}
	for _, want := range []string{"login ok", "redeem ok", "refresh ok", "code race ok", "code race refused", "refresh race ok", "refresh race refused"} {
		if tl.get(want) == 0 {
			t.Errorf("no %q at all: the load did not exercise it", want)
		}
	}
	for _, r := range c.replicas {
		if !r.running() {
			t.Errorf("%s died: %v", r.Name, r.err())
		}
		r.checkLog(t)
	}
}
