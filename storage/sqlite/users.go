package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/qiaoidp/qiao/storage"
)

// CreateUser inserts u and its first identity (bound to u.ID whatever
// first.UserID says) in one transaction.
func (s *Store) CreateUser(ctx context.Context, u storage.User, first storage.Identity) error {
	if u.ID == "" {
		return errors.New("sqlite: create user: empty user id")
	}
	if err := checkIdentityKey(first); err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	first.UserID = u.ID
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := s.wstmt(ctx, tx, qInsertUser).ExecContext(ctx, u.ID, ms(u.CreatedAt)); err != nil {
			return err
		}
		_, err := s.wstmt(ctx, tx, qInsertIdentity).ExecContext(ctx, identityArgs(first)...)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: create user %q: %w", u.ID, err)
	}
	return nil
}

// GetUser returns the user with that id.
func (s *Store) GetUser(ctx context.Context, id string) (storage.User, error) {
	var (
		u       storage.User
		created sql.NullInt64
	)
	err := s.rs[qGetUser].QueryRowContext(ctx, id).Scan(&u.ID, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.User{}, fmt.Errorf("sqlite: user %q: %w", id, storage.ErrNotFound)
	}
	if err != nil {
		return storage.User{}, fmt.Errorf("sqlite: get user: %w", err)
	}
	u.CreatedAt = fromMS(created)
	return u, nil
}

// ListUsers returns up to limit users with ID > after, ordered by ID; a
// limit of 0 or less means no limit.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]storage.User, error) {
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	rows, err := s.rs[qListUsers].QueryContext(ctx, after, limit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	defer rows.Close()
	var us []storage.User
	for rows.Next() {
		var (
			u       storage.User
			created sql.NullInt64
		)
		if err := rows.Scan(&u.ID, &created); err != nil {
			return nil, fmt.Errorf("sqlite: list users: %w", err)
		}
		u.CreatedAt = fromMS(created)
		us = append(us, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	return us, nil
}

// DeleteUser removes the user, its identities, its sessions and the
// tokens issued to it, in one transaction.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		r, err := s.wstmt(ctx, tx, qDeleteUser).ExecContext(ctx, id)
		if err != nil {
			return err
		}
		if n, err := r.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return storage.ErrNotFound
		}
		for _, q := range []string{qDeleteUserIDs, qDeleteUserSess, qDeleteUserToks} {
			if _, err := s.wstmt(ctx, tx, q).ExecContext(ctx, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: delete user %q: %w", id, err)
	}
	return nil
}

// RevokeUserGrants removes the user's sessions and tokens in one
// transaction.
func (s *Store) RevokeUserGrants(ctx context.Context, userID string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		for _, q := range []string{qDeleteUserSess, qDeleteUserToks} {
			if _, err := s.wstmt(ctx, tx, q).ExecContext(ctx, userID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: revoke the grants of user %q: %w", userID, err)
	}
	return nil
}

// GetIdentity returns the identity (connectorID, subject).
func (s *Store) GetIdentity(ctx context.Context, connectorID, subject string) (storage.Identity, error) {
	var id storage.Identity
	err := s.rawRead(ctx, func(r rawRow) (err error) {
		id, err = scanIdentity(r)
		return err
	}, qGetIdentity, connectorID, subject)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.Identity{}, fmt.Errorf("sqlite: identity of connector %q: %w", connectorID, storage.ErrNotFound)
	}
	if err != nil {
		return storage.Identity{}, fmt.Errorf("sqlite: get identity: %w", err)
	}
	return id, nil
}

// ListIdentities returns the user's identities ordered by BoundAt.
func (s *Store) ListIdentities(ctx context.Context, userID string) ([]storage.Identity, error) {
	ids, err := s.queryIdentities(ctx, qListIdentities, userID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list identities: %w", err)
	}
	return ids, nil
}

// FindIdentitiesByUnionID returns the identities carrying unionID, ordered
// by BoundAt. An empty unionID matches nothing.
func (s *Store) FindIdentitiesByUnionID(ctx context.Context, unionID string) ([]storage.Identity, error) {
	ids, err := s.queryIdentities(ctx, qFindByUnionID, unionID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: find identities by union id: %w", err)
	}
	return ids, nil
}

// BindIdentity attaches id to the existing user id.UserID.
func (s *Store) BindIdentity(ctx context.Context, id storage.Identity) error {
	if err := checkIdentityKey(id); err != nil {
		return fmt.Errorf("sqlite: bind identity: %w", err)
	}
	// One writer and BEGIN IMMEDIATE: the count and the insert see no
	// other write in between.
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var total, matching int64
		if err := s.wstmt(ctx, tx, qCountIdentities).QueryRowContext(ctx, id.ConnectorID, id.UserID).Scan(&total, &matching); err != nil {
			return err
		}
		if matching > 0 {
			return storage.ErrConnectorTaken
		}
		_, err := s.wstmt(ctx, tx, qInsertIdentity).ExecContext(ctx, identityArgs(id)...)
		return err
	})
	if errors.Is(err, storage.ErrConnectorTaken) {
		return fmt.Errorf("sqlite: bind identity of connector %q: %w", id.ConnectorID, err)
	}
	if isForeignKey(err) {
		return fmt.Errorf("sqlite: bind identity: user %q: %w", id.UserID, storage.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: bind identity of connector %q: %w", id.ConnectorID, mapErr(err))
	}
	return nil
}

// UpdateIdentity rewrites the identity's mutable fields.
func (s *Store) UpdateIdentity(ctx context.Context, id storage.Identity) error {
	r, err := s.ws[qUpdateIdentity].ExecContext(ctx,
		id.UnionID, id.DisplayName, id.Picture, boolInt(id.RealProfile), blob(id.Secret),
		ms(id.LastUsedAt), id.ConnectorID, id.Subject)
	if err != nil {
		return fmt.Errorf("sqlite: update identity: %w", err)
	}
	n, err := r.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: update identity: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("sqlite: identity of connector %q: %w", id.ConnectorID, storage.ErrNotFound)
	}
	return nil
}

// UnbindIdentity removes the user's identities of connectorID unless they
// are all it has.
func (s *Store) UnbindIdentity(ctx context.Context, userID, connectorID string) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var total, matching int64
		if err := s.wstmt(ctx, tx, qCountIdentities).QueryRowContext(ctx, connectorID, userID).Scan(&total, &matching); err != nil {
			return err
		}
		switch {
		case matching == 0:
			return storage.ErrNotFound
		case matching == total:
			return storage.ErrLastIdentity
		}
		for _, q := range []string{qUnbindSessions, qUnbindTokens, qUnbindIdentity} {
			if _, err := s.wstmt(ctx, tx, q).ExecContext(ctx, userID, connectorID); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: unbind connector %q from user %q: %w", connectorID, userID, err)
	}
	return nil
}

// MergeUsers moves m.From's identities to m.Into and deletes m.From with
// its sessions and tokens, in one transaction.
func (s *Store) MergeUsers(ctx context.Context, m storage.Merge) ([]storage.Identity, error) {
	if m.From == m.Into {
		return nil, fmt.Errorf("sqlite: merge user %q into itself: %w", m.From, storage.ErrConflict)
	}
	var moved []storage.Identity
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := s.wstmt(ctx, tx, qCountUsers).QueryRowContext(ctx, m.From, m.Into).Scan(&n); err != nil {
			return err
		}
		if n != 2 {
			return storage.ErrNotFound
		}
		ids, err := collectIdentities(s.wstmt(ctx, tx, qUserIdentities).QueryContext(ctx, m.From))
		if err != nil {
			return err
		}
		if !m.OnlyHolds(ids) {
			return fmt.Errorf("the user does not have exactly the expected identity: %w", storage.ErrConflict)
		}
		rows, err := s.wstmt(ctx, tx, qSharedConnector).QueryContext(ctx, m.Into, m.From)
		if err != nil {
			return err
		}
		var shared []string
		for rows.Next() {
			var c string
			if err := rows.Scan(&c); err != nil {
				rows.Close()
				return err
			}
			shared = append(shared, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		if len(shared) > 0 {
			return &storage.MergeConflictError{Connectors: shared}
		}
		if _, err := s.wstmt(ctx, tx, qMoveIdentities).ExecContext(ctx, m.Into, m.From); err != nil {
			return err
		}
		for _, q := range []string{qDeleteUser, qDeleteUserSess, qDeleteUserToks} {
			if _, err := s.wstmt(ctx, tx, q).ExecContext(ctx, m.From); err != nil {
				return err
			}
		}
		for i := range ids {
			ids[i].UserID = m.Into
		}
		moved = ids
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("sqlite: merge user %q into %q: %w", m.From, m.Into, err)
	}
	return moved, nil
}

func checkIdentityKey(id storage.Identity) error {
	if id.ConnectorID == "" || id.Subject == "" {
		return errors.New("identity needs a connector id and a subject")
	}
	return nil
}

func identityArgs(id storage.Identity) []any {
	return []any{
		id.ConnectorID, id.Subject, id.UserID, id.ConnectorType, id.UnionID, id.DisplayName,
		id.Picture, boolInt(id.RealProfile), blob(id.Secret), ms(id.BoundAt), ms(id.LastUsedAt),
	}
}

func (s *Store) queryIdentities(ctx context.Context, q, arg string) ([]storage.Identity, error) {
	return collectIdentities(s.rs[q].QueryContext(ctx, arg))
}

// collectIdentities scans every row of an identity query.
func collectIdentities(rows *sql.Rows, err error) ([]storage.Identity, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []storage.Identity
	for rows.Next() {
		id, err := scanIdentity(rows)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

type scanner interface{ Scan(dest ...any) error }

func scanIdentity(sc scanner) (storage.Identity, error) {
	var (
		id              storage.Identity
		real, ownPic    int64
		bound, lastUsed sql.NullInt64
	)
	err := sc.Scan(&id.ConnectorID, &id.Subject, &id.UserID, &id.ConnectorType, &id.UnionID,
		&id.DisplayName, &id.Picture, &real, &id.Secret, &bound, &lastUsed, &id.OwnName, &ownPic)
	id.OwnPicture = ownPic != 0
	if err != nil {
		return storage.Identity{}, err
	}
	id.RealProfile = real != 0
	id.BoundAt = fromMS(bound)
	id.LastUsedAt = fromMS(lastUsed)
	return id, nil
}
