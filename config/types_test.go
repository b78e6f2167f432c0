package config

import (
	"github.com/qiaoidp/qiao/connectors/qq"
	"github.com/qiaoidp/qiao/connectors/wechat"
	"github.com/qiaoidp/qiao/connectors/weibo"
)

// testTypes are the provider connector types, as cmd/qiao/registry lists
// them (that package imports this one, so these tests cannot import it).
func testTypes() ConnectorTypes {
	return ConnectorTypes{
		{Name: wechat.TypeWeb, New: func() ConnectorConfig { return wechat.NewConfig(wechat.TypeWeb) }},
		{Name: wechat.TypeMP, New: func() ConnectorConfig { return wechat.NewConfig(wechat.TypeMP) }},
		{Name: wechat.TypeMiniProgram, New: func() ConnectorConfig { return wechat.NewConfig(wechat.TypeMiniProgram) }},
		{Name: qq.Type, New: func() ConnectorConfig { return new(qq.Config) }},
		{Name: weibo.Type, New: func() ConnectorConfig { return new(weibo.Config) }},
	}
}
