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

// ApplyTokenOps sends every op in one batch: one round trip and one
// implicit transaction. Each op that can fail does so with a server error
// (a unique violation, or the errors qiao_deactivate_token raises), which
// aborts the transaction, so nothing is written; the error of the first
// failing op is returned.
func (s *Store) ApplyTokenOps(ctx context.Context, ops ...storage.TokenOp) error {
	if len(ops) == 0 {
		return nil
	}
	for i, op := range ops {
		if err := op.Validate(); err != nil {
			return fmt.Errorf("postgres: token op %d: %w", i, err)
		}
	}
	// done counts the ops that succeeded: their callbacks run in order
	// and stop at the first failure, which is then ops[done].
	done := 0
	err := s.batch(ctx, func() *pgx.Batch {
		done = 0
		b := &pgx.Batch{}
		for i, op := range ops {
			queueTokenOp(b, op).Exec(func(pgconn.CommandTag) error {
				done = i + 1
				return nil
			})
		}
		return b
	})
	if err != nil {
		return fmt.Errorf("postgres: token op %d: %w", done, mapErr(err))
	}
	return nil
}

// queueTokenOp queues the statement that applies op.
func queueTokenOp(b *pgx.Batch, op storage.TokenOp) *pgx.QueuedQuery {
	switch op.Type {
	case storage.OpCreate:
		r := op.Record
		return b.Queue(`INSERT INTO tokens (kind, signature, request_id, client_id, subject,
			active, data, created_at, expires_at, identity_connector, identity_subject)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
			string(r.Kind), r.Signature, r.RequestID, r.ClientID, r.Subject, r.Active,
			blob(r.Data), ts(r.CreatedAt), ts(r.ExpiresAt), r.IdentityConnector, r.IdentitySubject)
	case storage.OpDeactivate:
		return b.Queue(`SELECT qiao_deactivate_token($1, $2)`, string(op.Kind), op.Signature)
	case storage.OpDelete:
		return b.Queue(`DELETE FROM tokens WHERE kind = $1 AND signature = $2`, string(op.Kind), op.Signature)
	default: // storage.OpRevokeRequest; ops are validated before
		return b.Queue(`DELETE FROM tokens WHERE request_id = $1 AND kind = $2`, op.RequestID, string(op.Kind))
	}
}

// GetToken returns the record, active or not, unless it is absent or
// expired.
func (s *Store) GetToken(ctx context.Context, kind storage.TokenKind, signature string) (storage.TokenRecord, error) {
	var r storage.TokenRecord
	var created, expires pgtype.Timestamptz
	var k string
	err := s.read(ctx, func() error {
		return s.pool.QueryRow(ctx, `SELECT kind, signature, request_id, client_id, subject, active,
			data, created_at, expires_at, identity_connector, identity_subject FROM tokens
			WHERE kind = $1 AND signature = $2 AND (expires_at IS NULL OR expires_at > $3)`,
			string(kind), signature, time.Now().UTC()).
			Scan(&k, &r.Signature, &r.RequestID, &r.ClientID, &r.Subject, &r.Active, &r.Data, &created, &expires,
				&r.IdentityConnector, &r.IdentitySubject)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.TokenRecord{}, storage.ErrNotFound
	}
	if err != nil {
		return storage.TokenRecord{}, fmt.Errorf("postgres: get token: %w", err)
	}
	r.Kind = storage.TokenKind(k)
	r.CreatedAt, r.ExpiresAt = fromTS(created), fromTS(expires)
	return r, nil
}
