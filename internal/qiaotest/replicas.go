package qiaotest

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"

	"github.com/qiaoidp/qiao/broker"
	"github.com/qiaoidp/qiao/internal/syncbuf"
	"github.com/qiaoidp/qiao/storage"
)

// Replica is one of several brokers of a world (WithReplicas): the
// world's configuration and store, its own address. The first is also
// the world's Broker, Store, Process, ConfigPath and Logs.
type Replica struct {
	Name string // replica-A, replica-B, ...
	Addr string // the host:port it listens on
	Logs *syncbuf.Buffer
	// Broker and Store in process; Process and ConfigPath in binary mode.
	Broker     *broker.Broker
	Store      storage.Storage
	Process    *Process
	ConfigPath string

	server *httptest.Server
}

// URL is path on the replica itself (not through the issuer's host).
func (r *Replica) URL(path string) string { return "http://" + r.Addr + path }

// WithReplicas runs n brokers (in process, or n `qiao serve` with
// WithBinary) on the world's one configuration, store and simulators,
// each on its own loopback address, started together as a deployment
// starts them (they race for the migrations and the first signing key):
// World.Replicas. A configured issuer on another host is the test's own
// front (a load balancer), which the world's clients reach as it is (not
// at the first broker, as with WithIssuer alone); without one the issuer
// is on the first replica's address.
func WithReplicas(n int) Option { return func(s *settings) { s.replicas = n } }

// startReplicas starts the n replicas at once, the first on first (in
// process) or w.listen (binary).
func (w *World) startReplicas(n int, binary bool, first net.Listener) {
	t := w.T
	t.Helper()
	if binary {
		Binary(t) // built once, before the replicas race
	}
	w.Replicas = make([]*Replica, n)
	lns := make([]net.Listener, n)
	for i := range w.Replicas {
		r := &Replica{Name: fmt.Sprintf("replica-%c", 'A'+i), Logs: &syncbuf.Buffer{}}
		switch {
		case i == 0 && binary:
			r.Addr = w.listen
		case i == 0:
			lns[i] = first
		case binary:
			r.Addr = FreeAddr(t)
		default:
			lns[i] = Listen(t)
		}
		if lns[i] != nil {
			r.Addr = lns[i].Addr().String()
		}
		w.Replicas[i] = r
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, r := range w.Replicas {
		wg.Go(func() {
			if binary {
				errs[i] = w.startReplicaBinary(r)
			} else {
				errs[i] = w.startReplicaInProcess(r, lns[i])
			}
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		if t.Failed() {
			for _, r := range w.Replicas[1:] {
				t.Logf("%s log:\n%s", r.Name, r.Logs.String())
			}
		}
	})
	for _, err := range errs {
		if err != nil {
			t.Fatalf("qiaotest: %v", err)
		}
	}
	r := w.Replicas[0]
	w.Logs, w.Broker, w.Store, w.Process, w.ConfigPath, w.server = r.Logs, r.Broker, r.Store, r.Process, r.ConfigPath, r.server
}

// startReplicaBinary writes r's configuration (the world's, listening on
// r.Addr) and runs `qiao serve` on it until it answers /healthz.
func (w *World) startReplicaBinary(r *Replica) error {
	c := w.Config
	h := HTTP{}
	if c.HTTP != nil {
		h = *c.HTTP
	}
	h.Listen = r.Addr
	c.HTTP = &h
	data, err := c.Marshal()
	if err != nil {
		return err
	}
	dir := filepath.Join(w.T.TempDir(), r.Name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	r.ConfigPath = filepath.Join(dir, "qiao.yaml")
	if err := os.WriteFile(r.ConfigPath, data, 0o600); err != nil {
		return err
	}
	r.Process = StartProcess(w.T, nil, r.Logs, "serve", "--config", r.ConfigPath)
	if err := r.Process.waitHealthy("http://" + r.Addr); err != nil {
		return fmt.Errorf("%s: %w", r.Name, err)
	}
	return nil
}

// startReplicaInProcess opens the store and serves a broker on ln.
func (w *World) startReplicaInProcess(r *Replica, ln net.Listener) error {
	ctx := context.Background()
	store, err := openStore(ctx, w.Parsed)
	if err != nil {
		return fmt.Errorf("%s: %w", r.Name, err)
	}
	r.Store = store
	w.T.Cleanup(func() { store.Close() })
	b, err := newBroker(ctx, w.Parsed, store, brokerDeps{Logger: newLogger(w.Parsed, r.Logs), Now: w.now})
	if err != nil {
		return fmt.Errorf("%s: broker: %w", r.Name, err)
	}
	r.Broker = b
	r.server = Serve(w.T, ln, b.Handler())
	return nil
}
