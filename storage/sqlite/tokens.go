package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

// ApplyTokenOps applies ops in order in one IMMEDIATE transaction; the
// first failing op rolls everything back.
func (s *Store) ApplyTokenOps(ctx context.Context, ops ...storage.TokenOp) error {
	if len(ops) == 0 {
		return nil
	}
	for i, op := range ops {
		if err := op.Validate(); err != nil {
			return fmt.Errorf("sqlite: token op %d: %w", i, err)
		}
	}
	return s.rawTx(ctx, func(c *rawConn) error {
		for i, op := range ops {
			if err := applyOp(c, op); err != nil {
				return fmt.Errorf("sqlite: token op %d (%s %s): %w", i, opName(op.Type), opKind(op), mapErr(err))
			}
		}
		return nil
	})
}

func applyOp(c *rawConn, op storage.TokenOp) error {
	switch op.Type {
	case storage.OpCreate:
		r := op.Record
		_, err := c.exec(qInsertToken,
			string(r.Kind), r.Signature, r.RequestID, r.ClientID, r.Subject, int64(boolInt(r.Active)),
			blob(r.Data), ms(r.CreatedAt), ms(r.ExpiresAt), r.IdentityConnector, r.IdentitySubject)
		return err
	case storage.OpDeactivate:
		n, err := c.exec(qDeactivateToken, string(op.Kind), op.Signature)
		if err != nil {
			return err
		}
		if n == 1 {
			return nil
		}
		found, err := c.exists(qTokenExists, string(op.Kind), op.Signature)
		switch {
		case err != nil:
			return err
		case !found:
			return storage.ErrNotFound
		}
		return storage.ErrConflict
	case storage.OpDelete:
		_, err := c.exec(qDeleteToken, string(op.Kind), op.Signature)
		return err
	case storage.OpRevokeRequest:
		_, err := c.exec(qRevokeRequest, op.RequestID, string(op.Kind))
		return err
	}
	return fmt.Errorf("unknown op type %d", op.Type)
}

func opName(t storage.TokenOpType) string {
	switch t {
	case storage.OpCreate:
		return "create"
	case storage.OpDeactivate:
		return "deactivate"
	case storage.OpDelete:
		return "delete"
	case storage.OpRevokeRequest:
		return "revoke request"
	}
	return fmt.Sprintf("op %d", t)
}

func opKind(op storage.TokenOp) storage.TokenKind {
	if op.Type == storage.OpCreate {
		return op.Record.Kind
	}
	return op.Kind
}

// GetToken returns the record, active or not, unless absent or expired.
func (s *Store) GetToken(ctx context.Context, kind storage.TokenKind, signature string) (storage.TokenRecord, error) {
	var (
		r                storage.TokenRecord
		k                string
		active           int64
		created, expires sql.NullInt64
	)
	err := s.rawRead(ctx, func(row rawRow) error {
		return row.Scan(&k, &r.Signature, &r.RequestID, &r.ClientID, &r.Subject, &active, &r.Data, &created, &expires,
			&r.IdentityConnector, &r.IdentitySubject)
	}, qGetToken, string(kind), signature)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && expired(expires, time.Now())) {
		return storage.TokenRecord{}, fmt.Errorf("sqlite: %s: %w", kind, storage.ErrNotFound)
	}
	if err != nil {
		return storage.TokenRecord{}, fmt.Errorf("sqlite: get %s: %w", kind, err)
	}
	r.Kind = storage.TokenKind(k)
	r.Active = active != 0
	r.CreatedAt = fromMS(created)
	r.ExpiresAt = fromMS(expires)
	return r, nil
}
