package replicas

import (
	"os"
	"testing"

	"github.com/qiaoidp/qiao/internal/pgtest"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// TestMain shares one PostgreSQL cluster among the tests and removes the
// qiao binary qiaotest built.
func TestMain(m *testing.M) { os.Exit(qiaotest.Main(withPostgres{m})) }

// withPostgres runs the tests with the shared PostgreSQL cluster.
type withPostgres struct{ m *testing.M }

func (r withPostgres) Run() int { return pgtest.Main(r.m) }
