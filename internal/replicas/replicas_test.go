package replicas

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"github.com/jackc/pgx/v5"

	"github.com/qiaoidp/qiao/internal/pgtest"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

const (
	replicaA = 0
	replicaB = 1
)

// TestTwoReplicas runs two `qiao serve` processes on one database behind
// one issuer and moves a user between them at every step.
func TestTwoReplicas(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	c := newCluster(t, clusterOptions{replicas: 2, dsn: dsn})
	ctx := context.Background()
	a, b := c.replicas[replicaA], c.replicas[replicaB]

	t.Run("replicas starting together create one signing key", func(t *testing.T) {
		if n := countRows(t, dsn, "SELECT count(*) FROM signing_keys"); n != 1 {
			t.Errorf("signing_keys has %d rows, want 1", n)
		}
		ka, kb := must[[]string](t)(c.jwks(a)), must[[]string](t)(c.jwks(b))
		if len(ka) != 1 || !slices.Equal(ka, kb) {
			t.Errorf("JWKS kids: A %v, B %v; want the same single key", ka, kb)
		}
	})

	t.Run("login started on A finishes on B", func(t *testing.T) {
		br := c.newBrowser()
		p, tr := c.login(br, "alice", replicaA, replicaB, replicaB)
		for _, s := range []struct {
			replica int
			path    string
			want    int
		}{
			{replicaA, "/auth", 1}, {replicaB, "/auth", 0},
			{replicaA, "/callback/weibo", 0}, {replicaB, "/callback/weibo", 1},
			{replicaA, "/token", 0}, {replicaB, "/token", 1},
		} {
			if got := c.lb.servedBy(s.replica, issuerPath+s.path); got != s.want {
				t.Errorf("replica %d served %s %d times, want %d", s.replica, s.path, got, s.want)
			}
		}
		for _, r := range c.replicas {
			idt, err := c.verifyIDToken(ctx, r, tr.str("id_token"))
			if err != nil {
				t.Fatalf("ID token from B against %s's JWKS: %v", r.Name, err)
			}
			if idt.Nonce != p.Nonce {
				t.Errorf("nonce %q, want %q", idt.Nonce, p.Nonce)
			}
		}

		// The SSO session B created is honoured by A: no provider hop.
		p2 := c.authRequest()
		resp, err := step(ctx, br, p2.URL, replicaA)
		if err != nil {
			t.Fatal(err)
		}
		loc := resp.Location
		if !isRedirect(resp) || !strings.HasPrefix(loc, redirectURI+"?") {
			t.Fatalf("SSO authorization on A: HTTP %d to %q (%.200s), want a redirect straight to the client", resp.Status, loc, resp.Body)
		}
		q := must[*url.URL](t)(url.Parse(loc)).Query()
		tr2, err := c.redeem(ctx, q.Get("code"), p2, replicaA)
		if err != nil || tr2.status != http.StatusOK {
			t.Fatalf("redeem the SSO code on A: %v %s", err, tr2)
		}
		sub1 := must[*oidc.IDToken](t)(c.verifyIDToken(ctx, a, tr.str("id_token"))).Subject
		sub2 := must[*oidc.IDToken](t)(c.verifyIDToken(ctx, b, tr2.str("id_token"))).Subject
		if sub1 != sub2 {
			t.Errorf("sub %q after SSO on A, want %q as on B", sub2, sub1)
		}
	})

	t.Run("refresh issued by A rotates on B and reuse on A revokes the family", func(t *testing.T) {
		_, tr := c.login(c.newBrowser(), "bob", replicaA, replicaA, replicaA)
		rt0 := tr.str("refresh_token")
		r1, err := c.refresh(ctx, rt0, replicaB)
		if err != nil || r1.status != http.StatusOK || r1.str("refresh_token") == "" || r1.str("refresh_token") == rt0 {
			t.Fatalf("refresh on B: %v %s, want 200 with a new refresh token", err, r1)
		}
		if _, err := c.verifyIDToken(ctx, a, r1.str("id_token")); err != nil {
			t.Errorf("ID token refreshed on B against A's JWKS: %v", err)
		}
		if active := c.introspect(t, r1.str("access_token"), replicaA); !active {
			t.Fatal("the access token B issued is not active on A")
		}
		reuse, err := c.refresh(ctx, rt0, replicaA)
		if err != nil || reuse.status != http.StatusBadRequest || reuse.str("error") != "invalid_grant" {
			t.Fatalf("reusing the rotated refresh token on A: %v %s, want 400 invalid_grant", err, reuse)
		}
		// The whole family is gone: the new refresh token and its access
		// token too, on both replicas.
		for _, on := range []int{replicaA, replicaB} {
			again, err := c.refresh(ctx, r1.str("refresh_token"), on)
			if err != nil || again.status != http.StatusBadRequest || again.str("error") != "invalid_grant" {
				t.Errorf("refresh token of the revoked family on replica %d: %v %s, want 400 invalid_grant", on, err, again)
			}
			if c.introspect(t, r1.str("access_token"), on) {
				t.Errorf("access token of the revoked family still active on replica %d", on)
			}
		}
	})

	t.Run("garbage collection runs on one replica", func(t *testing.T) {
		collected := func() int {
			n := 0
			for _, r := range c.replicas {
				if strings.Contains(r.log(), `"msg":"garbage collected"`) {
					n++
				}
			}
			return n
		}
		waitFor(t, 10*time.Second, "a replica to collect garbage", func() bool { return collected() > 0 })
		if n := collected(); n != 1 {
			t.Errorf("%d replicas collected garbage, want 1 (the gc lease holder)", n)
		}
		if n := countRows(t, dsn, "SELECT count(*) FROM leases WHERE name = 'gc' AND expires_at > now()"); n != 1 {
			t.Errorf("%d live gc leases, want 1", n)
		}
		for _, r := range c.replicas {
			if strings.Contains(r.log(), "garbage collection failed") {
				t.Errorf("%s: garbage collection failed:\n%s", r.Name, tail(r.log(), 2000))
			}
		}
	})

	t.Run("SIGTERM drains and exits 0", func(t *testing.T) {
		for _, r := range []*replica{a, b} {
			r.stop(t)
			r.checkLog(t)
			if !strings.Contains(r.log(), `"msg":"stopped"`) {
				t.Errorf("%s did not log that it stopped", r.Name)
			}
		}
	})
}

// TestKeyRotationHappensOnceAcrossReplicas runs two replicas with a
// three-second rotation period: each period one replica rotates, the other
// adopts its key, and both publish the same keys.
func TestKeyRotationHappensOnceAcrossReplicas(t *testing.T) {
	const rotateEvery = 3 * time.Second
	dsn := pgtest.Shared(t).NewDatabase(t)
	c := newCluster(t, clusterOptions{replicas: 2, dsn: dsn, rotateEvery: rotateEvery.String()})
	ctx := context.Background()
	a, b := c.replicas[replicaA], c.replicas[replicaB]

	first := must[[]string](t)(c.jwks(a))
	if len(first) == 0 {
		t.Fatal("replica A publishes no key")
	}
	// Wait for the first rotation to be seen by both: the same two keys,
	// the new one first (published before it signs), and two rows in the
	// table.
	waitFor(t, 15*time.Second, "both replicas to publish the rotated key", func() bool {
		ka, errA := c.jwks(a)
		kb, errB := c.jwks(b)
		if errA != nil || errB != nil || len(ka) != 2 || !slices.Equal(ka, kb) || ka[1] != first[0] {
			return false
		}
		return countRows(t, dsn, "SELECT count(*) FROM signing_keys") == 2
	})
	if n := countRows(t, dsn, "SELECT count(*) FROM signing_keys WHERE retired_at IS NULL"); n != 1 {
		t.Errorf("%d unretired signing keys, want 1", n)
	}

	// A next key is published before it signs, so a token A signs
	// verifies with B's JWKS at once, whichever key signed it (B reloads
	// the keys a few times per lead).
	// The next key is in the table before it signs, and both replicas
	// publish it before then.
	var nextKid string
	var signsFrom time.Time
	waitFor(t, 4*rotateEvery, "a published next key", func() bool {
		nextKid, signsFrom = newestKey(t, dsn)
		return signsFrom.After(time.Now())
	})
	waitFor(t, time.Until(signsFrom), "both replicas to publish "+nextKid+" before it signs", func() bool {
		return slices.Contains(must[[]string](t)(c.jwks(a)), nextKid) && slices.Contains(must[[]string](t)(c.jwks(b)), nextKid)
	})

	// Log in on A until two different keys have signed (a rotation in
	// between), checking every token against B's JWKS right away.
	seen := map[string]bool{}
	deadline := time.Now().Add(4 * rotateEvery)
	for len(seen) < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("only keys %v signed in %s", seen, 4*rotateEvery)
		}
		_, tr := c.login(c.newBrowser(), "carol", replicaA, replicaA, replicaA)
		kid := headerKid(t, tr.str("id_token"))
		if kid == "" {
			t.Fatal("ID token without a kid")
		}
		seen[kid] = true
		if !slices.Contains(must[[]string](t)(c.jwks(b)), kid) {
			t.Errorf("A signed with %s, which B does not publish yet", kid)
		}
		if _, err := c.verifyIDToken(ctx, b, tr.str("id_token")); err != nil {
			t.Fatalf("ID token signed by A against B's JWKS: %v", err)
		}
	}

	// However long it ran, no period saw two keys: consecutive keys are at
	// least rotateEvery apart (times are kept to the millisecond).
	created := keyTimes(t, dsn)
	for i := 1; i < len(created); i++ {
		if gap := created[i].Sub(created[i-1]); gap < rotateEvery-time.Millisecond {
			t.Errorf("keys %d and %d created %s apart, want at least %s: both replicas rotated", i-1, i, gap, rotateEvery)
		}
	}
	published := must[[]string](t)(c.jwks(b))
	if len(published) != len(created) {
		t.Errorf("B publishes %d keys, the table holds %d: every key created should be published until it expires", len(published), len(created))
	}
	for _, r := range c.replicas {
		r.stop(t)
		r.checkLog(t)
	}
}

// must returns a function that fails the test on an error and otherwise
// returns the value.
func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func headerKid(t *testing.T, raw string) string {
	t.Helper()
	jws, err := jose.ParseSignedCompact(raw, []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA})
	if err != nil {
		t.Fatalf("parse ID token: %v", err)
	}
	return jws.Signatures[0].Header.KeyID
}

func countRows(t testing.TB, dsn, query string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// newestKey returns the id and activation time of the newest signing key.
func newestKey(t testing.TB, dsn string) (string, time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var id string
	var created time.Time
	if err := conn.QueryRow(ctx, "SELECT id, created_at FROM signing_keys ORDER BY created_at DESC LIMIT 1").Scan(&id, &created); err != nil {
		t.Fatal(err)
	}
	return id, created
}

func keyTimes(t testing.TB, dsn string) []time.Time {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT created_at FROM signing_keys ORDER BY created_at")
	if err != nil {
		t.Fatal(err)
	}
	times, err := pgx.CollectRows(rows, pgx.RowTo[time.Time])
	if err != nil {
		t.Fatal(err)
	}
	return times
}

// introspect reports whether the access token is active on replica `on`.
func (c *cluster) introspect(t *testing.T, token string, on int) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.Issuer+"/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, qiaotest.WebSecret)
	req.Header.Set(routeHeader, string(rune('0'+on)))
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Active bool `json:"active"`
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("introspection on replica %d: HTTP %d", on, resp.StatusCode)
	}
	if err := jsonDecode(resp, &body); err != nil {
		t.Fatal(err)
	}
	return body.Active
}
