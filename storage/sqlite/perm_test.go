//go:build unix

package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

func TestDatabaseFilesArePrivate(t *testing.T) {
	// The most permissive umask: the files must be 0600 anyway.
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	path := filepath.Join(t.TempDir(), "qiao.db")
	s, err := Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC()
	if err := s.CreateUser(context.Background(), storage.User{ID: "u1", CreatedAt: now}, storage.Identity{
		ConnectorID: "weibo", Subject: "1", ConnectorType: "weibo", BoundAt: now, LastUsedAt: now,
	}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatalf("%s: %v", filepath.Base(name), err)
		}
		if mode := fi.Mode().Perm(); mode != 0o600 {
			t.Errorf("%s has mode %#o, want 0600", filepath.Base(name), mode)
		}
	}
}
