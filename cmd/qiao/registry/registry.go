// Package registry is the one place that names every provider: the
// connector types a configuration file may use, each with its provider
// package's Config. It lives with the command (cmd/qiao) so that the
// configuration reader and the broker name no provider; it is a package
// of its own, not part of main, so that the test harnesses build the same
// world the binary does.
//
// Adding a provider is one package under connectors/ (its Config with
// yaml tags, Validate and Open, and the connector it opens) and one line
// here.
package registry

import (
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/connectors/oidc"
	"github.com/qiaoidp/qiao/connectors/qq"
	"github.com/qiaoidp/qiao/connectors/wechat"
	"github.com/qiaoidp/qiao/connectors/weibo"
)

// Types returns the connector types, in the order error messages list them.
func Types() config.ConnectorTypes {
	return config.ConnectorTypes{
		{Name: wechat.TypeWeb, New: func() config.ConnectorConfig { return wechat.NewConfig(wechat.TypeWeb) }},
		{Name: wechat.TypeMP, New: func() config.ConnectorConfig { return wechat.NewConfig(wechat.TypeMP) }},
		{Name: wechat.TypeMiniProgram, New: func() config.ConnectorConfig { return wechat.NewConfig(wechat.TypeMiniProgram) }},
		{Name: qq.Type, New: func() config.ConnectorConfig { return new(qq.Config) }},
		{Name: weibo.Type, New: func() config.ConnectorConfig { return new(weibo.Config) }},
		{Name: oidc.Type, New: func() config.ConnectorConfig { return new(oidc.Config) }},
	}
}
