package qiaotest

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/qiaoidp/qiao/broker"
	"github.com/qiaoidp/qiao/cmd/qiao/wire"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/pgtest"
	"github.com/qiaoidp/qiao/internal/syncbuf"
	"github.com/qiaoidp/qiao/storage"
	"github.com/qiaoidp/qiao/storage/postgres"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

// Store is the broker's store.
type Store int

const (
	// SQLite is a real SQLite file in the test's temporary directory.
	SQLite Store = iota
	// Postgres is a fresh database on the test binary's throwaway
	// PostgreSQL cluster (internal/pgtest: skipped without the binaries,
	// failed when CI is set).
	Postgres
)

// Simulators are the options the simulators are built with.
type Simulators struct {
	WeChat sandbox.WeChatOptions
	QQ     sandbox.QQOptions
	Weibo  sandbox.WeiboOptions
}

// World is the simulators, a broker and what a relying party needs to
// talk to it, each on its own loopback server.
type World struct {
	T testing.TB
	// Config is the configuration the broker runs with (issuer, store
	// and simulator URLs filled in); Parsed is it as the broker read it.
	Config Config
	Parsed *config.Config
	Issuer string

	WeChat                     *sandbox.WeChat
	QQ                         *sandbox.QQ
	Weibo                      *sandbox.Weibo
	WeChatURL, QQURL, WeiboURL string

	// Logs is the broker's log (the process's output in binary mode).
	Logs *syncbuf.Buffer
	// Provider is the broker's discovery document (go-oidc).
	Provider *oidc.Provider
	// HTTP is a client for back-channel calls (no cookies).
	HTTP *http.Client

	// Broker and Store are the in-process broker and its store (nil in
	// binary mode).
	Broker *broker.Broker
	Store  storage.Storage
	// ConfigPath is the written configuration file (binary mode).
	ConfigPath string
	// Process is the running `qiao serve` (binary mode).
	Process *Process
	// Replicas are the brokers of a world started WithReplicas.
	Replicas []*Replica

	calls  map[string]*atomic.Int64
	listen string // the broker's host:port
	front  string // the issuer's host:port, when it is not listen
	now    func() time.Time
	server *httptest.Server
}

// Start builds a world: the base configuration changed by opts, the
// simulators with the configured connectors' apps, the broker (in
// process unless WithBinary) on SQLite unless WithStore(Postgres). It is
// torn down when t ends; the broker log is printed when t failed.
func Start(t testing.TB, opts ...Option) *World {
	t.Helper()
	s := &settings{cfg: Base()}
	for _, o := range opts {
		o(s)
	}
	w := &World{T: t, Logs: &syncbuf.Buffer{}, HTTP: &http.Client{Timeout: 30 * time.Second}, now: s.now, calls: map[string]*atomic.Int64{}}

	// Addresses first: the configuration names them.
	sims := map[string]net.Listener{TypeWeChat: Listen(t), TypeQQ: Listen(t), TypeWeibo: Listen(t)}
	w.WeChatURL = "http://" + sims[TypeWeChat].Addr().String()
	w.QQURL = "http://" + sims[TypeQQ].Addr().String()
	w.WeiboURL = "http://" + sims[TypeWeibo].Addr().String()
	var brokerLn net.Listener
	if s.binary {
		w.listen = FreeAddr(t)
	} else {
		brokerLn = s.ln
		if brokerLn == nil {
			brokerLn = Listen(t)
		}
		w.listen = brokerLn.Addr().String()
	}
	w.Config = w.settle(s, s.cfg)
	parsed, err := w.Config.Parse(nil)
	if err != nil {
		t.Fatalf("qiaotest: the configuration does not load: %v", err)
	}
	w.Parsed = parsed
	if len(s.fakes) > 0 && s.binary {
		t.Fatalf("qiaotest: WithFake needs the broker in process")
	}
	for id, impl := range s.fakes {
		found := false
		for i, k := range parsed.Connectors {
			if k.ID == id {
				parsed.Connectors[i].Config = fakeConfig{orig: k.Config, impl: impl}
				found = true
			}
		}
		if !found {
			t.Fatalf("qiaotest: WithFake(%q): no such connector", id)
		}
	}

	w.startSimulators(s.sims, sims)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("broker log:\n%s", w.Logs.String())
		}
	})
	switch {
	case s.replicas > 0:
		w.startReplicas(s.replicas, s.binary, brokerLn)
	case s.binary:
		w.startBinary()
	default:
		t.Cleanup(func() {
			if w.Store != nil {
				w.Store.Close()
			}
		})
		w.startInProcess(brokerLn)
	}
	// Discovery from the (first) broker itself: the issuer may be on a
	// load balancer the test puts in front of the replicas afterwards.
	iss, err := url.Parse(w.Issuer)
	if err != nil {
		t.Fatalf("qiaotest: issuer: %v", err)
	}
	ctx := oidc.ClientContext(context.Background(), w.HTTP)
	w.Provider, err = oidc.NewProvider(oidc.InsecureIssuerURLContext(ctx, w.Issuer), w.Root()+strings.TrimSuffix(iss.Path, "/"))
	if err != nil {
		t.Fatalf("qiaotest: discovery: %v", err)
	}
	return w
}

// settle fills in what only the running world knows: the issuer, the
// listen address (binary mode), the store and the simulated connectors'
// base URLs (unless set).
func (w *World) settle(s *settings, cfg Config) Config {
	t := w.T
	if cfg.Issuer == "" {
		cfg.Issuer = "http://" + w.listen + s.issuerPath
	}
	w.Issuer = cfg.Issuer
	if iu, err := url.Parse(w.Issuer); err == nil && iu.Host != w.listen && s.replicas == 0 {
		// An issuer on another origin (as behind a TLS-terminating
		// proxy): the world's clients reach its host at the broker.
		w.front = iu.Host
		w.HTTP.Transport = w.transport()
	}
	if s.binary {
		if cfg.HTTP == nil {
			cfg.HTTP = &HTTP{}
		}
		cfg.HTTP.Listen = w.listen
	}
	switch s.store {
	case Postgres:
		cfg.Storage = Storage{Type: "postgres", Postgres: &PostgresConfig{DSN: pgtest.Shared(t).NewDatabase(t)}}
	default:
		if cfg.Storage.SQLite == nil && cfg.Storage.Postgres == nil {
			cfg.Storage = Storage{Type: "sqlite", SQLite: &SQLiteConfig{Path: filepath.Join(t.TempDir(), "qiao.db")}}
		}
	}
	base := map[string]string{TypeWeChat: w.WeChatURL, TypeWeChatMP: w.WeChatURL, TypeMiniProgram: w.WeChatURL, TypeQQ: w.QQURL, TypeWeibo: w.WeiboURL}
	cfg.Connectors = slices.Clone(cfg.Connectors)
	for i, k := range cfg.Connectors {
		u, ok := base[k.Type]
		if !ok {
			continue
		}
		c := maps.Clone(k.Config)
		if c == nil {
			c = map[string]any{}
		}
		for _, key := range []string{"auth_base_url", "api_base_url"} {
			if _, set := c[key]; !set {
				c[key] = u
			}
		}
		cfg.Connectors[i].Config = c
	}
	return cfg
}

// startSimulators builds the three simulators with the app of every
// configured connector of their type, and serves them on lns.
func (w *World) startSimulators(changes []func(*Simulators), lns map[string]net.Listener) {
	t := w.T
	var o Simulators
	host := "127.0.0.1"
	o.WeChat.ScanLoginAPI = w.Issuer + "/api/v1/scan"
	for _, k := range w.Config.Connectors {
		if k.NotAtSimulator {
			continue
		}
		id, _ := k.Config["client_id"].(string)
		secret, _ := k.Config["client_secret"].(string)
		switch k.Type {
		case TypeWeChat:
			o.WeChat.Apps = append(o.WeChat.Apps, sandbox.WeChatApp{AppID: id, Secret: secret, Type: sandbox.WeChatWebsite, CallbackDomain: host, NoUnionID: k.App.NoUnionID})
		case TypeWeChatMP:
			o.WeChat.Apps = append(o.WeChat.Apps, sandbox.WeChatApp{AppID: id, Secret: secret, Type: sandbox.WeChatMP, CallbackDomain: host, NoUnionID: k.App.NoUnionID, UnionIDWithBase: k.App.UnionIDWithBase})
		case TypeMiniProgram:
			o.WeChat.Apps = append(o.WeChat.Apps, sandbox.WeChatApp{AppID: id, Secret: secret, Type: sandbox.WeChatMiniProgram, NoUnionID: k.App.NoUnionID, Pages: k.App.Pages})
		case TypeQQ:
			o.QQ.Apps = append(o.QQ.Apps, sandbox.QQApp{ClientID: id, Secret: secret, RedirectURI: w.Parsed.CallbackURL(k.ID), UnionID: k.App.UnionID})
		case TypeWeibo:
			o.Weibo.Apps = append(o.Weibo.Apps, sandbox.WeiboApp{ClientID: id, Secret: secret, RedirectURI: w.Parsed.CallbackURL(k.ID), Email: k.App.Email})
		}
	}
	for _, f := range changes {
		f(&o)
	}
	var err error
	if w.WeChat, err = sandbox.NewWeChat(o.WeChat); err != nil {
		t.Fatalf("qiaotest: WeChat simulator: %v", err)
	}
	w.QQ = sandbox.NewQQ(o.QQ)
	w.Weibo = sandbox.NewWeibo(o.Weibo)
	for name, h := range map[string]http.Handler{TypeWeChat: w.WeChat, TypeQQ: w.QQ, TypeWeibo: w.Weibo} {
		n := &atomic.Int64{}
		w.calls[name] = n
		Serve(t, lns[name], http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			n.Add(1)
			h.ServeHTTP(rw, r)
		}))
	}
}

// SimulatorCalls is how many requests the simulator of provider
// ("wechat", "qq" or "weibo") has had.
func (w *World) SimulatorCalls(provider string) int64 { return w.calls[provider].Load() }

// startInProcess opens the store and serves the broker on ln.
func (w *World) startInProcess(ln net.Listener) {
	t := w.T
	ctx := context.Background()
	store, err := openStore(ctx, w.Parsed)
	if err != nil {
		t.Fatalf("qiaotest: %v", err)
	}
	w.Store = store
	b, err := newBroker(ctx, w.Parsed, store, brokerDeps{Logger: newLogger(w.Parsed, w.Logs), Now: w.now})
	if err != nil {
		t.Fatalf("qiaotest: broker: %v", err)
	}
	w.Broker = b
	w.server = Serve(t, ln, b.Handler())
}

// fakeConfig opens a test's own connector in place of the configured
// one, keeping what the configuration says about it.
type fakeConfig struct {
	orig config.ConnectorConfig
	impl any
}

func (f fakeConfig) Validate() error { return nil }

func (f fakeConfig) Open(string, connectors.Deps) (any, error) { return f.impl, nil }

// TokenEndpointOnly is the configured connector's.
func (f fakeConfig) TokenEndpointOnly() bool {
	t, ok := f.orig.(interface{ TokenEndpointOnly() bool })
	return ok && t.TokenEndpointOnly()
}

// Restart stops the broker and starts it again on the same address and
// store: in process a new broker over the reopened store, in binary mode
// a new `qiao serve`.
func (w *World) Restart() {
	t := w.T
	t.Helper()
	if w.Process != nil {
		w.StopServe()
		w.StartServe()
		return
	}
	w.server.Close()
	w.Store.Close()
	ln, err := net.Listen("tcp", w.listen)
	if err != nil {
		t.Fatalf("qiaotest: listening again on %s: %v", w.listen, err)
	}
	w.startInProcess(ln)
}

// brokerDeps is what a broker needs besides its configuration and store.
type brokerDeps struct {
	Logger *slog.Logger
	Now    func() time.Time
}

// newBroker builds the broker as `qiao serve` does: the one place where
// qiaotest turns a configuration into a broker.
func newBroker(ctx context.Context, cfg *config.Config, store storage.Storage, deps brokerDeps) (*broker.Broker, error) {
	return wire.New(ctx, cfg, store, wire.Deps{Logger: deps.Logger, Now: deps.Now})
}

// openStore opens the configured store.
func openStore(ctx context.Context, cfg *config.Config) (storage.Storage, error) {
	if cfg.Storage.Type == "postgres" {
		return postgres.Open(ctx, cfg.Storage.Postgres.DSN)
	}
	return sqlite.Open(ctx, cfg.Storage.SQLite.Path)
}

// newLogger is the broker's logger at the configured level, in JSON (so
// that LogLines can read it) unless the format is text.
func newLogger(cfg *config.Config, out *syncbuf.Buffer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.Log.Level)); err != nil {
		level = slog.LevelInfo
	}
	o := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(out, o))
	}
	return slog.New(slog.NewJSONHandler(out, o))
}

// Root is the broker's origin (the issuer without its path).
func (w *World) Root() string { return "http://" + w.listen }

// CallbackURL is the broker's callback URL of connector id.
func (w *World) CallbackURL(id string) string { return w.Parsed.CallbackURL(id) }

// AppID is the client_id of connector id at its provider.
func (w *World) AppID(connectorID string) string {
	k := w.Config.Connector(connectorID)
	if k == nil {
		w.T.Fatalf("qiaotest: no connector %q", connectorID)
	}
	id, _ := k.Config["client_id"].(string)
	return id
}

// LoginCode is what wx.login() gives person in mini-program connectorID.
func (w *World) LoginCode(connectorID, person string) string {
	w.T.Helper()
	code, err := w.WeChat.LoginCode(w.AppID(connectorID), person)
	if err != nil {
		w.T.Fatalf("qiaotest: wx.login: %v", err)
	}
	return code
}

// Person returns the default simulator person id (alice, bob, carol).
func Person(t testing.TB, id string) sandbox.Person {
	t.Helper()
	p, ok := sandbox.DefaultPerson(id)
	if !ok {
		t.Fatalf("qiaotest: no sandbox person %q", id)
	}
	return p
}

// Persons are n simulator persons p01, p02, ... with avatar URLs, for
// tests that share a world and each want people of their own.
func Persons(n int) []sandbox.Person {
	var l []sandbox.Person
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("p%02d", i)
		l = append(l, sandbox.Person{ID: id, Name: "Person " + id, Avatar: "https://avatars.example/" + id + ".png"})
	}
	return l
}

// WithPersons gives every simulator these persons instead of alice, bob
// and carol.
func WithPersons(p []sandbox.Person) Option {
	return WithSimulators(func(s *Simulators) {
		s.WeChat.Persons, s.QQ.Persons, s.Weibo.Persons = p, p, p
	})
}

// IsWorld reports whether host is the broker's (its address or its
// issuer's) or a simulator's.
func (w *World) IsWorld(host string) bool {
	if w.isBroker(host) {
		return true
	}
	bases := []string{w.WeChatURL, w.QQURL, w.WeiboURL}
	if iss, err := url.Parse(w.Issuer); err == nil {
		bases = append(bases, "http://"+iss.Host) // a load balancer in front of the replicas
	}
	for _, r := range w.Replicas {
		bases = append(bases, "http://"+r.Addr)
	}
	for _, base := range bases {
		if strings.TrimPrefix(base, "http://") == host {
			return true
		}
	}
	return false
}

// isBroker reports whether host is the broker's address or its issuer's.
func (w *World) isBroker(host string) bool {
	return host == w.listen || (w.front != "" && host == w.front)
}

// transport sends requests for the issuer's host to the broker over
// plain HTTP (nil when the issuer is on the broker's address): cookies
// and redirects then behave as they would for a browser at the issuer.
func (w *World) transport() http.RoundTripper {
	if w.front == "" {
		return nil
	}
	return frontTransport{from: w.front, to: w.listen}
}

// frontTransport rewrites requests for host from to plain HTTP at to.
type frontTransport struct{ from, to string }

// The response names the request as sent to the issuer (so that a
// Location resolves against the issuer).
func (f frontTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Host != f.from {
		return http.DefaultTransport.RoundTrip(r)
	}
	out := r.Clone(r.Context())
	out.URL.Scheme, out.URL.Host = "http", f.to
	resp, err := http.DefaultTransport.RoundTrip(out)
	if resp != nil {
		resp.Request = r
	}
	return resp, err
}

// Listen listens on a free loopback port.
func Listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// FreeAddr is a loopback host:port nobody listens on right now.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln := Listen(t)
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// Serve serves h on ln until t ends.
func Serve(t testing.TB, ln net.Listener, h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// writeConfig writes the configuration to dir/qiao.yaml.
func (w *World) writeConfig(dir string) string {
	data, err := w.Config.Marshal()
	if err != nil {
		w.T.Fatalf("qiaotest: %v", err)
	}
	path := filepath.Join(dir, "qiao.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		w.T.Fatal(err)
	}
	return path
}
