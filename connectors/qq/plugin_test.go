package qq_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/qq"
	"github.com/qiaoidp/qiao/connectors/weibo"
)

// TestQQAndWeiboOpenFromTheirConfigWithNamesAndIcons covers both OAuth
// providers' plug-in side: Validate names the field, Open builds the
// connector, which has names per language and an icon; only QQ has a
// union namespace, off by default.
func TestQQAndWeiboOpenFromTheirConfigWithNamesAndIcons(t *testing.T) {
	type plugin interface {
		Validate() error
		Open(string, connectors.Deps) (any, error)
	}
	type named interface {
		DisplayName(string) string
		Icon() []byte
	}
	for _, tc := range []struct {
		cfg    plugin
		en, zh string
		union  bool
	}{
		{cfg: &qq.Config{}, en: "QQ", zh: "QQ", union: true},
		{cfg: &weibo.Config{}, en: "Weibo", zh: "微博"},
	} {
		err := tc.cfg.Validate()
		var fe *connectors.FieldError
		if !errors.As(err, &fe) || fe.Field != "client_id" || fe.Message != "required field is missing" {
			t.Fatalf("Validate of an empty config: %v", err)
		}
		switch c := tc.cfg.(type) {
		case *qq.Config:
			c.ClientID, c.ClientSecret, c.APIBaseURL = "101", "s", "api.example"
		case *weibo.Config:
			c.ClientID, c.ClientSecret, c.APIBaseURL = "135", "s", "api.example"
		}
		if err := tc.cfg.Validate(); err == nil || !strings.Contains(err.Error(), "api_base_url: must be an absolute http or https URL") {
			t.Errorf("a relative api_base_url: %v", err)
		}
		switch c := tc.cfg.(type) {
		case *qq.Config:
			c.APIBaseURL = ""
		case *weibo.Config:
			c.APIBaseURL = ""
		}
		conn, err := tc.cfg.Open("x", connectors.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		n := conn.(named)
		if n.DisplayName("en") != tc.en || n.DisplayName("zh-CN") != tc.zh || !strings.HasPrefix(string(n.Icon()), "<svg") {
			t.Errorf("%T: names %q/%q, icon %q", conn, n.DisplayName("en"), n.DisplayName("zh-CN"), n.Icon())
		}
		u, ok := conn.(interface{ UnionNamespace() (string, bool) })
		if ok != tc.union {
			t.Errorf("%T: union namespace present = %v", conn, ok)
		} else if ok {
			if ns, link := u.UnionNamespace(); ns != "qq" || link {
				t.Errorf("qq union namespace %q, link %v; want qq, off by default", ns, link)
			}
		}
	}
}
