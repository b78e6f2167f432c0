package replicas

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/syncbuf"
)

type syncBuffer = syncbuf.Buffer

// replica is one `qiao serve` process.
type replica struct {
	name   string
	cmd    *exec.Cmd
	addr   string // the address it listens on (from its banner)
	stdout *syncBuffer
	stderr *syncBuffer // its JSON log
	done   chan struct{}
	err    error // Wait's result, once done is closed
}

// startReplica runs `qiao serve --config cfgPath` with env added to this
// process's environment, and waits until it answers /readyz with 200. It
// may run in a goroutine: it reports failure as an error. The process is
// stopped when the test ends, if it still runs.
func startReplica(t *testing.T, name, bin, cfgPath string, env []string) (*replica, error) {
	r := &replica{name: name, stdout: &syncBuffer{}, stderr: &syncBuffer{}, done: make(chan struct{})}
	r.cmd = exec.Command(bin, "serve", "--config", cfgPath)
	r.cmd.Env = append(os.Environ(), env...)
	r.cmd.Stdout = r.stdout
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start: %w", name, err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	t.Cleanup(func() {
		if r.running() {
			_ = r.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-r.done:
			case <-time.After(30 * time.Second):
				_ = r.cmd.Process.Kill()
				<-r.done
			}
		}
		if t.Failed() {
			t.Logf("%s stdout:\n%s\n%s log (last 6000 bytes):\n%s", r.name, r.stdout, r.name, tail(r.stderr.String(), 6000))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for r.addr == "" {
		if !r.running() {
			return nil, fmt.Errorf("%s exited before listening: %v\nstdout: %s\nstderr: %s", name, r.err, r.stdout, r.stderr)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: no banner within 30 s\nstdout: %s\nstderr: %s", name, r.stdout, r.stderr)
		}
		if r.addr = bannerListen(r.stdout.String()); r.addr == "" {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if err := poll(30*time.Second, func() bool { return r.status("/readyz") == http.StatusOK }); err != nil {
		return nil, fmt.Errorf("%s /readyz 200: %w\nstderr: %s", name, err, tail(r.stderr.String(), 3000))
	}
	return r, nil
}

// bannerListen finds "listen:  ADDR" in qiao's start-up banner.
func bannerListen(out string) string {
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "listen:"); ok {
			return strings.TrimSpace(rest)
		}
	}
	return ""
}

func (r *replica) running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// url is an address on the replica itself, bypassing the load balancer.
func (r *replica) url(path string) string { return "http://" + r.addr + path }

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
		t.Fatalf("%s is not running (exit: %v)", r.name, r.err)
	}
	if err := r.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("%s: SIGTERM: %v", r.name, err)
	}
	select {
	case <-r.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30 s of SIGTERM", r.name)
	}
	if r.err != nil {
		t.Fatalf("%s exited with %v after SIGTERM, want exit status 0", r.name, r.err)
	}
	if code := r.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("%s exit code %d, want 0", r.name, code)
	}
}

// checkLog fails the test if the replica's log shows a panic or a 500.
func (r *replica) checkLog(t *testing.T) {
	t.Helper()
	log := r.stderr.String()
	for _, bad := range []string{"panic", "goroutine ", "token endpoint failure"} {
		if strings.Contains(log, bad) {
			i := strings.Index(log, bad)
			t.Errorf("%s log contains %q: ...%s...", r.name, bad, log[max(0, i-300):min(len(log), i+300)])
		}
	}
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}

// errTimeout is poll's failure.
var errTimeout = errors.New("timed out")

// poll checks cond every 25 ms until it holds or the time is up.
func poll(within time.Duration, cond func() bool) error {
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%w after %s", errTimeout, within)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return nil
}

// waitFor is poll that fails the test.
func waitFor(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	if err := poll(within, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// writeFile writes a file under dir and returns its path.
func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
