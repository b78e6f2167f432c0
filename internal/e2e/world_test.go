package e2e_test

import (
	"net/url"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// The end-to-end tests run on qiaotest's base world (the simulators, the
// broker in process on SQLite, the web client "web" and the
// mini-program client "mini"), varied by the options below.

// miniConnector is the base world's mini-program connector.
const miniConnector = "wechat_miniprogram"

// linkWeChat sets the deprecated linking keys as these tests always
// have: linking.wechat_unionid as given, linking.qq_unionid off.
func linkWeChat(on bool) qiaotest.Option {
	return qiaotest.WithConfig(func(c *qiaotest.Config) {
		c.Linking = map[string]bool{"wechat_unionid": on, "qq_unionid": false}
	})
}

// newWorld is qiaotest.Start with WeChat linking off (linkWeChat(false))
// unless an option says otherwise.
func newWorld(t *testing.T, opts ...qiaotest.Option) *qiaotest.World {
	t.Helper()
	return qiaotest.Start(t, append([]qiaotest.Option{linkWeChat(false)}, opts...)...)
}

// qqUnionID makes the qq connector ask for unionids; permission says
// whether QQ granted its app the unionid permission.
func qqUnionID(permission bool) qiaotest.Option {
	return qiaotest.WithConfig(func(c *qiaotest.Config) {
		k := c.Connector("qq")
		k.Config["unionid"] = true
		k.App.UnionID = permission
	})
}

// mpNoUnionID: the Official Account is not bound to the Open Platform
// account, so WeChat gives it no unionid.
func mpNoUnionID() qiaotest.Option {
	return qiaotest.WithConfig(func(c *qiaotest.Config) { c.Connector("wechat_mp").App.NoUnionID = true })
}

// scanLogin turns on the mini-program's scan_login and lets the web
// client use it.
func scanLogin() qiaotest.Option {
	return qiaotest.WithConfig(func(c *qiaotest.Config) {
		c.Connector(miniConnector).Config["scan_login"] = map[string]any{"page": "pages/scan/index"}
		web := c.Client(qiaotest.WebClient)
		web.Connectors = append(web.Connectors, miniConnector)
	})
}

// exchangeForm trades a wx.login code of the base world's mini-program
// for tokens of the mini client.
func exchangeForm(code, scope string) url.Values {
	return qiaotest.ExchangeForm(miniConnector, qiaotest.MiniClient, code, scope)
}
