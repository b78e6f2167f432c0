package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/qiaoidp/qiao/storage"
)

// CompleteLogin sends everything a finished sign-in writes as one batch:
// one round trip and one implicit transaction. Each part that can fail
// does so with a server error (a unique violation on the spent state or
// the session id, qiao_expect on an identity that is gone, the errors of
// the token ops), which aborts the whole batch.
func (s *Store) CompleteLogin(ctx context.Context, c storage.LoginCompletion) error {
	if err := c.Validate(); err != nil {
		return fmt.Errorf("postgres: complete login: %w", err)
	}
	// parts names the queued statements; done counts those that
	// succeeded (callbacks run in order and stop at the first failure,
	// which is then parts[done]).
	var (
		parts []string
		done  int
	)
	err := s.batch(ctx, func() *pgx.Batch {
		b := &pgx.Batch{}
		parts, done = parts[:0], 0
		track := func(name string, q *pgx.QueuedQuery) {
			parts = append(parts, name)
			q.Exec(func(pgconn.CommandTag) error {
				done++
				return nil
			})
		}
		queue := func(name, sql string, args ...any) { track(name, b.Queue(sql, args...)) }
		if c.State != "" {
			queue("state", `INSERT INTO logins (state, connector_id, binding, data, created_at, expires_at)
				VALUES ($1, $2, '', '\x', NULL, $3)`, c.State, c.StateConnector, ts(c.StateExpiresAt))
		}
		if id := c.UpdateIdentity; id != nil {
			queue("identity", `WITH u AS (UPDATE identities SET union_id = $3, display_name = $4,
					picture = $5, real_profile = $6, secret = $7, last_used_at = $8
					WHERE connector_id = $1 AND subject = $2 RETURNING 1)
				SELECT qiao_expect(EXISTS (SELECT 1 FROM u), 'QN404')`,
				id.ConnectorID, id.Subject, id.UnionID, id.DisplayName, id.Picture, id.RealProfile,
				blob(id.Secret), ts(id.LastUsedAt))
		}
		if c.DeleteSession != "" {
			queue("old session", `DELETE FROM sessions WHERE id = $1`, c.DeleteSession)
		}
		if ss := c.Session; ss != nil {
			queue("session", insertSession, sessionArgs(ss)...)
		}
		for i := range c.Audit {
			queue("audit", insertAudit, auditArgs(&c.Audit[i])...)
		}
		for i, op := range c.TokenOps {
			track(fmt.Sprintf("token op %d", i), queueTokenOp(b, op))
		}
		return b
	})
	if err == nil {
		return nil
	}
	part := "batch"
	if done < len(parts) {
		part = parts[done]
	}
	if part == "state" && sqlState(err) == codeUniqueViolation {
		return fmt.Errorf("postgres: complete login: %w", storage.ErrStateUsed)
	}
	return fmt.Errorf("postgres: complete login: %s: %w", part, mapErr(err))
}
