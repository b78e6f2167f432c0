package miniprogram_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/syncbuf"
)

// scanNode returns the path of node, or ends the test: a skip on a
// developer's machine, a failure in CI.
func scanNode(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"node", "nodejs"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	msg := "the scan login SDK tests need Node.js (20 or later): install it with `apt-get install -y nodejs` (Debian/Ubuntu)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// scanDemoURL returns the URL the demo printed after label.
func scanDemoURL(out, label string) string {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), label); ok {
			if f := strings.Fields(rest); len(f) > 0 {
				return f[0]
			}
		}
	}
	return ""
}

// scanDemo builds qiao and runs `qiao demo` on free ports until the test
// ends; it returns the printed banner.
func scanDemo(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "qiao")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/qiaoidp/qiao/cmd/qiao").CombinedOutput(); err != nil {
		t.Fatalf("building qiao: %v\n%s", err, out)
	}
	// The demo's ports are fixed: a loopback address of its own keeps
	// it clear of any other demo on this machine.
	host := fmt.Sprintf("127.%d.%d.%d", 1+rand.IntN(250), rand.IntN(256), 1+rand.IntN(250))
	cmd := exec.Command(bin, "demo", "--listen", host)
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

// TestScanLoginSDK runs the Node tests of scanLogin (test/scan.test.js)
// and of the profile helpers (test/profile.test.js) against a demo
// broker and the WeChat simulator: scan, confirm, refuse, every typed
// error, and the name and picture a person sets.
func TestScanLoginSDK(t *testing.T) {
	node := scanNode(t)
	out := scanDemo(t)
	issuer, wechat, app := scanDemoURL(out, "broker issuer:"), scanDemoURL(out, "WeChat sim:"), scanDemoURL(out, "example app:")
	if issuer == "" || wechat == "" || app == "" {
		t.Fatalf("the demo printed no issuer, WeChat simulator or app URL:\n%s", out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=tap", filepath.Join("test", "scan.test.js"), filepath.Join("test", "profile.test.js"))
	cmd.Env = append(os.Environ(), "QIAO_ISSUER="+issuer, "QIAO_WECHAT_URL="+wechat, "QIAO_APP_URL="+strings.TrimSuffix(app, "/"))
	res, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test failed (%v):\n%s", err, res)
	}
	summary := string(res)
	if !strings.Contains(summary, "# fail 0") || strings.Contains(summary, "# pass 0\n") {
		t.Fatalf("unexpected node --test summary:\n%s", summary)
	}
}
