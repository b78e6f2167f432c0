package registry_test

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/cmd/qiao/registry"
	"github.com/qiaoidp/qiao/connectors"
)

// TestEveryTypeOpens: each registered type's config can build its
// connector (the broker opens connectors through this method only), and
// no name is registered twice.
func TestEveryTypeOpens(t *testing.T) {
	seen := map[string]bool{}
	for _, typ := range registry.Types() {
		if seen[typ.Name] {
			t.Errorf("type %q registered twice", typ.Name)
		}
		seen[typ.Name] = true
		if _, ok := typ.New().(interface {
			Open(string, connectors.Deps) (any, error)
		}); !ok {
			t.Errorf("type %q: its config has no Open(id, connectors.Deps)", typ.Name)
		}
	}
	for _, want := range []string{"wechat", "wechat_mp", "wechat_miniprogram", "qq", "weibo", "oidc"} {
		if !seen[want] {
			t.Errorf("type %q is not registered", want)
		}
	}
}

// TestBrokerAndConfigNameNoProvider: the registry is the only place that
// imports the provider packages; config and broker see capabilities. The
// broker (and every package under it) does not read the configuration
// either: cmd/qiao/wire hands it plain options.
func TestBrokerAndConfigNameNoProvider(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/qiaoidp/qiao/broker", "github.com/qiaoidp/qiao/config").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, "github.com/qiaoidp/qiao/connectors/") {
			t.Errorf("broker or config depends on the provider package %s", pkg)
		}
	}
	out, err = exec.Command("go", "list", "-deps", "github.com/qiaoidp/qiao/broker/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "github.com/qiaoidp/qiao/config" || strings.HasPrefix(pkg, "github.com/qiaoidp/qiao/cmd/") {
			t.Errorf("broker depends on %s; it takes plain broker.Options (cmd/qiao/wire translates the configuration)", pkg)
		}
	}
}
