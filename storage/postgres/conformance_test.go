package postgres

import (
	"testing"

	"github.com/qiaoidp/qiao/internal/pgtest"
	"github.com/qiaoidp/qiao/storage"
	"github.com/qiaoidp/qiao/storage/storagetest"
)

// TestConformance runs the shared suite on one database, opening a new
// Store (and so re-running the migration check) for every sub-test, as
// replicas restarting against a long-lived database would.
func TestConformance(t *testing.T) {
	dsn := pgtest.Shared(t).NewDatabase(t)
	storagetest.RunTests(t, func(t *testing.T) storage.Storage {
		return openDSN(t, dsn)
	})
}

// TestConformanceOnFreshDatabases runs the suite again with a new
// database for every sub-test.
func TestConformanceOnFreshDatabases(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole suite a second time")
	}
	storagetest.RunTests(t, func(t *testing.T) storage.Storage {
		return openStore(t)
	})
}

func TestReopen(t *testing.T) {
	srv := pgtest.Shared(t)
	dsns := map[string]string{} // suite name -> database
	storagetest.RunReopenTests(t, func(t *testing.T, name string) storage.Storage {
		dsn, ok := dsns[name]
		if !ok {
			dsn = srv.NewDatabase(t)
			dsns[name] = dsn
		}
		return openDSN(t, dsn)
	})
}
