package replicas

import (
	"context"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// miniConnector is the base configuration's mini-program connector, which
// the public client qiaotest.MiniClient uses.
const miniConnector = "wechat_miniprogram"

// newInProcess is a qiaotest world with the broker in process on store
// st (under the issuer path), Weibo and the mini-program, seen through a
// cluster's helpers (no balancer: the routing header is ignored).
func newInProcess(tb testing.TB, st qiaotest.Store, opts ...qiaotest.Option) *cluster {
	tb.Helper()
	w := qiaotest.Start(tb, append([]qiaotest.Option{
		qiaotest.WithStore(st),
		qiaotest.WithIssuerPath(issuerPath),
		qiaotest.WithoutConnector("wechat"),
		qiaotest.WithoutConnector("wechat_mp"),
		qiaotest.WithoutConnector("qq"),
		qiaotest.WithConfig(func(c *qiaotest.Config) {
			c.Extra = map[string]any{"tokens": tokenTTLs}
			c.Log = &qiaotest.Log{Level: "info", Format: "json"}
		}),
	}, opts...)...)
	return newWorldCluster(tb, w)
}

// quietLog keeps a benchmark's broker log to warnings.
var quietLog = qiaotest.WithConfig(func(c *qiaotest.Config) { c.Log = &qiaotest.Log{Level: "warn", Format: "json"} })

// exchange posts a mini-program token exchange as the public client.
func (c *cluster) exchange(ctx context.Context, code string) (tokenReply, error) {
	return c.post(ctx, qiaotest.ExchangeForm(miniConnector, qiaotest.MiniClient, code, "openid profile offline_access"), anyReplica, false)
}
