package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// WAL checkpoints run off the request path. SQLite's default is an
// automatic checkpoint by the connection whose commit takes the WAL past
// 1 000 pages: that commit then copies the WAL into the database file
// and syncs it while every other writer waits for the one writer
// connection. The writer has wal_autocheckpoint off instead, and a
// goroutine of the store checkpoints on a connection of its own, after
// every checkpointCommits commits or, while there are commits, every
// checkpointIdle. Its checkpoints are PASSIVE: they copy what they can
// beside the readers and the writer and never wait for them. Under a
// steady stream of commits a passive checkpoint never catches up with
// the last commit, and the WAL (which starts over only once all of it
// is in the database file when a write begins) would grow without end;
// so once it holds more than checkpointRestartPages pages, a RESTART
// checkpoint follows on the writer pool: it takes its turn like a write
// transaction, copies the little that the passive one left, and lets
// the next commit start the WAL over.
const (
	checkpointCommits      = 64
	checkpointIdle         = time.Second
	checkpointRestartPages = 4096 // 16 MiB of 4 KiB pages
)

// checkpointer is the store's checkpoint goroutine and its connection.
type checkpointer struct {
	db   *sql.DB // the checkpointer's own connection
	w    *sql.DB // the writer pool
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// startCheckpointer opens the checkpoint connection on the file at abs
// and starts the goroutine, which watches s.n.commits.
func (s *Store) startCheckpointer(abs string) error {
	db, err := sql.Open("sqlite", dsn(abs, roleCheckpointer))
	if err != nil {
		return err
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	c := &checkpointer{db: db, w: s.w, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	s.n.kick = c.kick
	s.ckpt = c
	go c.run(&s.n)
	return nil
}

func (c *checkpointer) run(n *counters) {
	defer close(c.done)
	t := time.NewTicker(checkpointIdle)
	defer t.Stop()
	var last int64
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		case <-t.C:
			if n.commits.Load() == last {
				continue
			}
		}
		last = n.commits.Load()
		c.checkpoint()
	}
}

// checkpoint runs one checkpoint. A failed one (another process is
// checkpointing the file) is retried with the next; nothing is lost.
func (c *checkpointer) checkpoint() {
	ctx := context.Background()
	var busy, pages, copied int64
	if err := c.db.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &pages, &copied); err != nil {
		return
	}
	if pages > checkpointRestartPages {
		_, _ = c.w.ExecContext(ctx, `PRAGMA wal_checkpoint(RESTART)`)
	}
}

// close stops the goroutine and closes its connection. Closing the last
// connection to the file then checkpoints what is left.
func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.db.Close()
}
