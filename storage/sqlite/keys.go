package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

// ListSigningKeys returns every key not yet collected, newest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	rows, err := s.rs[qListKeys].QueryContext(ctx)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list signing keys: %w", err)
	}
	defer rows.Close()
	var ks []storage.SigningKey
	for rows.Next() {
		var (
			k                         storage.SigningKey
			created, retired, expires sql.NullInt64
		)
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.PrivateKey, &k.PublicJWK, &created, &retired, &expires); err != nil {
			return nil, fmt.Errorf("sqlite: list signing keys: %w", err)
		}
		k.CreatedAt, k.RetiredAt, k.ExpiresAt = fromMS(created), fromMS(retired), fromMS(expires)
		ks = append(ks, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list signing keys: %w", err)
	}
	return ks, nil
}

// RotateSigningKey makes next the signing key of its algorithm if that
// algorithm's current key is prevID, retiring prevID at next.CreatedAt
// until prevExpiresAt.
func (s *Store) RotateSigningKey(ctx context.Context, prevID string, next storage.SigningKey, prevExpiresAt time.Time) error {
	if next.ID == "" {
		return errors.New("sqlite: rotate signing key: empty key id")
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var current string
		err := s.wstmt(ctx, tx, qCurrentKey).QueryRowContext(ctx, next.Algorithm).Scan(&current)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if current != prevID {
			return storage.ErrConflict
		}
		if current != "" {
			if _, err := s.wstmt(ctx, tx, qRetireKey).ExecContext(ctx, ms(next.CreatedAt), ms(prevExpiresAt), current); err != nil {
				return err
			}
		}
		_, err = s.wstmt(ctx, tx, qInsertKey).ExecContext(ctx,
			next.ID, next.Algorithm, blob(next.PrivateKey), blob(next.PublicJWK), ms(next.CreatedAt))
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: rotate signing key %q: %w", next.ID, err)
	}
	return nil
}

// RetireSigningKey retires the unretired key id with no successor.
func (s *Store) RetireSigningKey(ctx context.Context, id string, retiredAt, expiresAt time.Time) error {
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := s.wstmt(ctx, tx, qRetireUnretiredKey).ExecContext(ctx, ms(retiredAt), ms(expiresAt), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 1 {
			return err
		}
		var found int
		if err := s.wstmt(ctx, tx, qKeyExists).QueryRowContext(ctx, id).Scan(&found); err != nil {
			return err
		}
		if found == 0 {
			return storage.ErrNotFound
		}
		return storage.ErrConflict
	})
	if err != nil {
		return fmt.Errorf("sqlite: retire signing key %q: %w", id, err)
	}
	return nil
}
