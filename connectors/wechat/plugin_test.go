package wechat_test

import (
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/internal/conntest"
	"github.com/qiaoidp/qiao/connectors/wechat"
)

// TestConnectorsSayWhereAndHowTheyAreOffered: the QR code on a computer
// outside WeChat only, the Official Account inside WeChat only; names in
// both languages; WeChat unionids link by default; the mini-program takes
// wx.login codes.
func TestConnectorsSayWhereAndHowTheyAreOffered(t *testing.T) {
	open := func(typ string) any {
		cfg := wechat.NewConfig(typ)
		cfg.ClientID, cfg.ClientSecret = "wx0123456789abcdef", "secret"
		c, err := cfg.Open("x", connectors.Deps{})
		if err != nil {
			t.Fatalf("open %s: %v", typ, err)
		}
		return c
	}
	type offer interface{ OfferedIn(connectors.Browser) bool }
	type named interface {
		DisplayName(string) string
		Icon() []byte
		UnionNamespace() (string, bool)
	}
	browsers := []connectors.Browser{{}, {Mobile: true}, {WeChat: true, Mobile: true}, {WeChat: true}}
	tests := []struct {
		typ     string
		offered []bool // in browsers, in order
		en, zh  string
	}{
		{wechat.TypeWeb, []bool{true, false, false, false}, "WeChat", "微信"},
		{wechat.TypeMP, []bool{false, false, true, true}, "WeChat Official Account", "微信公众号"},
		// Without scan_login the mini-program is offered in no browser.
		{wechat.TypeMiniProgram, []bool{false, false, false, false}, "WeChat Mini Program", "微信小程序"},
	}
	for _, tc := range tests {
		c := open(tc.typ)
		o, isOffer := c.(offer)
		if isOffer != (tc.offered != nil) {
			t.Errorf("%s: OfferedIn present = %v", tc.typ, isOffer)
		}
		for i, b := range browsers {
			if isOffer && o.OfferedIn(b) != tc.offered[i] {
				t.Errorf("%s offered in %+v = %v, want %v", tc.typ, b, o.OfferedIn(b), tc.offered[i])
			}
		}
		n := c.(named)
		if n.DisplayName("en") != tc.en || n.DisplayName("zh-CN") != tc.zh {
			t.Errorf("%s names %q/%q, want %q/%q", tc.typ, n.DisplayName("en"), n.DisplayName("zh-CN"), tc.en, tc.zh)
		}
		if !strings.HasPrefix(string(n.Icon()), "<svg") {
			t.Errorf("%s has no SVG icon", tc.typ)
		}
		if ns, link := n.UnionNamespace(); ns != "wechat" || !link {
			t.Errorf("%s union namespace %q link %v, want wechat, true", tc.typ, ns, link)
		}
	}
	if tt, ok := open(wechat.TypeMiniProgram).(interface{ SubjectTokenType() string }); !ok || tt.SubjectTokenType() != "urn:qiao:params:oauth:token-type:wechat-js-code" {
		t.Error("the mini-program does not take wx.login codes")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		typ, scope string
		fields     string
	}{
		{wechat.TypeMP, "", ""},
		{wechat.TypeMP, wechat.ScopeBase, ""},
		{wechat.TypeMP, "snsapi_login", "scope"},
		{wechat.TypeWeb, wechat.ScopeBase, "scope"},
	}
	for _, tc := range tests {
		cfg := wechat.NewConfig(tc.typ)
		cfg.ClientID, cfg.ClientSecret, cfg.Scope = "wx1", "s", tc.scope
		got := conntest.Fields(cfg.Validate())
		if strings.Join(got, ",") != tc.fields {
			t.Errorf("%s scope %q: problems with %v, want %q", tc.typ, tc.scope, got, tc.fields)
		}
	}
	cfg := wechat.NewConfig(wechat.TypeWeb)
	cfg.AuthBaseURL = "ftp://x"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "client_id: required") || !strings.Contains(err.Error(), "auth_base_url") {
		t.Errorf("Validate of an empty config with a bad URL: %v", err)
	}
}
