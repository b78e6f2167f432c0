package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/qiaoidp/qiao/storage"
)

// keyRotationLockKey serializes key rotations across replicas with a
// transaction-scoped advisory lock ("qkey" in ASCII): with no key yet there
// is no row to lock.
const keyRotationLockKey int64 = 0x716b6579

// ListSigningKeys returns every stored key, newest first.
func (s *Store) ListSigningKeys(ctx context.Context) ([]storage.SigningKey, error) {
	var keys []storage.SigningKey
	err := s.read(ctx, func() error {
		rows, err := s.pool.Query(ctx, `SELECT id, algorithm, private_key, public_jwk, created_at,
			retired_at, expires_at FROM signing_keys ORDER BY created_at DESC NULLS LAST, id DESC`)
		if err != nil {
			return err
		}
		keys, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (storage.SigningKey, error) {
			var k storage.SigningKey
			var created, retired, expires pgtype.Timestamptz
			err := row.Scan(&k.ID, &k.Algorithm, &k.PrivateKey, &k.PublicJWK, &created, &retired, &expires)
			k.CreatedAt, k.RetiredAt, k.ExpiresAt = fromTS(created), fromTS(retired), fromTS(expires)
			return k, err
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("postgres: list signing keys: %w", err)
	}
	return keys, nil
}

// RotateSigningKey makes next the signing key of its algorithm if that
// algorithm's current key is prevID. Rotations run one at a time under an
// advisory lock; the check, the retirement and the insert are one
// transaction.
func (s *Store) RotateSigningKey(ctx context.Context, prevID string, next storage.SigningKey, prevExpiresAt time.Time) error {
	if next.ID == "" {
		return fmt.Errorf("postgres: rotate signing key: empty key id")
	}
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, keyRotationLockKey); err != nil {
			return err
		}
		var current string
		err := tx.QueryRow(ctx, `SELECT coalesce((SELECT id FROM signing_keys WHERE retired_at IS NULL
			AND algorithm = $1 ORDER BY created_at DESC NULLS LAST, id DESC LIMIT 1), '')`, next.Algorithm).Scan(&current)
		if err != nil {
			return err
		}
		if current != prevID {
			return storage.ErrConflict
		}
		b := &pgx.Batch{}
		if current != "" {
			b.Queue(`UPDATE signing_keys SET retired_at = $2, expires_at = $3 WHERE id = $1`,
				current, ts(next.CreatedAt), ts(prevExpiresAt))
		}
		b.Queue(`INSERT INTO signing_keys (id, algorithm, private_key, public_jwk, created_at,
			retired_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
			next.ID, next.Algorithm, blob(next.PrivateKey), blob(next.PublicJWK), ts(next.CreatedAt),
			ts(next.RetiredAt), ts(next.ExpiresAt))
		return tx.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return fmt.Errorf("postgres: rotate signing key: %w", mapErr(err))
	}
	return nil
}

// RetireSigningKey retires the unretired key id with no successor, under
// the rotation lock.
func (s *Store) RetireSigningKey(ctx context.Context, id string, retiredAt, expiresAt time.Time) error {
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, keyRotationLockKey); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE signing_keys SET retired_at = $2, expires_at = $3
			WHERE id = $1 AND retired_at IS NULL`, id, ts(retiredAt), ts(expiresAt))
		if err != nil || tag.RowsAffected() == 1 {
			return err
		}
		var found bool
		if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM signing_keys WHERE id = $1)`, id).Scan(&found); err != nil {
			return err
		}
		if !found {
			return storage.ErrNotFound
		}
		return storage.ErrConflict
	})
	if err != nil {
		return fmt.Errorf("postgres: retire signing key %q: %w", id, mapErr(err))
	}
	return nil
}
