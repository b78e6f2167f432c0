package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/qiaoidp/qiao/storage"
)

// CompleteLogin applies everything a finished sign-in writes in one
// IMMEDIATE transaction.
func (s *Store) CompleteLogin(ctx context.Context, c storage.LoginCompletion) error {
	for i, op := range c.TokenOps {
		if err := op.Validate(); err != nil {
			return fmt.Errorf("sqlite: complete login: token op %d: %w", i, err)
		}
	}
	if c.Session != nil && c.Session.ID == "" {
		return errors.New("sqlite: complete login: session with an empty id")
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if c.State != "" {
			_, err := s.wstmt(ctx, tx, qInsertLogin).ExecContext(ctx, c.State, c.StateConnector, "", []byte{},
				nil, ms(c.StateExpiresAt))
			if err := mapErr(err); errors.Is(err, storage.ErrAlreadyExists) {
				return storage.ErrStateUsed
			} else if err != nil {
				return fmt.Errorf("state: %w", err)
			}
		}
		if id := c.UpdateIdentity; id != nil {
			r, err := s.wstmt(ctx, tx, qUpdateIdentity).ExecContext(ctx,
				id.UnionID, id.DisplayName, id.Picture, boolInt(id.RealProfile), blob(id.Secret),
				ms(id.LastUsedAt), id.ConnectorID, id.Subject)
			if err != nil {
				return fmt.Errorf("identity: %w", err)
			}
			if n, err := r.RowsAffected(); err != nil {
				return fmt.Errorf("identity: %w", err)
			} else if n == 0 {
				return fmt.Errorf("identity of connector %q: %w", id.ConnectorID, storage.ErrNotFound)
			}
		}
		if c.DeleteSession != "" {
			if _, err := s.wstmt(ctx, tx, qDeleteSession).ExecContext(ctx, c.DeleteSession); err != nil {
				return fmt.Errorf("old session: %w", err)
			}
		}
		if ss := c.Session; ss != nil {
			if _, err := s.wstmt(ctx, tx, qInsertSession).ExecContext(ctx, ss.ID, ss.UserID, ss.ConnectorID,
				ms(ss.AuthTime), ms(ss.ExpiresAt), blob(ss.Data), ss.IdentitySubject); err != nil {
				return fmt.Errorf("session: %w", mapErr(err))
			}
		}
		for _, e := range c.Audit {
			if _, err := s.wstmt(ctx, tx, qInsertAudit).ExecContext(ctx, ms(e.Time), e.Action, e.UserID,
				e.ConnectorID, e.ClientID, e.IP, e.Result, e.Detail); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}
		for i, op := range c.TokenOps {
			if err := s.applyOp(ctx, tx, op); err != nil {
				return fmt.Errorf("token op %d (%s %s): %w", i, opName(op.Type), opKind(op), mapErr(err))
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("sqlite: complete login: %w", err)
	}
	return nil
}
