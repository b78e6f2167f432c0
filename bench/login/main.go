// Command login drives full OIDC logins through a real Qiao broker and
// reports throughput, latency and the broker's CPU time per login.
//
// By default it builds cmd/qiao, writes a configuration with one Weibo
// connector whose provider is a Weibo simulator (connectors/sandbox) run by
// this command, starts `qiao serve` as a separate process on loopback and
// measures that process's CPU from /proc/PID/stat. With -issuer it targets
// a broker that is already running instead (configured with -client,
// -secret, -connector, and a Weibo connector pointing at -weibo-listen),
// and reads the broker's CPU from its /metrics.
//
//	go run ./bench/login -c 8 -n 2000
//	go run ./bench/login -mode refresh -c 8 -n 4000
//
// A login is: GET /auth with connector_id, the redirect to the simulator's
// picker page, the pick of a person, the redirect to the broker's callback
// (where the broker makes three calls to the simulator: access_token,
// get_token_info and users/show), the redirect with the code to the
// relying party's loopback redirect URI (not followed), and POST /token
// with the code, the PKCE verifier and the client secret. -mode refresh
// times refresh-token rotations instead, one chain per worker; -mode
// exchange times mini-program logins (the RFC 8693 token exchange of a
// wx.login code, which the broker redeems at a WeChat simulator run by
// this command: one jscode2session call each).
//
// The run is bounded by -n and -timeout and talks to loopback only.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/pgtest"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// The Weibo app the simulator knows and the broker is configured with.
const (
	weiboAppKey = "1352000099"
	connectorID = "weibo"
	clientID    = "bench"
	redirectURI = "http://127.0.0.1:9/callback" // loopback, never contacted
)

type options struct {
	concurrency int
	count       int
	warmup      int
	mode        string
	alg         string
	persons     int
	timeout     time.Duration
	qiaoBin     string
	keep        bool
	logLevel    string
	perf        string
	store       string
	flood       int

	// An already running broker.
	issuer      string
	metricsURL  string
	client      string
	secret      string
	connector   string
	weiboListen string
	weiboSecret string
	weiboAppKey string
}

func main() {
	var o options
	flag.IntVar(&o.concurrency, "c", 8, "concurrent logins")
	flag.IntVar(&o.count, "n", 2000, "logins (or refreshes with -mode refresh) to time")
	flag.IntVar(&o.warmup, "warmup", -1, "untimed logins first (-1: one per person, so that every user exists)")
	flag.StringVar(&o.mode, "mode", "login", "login: full logins; refresh: refresh-token rotations; exchange: mini-program token exchanges")
	flag.StringVar(&o.alg, "alg", "RS256", "signing algorithm of the started broker: RS256, ES256 or EdDSA")
	flag.IntVar(&o.persons, "persons", 50, "distinct Weibo users the logins cycle through")
	flag.IntVar(&o.flood, "flood", 0, "during the timed phase, this many clients also send authorization requests with a 60 KiB query that nobody signs in to")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after this long")
	flag.StringVar(&o.qiaoBin, "qiao", "", "qiao binary to start (default: go build ./cmd/qiao into a temporary directory)")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configuration, database, broker log)")
	flag.StringVar(&o.logLevel, "log-level", "info", "log level of the started broker")
	flag.StringVar(&o.store, "store", "sqlite", "store of the started broker: sqlite, or postgres (a throwaway cluster this command starts, as internal/pgtest does)")
	flag.StringVar(&o.perf, "perf", "", "record the started broker with `perf record -g` into this file during the timed phase")
	flag.StringVar(&o.issuer, "issuer", "", "issuer of a running broker to target instead of starting one")
	flag.StringVar(&o.metricsURL, "metrics", "", "the running broker's /metrics URL (default: /metrics at the issuer's host)")
	flag.StringVar(&o.client, "client", clientID, "client id (with -issuer)")
	flag.StringVar(&o.secret, "secret", "", "client secret (with -issuer)")
	flag.StringVar(&o.connector, "connector", connectorID, "Weibo connector id (with -issuer)")
	flag.StringVar(&o.weiboListen, "weibo-listen", "127.0.0.1:0", "address of the Weibo simulator (with -issuer, the one the broker's connector points at)")
	flag.StringVar(&o.weiboSecret, "weibo-secret", "", "App Secret the simulator expects (with -issuer; default: random)")
	flag.StringVar(&o.weiboAppKey, "weibo-appkey", weiboAppKey, "App Key of the simulated Weibo app")
	flag.Parse()
	if err := o.check(); err != nil {
		fmt.Fprintln(os.Stderr, "login:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := run(ctx, o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "login:", err)
		os.Exit(1)
	}
}

func (o *options) check() error {
	switch {
	case o.concurrency < 1 || o.concurrency > 256:
		return fmt.Errorf("-c %d: want 1 to 256", o.concurrency)
	case o.count < 1 || o.count > 1_000_000:
		return fmt.Errorf("-n %d: want 1 to 1000000", o.count)
	case o.mode != "login" && o.mode != "refresh" && o.mode != "exchange":
		return fmt.Errorf("-mode %q: want login, refresh or exchange", o.mode)
	case o.mode == "exchange" && o.issuer != "":
		return errors.New("-mode exchange configures the broker it starts; it cannot be used with -issuer")
	case o.persons < 1 || o.persons > 10_000:
		return fmt.Errorf("-persons %d: want 1 to 10000", o.persons)
	case o.issuer != "" && o.secret == "":
		return errors.New("-issuer needs -secret (the client's secret)")
	case o.issuer != "" && o.weiboSecret == "":
		return errors.New("-issuer needs -weibo-secret (the App Secret the broker's connector sends)")
	case o.store != "sqlite" && o.store != "postgres":
		return fmt.Errorf("-store %q: want sqlite or postgres", o.store)
	case o.store != "sqlite" && o.issuer != "":
		return errors.New("-store postgres starts its own broker; it cannot be used with -issuer")
	case o.perf != "" && o.issuer != "":
		return errors.New("-perf profiles the broker this command starts; it cannot be used with -issuer")
	case o.timeout <= 0:
		return errors.New("-timeout must be positive")
	}
	if o.issuer != "" {
		u, err := url.Parse(o.issuer)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("-issuer %q is not an absolute URL", o.issuer)
		}
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("-issuer %q: only loopback brokers may be targeted", o.issuer)
		}
		o.issuer = strings.TrimSuffix(o.issuer, "/")
	}
	if host, _, err := net.SplitHostPort(o.weiboListen); err != nil || !isLoopback(host) {
		return fmt.Errorf("-weibo-listen %q: want a loopback host:port", o.weiboListen)
	}
	if o.warmup < 0 {
		o.warmup = o.persons
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func run(ctx context.Context, o options, out io.Writer) error {
	if o.weiboSecret == "" {
		o.weiboSecret = randomToken(24)
	}
	sim, simURL, err := startWeibo(o)
	if err != nil {
		return err
	}
	defer sim.close()

	var wx *wechatSim
	if o.mode == "exchange" {
		if wx, err = startWeChat(o); err != nil {
			return err
		}
		defer wx.close()
	}

	var target *broker
	if o.issuer == "" {
		target, err = startBroker(ctx, o, simURL, wx)
		if err != nil {
			return err
		}
		defer target.stop(out)
		sim.setCallback(target.issuer + "/callback/" + connectorID)
	} else {
		metrics := o.metricsURL
		if metrics == "" {
			u, _ := url.Parse(o.issuer) // checked in check
			metrics = u.Scheme + "://" + u.Host + "/metrics"
		}
		target = &broker{issuer: o.issuer, metrics: metrics, client: o.client, secret: o.secret, connector: o.connector}
		sim.setCallback(o.issuer + "/callback/" + o.connector)
	}
	d := newDriver(target, o)
	d.wx = wx

	fmt.Fprintf(out, "machine: %d CPUs (%s), GOMAXPROCS %d, load average %s\n", runtime.NumCPU(), cpuModel(), runtime.GOMAXPROCS(0), loadAverage())
	fmt.Fprintf(out, "broker: %s (%s, store %s unless -issuer says otherwise), mode %s, c=%d, n=%d, warm-up %d\n", target.issuer, o.alg, o.store, o.mode, o.concurrency, o.count, o.warmup)

	// Warm up: every person logs in once (their user is created), and the
	// connections are open.
	warm := d.login
	if o.mode == "exchange" {
		warm = d.exchange
	}
	if res, err := d.runPhase(ctx, o.warmup, warm); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	} else if res.failed > 0 {
		return fmt.Errorf("warm-up: %d of %d logins failed; first error: %v", res.failed, o.warmup, res.firstErr)
	}
	var op func(context.Context, *worker) error
	switch o.mode {
	case "login":
		op = d.login
	case "exchange":
		op = d.exchange
	case "refresh":
		op = d.refresh
		// Every worker's chain starts with a login, outside the timing.
		for _, w := range d.workers {
			if w.refresh == "" {
				if err := d.login(ctx, w); err != nil {
					return fmt.Errorf("login for a refresh token: %w", err)
				}
			}
		}
	}
	before, err := target.sample(ctx)
	if err != nil {
		return err
	}
	var rec *perfRecord
	if o.perf != "" {
		if rec, err = startPerf(o.perf, target.pid); err != nil {
			return err
		}
	}
	simBefore := sim.counts()
	if wx != nil {
		simBefore = wx.counts()
	}
	selfBefore := selfCPU()
	dbBefore := target.storeSize()
	stopFlood := d.startFlood(ctx, o.flood)
	res, err := d.runPhase(ctx, o.count, op)
	flooded := stopFlood()
	if rec != nil {
		if perr := rec.stop(); perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return err
	}
	selfUsed := selfCPU() - selfBefore
	after, err := target.sample(ctx)
	if err != nil {
		return err
	}
	simAfter := sim.counts()
	if wx != nil {
		simAfter = wx.counts()
	}
	res.print(out, o.mode)
	if o.flood > 0 {
		fmt.Fprintf(out, "flood: %d unauthenticated authorization requests (%d not redirected to the provider) by %d clients\n", flooded.sent, flooded.failed, o.flood)
	}
	if dbBefore >= 0 {
		fmt.Fprintf(out, "SQLite files: %.2f MB before the timed phase, %.2f MB after\n", float64(dbBefore)/(1<<20), float64(target.storeSize())/(1<<20))
	}
	ok := float64(res.ok)
	if ok > 0 {
		cpu := after.cpu - before.cpu
		fmt.Fprintf(out, "broker CPU: %.3f ms per %s (%.2f s over %d, from %s; 10 ms resolution)\n",
			cpu.Seconds()*1000/ok, o.mode, cpu.Seconds(), res.ok, target.cpuSource())
		if target.pg != nil {
			pgCPU := after.pgCPU - before.pgCPU
			fmt.Fprintf(out, "PostgreSQL CPU: %.3f ms per %s (%.2f s, its processes from /proc)\n", pgCPU.Seconds()*1000/ok, o.mode, pgCPU.Seconds())
			fmt.Fprintf(out, "PostgreSQL transactions: %.2f per %s (pg_stat_database.xact_commit, reads included)\n", (after.pgXacts-before.pgXacts)/ok, o.mode)
		}
		if after.roundTrips >= 0 && before.roundTrips >= 0 {
			fmt.Fprintf(out, "store: %.2f round trips (SQLite: statements) and %.2f commits per %s (qiao_store_*_total)\n",
				(after.roundTrips-before.roundTrips)/ok, (after.commits-before.commits)/ok, o.mode)
		}
		if after.mallocs >= 0 && before.mallocs >= 0 {
			fmt.Fprintf(out, "broker allocations: %.0f per %s (go_memstats_mallocs_total; the broker's own, background work included)\n",
				(after.mallocs-before.mallocs)/ok, o.mode)
		}
		if after.rss > 0 {
			fmt.Fprintf(out, "broker RSS: %.1f MB after the run\n", float64(after.rss)/(1<<20))
		}
		if after.upstream >= 0 && before.upstream >= 0 {
			fmt.Fprintf(out, "upstream calls: %.2f per %s (qiao_upstream_requests_total)\n", (after.upstream-before.upstream)/ok, o.mode)
		}
		fmt.Fprintf(out, "simulator: %.2f API calls and %.2f new broker connections per %s\n",
			float64(simAfter.api-simBefore.api)/ok, float64(simAfter.conns-simBefore.conns)/ok, o.mode)
		fmt.Fprintf(out, "load tool CPU (clients and simulator): %.3f ms per %s\n", selfUsed.Seconds()*1000/ok, o.mode)
	}
	if res.failed > 0 {
		return fmt.Errorf("%d of %d %s operations failed; first error: %v", res.failed, res.ok+res.failed, o.mode, res.firstErr)
	}
	return nil
}

// ---------------------------------------------------------------- simulator

type weiboSim struct {
	wb   *sandbox.Weibo
	srv  *http.Server
	app  *sandbox.WeiboApp
	opts sandbox.WeiboOptions
	// mu guards the handler swap when the callback URL is known.
	mu    sync.RWMutex
	h     http.Handler
	api   atomic.Int64 // server-to-server calls (anything but the authorize page)
	conns atomic.Int64 // connections accepted
}

type simCounts struct{ api, conns int64 }

func (s *weiboSim) counts() simCounts { return simCounts{s.api.Load(), s.conns.Load()} }

func startWeibo(o options) (*weiboSim, string, error) {
	persons := make([]sandbox.Person, o.persons)
	for i := range persons {
		id := "p" + strconv.Itoa(i)
		persons[i] = sandbox.Person{ID: id, Name: "Bench " + id, Avatar: "https://img.example/" + id + ".png"}
	}
	s := &weiboSim{opts: sandbox.WeiboOptions{Persons: persons}}
	ln, err := net.Listen("tcp", o.weiboListen)
	if err != nil {
		return nil, "", fmt.Errorf("listening for the Weibo simulator: %w", err)
	}
	s.app = &sandbox.WeiboApp{ClientID: o.weiboAppKey, Secret: o.weiboSecret}
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != sandbox.WeiboPathAuthorize {
				s.api.Add(1)
			}
			s.mu.RLock()
			h := s.h
			s.mu.RUnlock()
			if h == nil {
				http.Error(w, "not ready", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		},
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, "http://" + ln.Addr().String(), nil
}

// setCallback registers the broker's callback URL with the simulated app.
func (s *weiboSim) setCallback(callback string) {
	app := *s.app
	app.RedirectURI = callback
	opts := s.opts
	opts.Apps = []sandbox.WeiboApp{app}
	s.mu.Lock()
	s.wb = sandbox.NewWeibo(opts)
	s.h = s.wb
	s.mu.Unlock()
}

func (s *weiboSim) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// ------------------------------------------------------------------- broker

// broker is the target: a started process (pid > 0) or a running one.
type broker struct {
	issuer    string
	metrics   string
	client    string
	secret    string
	connector string

	pid  int
	cmd  *exec.Cmd
	dir  string
	keep bool
	// exited is closed when the started process has exited; waitErr is
	// then its Wait error. (A channel that is closed, not sent on, can be
	// waited on by waitReady and by kill alike.)
	exited  chan struct{}
	waitErr error
	pg      *pgtest.Server // the throwaway cluster of -store postgres
}

func startBroker(ctx context.Context, o options, simURL string, wx *wechatSim) (*broker, error) {
	dir, err := os.MkdirTemp("", "qiao-bench-")
	if err != nil {
		return nil, err
	}
	b := &broker{dir: dir, keep: o.keep, client: clientID, secret: randomToken(32), connector: connectorID, exited: make(chan struct{})}
	fail := func(err error) (*broker, error) {
		b.cleanup()
		return nil, err
	}
	bin := o.qiaoBin
	if bin == "" {
		bin = filepath.Join(dir, "qiao")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/qiaoidp/qiao/cmd/qiao")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			return fail(fmt.Errorf("building cmd/qiao (or pass -qiao): %w", err))
		}
	}
	addr, err := freeLoopbackAddr()
	if err != nil {
		return fail(err)
	}
	storage := qiaotest.Storage{Type: "sqlite", SQLite: &qiaotest.SQLiteConfig{Path: filepath.Join(dir, "qiao.db")}}
	if o.store == "postgres" {
		if b.pg, err = pgtest.StartServer(); err != nil {
			return fail(fmt.Errorf("starting a PostgreSQL cluster: %w", err))
		}
		storage = qiaotest.Storage{Type: "postgres", Postgres: &qiaotest.PostgresConfig{DSN: b.pg.DSN()}}
	}
	b.issuer = "http://" + addr
	b.metrics = b.issuer + "/metrics"
	// The configuration as Go values (internal/qiaotest's), marshalled
	// into the file qiao serve reads.
	conns := []qiaotest.Connector{{ID: connectorID, Type: "weibo", Name: "Weibo", Config: map[string]any{
		"client_id": o.weiboAppKey, "client_secret": o.weiboSecret, "auth_base_url": simURL, "api_base_url": simURL,
	}}}
	if wx != nil {
		// -mode exchange: the mini-program at the WeChat simulator.
		conns = append(conns, qiaotest.Connector{ID: "mini", Type: "wechat_miniprogram", Name: "Mini", Config: map[string]any{
			"client_id": miniAppID, "client_secret": wx.secret, "auth_base_url": wx.url, "api_base_url": wx.url,
		}})
	}
	cfg, err := qiaotest.Config{
		Issuer:     b.issuer,
		HTTP:       &qiaotest.HTTP{Listen: addr},
		Storage:    storage,
		Secret:     randomToken(48),
		Keys:       &qiaotest.Keys{Algorithm: o.alg},
		Log:        &qiaotest.Log{Level: o.logLevel, Format: "json"},
		Connectors: conns,
		Clients:    []qiaotest.Client{{ID: clientID, Secret: b.secret, Name: "Bench", RedirectURIs: []string{redirectURI}}},
	}.Marshal()
	if err != nil {
		return fail(err)
	}
	cfgPath := filepath.Join(dir, "qiao.yaml")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return fail(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "qiao.log"))
	if err != nil {
		return fail(err)
	}
	b.cmd = exec.Command(bin, "serve", "--config", cfgPath)
	b.cmd.Stdout, b.cmd.Stderr = logFile, logFile
	if err := b.cmd.Start(); err != nil {
		logFile.Close()
		return fail(fmt.Errorf("starting %s: %w", bin, err))
	}
	b.pid = b.cmd.Process.Pid
	go func() {
		b.waitErr = b.cmd.Wait()
		logFile.Close()
		close(b.exited)
	}()
	if err := b.waitReady(ctx, 30*time.Second); err != nil {
		b.kill()
		return fail(fmt.Errorf("%w (broker log: %s)", err, filepath.Join(dir, "qiao.log")))
	}
	return b, nil
}

func freeLoopbackAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := ln.Addr().String()
	return addr, ln.Close()
}

// waitReady polls /readyz until the broker answers 200.
func (b *broker) waitReady(ctx context.Context, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.issuer+"/readyz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-b.exited:
			return fmt.Errorf("the broker exited before it was ready: %v", b.waitErr)
		case <-ctx.Done():
			return fmt.Errorf("the broker was not ready within %s", limit)
		case <-tick.C:
		}
	}
}

// stop ends the started broker (SIGTERM, then SIGKILL after 10 s).
func (b *broker) stop(out io.Writer) {
	if b.cmd == nil {
		return
	}
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		b.kill()
	}
	if b.keep {
		fmt.Fprintf(out, "kept %s\n", b.dir)
	}
	b.cleanup()
}

func (b *broker) kill() {
	_ = b.cmd.Process.Kill()
	<-b.exited
}

func (b *broker) cleanup() {
	if b.pg != nil {
		if err := b.pg.Destroy(); err != nil {
			fmt.Fprintln(os.Stderr, "login: removing the PostgreSQL cluster:", err)
		}
		b.pg = nil
	}
	if !b.keep && b.dir != "" {
		_ = os.RemoveAll(b.dir)
	}
}

// sample is the broker's CPU time and upstream call count at one moment
// (upstream -1: unknown).
type sample struct {
	cpu      time.Duration
	upstream float64
	// The store's counters (-1: unknown, e.g. a broker without them).
	roundTrips, commits float64
	rss                 float64
	// mallocs is the broker's heap allocations so far (-1: unknown).
	mallocs float64
	// The PostgreSQL cluster's processes, with -store postgres.
	pgCPU   time.Duration
	pgXacts float64
}

func (b *broker) cpuSource() string {
	if b.pid > 0 {
		return fmt.Sprintf("/proc/%d/stat", b.pid)
	}
	return "process_cpu_seconds_total"
}

func (b *broker) sample(ctx context.Context) (sample, error) {
	m, err := scrape(ctx, b.metrics)
	if err != nil && b.pid == 0 {
		return sample{}, fmt.Errorf("reading the broker's metrics: %w", err)
	}
	s := sample{upstream: -1, roundTrips: -1, commits: -1, mallocs: -1}
	if err == nil {
		if v, ok := m["qiao_upstream_requests_total"]; ok {
			s.upstream = v
		}
		if v, ok := m["qiao_store_round_trips_total"]; ok {
			s.roundTrips, s.commits = v, m["qiao_store_commits_total"]
		}
		s.rss = m["process_resident_memory_bytes"]
		if v, ok := m["go_memstats_mallocs_total"]; ok {
			s.mallocs = v
		}
		s.cpu = time.Duration(m["process_cpu_seconds_total"] * float64(time.Second))
	}
	if b.pid > 0 {
		// Read after the scrape, whose own cost stays outside the window
		// for the "after" sample and inside it (once) for "before".
		s.cpu, err = procCPU(b.pid)
		if err != nil {
			return sample{}, err
		}
	}
	if b.pg != nil {
		if s.pgCPU, err = clusterCPU(b.pg); err != nil {
			return sample{}, err
		}
		if s.pgXacts, err = clusterCommits(ctx, b.pg); err != nil {
			return sample{}, err
		}
	}
	return s, nil
}

// clusterCPU is the CPU time of the cluster's processes: the postmaster
// with its exited children (cutime, cstime) and its live children.
func clusterCPU(pg *pgtest.Server) (time.Duration, error) {
	pm, err := pg.PostmasterPID()
	if err != nil {
		return 0, err
	}
	total, err := procCPUFields(pm, true)
	if err != nil {
		return 0, err
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == pm {
			continue
		}
		if ppid, err := procPPID(pid); err != nil || ppid != pm {
			continue
		}
		if t, err := procCPUFields(pid, false); err == nil {
			total += t
		}
	}
	return total, nil
}

// clusterCommits is the committed transactions of the cluster's
// databases (pg_stat_database; the statistics lag by up to a second).
func clusterCommits(ctx context.Context, pg *pgtest.Server) (float64, error) {
	conn, err := pgx.Connect(ctx, pg.DSN())
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx)
	var n float64
	// Force fresh statistics: the counters are flushed by each backend
	// when it goes idle, at most once a second.
	time.Sleep(1100 * time.Millisecond)
	err = conn.QueryRow(ctx, `SELECT sum(xact_commit)::float8 FROM pg_stat_database`).Scan(&n)
	return n, err
}

// scrape sums each metric's series in a Prometheus text exposition.
func scrape(ctx context.Context, u string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %d", u, resp.StatusCode)
	}
	sums := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ "); i >= 0 {
			name = line[:i]
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[sp+1:], 64)
		if err != nil {
			continue
		}
		sums[name] += v
	}
	return sums, sc.Err()
}

// procCPU is the user and system CPU time of process pid, from
// /proc/PID/stat (in USER_HZ ticks, 100 per second on Linux).
func procCPU(pid int) (time.Duration, error) { return procCPUFields(pid, false) }

// procStat returns the fields of /proc/PID/stat after the command name:
// f[0] is field 3 (state).
func procStat(pid int) ([]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	// The command name (field 2) may hold spaces; count fields after ")".
	i := bytes.LastIndexByte(raw, ')')
	if i < 0 {
		return nil, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 15 {
		return nil, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	return f, nil
}

func procPPID(pid int) (int, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(f[1]) // field 4
}

// procCPUFields sums utime and stime (fields 14, 15) and, with children,
// cutime and cstime (16, 17: the waited-for children's).
func procCPUFields(pid int, children bool) (time.Duration, error) {
	f, err := procStat(pid)
	if err != nil {
		return 0, err
	}
	fields := f[11:13]
	if children {
		fields = f[11:15]
	}
	var ticks int64
	for _, v := range fields {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/%d/stat: bad CPU time %q", pid, v)
		}
		ticks += n
	}
	const userHZ = 100
	return time.Duration(ticks) * time.Second / userHZ, nil
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// perfRecord is a running `perf record` of the broker.
type perfRecord struct {
	cmd  *exec.Cmd
	done chan error
}

func startPerf(file string, pid int) (*perfRecord, error) {
	cmd := exec.Command("perf", "record", "-F", "999", "-g", "-o", file, "-p", strconv.Itoa(pid))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting perf: %w", err)
	}
	r := &perfRecord{cmd: cmd, done: make(chan error, 1)}
	go func() { r.done <- cmd.Wait() }()
	return r, nil
}

// stop ends the recording (perf writes its file on SIGINT).
func (r *perfRecord) stop() error {
	_ = r.cmd.Process.Signal(os.Interrupt)
	select {
	case <-r.done:
		return nil
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
		return errors.New("perf did not stop within 30 s")
	}
}

// storeSize is the size of the started broker's SQLite files (database,
// WAL and shared memory), or -1.
func (b *broker) storeSize() int64 {
	if b.dir == "" || b.pg != nil {
		return -1
	}
	var n int64
	for _, f := range []string{"qiao.db", "qiao.db-wal", "qiao.db-shm"} {
		if st, err := os.Stat(filepath.Join(b.dir, f)); err == nil {
			n += st.Size()
		}
	}
	return n
}

// ------------------------------------------------------------------- driver

type floodCount struct{ sent, failed int64 }

// startFlood starts n clients sending authorization requests with a
// 60 KiB query and never signing in; the returned function stops them
// and reports their count.
func (d *driver) startFlood(ctx context.Context, n int) func() floodCount {
	if n <= 0 {
		return func() floodCount { return floodCount{} }
	}
	ctx, cancel := context.WithCancel(ctx)
	var (
		wg           sync.WaitGroup
		sent, failed atomic.Int64
	)
	q := url.Values{
		"response_type": {"code"}, "client_id": {d.b.client}, "redirect_uri": {redirectURI},
		"scope": {"openid"}, "state": {"flood"}, "connector_id": {d.b.connector},
		"padding": {strings.Repeat("p", 60<<10)},
	}
	u, _ := url.Parse(d.b.issuer + "/auth?" + q.Encode()) // a valid URL by construction
	for range n {
		wg.Go(func() {
			for ctx.Err() == nil {
				resp, err := d.get(ctx, d.httpClient(), u)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				sent.Add(1)
				if resp.StatusCode != http.StatusFound {
					failed.Add(1)
				}
			}
		})
	}
	return func() floodCount {
		cancel()
		wg.Wait()
		return floodCount{sent.Load(), failed.Load()}
	}
}

type driver struct {
	b         *broker
	wx        *wechatSim // -mode exchange
	o         options
	transport *http.Transport
	next      atomic.Int64 // person counter
	workers   []*worker    // one per concurrent client, kept across phases
}

// worker is one concurrent user agent; its refresh chain, in refresh mode.
type worker struct {
	refresh string
}

func newDriver(b *broker, o options) *driver {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 4 * o.concurrency
	tr.MaxIdleConnsPerHost = 2 * o.concurrency
	d := &driver{b: b, o: o, transport: tr}
	for range o.concurrency {
		d.workers = append(d.workers, &worker{})
	}
	return d
}

type result struct {
	ok, failed int
	firstErr   error
	latencies  []time.Duration
	elapsed    time.Duration
}

// runPhase runs n operations on the workers and collects their latencies.
func (d *driver) runPhase(ctx context.Context, n int, op func(context.Context, *worker) error) (*result, error) {
	res := &result{}
	if n == 0 {
		return res, nil
	}
	var (
		mu      sync.Mutex
		left    atomic.Int64
		wg      sync.WaitGroup
		started = time.Now()
	)
	left.Store(int64(n))
	for _, w := range d.workers {
		wg.Go(func() {
			for left.Add(-1) >= 0 && ctx.Err() == nil {
				t0 := time.Now()
				err := op(ctx, w)
				lat := time.Since(t0)
				mu.Lock()
				if err != nil {
					res.failed++
					if res.firstErr == nil {
						res.firstErr = err
					}
				} else {
					res.ok++
					res.latencies = append(res.latencies, lat)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(started)
	if err := ctx.Err(); err != nil {
		return res, fmt.Errorf("stopped after %d of %d: %w", res.ok+res.failed, n, err)
	}
	return res, nil
}

func (r *result) print(out io.Writer, mode string) {
	slices.Sort(r.latencies)
	pct := func(p float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		i := int(p*float64(len(r.latencies))+0.5) - 1
		i = max(0, min(i, len(r.latencies)-1))
		return r.latencies[i]
	}
	ms := func(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1000, 'f', 2, 64) }
	fmt.Fprintf(out, "%s: %d ok, %d errors in %.2f s: %.1f/s\n", mode, r.ok, r.failed, r.elapsed.Seconds(), float64(r.ok)/r.elapsed.Seconds())
	fmt.Fprintf(out, "latency ms: p50 %s  p90 %s  p99 %s  max %s\n", ms(pct(0.50)), ms(pct(0.90)), ms(pct(0.99)), ms(pct(1)))
}

func (d *driver) httpClient() *http.Client {
	jar, _ := cookiejar.New(nil) // never fails without options
	return &http.Client{
		Transport:     d.transport,
		Jar:           jar,
		Timeout:       30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// login runs one full login in a fresh browser and keeps the refresh
// token in w.
func (d *driver) login(ctx context.Context, w *worker) error {
	browser := d.httpClient()
	a := qiaotest.NewRawAuth(d.b.client, redirectURI, d.b.connector)
	// 1. The authorization request: a redirect to the provider.
	authURL, err := url.Parse(a.URL(d.b.issuer))
	if err != nil {
		return fmt.Errorf("authorize: %w", err)
	}
	pickerURL, err := d.redirect(ctx, browser, authURL, "authorize")
	if err != nil {
		return err
	}
	// 2. The provider's picker page; pick this login's person.
	page, err := d.page(ctx, browser, pickerURL)
	if err != nil {
		return err
	}
	want := "p" + strconv.FormatInt(d.next.Add(1)%int64(d.o.persons), 10)
	// The one way a person is picked on a simulator: the picker page's
	// data-person link.
	link, err := (&qiaotest.Page{Status: http.StatusOK, URL: pickerURL, Body: page}).Link("data-person", want)
	if err != nil {
		return fmt.Errorf("picker: %w", err)
	}
	pickURL, err := url.Parse(link.Href)
	if err != nil {
		return err
	}
	// 3. The pick: a redirect to the broker's callback.
	callback, err := d.redirect(ctx, browser, pickURL, "picker")
	if err != nil {
		return err
	}
	// 4. The callback: the broker calls the provider, then redirects to
	// the client with the code.
	back, err := d.redirect(ctx, browser, callback, "callback")
	if err != nil {
		return err
	}
	bq := back.Query()
	if e := bq.Get("error"); e != "" {
		return fmt.Errorf("callback: %s: %s", e, bq.Get("error_description"))
	}
	if back.Host != "127.0.0.1:9" || bq.Get("state") != a.State() || bq.Get("code") == "" {
		return fmt.Errorf("callback: redirected to %s://%s%s without the code and state", back.Scheme, back.Host, back.Path)
	}
	// 5. The token exchange.
	tok, err := d.token(ctx, a.CodeForm(bq.Get("code")))
	if err != nil {
		return err
	}
	if tok.nonce != a.Get("nonce") {
		return errors.New("token: the ID token's nonce is not the request's")
	}
	w.refresh = tok.RefreshToken
	return nil
}

// refresh rotates w's refresh token, logging in first if it has none.
func (d *driver) refresh(ctx context.Context, w *worker) error {
	if w.refresh == "" {
		if err := d.login(ctx, w); err != nil {
			return fmt.Errorf("login for a refresh token: %w", err)
		}
	}
	tok, err := d.token(ctx, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {w.refresh}})
	if err != nil {
		w.refresh = ""
		return err
	}
	if tok.RefreshToken == "" || tok.RefreshToken == w.refresh {
		return errors.New("refresh: the refresh token was not rotated")
	}
	w.refresh = tok.RefreshToken
	return nil
}

// exchange is one mini-program login: a wx.login code of the next person,
// from the simulator, exchanged at the token endpoint (RFC 8693) for the
// same tokens a web login gives.
func (d *driver) exchange(ctx context.Context, _ *worker) error {
	person := "p" + strconv.FormatInt(d.next.Add(1)%int64(d.o.persons), 10)
	code, err := d.wx.wx.LoginCode(miniAppID, person)
	if err != nil {
		return fmt.Errorf("wx.login: %w", err)
	}
	tok, err := d.token(ctx, url.Values{
		"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
		"subject_token":      {code},
		"subject_token_type": {"urn:qiao:params:oauth:token-type:wechat-js-code"},
		"subject_issuer":     {"mini"},
		"scope":              {"openid profile offline_access"},
	})
	if err != nil {
		return err
	}
	if tok.RefreshToken == "" {
		return errors.New("exchange: no refresh token")
	}
	return nil
}

// The mini-program the WeChat simulator knows (-mode exchange).
const miniAppID = "wx5555555555555555"

// wechatSim is the WeChat simulator of -mode exchange.
type wechatSim struct {
	wx     *sandbox.WeChat
	srv    *http.Server
	url    string
	secret string
	api    atomic.Int64
	conns  atomic.Int64
}

func (s *wechatSim) counts() simCounts { return simCounts{s.api.Load(), s.conns.Load()} }

func startWeChat(o options) (*wechatSim, error) {
	persons := make([]sandbox.Person, o.persons)
	for i := range persons {
		id := "p" + strconv.Itoa(i)
		persons[i] = sandbox.Person{ID: id, Name: "Bench " + id, Avatar: "https://img.example/" + id + ".png"}
	}
	s := &wechatSim{secret: randomToken(24)}
	var err error
	s.wx, err = sandbox.NewWeChat(sandbox.WeChatOptions{Persons: persons, Apps: []sandbox.WeChatApp{{
		AppID: miniAppID, Secret: s.secret, Type: sandbox.WeChatMiniProgram,
	}}})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listening for the WeChat simulator: %w", err)
	}
	s.url = "http://" + ln.Addr().String()
	s.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.api.Add(1)
			s.wx.ServeHTTP(w, r)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				s.conns.Add(1)
			}
		},
	}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *wechatSim) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
}

// redirect GETs u and returns where its 302 or 303 points.
func (d *driver) redirect(ctx context.Context, c *http.Client, u *url.URL, step string) (*url.URL, error) {
	resp, err := d.get(ctx, c, u)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("%s: HTTP %d, want a redirect: %.200s", step, resp.StatusCode, body)
	}
	loc, err := resp.Location()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	return loc, nil
}

func (d *driver) page(ctx context.Context, c *http.Client, u *url.URL) (string, error) {
	resp, err := d.get(ctx, c, u)
	if err != nil {
		return "", fmt.Errorf("picker: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return "", fmt.Errorf("picker: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("picker: HTTP %d: %.200s", resp.StatusCode, body)
	}
	return string(body), nil
}

func (d *driver) get(ctx context.Context, c *http.Client, u *url.URL) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	return c.Do(req)
}

type tokenReply struct {
	AccessToken  string `json:"access_token"`
	IDToken      string `json:"id_token"`
	RefreshToken string `json:"refresh_token"`
	nonce        string
}

// token posts to the token endpoint with the client's secret (HTTP
// Basic) and checks that an access token and an ID token came back. The
// ID token's signature is not checked here: that is the client's CPU,
// not the broker's.
func (d *driver) token(ctx context.Context, form url.Values) (tokenReply, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.b.issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return tokenReply{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(d.b.client), url.QueryEscape(d.b.secret))
	resp, err := (&http.Client{Transport: d.transport, Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return tokenReply{}, fmt.Errorf("token: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return tokenReply{}, fmt.Errorf("token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		_ = json.Unmarshal(body, &e)
		return tokenReply{}, fmt.Errorf("token: HTTP %d: %s: %s", resp.StatusCode, e.Error, e.Description)
	}
	var tok tokenReply
	if err := json.Unmarshal(body, &tok); err != nil {
		return tokenReply{}, fmt.Errorf("token: %w", err)
	}
	if tok.AccessToken == "" || tok.IDToken == "" {
		return tokenReply{}, errors.New("token: no access token or no ID token")
	}
	parts := strings.Split(tok.IDToken, ".")
	if len(parts) != 3 {
		return tokenReply{}, errors.New("token: the ID token is not a JWS")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return tokenReply{}, fmt.Errorf("token: ID token payload: %w", err)
	}
	var claims struct {
		Nonce string `json:"nonce"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil {
		return tokenReply{}, fmt.Errorf("token: ID token payload: %w", err)
	}
	tok.nonce = claims.Nonce
	return tok, nil
}

func randomToken(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(buf)[:n]
}

// ------------------------------------------------------------- machine

func cpuModel() string {
	raw, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
