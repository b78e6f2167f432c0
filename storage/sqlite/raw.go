package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The two write transactions of every login (CompleteLogin and
// ApplyTokenOps) and its two reads (GetIdentity and GetToken) run on a
// driver connection directly, with statements prepared once per
// connection: database/sql's transaction (a goroutine watching its
// context, a BEGIN and a COMMIT parsed anew) and its per-statement and
// per-row wrappers cost more than the statements. Other statements keep
// database/sql.

const (
	qBegin    = `BEGIN IMMEDIATE`
	qCommit   = `COMMIT`
	qRollback = `ROLLBACK`
)

// rawWrites are prepared on each writer connection that runs a rawTx.
func rawWrites() []string {
	return []string{
		qBegin, qCommit, qRollback,
		qInsertLogin, qUpdateSameUnion, qUpdateIdentity, qDeleteSession, qInsertSession, qInsertAudit,
		qInsertToken, qDeactivateToken, qTokenExists, qDeleteToken, qRevokeRequest,
	}
}

// rawReads are prepared on each reader connection that runs a rawRead.
func rawReads() []string {
	return []string{qGetToken, qGetIdentity}
}

// rawStmts are the statements prepared on one driver connection, and
// the rawConn that runs them (reused: the connection runs one rawTx or
// rawRead at a time).
type rawStmts struct {
	stmts map[string]driver.Stmt
	conn  rawConn
	row   rawRow
}

// rawCache holds the prepared statements (queries) of each connection of
// a pool. A connection is used by one goroutine at a time; mu guards
// only the map.
type rawCache struct {
	queries func() []string

	mu     sync.Mutex
	conns  map[any]*rawStmts
	closed bool
}

// rawConn is a connection inside a rawTx or a rawRead.
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
		st, err := s.rawW.stmtsOf(ctx, dc)
		if err != nil {
			return err
		}
		c := st.use(ctx, &s.n)
		if _, err := c.exec(qBegin); err != nil {
			return err
		}
		if err := fn(c); err != nil {
			return s.rawW.rollback(c, dc, err)
		}
		if _, err := c.exec(qCommit); err != nil {
			return s.rawW.rollback(c, dc, err)
		}
		return nil
	})
	if err != nil {
		return mapErr(err)
	}
	s.n.commit()
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
	for _, q := range r.queries() {
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
// right after, so no connection is in use. A connection that database/sql
// discarded (one interrupted by a cancelled request, say) may be closed
// already, and finalizing on it would touch freed memory: its statements
// are left unfinalized (a few statements' memory, once, at shutdown).
func (r *rawCache) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closed = true
	for dc, st := range r.conns {
		if v, ok := dc.(driver.Validator); ok && !v.IsValid() {
			continue
		}
		st.close()
	}
	r.conns = nil
}

// use returns the connection's rawConn for one rawTx or rawRead.
func (st *rawStmts) use(ctx context.Context, n *counters) *rawConn {
	st.conn = rawConn{ctx: ctx, st: st, n: n, args: st.conn.args[:0]}
	return &st.conn
}

// rowOf returns the connection's row buffer with n columns, cleared. A
// scan copies what it keeps out of it (strings, and the driver's []byte
// which it allocated for this row).
func (st *rawStmts) rowOf(n int) rawRow {
	if cap(st.row) < n {
		st.row = make(rawRow, n)
	}
	st.row = st.row[:n]
	clear(st.row)
	return st.row
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

// rawRead runs the read q on a reader connection and passes its first
// row to scan; sql.ErrNoRows if there is none.
func (s *Store) rawRead(ctx context.Context, scan func(rawRow) error, q string, args ...any) error {
	ctx = uncancelled(ctx)
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		st, err := s.rawR.stmtsOf(ctx, dc)
		if err != nil {
			return err
		}
		c := st.use(ctx, &s.n)
		c.n.statements.Add(1)
		rows, err := c.st.stmts[q].(driver.StmtQueryContext).QueryContext(ctx, c.bind(args))
		if err != nil {
			return err
		}
		defer rows.Close()
		row := st.rowOf(len(rows.Columns()))
		switch err := rows.Next(row); {
		case errors.Is(err, io.EOF):
			return sql.ErrNoRows
		case err != nil:
			return err
		}
		return scan(row)
	})
}

// rawRow is a row as the driver returns it (int64, float64, string,
// []byte or nil). Its Scan converts to what the store's scans ask.
type rawRow []driver.Value

func (r rawRow) Scan(dest ...any) error {
	if len(dest) != len(r) {
		return fmt.Errorf("sqlite: scan %d columns into %d values", len(r), len(dest))
	}
	for i, d := range dest {
		v := r[i]
		var ok bool
		switch d := d.(type) {
		case *string:
			switch v := v.(type) {
			case string:
				*d, ok = v, true
			case []byte:
				*d, ok = string(v), true
			}
		case *int64:
			*d, ok = v.(int64)
		case *[]byte:
			switch v := v.(type) {
			case []byte:
				*d, ok = v, true
			case string:
				*d, ok = []byte(v), true
			}
		case sql.Scanner:
			if err := d.Scan(v); err != nil {
				return fmt.Errorf("sqlite: column %d: %w", i, err)
			}
			ok = true
		}
		if !ok {
			return fmt.Errorf("sqlite: column %d: cannot scan %T into %T", i, v, d)
		}
	}
	return nil
}
