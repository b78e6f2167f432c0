// Command qiao is the Qiao identity broker.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/qiaoidp/qiao/broker"
	"github.com/qiaoidp/qiao/cmd/qiao/registry"
	"github.com/qiaoidp/qiao/cmd/qiao/wire"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/storage"
	"github.com/qiaoidp/qiao/storage/postgres"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

const usage = `Qiao (桥): an OpenID Connect broker for WeChat, QQ and Weibo.

Usage:
  qiao serve --config FILE          run the broker
  qiao demo [--listen HOST] [--data DIR] [--any-port]
                                    zero-config sandbox (simulated providers, embedded store, example app)
  qiao check-config --config FILE   validate a configuration file
  qiao users list [--after ID] [--limit N] --config FILE
  qiao users show ID --config FILE
  qiao users unbind ID CONNECTOR --config FILE
  qiao users delete ID --config FILE
  qiao users merge FROM INTO --config FILE
  qiao audit [--user ID] [--since T] [--until T] [--limit N] --config FILE
  qiao healthcheck [URL]            exit 0 if URL (default http://127.0.0.1:5556/readyz) answers 200
  qiao version
`

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "demo":
		return cmdDemo(ctx, args[1:], stdout, stderr)
	case "check-config":
		fs := flag.NewFlagSet("check-config", flag.ContinueOnError)
		fs.SetOutput(stderr)
		path := fs.String("config", "", "configuration file")
		if err := fs.Parse(args[1:]); err != nil {
			return 2
		}
		if *path == "" {
			fmt.Fprintln(stderr, "check-config: --config FILE is required")
			return 1
		}
		return config.Check(stdout, stderr, *path, registry.Types())
	case "users":
		return cmdUsers(ctx, args[1:], stdout, stderr)
	case "audit":
		return cmdAudit(ctx, args[1:], stdout, stderr)
	case "healthcheck":
		return cmdHealthcheck(ctx, args[1:], stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "qiao %s\n", version)
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "qiao: unknown command %q\n\n%s", args[0], usage)
	return 2
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	switch cfg.Log.Level {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// openStore opens the configured store.
func openStore(ctx context.Context, cfg *config.Config) (storage.Storage, string, error) {
	switch cfg.Storage.Type {
	case "postgres":
		s, err := postgres.Open(ctx, cfg.Storage.Postgres.DSN)
		if err != nil {
			return nil, "", fmt.Errorf("opening PostgreSQL: %w", err)
		}
		return s, "postgres", nil
	default:
		s, err := sqlite.Open(ctx, cfg.Storage.SQLite.Path)
		if err != nil {
			return nil, "", fmt.Errorf("opening SQLite %s: %w", cfg.Storage.SQLite.Path, err)
		}
		return s, "sqlite " + cfg.Storage.SQLite.Path, nil
	}
}

func loadConfig(args []string, name string, stderr io.Writer) (*config.Config, []string, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "configuration file")
	if err := fs.Parse(args); err != nil {
		return nil, nil, false
	}
	if *path == "" {
		fmt.Fprintf(stderr, "%s: --config FILE is required\n", name)
		return nil, nil, false
	}
	cfg, err := config.Load(*path, registry.Types())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return nil, nil, false
	}
	return cfg, fs.Args(), true
}

func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, _, ok := loadConfig(args, "serve", stderr)
	if !ok {
		return 1
	}
	log := newLogger(cfg, stderr)
	for _, w := range cfg.Warnings {
		log.Warn("configuration: "+w.Msg, "at", w.Error())
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	srv, err := startBroker(ctx, cfg, log, nil, nil)
	if err != nil {
		fmt.Fprintln(stderr, "qiao:", err)
		return 1
	}
	srv.printBanner(stdout)
	return srv.wait(ctx, log)
}

// server is a running broker.
type server struct {
	cfg      *config.Config
	store    storage.Storage
	storeMsg string
	broker   *broker.Broker
	http     *http.Server
	addr     string
	errc     chan error
	cancel   context.CancelFunc
}

// startBroker listens, opens the store, builds the broker and starts
// serving. It listens first (on ln, or on cfg.HTTP.Listen when ln is
// nil), so that an address that is taken or not allowed fails before a
// database or keys are created. The server owns ln from here on.
func startBroker(ctx context.Context, cfg *config.Config, log *slog.Logger, client *http.Client, ln net.Listener) (*server, error) {
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.HTTP.Listen); err != nil {
			return nil, fmt.Errorf("listening on %s: %w", cfg.HTTP.Listen, err)
		}
	}
	store, storeMsg, err := openStore(ctx, cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	b, err := wire.New(ctx, cfg, store, wire.Deps{HTTP: client, Logger: log})
	if err != nil {
		ln.Close()
		store.Close()
		return nil, err
	}
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s := &server{
		cfg: cfg, store: store, storeMsg: storeMsg, broker: b, addr: ln.Addr().String(),
		errc: make(chan error, 1), cancel: cancel,
		http: &http.Server{
			Handler:           b.Handler(),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      60 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
	}
	go b.Run(bctx)
	go func() {
		var err error
		if cfg.HTTP.TLSCert != "" {
			err = s.http.ServeTLS(ln, cfg.HTTP.TLSCert, cfg.HTTP.TLSKey)
		} else {
			err = s.http.Serve(ln)
		}
		s.errc <- err
	}()
	log.Info("qiao started", "issuer", cfg.Issuer, "listen", s.addr, "store", storeMsg, "version", version)
	return s, nil
}

func (s *server) printBanner(w io.Writer) {
	fmt.Fprintf(w, "Qiao %s\n", version)
	fmt.Fprintf(w, "  issuer:  %s\n", s.cfg.Issuer)
	fmt.Fprintf(w, "  listen:  %s\n", s.addr)
	fmt.Fprintf(w, "  store:   %s\n", s.storeMsg)
	fmt.Fprintf(w, "  connectors (register each callback URL at its provider):\n")
	for _, k := range s.cfg.Connectors {
		cb := s.cfg.CallbackURL(k.ID)
		if k.TokenEndpointOnly() {
			cb = "(none: token endpoint only)"
		}
		fmt.Fprintf(w, "    %-20s %-20s %s\n", k.ID, k.Type, cb)
	}
}

// wait serves until ctx ends, then drains in-flight requests.
func (s *server) wait(ctx context.Context, log *slog.Logger) int {
	select {
	case err := <-s.errc:
		log.Error("server stopped", "err", err)
		s.close()
		return 1
	case <-ctx.Done():
	}
	log.Info("shutting down: draining in-flight requests")
	if err := s.shutdown(); err != nil {
		log.Error("shutdown", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

func (s *server) shutdown() error {
	sctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	err := s.http.Shutdown(sctx)
	s.close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func (s *server) close() {
	s.cancel()
	s.store.Close()
}

func joinNonEmpty(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, " ")
}
