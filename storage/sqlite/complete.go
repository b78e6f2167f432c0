package sqlite

import (
	"context"
	"errors"
	"fmt"

	"github.com/qiaoidp/qiao/storage"
)

// CompleteLogin applies everything a finished sign-in writes in one
// IMMEDIATE transaction.
func (s *Store) CompleteLogin(ctx context.Context, lc storage.LoginCompletion) error {
	if err := lc.Validate(); err != nil {
		return fmt.Errorf("sqlite: complete login: %w", err)
	}
	err := s.rawTx(ctx, func(c *rawConn) error {
		if lc.State != "" {
			_, err := c.exec(qInsertLogin, lc.State, lc.StateConnector, "", []byte{},
				nil, ms(lc.StateExpiresAt))
			if err := mapErr(err); errors.Is(err, storage.ErrAlreadyExists) {
				return storage.ErrStateUsed
			} else if err != nil {
				return fmt.Errorf("state: %w", err)
			}
		}
		if id := lc.UpdateIdentity; id != nil {
			// Mostly the union id stays: try that first; a second
			// statement only if it changed (or the identity is gone).
			n, err := c.exec(qUpdateSameUnion,
				id.DisplayName, id.Picture, int64(boolInt(id.RealProfile)), blob(id.Secret),
				ms(id.LastUsedAt), id.ConnectorID, id.Subject, id.UnionID)
			if err == nil && n == 0 {
				n, err = c.exec(qUpdateIdentity,
					id.UnionID, id.DisplayName, id.Picture, int64(boolInt(id.RealProfile)), blob(id.Secret),
					ms(id.LastUsedAt), id.ConnectorID, id.Subject)
			}
			if err != nil {
				return fmt.Errorf("identity: %w", err)
			}
			if n == 0 {
				return fmt.Errorf("identity of connector %q: %w", id.ConnectorID, storage.ErrNotFound)
			}
		}
		if lc.DeleteSession != "" {
			if _, err := c.exec(qDeleteSession, lc.DeleteSession); err != nil {
				return fmt.Errorf("old session: %w", err)
			}
		}
		if ss := lc.Session; ss != nil {
			if _, err := c.exec(qInsertSession, ss.ID, ss.UserID, ss.ConnectorID,
				ms(ss.AuthTime), ms(ss.ExpiresAt), blob(ss.Data), ss.IdentitySubject); err != nil {
				return fmt.Errorf("session: %w", mapErr(err))
			}
		}
		for _, e := range lc.Audit {
			if _, err := c.exec(qInsertAudit, ms(e.Time), e.Action, e.UserID,
				e.ConnectorID, e.ClientID, e.IP, e.Result, e.Detail); err != nil {
				return fmt.Errorf("audit: %w", err)
			}
		}
		for i, op := range lc.TokenOps {
			if err := applyOp(c, op); err != nil {
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
