package weibo

import (
	_ "embed"

	"github.com/qiaoidp/qiao/connectors"
)

// Type is the connector type a configuration file names.
const Type = "weibo"

//go:embed icon.svg
var icon []byte

// Validate reports every problem of a configuration read from a
// configuration file, each as a *connectors.FieldError.
func (c *Config) Validate() error {
	var p connectors.Problems
	p.App(c.ClientID, c.ClientSecret, c.AuthBaseURL, c.APIBaseURL)
	return p.Err()
}

// DisplayName is "Weibo" or "微博".
func (c *Connector) DisplayName(lang string) string {
	if lang == connectors.LangChinese {
		return "微博"
	}
	return "Weibo"
}

// Icon is the Weibo logo (SVG).
func (c *Connector) Icon() []byte { return icon }

// Open builds the connector.
func (c *Config) Open(id string, deps connectors.Deps) (any, error) {
	return New(*c, deps.Caller)
}
