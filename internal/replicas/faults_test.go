package replicas

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/qiaoidp/qiao/internal/pgtest"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// TestDatabaseOutage stops PostgreSQL under traffic and starts it again:
// while it is down the broker answers 503 (never 500, never a panic) and
// /readyz says so; once it is back everything works again without
// restarting qiao, and a refresh tried during the outage did not half
// happen.
func TestDatabaseOutage(t *testing.T) {
	pg := pgtest.Start(t) // a private cluster: this test stops it
	dsn := pg.NewDatabase(t)
	c := newCluster(t, clusterOptions{replicas: 1, dsn: dsn})
	r := c.replicas[0]
	ctx := context.Background()

	_, tr := c.login(c.newBrowser(), "alice", anyReplica, anyReplica, anyReplica)
	rt, at := tr.str("refresh_token"), tr.str("access_token")

	// Background traffic: logins, redemptions and refreshes. Allowed
	// answers: success, 503, and for a refresh retried after a 503 a
	// clean refusal (the rotation had committed before the server went).
	tl := newTally()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			var pendingRT string // a refresh token whose rotation answered 503
			for {
				select {
				case <-stop:
					return
				default:
				}
				rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
				background(rctx, c, tl, []string{"alice", "bob", "carol"}[i%3], &pendingRT)
				cancel()
			}
		})
	}
	stopTraffic := func() {
		close(stop)
		wg.Wait()
	}
	defer func() {
		select {
		case <-stop:
		default:
			stopTraffic()
		}
	}()
	waitFor(t, 20*time.Second, "traffic before the outage", func() bool { return tl.get("refresh ok") >= 10 })

	pg.Stop(t)
	t.Log("PostgreSQL stopped")
	waitFor(t, 10*time.Second, "/readyz 503", func() bool { return r.status("/readyz") == http.StatusServiceUnavailable })
	if got := r.status("/healthz"); got != http.StatusOK {
		t.Errorf("/healthz during the outage: %d, want 200", got)
	}
	// The refresh fails cleanly.
	if rr, err := c.refresh(ctx, rt, anyReplica); err != nil || rr.status != http.StatusServiceUnavailable || rr.str("error") != "temporarily_unavailable" {
		t.Errorf("refresh during the outage: %v %s, want 503 temporarily_unavailable", err, rr)
	}
	// A login cannot start.
	_, err := c.authorize(ctx, c.newBrowser(), c.authRequest(), "bob", anyReplica, anyReplica)
	var se *statusError
	if !errors.As(err, &se) || se.status != http.StatusServiceUnavailable {
		t.Errorf("login during the outage: %v, want HTTP 503 at the authorization request", err)
	}
	// Endpoints that need the store say 503; those that do not still work.
	for _, p := range []struct {
		name, path, bearer string
		want               int
	}{
		{"userinfo", issuerPath + "/userinfo", at, http.StatusServiceUnavailable},
		{"discovery", issuerPath + "/.well-known/openid-configuration", "", http.StatusOK},
		{"jwks", issuerPath + "/keys", "", http.StatusOK},
	} {
		req, _ := http.NewRequest(http.MethodGet, r.url(p.path), nil)
		if p.bearer != "" {
			req.Header.Set("Authorization", "Bearer "+p.bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("%s during the outage: %v", p.name, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != p.want {
			t.Errorf("%s during the outage: HTTP %d, want %d", p.name, resp.StatusCode, p.want)
		}
	}
	// Introspection must not call a live token inactive because the store
	// is down.
	ireq, _ := http.NewRequest(http.MethodPost, r.url(issuerPath+"/introspect"), strings.NewReader("token="+at))
	ireq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	ireq.SetBasicAuth(clientID, qiaotest.WebSecret)
	if resp, err := http.DefaultClient.Do(ireq); err != nil {
		t.Errorf("introspection during the outage: %v", err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("introspection during the outage: HTTP %d, want 503 (not an answer that the token is inactive)", resp.StatusCode)
		}
	}
	waitFor(t, 10*time.Second, "background traffic to meet the outage", func() bool { return tl.get("503") >= 5 })
	if !r.running() {
		t.Fatalf("qiao died during the outage: %v", r.err())
	}

	pg.Restart(t)
	t.Log("PostgreSQL restarted")
	waitFor(t, 20*time.Second, "/readyz 200 after the restart", func() bool { return r.status("/readyz") == http.StatusOK })
	// The refresh that failed during the outage did not commit: the old
	// token still works.
	if rr, err := c.refresh(ctx, rt, anyReplica); err != nil || rr.status != http.StatusOK {
		t.Errorf("refresh after the outage with the token refused during it: %v %s, want 200", err, rr)
	}
	c.login(c.newBrowser(), "carol", anyReplica, anyReplica, anyReplica)
	okBefore := tl.get("refresh ok")
	waitFor(t, 20*time.Second, "background traffic to recover", func() bool { return tl.get("refresh ok") >= okBefore+10 })
	stopTraffic()

	t.Logf("background traffic: %s", tl)
	for _, f := range tl.failures {
		t.Error(f)
	}
	if !r.running() {
		t.Fatalf("qiao died: %v", r.err())
	}
	r.checkLog(t)
	if strings.Contains(r.log(), `"level":"ERROR","msg":"panic`) {
		t.Error("qiao logged a recovered panic")
	}
	r.stop(t)
}

// background runs one login, redemption and refresh (or retries a
// refresh that answered 503) and tallies the answers.
func background(ctx context.Context, c *cluster, tl *tally, person string, pendingRT *string) {
	classify := func(what string, rr tokenReply, err error, retry bool) bool {
		switch {
		case err != nil:
			tl.fail("%s: %v", what, err)
		case rr.status == http.StatusOK:
			tl.add(what + " ok")
			return true
		case rr.status == http.StatusServiceUnavailable && rr.str("error") == "temporarily_unavailable":
			tl.add("503")
		case retry && isRaceLoss(rr):
			tl.add(what + " cleanly refused")
		default:
			tl.fail("%s: %s", what, rr)
		}
		return false
	}
	if *pendingRT != "" {
		rr, err := c.refresh(ctx, *pendingRT, anyReplica)
		if classify("retried refresh", rr, err, true) || rr.status != http.StatusServiceUnavailable {
			*pendingRT = ""
		}
		return
	}
	p := c.authRequest()
	code, err := c.authorize(ctx, c.newBrowser(), p, person, anyReplica, anyReplica)
	var se *statusError
	var ae *authError
	switch {
	case errors.As(err, &se) && se.status == http.StatusServiceUnavailable:
		tl.add("503")
		return
	case errors.As(err, &ae) && ae.code == "temporarily_unavailable":
		// The store went away between the authorization request and the
		// callback: the client is told to retry, as the spec says.
		tl.add("503")
		return
	case err != nil:
		tl.fail("login: %v", err)
		return
	}
	tr, err := c.redeem(ctx, code, p, anyReplica)
	if !classify("redeem", tr, err, false) {
		return
	}
	rr, err := c.refresh(ctx, tr.str("refresh_token"), anyReplica)
	if !classify("refresh", rr, err, false) && rr.status == http.StatusServiceUnavailable {
		*pendingRT = tr.str("refresh_token")
	}
}

// TestSmallPoolQueues gives qiao a pool of two connections and many
// concurrent logins: they wait for a connection rather than fail.
func TestSmallPoolQueues(t *testing.T) {
	const concurrent = 32
	dsn := pgtest.Shared(t).NewDatabase(t)
	c := newCluster(t, clusterOptions{replicas: 1, dsn: dsn + "&pool_max_conns=2"})
	ctx := context.Background()

	// Watch the connections qiao holds on its database.
	watch, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	var maxConns int
	done := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			var n int
			err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE datname = current_database() AND pid <> pg_backend_pid()`).Scan(&n)
			if err == nil {
				maxConns = max(maxConns, n)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	tl := newTally()
	var wg sync.WaitGroup
	for i := range concurrent {
		wg.Go(func() {
			p := c.authRequest()
			code, err := c.authorize(ctx, c.newBrowser(), p, []string{"alice", "bob", "carol"}[i%3], anyReplica, anyReplica)
			if err != nil {
				tl.fail("login: %v", err)
				return
			}
			tr, err := c.redeem(ctx, code, p, anyReplica)
			if err != nil || tr.status != http.StatusOK {
				tl.fail("redeem: %v %s", err, tr)
				return
			}
			rr, err := c.refresh(ctx, tr.str("refresh_token"), anyReplica)
			if err != nil || rr.status != http.StatusOK {
				tl.fail("refresh: %v %s", err, rr)
				return
			}
			tl.add("ok")
		})
	}
	wg.Wait()
	close(done)
	<-watched
	for _, f := range tl.failures {
		t.Error(f)
	}
	if n := tl.get("ok"); n != concurrent {
		t.Errorf("%d of %d concurrent logins succeeded", n, concurrent)
	}
	t.Logf("%d concurrent logins on a pool of 2: %s; at most %d connections seen", concurrent, tl, maxConns)
	if maxConns < 1 || maxConns > 2 {
		t.Errorf("qiao held up to %d connections, want 1 or 2 (pool_max_conns=2)", maxConns)
	}
	c.replicas[0].checkLog(t)
	c.replicas[0].stop(t)
}
