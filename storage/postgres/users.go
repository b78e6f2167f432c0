package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/qiaoidp/qiao/storage"
)

const identityColumns = `connector_id, subject, user_id, connector_type, union_id,
	display_name, picture, real_profile, secret, bound_at, last_used_at`

// identityRead reads an identity with what its user set themselves.
const identityRead = identityColumns + `, coalesce(users.profile_name, ''), users.profile_picture IS NOT NULL
	FROM identities LEFT JOIN users ON users.id = identities.user_id`

const insertIdentity = `INSERT INTO identities (` + identityColumns + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`

func identityArgs(id storage.Identity) []any {
	return []any{id.ConnectorID, id.Subject, id.UserID, id.ConnectorType, id.UnionID,
		id.DisplayName, id.Picture, id.RealProfile, blob(id.Secret), ts(id.BoundAt), ts(id.LastUsedAt)}
}

func checkIdentityKey(id storage.Identity) error {
	if id.ConnectorID == "" || id.Subject == "" {
		return errors.New("identity needs a connector id and a subject")
	}
	return nil
}

func scanIdentity(row pgx.Row) (storage.Identity, error) {
	var id storage.Identity
	var bound, used pgtype.Timestamptz
	err := row.Scan(&id.ConnectorID, &id.Subject, &id.UserID, &id.ConnectorType, &id.UnionID,
		&id.DisplayName, &id.Picture, &id.RealProfile, &id.Secret, &bound, &used, &id.OwnName, &id.OwnPicture)
	id.BoundAt, id.LastUsedAt = fromTS(bound), fromTS(used)
	return id, err
}

// CreateUser inserts the user and its first identity in one transaction.
func (s *Store) CreateUser(ctx context.Context, u storage.User, first storage.Identity) error {
	if u.ID == "" {
		return errors.New("postgres: create user: empty user id")
	}
	if err := checkIdentityKey(first); err != nil {
		return fmt.Errorf("postgres: create user: %w", err)
	}
	first.UserID = u.ID
	err := s.batch(ctx, func() *pgx.Batch {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO users (id, created_at) VALUES ($1, $2)`, u.ID, ts(u.CreatedAt))
		b.Queue(insertIdentity, identityArgs(first)...)
		return b
	})
	if err != nil {
		return fmt.Errorf("postgres: create user: %w", mapErr(err))
	}
	return nil
}

// GetUser returns the user with that id.
func (s *Store) GetUser(ctx context.Context, id string) (storage.User, error) {
	var u storage.User
	var created pgtype.Timestamptz
	err := s.read(ctx, func() error {
		return s.pool.QueryRow(ctx, `SELECT id, created_at FROM users WHERE id = $1`, id).Scan(&u.ID, &created)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.User{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.User{}, fmt.Errorf("postgres: get user: %w", err)
	}
	u.CreatedAt = fromTS(created)
	return u, nil
}

// ListUsers returns up to limit users with ID > after, ordered by ID; a
// limit of 0 or less means no limit, as in the SQLite store.
func (s *Store) ListUsers(ctx context.Context, after string, limit int) ([]storage.User, error) {
	var lim any // NULL: LIMIT ALL
	if limit > 0 {
		lim = limit
	}
	var us []storage.User
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx,
			`SELECT id, created_at FROM users WHERE id > $1 ORDER BY id LIMIT $2`, after, lim)
		if err != nil {
			return err
		}
		us, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.User, error) {
			var u storage.User
			var created pgtype.Timestamptz
			err := row.Scan(&u.ID, &created)
			u.CreatedAt = fromTS(created)
			return u, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list users: %w", err)
	}
	return us, nil
}

// DeleteUser removes the user, its identities (by cascade), its sessions
// and its tokens in one statement, so one transaction.
func (s *Store) DeleteUser(ctx context.Context, id string) error {
	var n int
	err := s.retry(ctx, func() error {
		return s.pool.QueryRow(ctx, `WITH
			u AS (DELETE FROM users WHERE id = $1 RETURNING id),
			s AS (DELETE FROM sessions WHERE user_id IN (SELECT id FROM u)),
			t AS (DELETE FROM tokens WHERE subject IN (SELECT id FROM u))
			SELECT count(*) FROM u`, id).Scan(&n)
	})
	if err != nil {
		return fmt.Errorf("postgres: delete user: %w", err)
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// RevokeUserGrants removes the user's sessions and tokens in one
// statement, so one transaction.
func (s *Store) RevokeUserGrants(ctx context.Context, userID string) error {
	err := s.retry(ctx, func() error {
		_, err := s.pool.Exec(ctx, `WITH
			s AS (DELETE FROM sessions WHERE user_id = $1)
			DELETE FROM tokens WHERE subject = $1`, userID)
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: revoke user grants: %w", err)
	}
	return nil
}

// GetIdentity returns the identity (connectorID, subject).
func (s *Store) GetIdentity(ctx context.Context, connectorID, subject string) (storage.Identity, error) {
	var id storage.Identity
	err := s.read(ctx, func() error {
		var err error
		id, err = scanIdentity(s.pool.QueryRow(ctx, `SELECT `+identityRead+`
			WHERE connector_id = $1 AND subject = $2`, connectorID, subject))
		return err
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.Identity{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.Identity{}, fmt.Errorf("postgres: get identity: %w", err)
	}
	return id, nil
}

func (s *Store) listIdentities(ctx context.Context, where string, arg string) ([]storage.Identity, error) {
	var ids []storage.Identity
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT `+identityRead+`
			WHERE `+where+` ORDER BY bound_at NULLS FIRST, seq`, arg)
		if err != nil {
			return err
		}
		ids, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Identity, error) {
			return scanIdentity(row)
		})
		return err
	})
	return ids, err
}

// ListIdentities returns the user's identities ordered by BoundAt.
func (s *Store) ListIdentities(ctx context.Context, userID string) ([]storage.Identity, error) {
	ids, err := s.listIdentities(ctx, `user_id = $1`, userID)
	if err != nil {
		return nil, fmt.Errorf("postgres: list identities: %w", err)
	}
	return ids, nil
}

// FindIdentitiesByUnionID returns the identities carrying unionID, ordered
// by BoundAt. An empty unionID matches nothing.
func (s *Store) FindIdentitiesByUnionID(ctx context.Context, unionID string) ([]storage.Identity, error) {
	if unionID == "" {
		return []storage.Identity{}, nil
	}
	ids, err := s.listIdentities(ctx, `union_id = $1 AND union_id <> ''`, unionID)
	if err != nil {
		return nil, fmt.Errorf("postgres: find identities by union id: %w", err)
	}
	return ids, nil
}

// BindIdentity inserts the identity; the primary key makes concurrent
// binds of one identity succeed once. The user row is locked first, so
// concurrent binds to one user check "no identity of this connector yet"
// one after the other (as UnbindIdentity counts).
func (s *Store) BindIdentity(ctx context.Context, id storage.Identity) error {
	if err := checkIdentityKey(id); err != nil {
		return fmt.Errorf("postgres: bind identity: %w", err)
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		// Two statements: under READ COMMITTED the second one's snapshot
		// is taken after the lock is granted, so it sees the other bind.
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, id.UserID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return storage.ErrNotFound
		} else if err != nil {
			return err
		}
		var taken bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM identities WHERE user_id = $1 AND connector_id = $2)`,
			id.UserID, id.ConnectorID).Scan(&taken); err != nil {
			return err
		}
		if taken {
			return storage.ErrConnectorTaken
		}
		_, err = tx.Exec(ctx, insertIdentity, identityArgs(id)...)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) || sqlState(err) == codeForeignKeyViolation {
		return storage.ErrNotFound
	}
	if errors.Is(err, storage.ErrConnectorTaken) {
		return fmt.Errorf("postgres: bind identity of connector %q: %w", id.ConnectorID, err)
	}
	if err != nil {
		return fmt.Errorf("postgres: bind identity: %w", mapErr(err))
	}
	return nil
}

// UpdateIdentity rewrites the identity's mutable fields.
func (s *Store) UpdateIdentity(ctx context.Context, id storage.Identity) error {
	var ct pgconn.CommandTag
	err := s.retry(ctx, func() error {
		var err error
		ct, err = s.pool.Exec(ctx, `UPDATE identities SET union_id = $3, display_name = $4,
			picture = $5, real_profile = $6, secret = $7, last_used_at = $8
			WHERE connector_id = $1 AND subject = $2`,
			id.ConnectorID, id.Subject, id.UnionID, id.DisplayName, id.Picture, id.RealProfile,
			blob(id.Secret), ts(id.LastUsedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: update identity: %w", err)
	}
	if ct.RowsAffected() == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// UnbindIdentity removes the user's identities of connectorID unless they
// are all the user has. The user row is locked first, so concurrent
// unbinds of one user count identities one after the other: the second
// sees what the first left. Lock and count-and-delete go in one batch
// (one implicit transaction); under READ COMMITTED the second statement
// reads after the lock is granted.
func (s *Store) UnbindIdentity(ctx context.Context, userID, connectorID string) error {
	var mine, total int64
	err := s.batch(ctx, func() *pgx.Batch {
		b := &pgx.Batch{}
		b.Queue(`SELECT 1 FROM users WHERE id = $1 FOR UPDATE`, userID)
		// The sessions and tokens that came through the removed
		// identities (or whose identity is unknown) go with them. Every
		// part of a WITH sees the same snapshot, so gone.subject lists
		// the identities being removed.
		b.Queue(`WITH
			c AS (SELECT count(*) FILTER (WHERE connector_id = $2) AS mine, count(*) AS total
				FROM identities WHERE user_id = $1),
			gone AS (DELETE FROM identities WHERE user_id = $1 AND connector_id = $2
				AND (SELECT total > mine FROM c) RETURNING subject),
			s AS (DELETE FROM sessions WHERE user_id = $1 AND connector_id = $2
				AND EXISTS (SELECT 1 FROM gone)
				AND (identity_subject = '' OR identity_subject IN (SELECT subject FROM gone))),
			t AS (DELETE FROM tokens WHERE subject = $1 AND EXISTS (SELECT 1 FROM gone)
				AND (identity_connector = ''
					OR (identity_connector = $2 AND identity_subject IN (SELECT subject FROM gone))))
			SELECT mine, total FROM c`, userID, connectorID).QueryRow(func(row pgx.Row) error {
			return row.Scan(&mine, &total)
		})
		return b
	})
	if err != nil {
		return fmt.Errorf("postgres: unbind identity: %w", err)
	}
	switch {
	case mine == 0:
		return storage.ErrNotFound
	case mine == total:
		return storage.ErrLastIdentity
	}
	return nil
}

// MergeUsers moves m.From's identities to m.Into and deletes m.From with
// its sessions and tokens, in one transaction. Both user rows are locked
// first, in id order (so two merges cannot deadlock), so a concurrent
// bind, unbind or merge of either user waits for this one.
func (s *Store) MergeUsers(ctx context.Context, m storage.Merge) ([]storage.Identity, error) {
	if m.From == m.Into {
		return nil, fmt.Errorf("postgres: merge a user into itself: %w", storage.ErrConflict)
	}
	var moved []storage.Identity
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		moved = nil
		rows, err := tx.Query(ctx, `SELECT id FROM users WHERE id = $1 OR id = $2 ORDER BY id FOR UPDATE`, m.From, m.Into)
		if err != nil {
			return err
		}
		locked, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(locked) != 2 {
			return storage.ErrNotFound
		}
		rows, err = tx.Query(ctx, `SELECT `+identityRead+`
			WHERE user_id = $1 ORDER BY bound_at NULLS FIRST, seq`, m.From)
		if err != nil {
			return err
		}
		ids, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.Identity, error) {
			return scanIdentity(row)
		})
		if err != nil {
			return err
		}
		if !m.OnlyHolds(ids) {
			return fmt.Errorf("the user does not have exactly the expected identity: %w", storage.ErrConflict)
		}
		rows, err = tx.Query(ctx, `SELECT DISTINCT connector_id FROM identities WHERE user_id = $1
			AND connector_id IN (SELECT connector_id FROM identities WHERE user_id = $2) ORDER BY connector_id`, m.Into, m.From)
		if err != nil {
			return err
		}
		shared, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(shared) > 0 {
			return &storage.MergeConflictError{Connectors: shared}
		}
		if _, err := tx.Exec(ctx, `UPDATE identities SET user_id = $1 WHERE user_id = $2`, m.Into, m.From); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `WITH
			s AS (DELETE FROM sessions WHERE user_id = $1),
			t AS (DELETE FROM tokens WHERE subject = $1)
			DELETE FROM users WHERE id = $1`, m.From); err != nil {
			return err
		}
		for i := range ids {
			ids[i].UserID = m.Into
		}
		moved = ids
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: merge users: %w", err)
	}
	return moved, nil
}
