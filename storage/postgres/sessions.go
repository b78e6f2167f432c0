package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/qiaoidp/qiao/storage"
)

// ------------------------------------------------------------- sessions

// insertSession inserts a session (CreateSession, CompleteLogin).
const insertSession = `INSERT INTO sessions (id, user_id, connector_id, auth_time,
	expires_at, data, identity_subject) VALUES ($1, $2, $3, $4, $5, $6, $7)`

func sessionArgs(ss *storage.Session) []any {
	return []any{ss.ID, ss.UserID, ss.ConnectorID, ts(ss.AuthTime), ts(ss.ExpiresAt), blob(ss.Data), ss.IdentitySubject}
}

// CreateSession inserts the session; ErrAlreadyExists if its id is taken.
func (s *Store) CreateSession(ctx context.Context, ss storage.Session) error {
	if ss.ID == "" {
		return errors.New("postgres: create session: empty id")
	}
	err := s.retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, insertSession, sessionArgs(&ss)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create session: %w", mapErr(err))
	}
	return nil
}

// GetSession returns the session unless it is absent or expired.
func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	var ss storage.Session
	var auth, expires pgtype.Timestamptz
	err := s.read(ctx, func() error {
		return s.pool.QueryRow(ctx, `SELECT id, user_id, connector_id, auth_time, expires_at, data,
			identity_subject FROM sessions WHERE id = $1 AND (expires_at IS NULL OR expires_at > $2)`,
			id, time.Now().UTC()).Scan(&ss.ID, &ss.UserID, &ss.ConnectorID, &auth, &expires, &ss.Data, &ss.IdentitySubject)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Session{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.Session{}, fmt.Errorf("postgres: get session: %w", err)
	}
	ss.AuthTime, ss.ExpiresAt = fromTS(auth), fromTS(expires)
	return ss, nil
}

// UpdateSession rewrites the session; ErrNotFound if it is absent.
func (s *Store) UpdateSession(ctx context.Context, ss storage.Session) error {
	var ct pgconn.CommandTag
	err := s.retry(ctx, func() error {
		var err error
		ct, err = s.pool.Exec(ctx, `UPDATE sessions SET user_id = $2, connector_id = $3,
			auth_time = $4, expires_at = $5, data = $6, identity_subject = $7 WHERE id = $1`,
			ss.ID, ss.UserID, ss.ConnectorID, ts(ss.AuthTime), ts(ss.ExpiresAt), blob(ss.Data), ss.IdentitySubject)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: update session: %w", err)
	}
	if ct.RowsAffected() == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// DeleteSession removes the session; absent is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	err := s.retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, id)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: delete session: %w", err)
	}
	return nil
}

// --------------------------------------------------------------- logins

// CreateLogin inserts the pending login; ErrAlreadyExists if its state is
// taken.
func (s *Store) CreateLogin(ctx context.Context, l storage.PendingLogin) error {
	if l.State == "" {
		return errors.New("postgres: create login: empty state")
	}
	err := s.retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO logins (state, connector_id, binding, data,
			created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)`,
			l.State, l.ConnectorID, l.Binding, blob(l.Data), ts(l.CreatedAt), ts(l.ExpiresAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: create login: %w", mapErr(err))
	}
	return nil
}

// TakeLogin deletes the login and returns it, in one statement: of
// concurrent takers only the one whose DELETE removed the row gets it.
func (s *Store) TakeLogin(ctx context.Context, state string) (storage.PendingLogin, error) {
	var l storage.PendingLogin
	var created, expires pgtype.Timestamptz
	err := s.retry(ctx, func() error {
		return s.pool.QueryRow(ctx, `DELETE FROM logins
			WHERE state = $1 AND (expires_at IS NULL OR expires_at > $2)
			RETURNING state, connector_id, binding, data, created_at, expires_at`,
			state, time.Now().UTC()).Scan(&l.State, &l.ConnectorID, &l.Binding, &l.Data, &created, &expires)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.PendingLogin{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.PendingLogin{}, fmt.Errorf("postgres: take login: %w", err)
	}
	l.CreatedAt, l.ExpiresAt = fromTS(created), fromTS(expires)
	return l, nil
}

// ---------------------------------------------------------------- audit

// insertAudit appends an audit event (AppendAudit, CompleteLogin).
const insertAudit = `INSERT INTO audit (time, action, user_id, connector_id,
	client_id, ip, result, detail) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`

func auditArgs(e *storage.AuditEvent) []any {
	return []any{ts(e.Time), e.Action, e.UserID, e.ConnectorID, e.ClientID, e.IP, e.Result, e.Detail}
}

// AppendAudit inserts the event; the store assigns its ID.
func (s *Store) AppendAudit(ctx context.Context, e storage.AuditEvent) error {
	err := s.retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, insertAudit, auditArgs(&e)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: append audit: %w", err)
	}
	return nil
}

// ListAudit returns the matching events, newest first.
func (s *Store) ListAudit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, error) {
	q := `SELECT id, time, action, user_id, connector_id, client_id, ip, result, detail
		FROM audit WHERE true`
	var args []any
	if f.UserID != "" {
		args = append(args, f.UserID)
		q += fmt.Sprintf(` AND user_id = $%d`, len(args))
	}
	if !f.Since.IsZero() {
		args = append(args, ts(f.Since))
		q += fmt.Sprintf(` AND time >= $%d`, len(args))
	}
	if !f.Until.IsZero() {
		args = append(args, ts(f.Until))
		q += fmt.Sprintf(` AND time < $%d`, len(args))
	}
	q += ` ORDER BY time DESC NULLS LAST, id DESC`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		q += fmt.Sprintf(` LIMIT $%d`, len(args))
	}
	var es []storage.AuditEvent
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		es, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.AuditEvent, error) {
			var e storage.AuditEvent
			var t pgtype.Timestamptz
			err := row.Scan(&e.ID, &t, &e.Action, &e.UserID, &e.ConnectorID, &e.ClientID, &e.IP, &e.Result, &e.Detail)
			e.Time = fromTS(t)
			return e, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list audit: %w", err)
	}
	return es, nil
}

// --------------------------------------------------------------- leases

// AcquireLease takes the lease if it is free, expired, or already held by
// holder, in one INSERT ... ON CONFLICT statement.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" {
		return false, errors.New("postgres: acquire lease: empty name or holder")
	}
	if ttl <= 0 {
		return false, fmt.Errorf("postgres: acquire lease: ttl must be positive, got %v", ttl)
	}
	now := time.Now().UTC()
	var got bool
	err := s.retry(ctx, func() error {
		err := s.pool.QueryRow(ctx, `INSERT INTO leases (name, holder, expires_at) VALUES ($1, $2, $3)
			ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
			WHERE leases.holder = EXCLUDED.holder OR leases.expires_at <= $4
			RETURNING true`, name, holder, ts(now.Add(ttl)), now).Scan(&got)
		if errors.Is(err, pgx.ErrNoRows) {
			got = false
			return nil
		}
		return err
	})
	if err != nil {
		return false, fmt.Errorf("postgres: acquire lease: %w", err)
	}
	return got, nil
}

// ReleaseLease gives the lease up if holder has it.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	err := s.retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE name = $1 AND holder = $2`, name, holder)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: release lease: %w", err)
	}
	return nil
}

// ---------------------------------------------------------------- cache

// PutCache sets key to value until expiresAt.
func (s *Store) PutCache(ctx context.Context, key string, value []byte, expiresAt time.Time) error {
	err := s.retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `INSERT INTO cache (key, value, expires_at) VALUES ($1, $2, $3)
			ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at`,
			key, blob(value), ts(expiresAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: put cache: %w", err)
	}
	return nil
}

// GetCache returns the value and its expiry unless absent or expired.
func (s *Store) GetCache(ctx context.Context, key string) ([]byte, time.Time, error) {
	var v []byte
	var exp pgtype.Timestamptz
	err := s.read(ctx, func() error {
		return s.pool.QueryRow(ctx, `SELECT value, expires_at FROM cache
			WHERE key = $1 AND (expires_at IS NULL OR expires_at > $2)`, key, time.Now().UTC()).Scan(&v, &exp)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, time.Time{}, storage.ErrNotFound
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("postgres: get cache: %w", err)
	}
	return v, fromTS(exp), nil
}
