package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The two write transactions of every login (CompleteLogin and
// ApplyTokenOps) run on the writer's driver connection directly, with
// statements prepared once per connection: database/sql's transaction
// (a goroutine watching its context, a BEGIN and a COMMIT parsed anew)
// and its per-statement wrappers cost more than the statements. Other
// writes keep database/sql's transactions (tx).

const (
	qBegin    = `BEGIN IMMEDIATE`
	qCommit   = `COMMIT`
	qRollback = `ROLLBACK`
)

// rawQueries are prepared on each writer connection that runs a rawTx.
func rawQueries() []string {
	return []string{
		qBegin, qCommit, qRollback,
		qInsertLogin, qUpdateIdentity, qDeleteSession, qInsertSession, qInsertAudit,
		qInsertToken, qDeactivateToken, qTokenExists, qDeleteToken, qRevokeRequest,
	}
}

// rawStmts are the statements prepared on one driver connection.
type rawStmts struct {
	stmts map[string]driver.Stmt
}

// rawCache holds the prepared statements of each writer connection (one,
// unless the pools are shared). A connection is used by one goroutine
// at a time; mu guards only the map.
type rawCache struct {
	mu     sync.Mutex
	conns  map[any]*rawStmts
	closed bool
}

// rawConn is a writer connection inside a rawTx.
type rawConn struct {
	ctx  context.Context
	st   *rawStmts
	n    *counters
	args []driver.NamedValue
}

// rawTx runs fn in one IMMEDIATE transaction on a writer connection,
// committing if fn returns nil. It counts like tx.
func (s *Store) rawTx(ctx context.Context, fn func(*rawConn) error) error {
	ctx = uncancelled(ctx)
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return mapErr(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		st, err := s.raw.stmtsOf(ctx, dc)
		if err != nil {
			return err
		}
		c := &rawConn{ctx: ctx, st: st, n: &s.n}
		if _, err := c.exec(qBegin); err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return s.raw.rollback(c, dc, err)
		}
		if _, err := c.exec(qCommit); err != nil {
			return s.raw.rollback(c, dc, err)
		}
		return nil
	})
	if err != nil {
		return mapErr(err)
	}
	s.n.commits.Add(1)
	return nil
}

// stmtsOf returns the statements prepared on dc, preparing them the
// first time.
func (r *rawCache) stmtsOf(ctx context.Context, dc any) (*rawStmts, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil, errors.New("sqlite: store closed")
	}
	if st, ok := r.conns[dc]; ok {
		return st, nil
	}
	p, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, fmt.Errorf("sqlite: driver connection %T cannot prepare", dc)
	}
	st := &rawStmts{stmts: map[string]driver.Stmt{}}
	for _, q := range rawQueries() {
		ds, err := p.PrepareContext(ctx, q)
		if err != nil {
			st.close()
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
		st.stmts[q] = ds
	}
	if r.conns == nil {
		r.conns = map[any]*rawStmts{}
	}
	r.conns[dc] = st
	return st, nil
}

// close finalizes every prepared statement; the store closes its pools
// right after, so no connection is in use.
func (r *rawCache) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for _, st := range r.conns {
		st.close()
	}
	r.conns = nil
}

func (st *rawStmts) close() {
	for _, ds := range st.stmts {
		ds.Close()
	}
}

// bind fills c.args with args, reusing its array.
func (c *rawConn) bind(args []any) []driver.NamedValue {
	c.args = c.args[:0]
	for i, a := range args {
		c.args = append(c.args, driver.NamedValue{Ordinal: i + 1, Value: a})
	}
	return c.args
}

// exec runs the prepared statement q and returns the rows it changed.
func (c *rawConn) exec(q string, args ...any) (int64, error) {
	c.n.statements.Add(1)
	ds := c.st.stmts[q].(driver.StmtExecContext)
	r, err := ds.ExecContext(c.ctx, c.bind(args))
	if err != nil {
		return 0, err
	}
	return r.RowsAffected()
}

// exists reports whether the query q returns a row.
func (c *rawConn) exists(q string, args ...any) (bool, error) {
	c.n.statements.Add(1)
	ds := c.st.stmts[q].(driver.StmtQueryContext)
	rows, err := ds.QueryContext(c.ctx, c.bind(args))
	if err != nil {
		return false, err
	}
	defer rows.Close()
	dest := make([]driver.Value, len(rows.Columns()))
	switch err := rows.Next(dest); {
	case errors.Is(err, io.EOF):
		return false, nil
	case err != nil:
		return false, err
	}
	return true, nil
}

// rollback ends c's transaction after err. If that fails (SQLite may
// have rolled back already, after an I/O error), the connection is not
// trusted to be outside a transaction: its statements are finalized and
// database/sql is told to discard it (driver.ErrBadConn).
func (r *rawCache) rollback(c *rawConn, dc any, err error) error {
	if _, rerr := c.exec(qRollback); rerr != nil {
		r.mu.Lock()
		if st, ok := r.conns[dc]; ok {
			st.close()
			delete(r.conns, dc)
		}
		r.mu.Unlock()
		return errors.Join(err, driver.ErrBadConn)
	}
	return err
}
