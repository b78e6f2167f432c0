package broker_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/qiaotest"
	"github.com/qiaoidp/qiao/storage"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

// TestAuditRetentionRemovesOldEvents: the broker's garbage collection
// removes audit events older than audit.retain and keeps the younger
// ones; retain 0 keeps everything.
func TestAuditRetentionRemovesOldEvents(t *testing.T) {
	for _, tc := range []struct {
		retain   string
		wantLeft int
	}{
		{"1h", 1},
		{"0", 2},
	} {
		t.Run(tc.retain, func(t *testing.T) {
			e := newEnv(t, envOptions{config: func(c *qiaotest.Config) { extra(c, "audit", map[string]any{"retain": tc.retain}) }})
			store, err := sqlite.Open(t.Context(), e.dbPath())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			now := time.Now().UTC()
			for _, at := range []time.Time{now.Add(-2 * time.Hour), now.Add(-time.Minute)} {
				if err := store.AppendAudit(t.Context(), storage.AuditEvent{Time: at, Action: "login", UserID: "u-retain", Result: "success"}); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan struct{})
			go func() { e.Broker.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			if !qiaotest.Eventually(10*time.Second, func() bool { return strings.Contains(e.Logs.String(), `"msg":"garbage collected"`) }) {
				t.Fatalf("no garbage collection within 10s; logs: %s", e.Logs.String())
			}
			evs, err := store.ListAudit(t.Context(), storage.AuditFilter{UserID: "u-retain"})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != tc.wantLeft {
				t.Fatalf("%d audit events left, want %d: %+v", len(evs), tc.wantLeft, evs)
			}
			if tc.wantLeft == 1 && evs[0].Time.Before(now.Add(-time.Hour)) {
				t.Errorf("the old event survived: %+v", evs[0])
			}
		})
	}
}
