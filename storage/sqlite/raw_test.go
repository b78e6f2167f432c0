package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"testing"

	"github.com/qiaoidp/qiao/storage"
)

// TestCloseAfterADiscardedConnection: a connection database/sql threw
// away (as it does with one a cancelled request interrupted) had
// statements prepared on it; closing the store afterwards is clean.
func TestCloseAfterADiscardedConnection(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "qiao.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetToken(ctx, storage.KindAccessToken, "none"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetToken: %v, want not found", err)
	}
	// Discard every reader connection (each may hold the read's
	// statements): Raw's ErrBadConn makes database/sql close it.
	for range 8 {
		conn, err := s.r.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
	}
	if _, err := s.GetToken(ctx, storage.KindAccessToken, "none"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetToken on a new connection: %v, want not found", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}
