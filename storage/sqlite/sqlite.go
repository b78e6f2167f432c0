// Package sqlite is the embedded store: storage.Storage on one SQLite
// file, through modernc.org/sqlite (pure Go, no cgo).
//
// The database runs in WAL mode with foreign keys on and a 5 s busy
// timeout. SQLite allows one writer at a time, so the store keeps two
// connection pools on the file: a single-connection write pool whose
// transactions begin IMMEDIATE (writers queue in the pool instead of
// failing to upgrade a read lock), and a multi-connection read pool that
// reads the last committed state beside the writer. Every time is stored
// as integer unix milliseconds UTC; the zero time is stored as NULL and,
// as an expiry, means "never expires". A statement or transaction, once
// started, runs to its end even if the caller's context is cancelled (see
// uncancelled). The statements of a login run on the driver connections
// directly (rawTx, rawRead), and WAL checkpoints run in the background,
// off the request path (checkpointer). Counts reports the statements and
// commits, for tests and the qiao_store_* metrics.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/qiaoidp/qiao/storage"
)

// busyTimeout is how long a connection waits for another process's lock.
const busyTimeout = 5 * time.Second

// Store is a storage.Storage on one SQLite database file. It is safe for
// concurrent use.
type Store struct {
	w *sql.DB // the writer: one connection, BEGIN IMMEDIATE
	r *sql.DB // the readers

	ws   map[string]*stmt // prepared on w
	rs   map[string]*stmt // prepared on r
	rawW rawCache         // prepared on w's driver connections (rawTx)
	rawR rawCache         // prepared on r's driver connections (rawRead)
	ckpt *checkpointer    // WAL checkpoints, off the request path

	n counters

	closeOnce sync.Once
	closeErr  error
}

var _ storage.Storage = (*Store)(nil)

// options select the pool layout; the benchmarks compare them.
type options struct {
	// singlePool uses one pool of readConns connections for reads and
	// writes alike; concurrent writers then meet in SQLite's busy handler.
	singlePool bool
	readConns  int
}

// Open opens (creating if missing) the database at path, creating its
// parent directory if needed, and brings its schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	return open(ctx, path, options{})
}

func open(ctx context.Context, path string, o options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if path == ":memory:" {
		return nil, errors.New("sqlite: in-memory databases are not supported; give a file path")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: resolve path: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(abs), 0o750); err != nil {
		return nil, fmt.Errorf("sqlite: create directory: %w", err)
	}
	if err := createPrivate(abs); err != nil {
		return nil, err
	}
	if o.readConns <= 0 {
		o.readConns = max(4, runtime.GOMAXPROCS(0))
	}

	s := &Store{rawW: rawCache{queries: rawWrites}, rawR: rawCache{queries: rawReads}}
	s.w, err = sql.Open("sqlite", dsn(abs, roleWriter))
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	if o.singlePool {
		s.w.SetMaxOpenConns(o.readConns)
		s.w.SetMaxIdleConns(o.readConns)
	} else {
		s.w.SetMaxOpenConns(1)
		s.w.SetMaxIdleConns(1)
	}
	s.w.SetConnMaxLifetime(0)
	s.w.SetConnMaxIdleTime(0)

	// Migrate on the writer first: it switches the file to WAL, which
	// the readers then find already set.
	if err := migrate(ctx, s.w); err != nil {
		s.w.Close()
		return nil, err
	}

	if o.singlePool {
		s.r = s.w
	} else {
		s.r, err = sql.Open("sqlite", dsn(abs, roleReader))
		if err != nil {
			s.w.Close()
			return nil, fmt.Errorf("sqlite: open: %w", err)
		}
		s.r.SetMaxOpenConns(o.readConns)
		s.r.SetMaxIdleConns(o.readConns)
		s.r.SetConnMaxLifetime(0)
		s.r.SetConnMaxIdleTime(0)
	}

	if s.ws, err = prepareAll(ctx, s.w, writeQueries(), &s.n, true); err != nil {
		s.Close()
		return nil, err
	}
	if s.rs, err = prepareAll(ctx, s.r, readQueries(), &s.n, false); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.startCheckpointer(abs); err != nil {
		s.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	return s, nil
}

// createPrivate creates the database file, readable and writable by its
// owner only (0600), if it does not exist yet: it holds users, sessions
// and sealed keys. SQLite creates the -wal and -shm files with the
// database file's permissions, so they are 0600 too. An existing file
// keeps the permissions its admin gave it.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case errors.Is(err, fs.ErrExist):
		return nil
	case err != nil:
		return fmt.Errorf("sqlite: create database file: %w", err)
	}
	if err := f.Chmod(0o600); err != nil { // whatever the umask
		f.Close()
		return fmt.Errorf("sqlite: create database file: %w", err)
	}
	return f.Close()
}

// A connection's role on the file.
type connRole int

const (
	roleReader connRole = iota
	roleWriter
	roleCheckpointer
)

// dsn builds the connection string for a connection of role on the
// file at abs. The writer's transactions begin IMMEDIATE; the readers
// are query-only; the checkpointer (neither) only checkpoints.
func dsn(abs string, role connRole) string {
	q := url.Values{}
	q.Set("_busy_timeout", fmt.Sprint(busyTimeout.Milliseconds()))
	q.Set("_foreign_keys", "1")
	q.Set("_synchronous", "NORMAL")
	switch role {
	case roleWriter:
		q.Set("_journal_mode", "WAL")
		q.Set("_txlock", "immediate")
		q.Add("_pragma", "wal_autocheckpoint(0)") // see checkpointer
	case roleReader:
		q.Set("_query_only", "1")
	}
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	return u.String() + "?" + q.Encode()
}

func prepareAll(ctx context.Context, db *sql.DB, queries []string, n *counters, write bool) (map[string]*stmt, error) {
	m := make(map[string]*stmt, len(queries))
	for _, q := range queries {
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			for _, p := range m {
				p.Close()
			}
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
		m[q] = &stmt{Stmt: st, n: n, commits: write}
	}
	return m, nil
}

// counters count what the store sends to SQLite (see storage.Counts):
// statements, BEGIN and COMMIT included, and committed writes.
type counters struct {
	statements atomic.Int64
	commits    atomic.Int64
	// kick, if set, wakes the checkpointer every checkpointCommits
	// commits.
	kick chan struct{}
}

// commit counts a committed write transaction.
func (n *counters) commit() {
	if c := n.commits.Add(1); c%checkpointCommits == 0 && n.kick != nil {
		select {
		case n.kick <- struct{}{}:
		default: // a checkpoint is pending already
		}
	}
}

// Counts reports the statements run and the write transactions
// committed since the store was opened (storage.Counts; SQLite has no
// round trips, so RoundTrips counts statements).
func (s *Store) Counts() storage.Counts {
	return storage.Counts{RoundTrips: s.n.statements.Load(), Commits: s.n.commits.Load()}
}

// stmt is a prepared statement that counts its executions. commits is
// set for a write statement run outside a transaction (its own commit).
type stmt struct {
	*sql.Stmt
	n       *counters
	commits bool
}

func (st *stmt) count() {
	st.n.statements.Add(1)
	if st.commits {
		st.n.commit()
	}
}

func (st *stmt) ExecContext(ctx context.Context, args ...any) (sql.Result, error) {
	st.count()
	return st.Stmt.ExecContext(uncancelled(ctx), args...)
}

func (st *stmt) QueryContext(ctx context.Context, args ...any) (*sql.Rows, error) {
	st.count()
	return st.Stmt.QueryContext(uncancelled(ctx), args...)
}

func (st *stmt) QueryRowContext(ctx context.Context, args ...any) *sql.Row {
	st.count()
	return st.Stmt.QueryRowContext(uncancelled(ctx), args...)
}

// uncancelled drops ctx's cancellation: a statement or transaction, once
// started, runs to its end (they take microseconds), as if the request
// that started it had stayed. With a cancellable context the driver and
// database/sql start a goroutine per statement and per transaction to
// watch it, which cost more than the statements of a login.
func uncancelled(ctx context.Context) context.Context {
	if ctx.Done() == nil {
		return ctx
	}
	return context.WithoutCancel(ctx)
}

// Ping reports whether the database answers on both pools.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.rs[qPing].QueryRowContext(ctx).Scan(&one); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	if err := s.w.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite: ping: %w", err)
	}
	return nil
}

// Close stops the checkpointer and closes the pools. Closing twice is
// harmless.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		if s.ckpt != nil {
			errs = append(errs, s.ckpt.close())
		}
		s.rawW.close()
		s.rawR.close()
		for _, st := range s.rs {
			st.Close()
		}
		for _, st := range s.ws {
			st.Close()
		}
		if s.r != nil && s.r != s.w {
			errs = append(errs, s.r.Close())
		}
		if s.w != nil {
			errs = append(errs, s.w.Close())
		}
		if err := errors.Join(errs...); err != nil {
			s.closeErr = fmt.Errorf("sqlite: close: %w", err)
		}
	})
	return s.closeErr
}

// auditGCBatch is how many audit rows one write transaction removes.
const auditGCBatch = 5000

// GarbageCollect deletes every row that expired at or before now, and the
// audit events older than auditBefore (zero: none).
func (s *Store) GarbageCollect(ctx context.Context, now, auditBefore time.Time) (storage.GCResult, error) {
	var res storage.GCResult
	ms := now.UnixMilli()
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, d := range []struct {
			q string
			n *int64
		}{
			{qGCTokens, &res.Tokens},
			{qGCSessions, &res.Sessions},
			{qGCLogins, &res.Logins},
			{qGCKeys, &res.Keys},
			{qGCCache, &res.Cache},
			{qGCLeases, &res.Leases},
		} {
			r, err := s.wstmt(ctx, tx, d.q).ExecContext(ctx, ms)
			if err != nil {
				return err
			}
			if *d.n, err = r.RowsAffected(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return storage.GCResult{}, fmt.Errorf("sqlite: garbage collect: %w", err)
	}
	if auditBefore.IsZero() {
		return res, nil
	}
	for {
		r, err := s.ws[qGCAudit].ExecContext(ctx, auditBefore.UnixMilli(), auditGCBatch)
		if err != nil {
			return res, fmt.Errorf("sqlite: garbage collect: audit: %w", mapErr(err))
		}
		n, err := r.RowsAffected()
		if err != nil {
			return res, fmt.Errorf("sqlite: garbage collect: audit: %w", err)
		}
		res.Audit += n
		if n < auditGCBatch {
			return res, nil
		}
	}
}

// tx runs fn in one write transaction, committing if fn returns nil.
func (s *Store) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	s.n.statements.Add(2) // BEGIN IMMEDIATE and COMMIT (or ROLLBACK)
	tx, err := s.w.BeginTx(uncancelled(ctx), nil)
	if err != nil {
		return mapErr(err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return mapErr(err)
	}
	if err := tx.Commit(); err != nil {
		return mapErr(err)
	}
	s.n.commit()
	return nil
}

// wstmt returns the prepared write statement q bound to tx.
func (s *Store) wstmt(ctx context.Context, tx *sql.Tx, q string) *stmt {
	return &stmt{Stmt: tx.StmtContext(ctx, s.ws[q].Stmt), n: &s.n}
}

// mapErr turns SQLite constraint violations into the storage errors.
func mapErr(err error) error {
	if err == nil {
		return nil
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("%w: %w", storage.ErrAlreadyExists, err)
		}
	}
	return err
}

// isForeignKey reports whether err is a foreign-key violation.
func isForeignKey(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

// ms converts t to what a time column holds: NULL for the zero time.
func ms(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixMilli()
}

// fromMS converts a time column back.
func fromMS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return time.UnixMilli(v.Int64).UTC()
}

// expired reports whether an expiry column's time has come.
func expired(v sql.NullInt64, now time.Time) bool {
	return v.Valid && v.Int64 <= now.UnixMilli()
}

// blob keeps nil byte slices out of NOT NULL blob columns.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
