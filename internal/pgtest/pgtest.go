// Package pgtest starts real, throwaway PostgreSQL clusters for tests.
//
// A cluster is created with initdb in a temporary directory and started
// with pg_ctl on a free loopback port, with durability switched off for
// speed. The binaries are looked up in $QIAO_PG_BINDIR, then under
// /usr/lib/postgresql/*/bin (newest version first), then on $PATH; on
// Debian they come with the `postgresql` package. When the process runs as
// root the cluster runs as the `postgres` user (through runuser), since
// PostgreSQL refuses to run as root.
//
// When the binaries are missing a test is skipped, unless the environment
// variable CI is set: then it fails, so that a CI run cannot pass without
// having exercised PostgreSQL.
//
// One cluster per test binary:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
//	func TestX(t *testing.T) {
//		dsn := pgtest.Shared(t).NewDatabase(t)
//		...
//	}
//
// A test that stops or restarts the server takes a cluster of its own with
// Start.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// errNoBinaries marks a machine without PostgreSQL.
var errNoBinaries = errors.New("pgtest: PostgreSQL server binaries (initdb, pg_ctl) not found; " +
	"install them (Debian/Ubuntu: apt-get install postgresql) or set QIAO_PG_BINDIR")

// Server is one running (or stopped) throwaway cluster.
type Server struct {
	binDir  string
	baseDir string // holds data/, sock/ and log
	port    int
	runAs   string // "postgres" when we are root, else ""

	mu      sync.Mutex
	running bool
	dbSeq   int

	drops sync.WaitGroup // databases being dropped
}

// Process-wide shared cluster, set up by Main.
var (
	sharedMu     sync.Mutex
	sharedServer *Server
	sharedErr    error
	sharedByMain bool
)

// Main starts one cluster for the whole test binary, runs the tests and
// destroys the cluster. Use it from TestMain and get the cluster with
// Shared. If the cluster cannot be started, the tests still run and each
// call to Shared skips or fails the test with the reason.
func Main(m *testing.M) int {
	s, err := startServer()
	sharedMu.Lock()
	sharedServer, sharedErr, sharedByMain = s, err, true
	sharedMu.Unlock()
	code := m.Run()
	if s != nil {
		if err := s.destroy(); err != nil {
			fmt.Fprintln(os.Stderr, err)
		}
	}
	return code
}

// Shared returns the cluster started by Main. Without Main it starts a
// cluster for this test alone, as Start does. Do not stop or restart the
// shared cluster: other tests use it.
func Shared(tb testing.TB) *Server {
	tb.Helper()
	sharedMu.Lock()
	s, err, byMain := sharedServer, sharedErr, sharedByMain
	sharedMu.Unlock()
	if !byMain {
		return Start(tb)
	}
	if err != nil {
		unavailable(tb, err)
	}
	return s
}

// Start starts a cluster for this test; it is destroyed when the test
// ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	s, err := startServer()
	if err != nil {
		unavailable(tb, err)
	}
	tb.Cleanup(func() {
		if err := s.destroy(); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	return s
}

// unavailable skips the test, or fails it when running in CI (CI set).
func unavailable(tb testing.TB, err error) {
	tb.Helper()
	if errors.Is(err, errNoBinaries) && os.Getenv("CI") == "" {
		tb.Skipf("%v (skipping: CI is not set)", err)
		return
	}
	tb.Fatalf("pgtest: cannot start PostgreSQL: %v", err)
}

// Port is the TCP port the cluster listens on, on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// DSN returns a connection string for the cluster's postgres database as
// the superuser.
func (s *Server) DSN() string { return s.dsn("postgres") }

func (s *Server) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, db)
}

// NewDatabase creates a fresh, empty database and returns its DSN. The
// database is dropped when the test ends, in the background: a drop
// forces a checkpoint and takes as long as the creation, so it runs while
// the next test does. Destroying the cluster waits for the drops.
func (s *Server) NewDatabase(tb testing.TB) string {
	tb.Helper()
	s.mu.Lock()
	s.dbSeq++
	name := fmt.Sprintf("test_%d", s.dbSeq)
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.exec(ctx, "CREATE DATABASE "+name); err != nil {
		tb.Fatalf("pgtest: create database: %v", err)
	}
	tb.Cleanup(func() {
		s.drops.Add(1)
		go func() {
			defer s.drops.Done()
			s.drop(name)
		}()
	})
	return s.dsn(name)
}

// drop drops the database, disconnecting its clients. It runs after the
// test that made the database ended, so it reports a failure on stderr,
// and none when the server was stopped meanwhile.
func (s *Server) drop(name string) {
	if !s.isRunning() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil && s.isRunning() {
		fmt.Fprintf(os.Stderr, "pgtest: drop database %s: %v\n", name, err)
	}
}

func (s *Server) isRunning() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

func (s *Server) exec(ctx context.Context, sql string) error {
	conn, err := pgx.Connect(ctx, s.DSN())
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// Stop stops the server (pg_ctl stop -m fast: clients are disconnected at
// once, committed data is kept). Restart brings it back.
func (s *Server) Stop(tb testing.TB) {
	tb.Helper()
	if err := s.stop("fast"); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

// Restart stops the server if it runs and starts it again on the same
// port with the same data.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	if err := s.stop("fast"); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	if err := s.start(); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
}

// ----------------------------------------------------------- lifecycle

func startServer() (*Server, error) {
	binDir, err := findBinDir()
	if err != nil {
		return nil, err
	}
	runAs := ""
	if os.Geteuid() == 0 {
		runAs = "postgres"
		if _, err := user.Lookup(runAs); err != nil {
			return nil, fmt.Errorf("running as root needs the %q user to run PostgreSQL: %w", runAs, err)
		}
		if _, err := exec.LookPath("runuser"); err != nil {
			return nil, fmt.Errorf("running as root needs runuser: %w", err)
		}
	}
	base, err := os.MkdirTemp(tempRoot(runAs != ""), "pgtest-")
	if err != nil {
		return nil, err
	}
	s := &Server{binDir: binDir, baseDir: base, runAs: runAs}
	if err := s.initdb(); err != nil {
		_ = os.RemoveAll(base)
		return nil, err
	}
	// A free port can be taken between finding it and binding it; retry.
	for attempt := 0; ; attempt++ {
		if s.port, err = freePort(); err != nil {
			break
		}
		if err = s.start(); err == nil || attempt == 2 {
			break
		}
	}
	if err != nil {
		_ = os.RemoveAll(base)
		return nil, err
	}
	return s, nil
}

func (s *Server) dataDir() string { return filepath.Join(s.baseDir, "data") }
func (s *Server) sockDir() string { return filepath.Join(s.baseDir, "sock") }
func (s *Server) logFile() string { return filepath.Join(s.baseDir, "log") }

func (s *Server) initdb() error {
	if err := os.Mkdir(s.sockDir(), 0o700); err != nil {
		return err
	}
	if s.runAs != "" {
		if err := chownTree(s.baseDir, s.runAs); err != nil {
			return err
		}
	}
	if out, err := s.run("initdb", "-D", s.dataDir(), "-U", "postgres", "-A", "trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions"); err != nil {
		return fmt.Errorf("initdb: %w: %s", err, out)
	}
	conf := "\n# pgtest: speed over durability\nfsync = off\nsynchronous_commit = off\n" +
		"full_page_writes = off\nmax_connections = 200\nlisten_addresses = '127.0.0.1'\n"
	f, err := os.OpenFile(filepath.Join(s.dataDir(), "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return nil
	}
	opts := fmt.Sprintf("-k %s -h 127.0.0.1 -p %d", s.sockDir(), s.port)
	if out, err := s.run("pg_ctl", "-D", s.dataDir(), "-l", s.logFile(), "-o", opts, "-w", "-t", "60", "start"); err != nil {
		return fmt.Errorf("pg_ctl start on port %d: %w: %s\n%s", s.port, err, out, s.logTail())
	}
	s.running = true
	return nil
}

// stop stops the server in mode fast or immediate. With
// synchronous_commit off, immediate may lose the last commits.
func (s *Server) stop(mode string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return nil
	}
	if out, err := s.run("pg_ctl", "-D", s.dataDir(), "-m", mode, "-w", "-t", "60", "stop"); err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	s.running = false
	return nil
}

// destroy waits for the databases being dropped, stops the server and
// removes its files.
func (s *Server) destroy() error {
	s.drops.Wait()
	err := s.stop("immediate")
	if rmErr := os.RemoveAll(s.baseDir); rmErr != nil && err == nil {
		err = rmErr
	}
	return err
}

// run runs one of the PostgreSQL binaries, as the postgres user if needed.
func (s *Server) run(name string, args ...string) ([]byte, error) {
	path := filepath.Join(s.binDir, name)
	var cmd *exec.Cmd
	if s.runAs != "" {
		cmd = exec.Command("runuser", append([]string{"-u", s.runAs, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = s.baseDir // the test's directory may be unreadable for postgres
	cmd.Env = append(os.Environ(), "LC_ALL=C", "TZ=UTC")
	return cmd.CombinedOutput()
}

func (s *Server) logTail() string {
	b, err := os.ReadFile(s.logFile())
	if err != nil {
		return ""
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// ------------------------------------------------------------- helpers

func findBinDir() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "pg_ctl", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if dir := os.Getenv("QIAO_PG_BINDIR"); dir != "" {
		if has(dir) {
			return dir, nil
		}
		return "", fmt.Errorf("%w (QIAO_PG_BINDIR=%s lacks them)", errNoBinaries, dir)
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if has(d) {
			return d, nil
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if d := filepath.Dir(p); has(d) {
			return d, nil
		}
	}
	return "", errNoBinaries
}

// version extracts N from /usr/lib/postgresql/N/bin.
func version(binDir string) int {
	n, err := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	if err != nil {
		return -1
	}
	return n
}

// tempRoot is where clusters go: the usual temporary directory, unless
// the cluster runs as another user who could not reach it, or it is so
// deep that the socket path would pass the 107-byte limit; then /tmp.
func tempRoot(otherUser bool) string {
	dir := os.TempDir()
	if len(dir) > 60 {
		return "/tmp"
	}
	if otherUser {
		for d := dir; ; d = filepath.Dir(d) {
			fi, err := os.Stat(d)
			if err != nil || fi.Mode().Perm()&0o001 == 0 {
				return "/tmp"
			}
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	return dir
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, fmt.Errorf("unexpected listener address %v", l.Addr())
	}
	return addr.Port, nil
}

func chownTree(root, username string) error {
	u, err := user.Lookup(username)
	if err != nil {
		return err
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("uid of %s: %w", username, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("gid of %s: %w", username, err)
	}
	return filepath.Walk(root, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	})
}

// ------------------------------------------------------ outside tests

// StartServer starts a throwaway cluster for a program that is not a
// test (bench/login); the caller destroys it with Destroy.
func StartServer() (*Server, error) { return startServer() }

// Destroy stops the cluster and removes its files.
func (s *Server) Destroy() error { return s.destroy() }

// PostmasterPID is the process id of the cluster's postmaster, the
// parent of every server process.
func (s *Server) PostmasterPID() (int, error) {
	raw, err := os.ReadFile(filepath.Join(s.dataDir(), "postmaster.pid"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		return 0, fmt.Errorf("pgtest: postmaster.pid: %w", err)
	}
	return pid, nil
}
