package miniprogram_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/syncbuf"
)

// requireNode returns the path of node, or ends the test: a skip on a
// developer's machine, a failure in CI.
func requireNode(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"node", "nodejs"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "the mini-program SDK tests need Node.js (18 or later): install it with `apt-get install -y nodejs` (Debian/Ubuntu)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// printedURL returns the URL the demo printed after label.
func printedURL(out, label string) string {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), label); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0]
			}
		}
	}
	return ""
}

// startDemo builds qiao and runs `qiao demo` on free ports until the test
// ends; it returns the printed banner.
func startDemo(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "qiao")
	build := exec.Command("go", "build", "-o", bin, "github.com/qiaoidp/qiao/cmd/qiao")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building qiao: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "demo", "--listen", "127.0.0.1", "--any-port")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncbuf.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("the demo did not stop within 30 s of SIGTERM")
		}
	})
	banner := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.Contains(sc.Text(), "Press Ctrl-C to stop.") {
				banner <- b.String()
				_, _ = io.Copy(io.Discard, stdout)
				break
			}
		}
		exited <- cmd.Wait()
	}()
	select {
	case out := <-banner:
		return out
	case err := <-exited:
		exited <- err
		t.Fatalf("the demo exited (%v) before printing its URLs; stderr:\n%s", err, stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("the demo printed no URLs within 60 s; stderr:\n%s", stderr.String())
	}
	return ""
}

// TestMiniProgramSDK runs the SDK's Node tests against one real demo
// broker and its WeChat simulator: test/sdk.test.js (sign-in, refresh
// rotation, a request refreshed once on 401, typed errors, binding,
// logout), test/scan.test.js (scanLogin: scan, confirm, refuse, every
// typed error) and test/profile.test.js (the name and picture a person
// sets).
func TestMiniProgramSDK(t *testing.T) {
	node := requireNode(t)
	out := startDemo(t)
	issuer, wechat, app := printedURL(out, "broker issuer:"), printedURL(out, "WeChat sim:"), printedURL(out, "example app:")
	if issuer == "" || wechat == "" || app == "" {
		t.Fatalf("the demo printed no issuer, WeChat simulator or app URL:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	// TAP, whatever the Node version's default reporter, for the summary below.
	files := []string{"sdk.test.js", "scan.test.js", "profile.test.js"}
	args := []string{"--test", "--test-reporter=tap"}
	for _, f := range files {
		args = append(args, filepath.Join("test", f))
	}
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Env = append(os.Environ(), "QIAO_ISSUER="+issuer, "QIAO_WECHAT_URL="+wechat, "QIAO_APP_URL="+strings.TrimSuffix(app, "/"))
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test failed (%v):\n%s", err, res)
	}
	// The runner's summary: every test ran and passed.
	summary := string(res)
	if !strings.Contains(summary, "# fail 0") || strings.Contains(summary, "# pass 0\n") {
		t.Fatalf("unexpected node --test summary:\n%s", summary)
	}
	t.Log(lastLines(summary, 8))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
