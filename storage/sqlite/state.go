package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

// ------------------------------------------------------------- sessions

// CreateSession inserts s; ErrAlreadyExists if its id is taken.
func (s *Store) CreateSession(ctx context.Context, sess storage.Session) error {
	if sess.ID == "" {
		return errors.New("sqlite: create session: empty id")
	}
	_, err := s.ws[qInsertSession].ExecContext(ctx, sess.ID, sess.UserID, sess.ConnectorID,
		ms(sess.AuthTime), ms(sess.ExpiresAt), blob(sess.Data), sess.IdentitySubject)
	if err != nil {
		return fmt.Errorf("sqlite: create session: %w", mapErr(err))
	}
	return nil
}

// GetSession returns the session unless absent or expired.
func (s *Store) GetSession(ctx context.Context, id string) (storage.Session, error) {
	var (
		sess              storage.Session
		authTime, expires sql.NullInt64
	)
	err := s.rs[qGetSession].QueryRowContext(ctx, id).Scan(
		&sess.ID, &sess.UserID, &sess.ConnectorID, &authTime, &expires, &sess.Data, &sess.IdentitySubject)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && expired(expires, time.Now())) {
		return storage.Session{}, fmt.Errorf("sqlite: session: %w", storage.ErrNotFound)
	}
	if err != nil {
		return storage.Session{}, fmt.Errorf("sqlite: get session: %w", err)
	}
	sess.AuthTime, sess.ExpiresAt = fromMS(authTime), fromMS(expires)
	return sess, nil
}

// UpdateSession rewrites everything but the id.
func (s *Store) UpdateSession(ctx context.Context, sess storage.Session) error {
	r, err := s.ws[qUpdateSession].ExecContext(ctx, sess.UserID, sess.ConnectorID,
		ms(sess.AuthTime), ms(sess.ExpiresAt), blob(sess.Data), sess.IdentitySubject, sess.ID)
	if err != nil {
		return fmt.Errorf("sqlite: update session: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: update session: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: session: %w", storage.ErrNotFound)
	}
	return nil
}

// DeleteSession removes the session; absent is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.ws[qDeleteSession].ExecContext(ctx, id); err != nil {
		return fmt.Errorf("sqlite: delete session: %w", err)
	}
	return nil
}

// --------------------------------------------------------------- logins

// CreateLogin inserts l; ErrAlreadyExists if its state is taken.
func (s *Store) CreateLogin(ctx context.Context, l storage.PendingLogin) error {
	if l.State == "" {
		return errors.New("sqlite: create login: empty state")
	}
	_, err := s.ws[qInsertLogin].ExecContext(ctx, l.State, l.ConnectorID, l.Binding, blob(l.Data),
		ms(l.CreatedAt), ms(l.ExpiresAt))
	if err != nil {
		return fmt.Errorf("sqlite: create login: %w", mapErr(err))
	}
	return nil
}

// TakeLogin deletes the login and returns it, in one statement.
func (s *Store) TakeLogin(ctx context.Context, state string) (storage.PendingLogin, error) {
	var (
		l                storage.PendingLogin
		created, expires sql.NullInt64
	)
	err := s.ws[qTakeLogin].QueryRowContext(ctx, state).Scan(
		&l.State, &l.ConnectorID, &l.Binding, &l.Data, &created, &expires)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && expired(expires, time.Now())) {
		return storage.PendingLogin{}, fmt.Errorf("sqlite: login: %w", storage.ErrNotFound)
	}
	if err != nil {
		return storage.PendingLogin{}, fmt.Errorf("sqlite: take login: %w", err)
	}
	l.CreatedAt, l.ExpiresAt = fromMS(created), fromMS(expires)
	return l, nil
}

// ---------------------------------------------------------------- audit

// AppendAudit stores e; the store assigns its ID.
func (s *Store) AppendAudit(ctx context.Context, e storage.AuditEvent) error {
	_, err := s.ws[qInsertAudit].ExecContext(ctx, ms(e.Time), e.Action, e.UserID, e.ConnectorID,
		e.ClientID, e.IP, e.Result, e.Detail)
	if err != nil {
		return fmt.Errorf("sqlite: append audit: %w", err)
	}
	return nil
}

// ListAudit returns the events f selects, newest first.
func (s *Store) ListAudit(ctx context.Context, f storage.AuditFilter) ([]storage.AuditEvent, error) {
	var (
		q    strings.Builder
		args []any
	)
	q.WriteString(`SELECT id, time, action, user_id, connector_id, client_id, ip, result, detail
		FROM audit WHERE 1 = 1`)
	if f.UserID != "" {
		q.WriteString(` AND user_id = ?`)
		args = append(args, f.UserID)
	}
	if !f.Since.IsZero() {
		q.WriteString(` AND time >= ?`)
		args = append(args, f.Since.UnixMilli())
	}
	if !f.Until.IsZero() {
		q.WriteString(` AND time < ?`)
		args = append(args, f.Until.UnixMilli())
	}
	q.WriteString(` ORDER BY time DESC, id DESC`)
	if f.Limit > 0 {
		q.WriteString(` LIMIT ?`)
		args = append(args, f.Limit)
	}
	s.n.statements.Add(1)
	rows, err := s.r.QueryContext(uncancelled(ctx), q.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	defer rows.Close()
	var es []storage.AuditEvent
	for rows.Next() {
		var (
			e storage.AuditEvent
			t sql.NullInt64
		)
		if err := rows.Scan(&e.ID, &t, &e.Action, &e.UserID, &e.ConnectorID, &e.ClientID,
			&e.IP, &e.Result, &e.Detail); err != nil {
			return nil, fmt.Errorf("sqlite: list audit: %w", err)
		}
		e.Time = fromMS(t)
		es = append(es, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list audit: %w", err)
	}
	return es, nil
}

// --------------------------------------------------------------- leases

// AcquireLease takes or renews the lease name for holder until now+ttl,
// in one statement.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration) (bool, error) {
	if name == "" || holder == "" {
		return false, errors.New("sqlite: acquire lease: empty name or holder")
	}
	if ttl <= 0 {
		return false, fmt.Errorf("sqlite: acquire lease %q: ttl %v is not positive", name, ttl)
	}
	now := time.Now()
	r, err := s.ws[qAcquireLease].ExecContext(ctx, name, holder, now.Add(ttl).UnixMilli(), now.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("sqlite: acquire lease %q: %w", name, err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("sqlite: acquire lease %q: %w", name, err)
	}
	return n == 1, nil
}

// ReleaseLease gives the lease up if holder has it.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	if _, err := s.ws[qReleaseLease].ExecContext(ctx, name, holder); err != nil {
		return fmt.Errorf("sqlite: release lease %q: %w", name, err)
	}
	return nil
}

// ---------------------------------------------------------------- cache

// PutCache sets key to value until expiresAt (zero: no expiry).
func (s *Store) PutCache(ctx context.Context, key string, value []byte, expiresAt time.Time) error {
	if _, err := s.ws[qPutCache].ExecContext(ctx, key, blob(value), ms(expiresAt)); err != nil {
		return fmt.Errorf("sqlite: put cache %q: %w", key, err)
	}
	return nil
}

// GetCache returns the value and its expiry unless absent or expired.
func (s *Store) GetCache(ctx context.Context, key string) ([]byte, time.Time, error) {
	var (
		v       []byte
		expires sql.NullInt64
	)
	err := s.rs[qGetCache].QueryRowContext(ctx, key).Scan(&v, &expires)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && expired(expires, time.Now())) {
		return nil, time.Time{}, fmt.Errorf("sqlite: cache %q: %w", key, storage.ErrNotFound)
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("sqlite: get cache %q: %w", key, err)
	}
	return v, fromMS(expires), nil
}
