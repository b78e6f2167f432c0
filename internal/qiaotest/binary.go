package qiaotest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/syncbuf"
)

// The qiao binary, built once per test binary.
var built struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// Main runs the tests (m.Run, or whatever Run does to set up around
// them) and then removes the qiao binary Binary built:
//
//	func TestMain(m *testing.M) { os.Exit(qiaotest.Main(m)) }
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if built.dir != "" {
		os.RemoveAll(built.dir)
	}
	return code
}

// Binary is the path of cmd/qiao built for this test binary (built on
// the first call, then reused).
func Binary(t testing.TB) string {
	t.Helper()
	built.once.Do(func() {
		built.dir, built.err = os.MkdirTemp("", "qiaotest-bin-")
		if built.err != nil {
			return
		}
		built.path = filepath.Join(built.dir, "qiao")
		cmd := exec.Command("go", "build", "-o", built.path, "github.com/qiaoidp/qiao/cmd/qiao")
		if out, err := cmd.CombinedOutput(); err != nil {
			built.err = fmt.Errorf("go build ./cmd/qiao: %w\n%s", err, out)
		}
	})
	if built.err != nil {
		t.Fatalf("qiaotest: %v", built.err)
	}
	return built.path
}

// Process is one running qiao command.
type Process struct {
	Cmd  *exec.Cmd
	Out  *syncbuf.Buffer // stdout and stderr together
	done chan struct{}
	err  error
}

// StartProcess runs the qiao binary with args and the extra environment
// env ("K=V"); it is stopped when t ends.
func StartProcess(t testing.TB, env []string, out *syncbuf.Buffer, args ...string) *Process {
	t.Helper()
	if out == nil {
		out = &syncbuf.Buffer{}
	}
	p := &Process{Out: out, done: make(chan struct{})}
	p.Cmd = exec.Command(Binary(t), args...)
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = out, out
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.Stop(t) })
	return p
}

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is how the process ended (after Done).
func (p *Process) Err() error { return p.err }

// Stop sends SIGTERM and returns the exit code (-1 if it had to be
// killed after 15 s, which fails t).
func (p *Process) Stop(t testing.TB) int {
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode()
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return p.Cmd.ProcessState.ExitCode()
	case <-time.After(15 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.done
		t.Errorf("qiao did not exit within 15 s of SIGTERM; output:\n%s", p.Out.String())
		return -1
	}
}

// startBinary writes the configuration and runs `qiao serve`.
func (w *World) startBinary() {
	w.ConfigPath = w.writeConfig(w.T.TempDir())
	w.StartServe()
}

// StartServe runs `qiao serve` on the world's configuration file (again,
// after StopServe) and waits for /healthz.
func (w *World) StartServe() {
	t := w.T
	t.Helper()
	w.Process = StartProcess(t, nil, w.Logs, "serve", "--config", w.ConfigPath)
	if err := w.Process.waitHealthy(w.Root()); err != nil {
		t.Fatalf("%v\n%s", err, w.Logs.String())
	}
}

// waitHealthy waits up to 20 s for root/healthz to answer 200.
func (p *Process) waitHealthy(root string) error {
	var exited error
	up := Eventually(20*time.Second, func() bool {
		select {
		case <-p.done:
			exited = fmt.Errorf("qiao serve exited: %v", p.err)
			return true
		default:
		}
		return Healthy(root)
	})
	if exited != nil {
		return exited
	}
	if !up {
		return fmt.Errorf("qiao serve not up after 20 s")
	}
	return nil
}

// StopServe stops `qiao serve` and returns its exit code.
func (w *World) StopServe() int { return w.Process.Stop(w.T) }

// ModuleRoot is the directory of the qiao module (where go.mod is), found
// from this source file, two levels below it.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("qiaotest: cannot locate its own source to find the module root")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}
