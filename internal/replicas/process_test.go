package replicas

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// replica is one `qiao serve` of the cluster (qiaotest.WithReplicas).
type replica struct{ *qiaotest.Replica }

// log is the replica's output: its start-up banner and its JSON log.
func (r *replica) log() string { return r.Logs.String() }

func (r *replica) running() bool {
	select {
	case <-r.Process.Done():
		return false
	default:
		return true
	}
}

// err is how the process ended (nil while it runs).
func (r *replica) err() error {
	if r.running() {
		return nil
	}
	return r.Process.Err()
}

// url is an address on the replica itself, bypassing the load balancer.
func (r *replica) url(path string) string { return r.URL(path) }

// status GETs path on the replica and returns the status, or 0 when the
// request failed.
func (r *replica) status(path string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url(path), nil)
	if err != nil {
		return 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// stop sends SIGTERM and checks that the process drains and exits 0.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	if !r.running() {
		t.Fatalf("%s is not running (exit: %v)", r.Name, r.err())
	}
	if code := r.Process.Stop(t); code != 0 {
		t.Fatalf("%s exited with %v (code %d) after SIGTERM, want exit status 0", r.Name, r.Process.Err(), code)
	}
}

// checkLog fails the test if the replica's log shows a panic or a 500.
func (r *replica) checkLog(t *testing.T) {
	t.Helper()
	log := r.log()
	for _, bad := range []string{"panic", "goroutine ", "token endpoint failure"} {
		if strings.Contains(log, bad) {
			i := strings.Index(log, bad)
			t.Errorf("%s log contains %q: ...%s...", r.Name, bad, log[max(0, i-300):min(len(log), i+300)])
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// waitFor is qiaotest.Eventually that fails the test.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if !qiaotest.Eventually(within, cond) {
		t.Fatalf("waiting for %s: timed out after %s", what, within)
	}
}
