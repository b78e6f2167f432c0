package qq

import (
	_ "embed"

	"github.com/qiaoidp/qiao/connectors"
)

// Type is the connector type a configuration file names.
const Type = "qq"

// UnionNamespace is the namespace of QQ unionids (one per QQ Connect
// developer account).
const UnionNamespace = "qq"

//go:embed icon.svg
var icon []byte

// Validate reports every problem of a configuration read from a
// configuration file, each as a *connectors.FieldError.
func (c *Config) Validate() error {
	var p connectors.Problems
	p.App(c.ClientID, c.ClientSecret, c.AuthBaseURL, c.APIBaseURL)
	return p.Err()
}

// Open builds the connector.
func (c *Config) Open(id string, deps connectors.Deps) (any, error) {
	return New(*c, deps.Caller)
}

// DisplayName is "QQ" in every language.
func (c *Connector) DisplayName(string) string { return "QQ" }

// Icon is the QQ logo (SVG).
func (c *Connector) Icon() []byte { return icon }

// UnionNamespace: QQ unionids link identities only when configured to
// (link_by_unionid: true), as the unionid permission is granted apart.
func (c *Connector) UnionNamespace() (string, bool) { return UnionNamespace, false }
