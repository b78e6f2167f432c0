package postgres

import (
	"context"
	"regexp"
	"sync/atomic"

	"github.com/jackc/pgx/v5"

	"github.com/qiaoidp/qiao/storage"
)

// counter is a pgx tracer that counts round trips and durable commits
// (storage.Counts): a query, a batch, a statement preparation (once per
// connection and statement, pgx caches them) each take one round trip;
// a commit is an explicit COMMIT, or a batch or statement that wrote
// outside an explicit transaction and succeeded.
type counter struct {
	roundTrips atomic.Int64
	commits    atomic.Int64
}

// writes matches the statements that change data (plain or inside a
// CTE) and the token deactivation function.
var writes = regexp.MustCompile(`(?i)\b(insert\s+into|update\s+\w+\s+set|delete\s+from|qiao_deactivate_token)\b`)

var (
	_ pgx.QueryTracer   = (*counter)(nil)
	_ pgx.BatchTracer   = (*counter)(nil)
	_ pgx.PrepareTracer = (*counter)(nil)
)

type writeKey struct{}

func (c *counter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	c.roundTrips.Add(1)
	return context.WithValue(ctx, writeKey{}, data.SQL)
}

func (c *counter) TraceQueryEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceQueryEndData) {
	if data.Err != nil {
		return
	}
	sql, _ := ctx.Value(writeKey{}).(string)
	switch {
	case sql == "commit":
		c.commits.Add(1)
	case writes.MatchString(sql) && conn.PgConn().TxStatus() == 'I':
		c.commits.Add(1)
	}
}

func (c *counter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceBatchStartData) context.Context {
	c.roundTrips.Add(1)
	write := false
	if data.Batch != nil {
		for _, q := range data.Batch.QueuedQueries {
			if writes.MatchString(q.SQL) {
				write = true
				break
			}
		}
	}
	return context.WithValue(ctx, writeKey{}, write)
}

func (c *counter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {}

func (c *counter) TraceBatchEnd(ctx context.Context, conn *pgx.Conn, data pgx.TraceBatchEndData) {
	if write, _ := ctx.Value(writeKey{}).(bool); write && data.Err == nil && conn.PgConn().TxStatus() == 'I' {
		c.commits.Add(1)
	}
}

func (c *counter) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	c.roundTrips.Add(1)
	return ctx
}

func (c *counter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// Counts reports the round trips and durable commits the store has made
// since it was opened.
func (s *Store) Counts() storage.Counts {
	return storage.Counts{RoundTrips: s.n.roundTrips.Load(), Commits: s.n.commits.Load()}
}
