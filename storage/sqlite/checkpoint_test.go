package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

// TestCheckpointsRunInTheBackground: no commit copies the WAL into the
// database file (the writer's automatic checkpoint is off), and the
// store's own checkpoints still keep the WAL small.
func TestCheckpointsRunInTheBackground(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "qiao.db")
	s, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var auto int
	if err := s.w.QueryRowContext(ctx, `PRAGMA wal_autocheckpoint`).Scan(&auto); err != nil {
		t.Fatal(err)
	}
	if auto != 0 {
		t.Errorf("the writer checkpoints after %d WAL pages, in a request's commit; want 0 (off)", auto)
	}
	// 6 000 commits of ~6 pages each, back to back, make a 150 MB WAL
	// if it never starts over (a passive checkpoint never catches up
	// with a steady stream of commits).
	data := make([]byte, 1024)
	now := time.Now()
	for i := range 6000 {
		r := storage.TokenRecord{Kind: storage.KindAccessToken, Signature: fmt.Sprintf("sig-%d", i), RequestID: fmt.Sprintf("req-%d", i),
			ClientID: "app", Subject: "user", Active: true, Data: data, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := s.ApplyTokenOps(ctx, storage.TokenOp{Type: storage.OpCreate, Record: r}); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > 64<<20 {
		t.Errorf("WAL is %.1f MB after 6 000 commits; want it checkpointed and started over (under 64 MB)", float64(st.Size())/(1<<20))
	}
}
