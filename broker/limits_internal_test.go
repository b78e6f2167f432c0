package broker

import (
	"strconv"
	"testing"
	"time"
)

// TestTokenBucketRefillsAtItsRate: a bucket gives its burst at once, then
// one request per 1/rate, and says how long until the next.
func TestTokenBucketRefillsAtItsRate(t *testing.T) {
	l := newLimiter(2, 3, 100) // 2/s, burst 3
	now := time.Unix(1_000_000, 0)
	for i := 0; i < 3; i++ {
		if ok, _ := l.allow("k", now); !ok {
			t.Fatalf("request %d of the burst refused", i+1)
		}
	}
	ok, wait := l.allow("k", now)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("fourth request: ok=%v wait=%v, want refused, 500ms", ok, wait)
	}
	if ok, _ := l.allow("k", now.Add(499*time.Millisecond)); ok {
		t.Fatal("a token before its time")
	}
	if ok, _ := l.allow("k", now.Add(time.Second)); !ok {
		t.Fatal("no token after a second at 2/s")
	}
	if ok, _ := l.allow("other", now); !ok {
		t.Fatal("another key shares the bucket")
	}
	if newLimiter(0, 10, 100) != nil {
		t.Fatal("rate 0 must switch the limit off")
	}
	var off *limiter
	if ok, _ := off.allow("k", now); !ok {
		t.Fatal("a switched-off limit refused")
	}
}

// TestLimiterMemoryIsBounded: a flood of distinct addresses never grows
// a limiter past its cap, and idle buckets (full again) are forgotten.
func TestLimiterMemoryIsBounded(t *testing.T) {
	l := newLimiter(10, 20, 1000)
	now := time.Unix(1_000_000, 0)
	for i := 0; i < 100_000; i++ {
		l.allow("10."+strconv.Itoa(i>>16&255)+"."+strconv.Itoa(i>>8&255)+"."+strconv.Itoa(i&255), now)
		if n := l.size(); n > 1000 {
			t.Fatalf("after %d keys the limiter holds %d buckets, cap 1000", i+1, n)
		}
	}
	// Two seconds later every bucket is full again (20 at 10/s): the next
	// sweep forgets them all.
	l.allow("fresh", now.Add(2*time.Minute))
	if n := l.size(); n != 1 {
		t.Fatalf("after the idle period the limiter holds %d buckets, want 1", n)
	}
}

// TestIPv6AddressesShareTheirSlash64: one subscriber's /64 is one client
// address for the limits, so rotating addresses inside it gains nothing.
func TestIPv6AddressesShareTheirSlash64(t *testing.T) {
	for _, tc := range []struct{ a, b string }{
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9"},
		{"::ffff:198.51.100.7", "198.51.100.7"},
	} {
		if ka, kb := ipBucketKey(tc.a), ipBucketKey(tc.b); ka != kb {
			t.Errorf("%s -> %q, %s -> %q, want one key", tc.a, ka, tc.b, kb)
		}
	}
	if ipBucketKey("2001:db8:1:2::1") == ipBucketKey("2001:db8:1:3::1") {
		t.Error("two /64s share a key")
	}
	if ipBucketKey("198.51.100.7") == ipBucketKey("198.51.100.8") {
		t.Error("two IPv4 addresses share a key")
	}
}

// TestAuthBackoffDoublesUpToItsCap: after the free failures each failure
// opens a window of 1s, 2s, 4s... capped; refusals in the window do not
// lengthen it; a success ends it.
func TestAuthBackoffDoublesUpToItsCap(t *testing.T) {
	a := &authBackoff{failures: 3, maxWait: 5 * time.Second, state: map[string]*backoffState{}}
	now := time.Unix(1_000_000, 0)
	for i := 0; i < 2; i++ {
		a.result("c", false, now)
		if ok, _ := a.allow("c", now); !ok {
			t.Fatalf("refused after %d failures, below the threshold", i+1)
		}
	}
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		a.result("c", false, now)
		ok, wait := a.allow("c", now)
		if ok || wait != want {
			t.Fatalf("window ok=%v wait=%v, want %v", ok, wait, want)
		}
		a.allow("c", now.Add(want/2)) // a refusal: no effect
		now = now.Add(want)
		if ok, _ := a.allow("c", now); !ok {
			t.Fatalf("still refused when the %v window ended", want)
		}
	}
	a.result("c", true, now)
	a.result("c", false, now)
	if ok, _ := a.allow("c", now); !ok {
		t.Fatal("a success did not forget the failures")
	}
}
