// Package postgres is the production store: storage.Storage on
// PostgreSQL, through github.com/jackc/pgx/v5 and its connection pool.
//
// Several replicas may share one database. Open applies the embedded
// schema migrations under an advisory lock, so replicas starting together
// migrate once. Compare-and-swap operations are single conditional
// statements (UPDATE ... WHERE, DELETE ... RETURNING, INSERT ... ON
// CONFLICT) or take a row lock before they read what they will change;
// serialization failures and deadlocks are retried. Multi-statement
// operations are sent as one pipelined batch, which PostgreSQL runs as one
// implicit transaction: one round trip, all or nothing.
//
// Times are stored as timestamptz, truncated to the millisecond like the
// SQLite store does, and returned in UTC; the zero time is stored as NULL and, as an expiry, means "never
// expires". A row whose expiry is at or before now counts as absent.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/qiaoidp/qiao/storage"
)

// defaultMaxConns is the pool size unless the DSN sets pool_max_conns.
// Requests beyond it wait in the pool for a free connection.
const defaultMaxConns = 16

// maxAttempts bounds the retries of an operation that failed with a
// serialization failure, a deadlock, or before reaching the server.
const maxAttempts = 8

// SQLSTATEs the store acts on.
const (
	codeUniqueViolation      = "23505"
	codeForeignKeyViolation  = "23503"
	codeSerializationFailure = "40001"
	codeDeadlockDetected     = "40P01"
	codeAdminShutdown        = "57P01"
	codeCrashShutdown        = "57P02"
	codeCannotConnectNow     = "57P03"
	codeNotFound             = "QN404" // raised by qiao_deactivate_token
	codeConflict             = "QC409" // raised by qiao_deactivate_token
)

// Store is a storage.Storage on a PostgreSQL database. It is safe for
// concurrent use by many goroutines and many processes.
type Store struct {
	pool *pgxpool.Pool
	n    *counter

	closeOnce sync.Once
}

var _ storage.Storage = (*Store)(nil)

// Open connects to the database at dsn (a postgres:// URL or a key=value
// connection string; pool_max_conns and the other pgxpool settings are
// honoured) and brings its schema up to date. It fails if the database
// cannot be reached.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if strings.TrimSpace(dsn) == "" {
		return nil, errors.New("postgres: empty DSN")
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// The parse error may quote the DSN, password included.
		return nil, errors.New("postgres: invalid DSN")
	}
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = defaultMaxConns
	}
	// Every connection works in UTC, whatever the server's default.
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["timezone"] = "UTC"
	n := &counter{}
	cfg.ConnConfig.Tracer = n
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool, n: n}
	if err := s.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: migrate: %w", err)
	}
	return s, nil
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("postgres: ping: %w", err)
	}
	return nil
}

// Close closes the pool, waiting for connections in use to be returned.
// Closing twice is harmless.
func (s *Store) Close() error {
	s.closeOnce.Do(s.pool.Close)
	return nil
}

// GarbageCollect deletes every row that expired at or before now, and the
// audit events older than auditBefore (zero: none), in one transaction.
func (s *Store) GarbageCollect(ctx context.Context, now, auditBefore time.Time) (storage.GCResult, error) {
	var res storage.GCResult
	now = now.UTC()
	targets := []struct {
		q   string
		n   *int64
		arg time.Time
	}{
		{`DELETE FROM tokens WHERE expires_at <= $1`, &res.Tokens, now},
		{`DELETE FROM sessions WHERE expires_at <= $1`, &res.Sessions, now},
		{`DELETE FROM logins WHERE expires_at <= $1`, &res.Logins, now},
		{`DELETE FROM signing_keys WHERE expires_at <= $1`, &res.Keys, now},
		{`DELETE FROM cache WHERE expires_at <= $1`, &res.Cache, now},
		{`DELETE FROM leases WHERE expires_at <= $1`, &res.Leases, now},
	}
	if !auditBefore.IsZero() {
		targets = append(targets, struct {
			q   string
			n   *int64
			arg time.Time
		}{`DELETE FROM audit WHERE time < $1`, &res.Audit, auditBefore.UTC()})
	}
	err := s.batch(ctx, func() *pgx.Batch {
		b := &pgx.Batch{}
		for _, t := range targets {
			b.Queue(t.q, t.arg).Exec(func(ct pgconn.CommandTag) error {
				*t.n = ct.RowsAffected()
				return nil
			})
		}
		return b
	})
	if err != nil {
		return storage.GCResult{}, fmt.Errorf("postgres: garbage collect: %w", err)
	}
	return res, nil
}

// ------------------------------------------------------------ plumbing

// retry runs a write until it succeeds, fails for good, or maxAttempts
// ran out. It retries what certainly did not take effect: serialization
// failures and deadlocks (the server rolled the transaction back), errors
// before the request reached the server, and connections the server had
// terminated (shutdown, crash recovery) before the request arrived.
func (s *Store) retry(ctx context.Context, fn func() error) error {
	return s.attempt(ctx, false, fn)
}

// read runs an idempotent read as retry does, and also retries when the
// connection broke mid-request: running a read twice is harmless.
func (s *Store) read(ctx context.Context, fn func() error) error {
	return s.attempt(ctx, true, fn)
}

func (s *Store) attempt(ctx context.Context, idempotent bool, fn func() error) error {
	var err error
	for n := 1; ; n++ {
		err = fn()
		if err == nil {
			return nil
		}
		lost := connLost(err)
		if lost {
			// A server restart or failover breaks every pooled
			// connection at once: drop the idle ones rather than find
			// each broken one by failing a request on it.
			s.pool.Reset()
		}
		if n == maxAttempts || !(retryable(err) || (idempotent && lost)) || ctx.Err() != nil {
			return err
		}
		backoff := time.Duration(n*n) * time.Millisecond
		backoff += rand.N(backoff + time.Millisecond)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// retryable reports whether err certainly left the database unchanged and
// may go away on a second try.
func retryable(err error) bool {
	switch sqlState(err) {
	case codeSerializationFailure, codeDeadlockDetected,
		codeAdminShutdown, codeCrashShutdown, codeCannotConnectNow:
		return true
	}
	return pgconn.SafeToRetry(err)
}

// connLost reports whether err means the connection is gone: the server
// closed it, the network broke, or no connection could be made.
func connLost(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || strings.HasPrefix(pe.Code, "57P")
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// batch sends the batch that build returns as one implicit transaction
// (one round trip), retrying as retry does. Each queued query's callback
// runs as its result arrives; the first error (from the server or a
// callback) is returned and the whole batch is rolled back.
func (s *Store) batch(ctx context.Context, build func() *pgx.Batch) error {
	return s.retry(ctx, func() error {
		return s.pool.SendBatch(ctx, build()).Close()
	})
}

// inTx runs fn in a transaction, committing if fn returns nil, and runs it
// again on a serialization failure or deadlock.
func (s *Store) inTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return s.retry(ctx, func() error {
		return pgx.BeginFunc(ctx, s.pool, fn)
	})
}

// sqlState returns the SQLSTATE of a server error, or "".
func sqlState(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code
	}
	return ""
}

// mapErr turns server errors into the storage errors.
func mapErr(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return err
	}
	switch pe.Code {
	case codeUniqueViolation:
		return fmt.Errorf("%w (%s)", storage.ErrAlreadyExists, pe.ConstraintName)
	case codeNotFound:
		return storage.ErrNotFound
	case codeConflict:
		return storage.ErrConflict
	}
	return err
}

// ts converts t to what a time column holds: UTC to the millisecond, as
// the SQLite store keeps it, so that both backends hand back the same
// values; NULL for the zero time.
func ts(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Truncate(time.Millisecond).UTC()
}

// fromTS converts a time column back, in UTC.
func fromTS(v pgtype.Timestamptz) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return v.Time.UTC()
}

// blob keeps nil byte slices out of NOT NULL bytea columns.
func blob(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}
