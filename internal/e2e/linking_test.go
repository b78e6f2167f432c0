package e2e_test

import (
	"net/http"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// TestWeChatUnionIDLinksTheThreeWeChatLogins: the same person through the
// website QR code, the Official Account and the mini-program is one user
// with linking.wechat_unionid on, three users with it off, and an app not
// bound to the Open Platform account (no unionid) stays apart.
func TestWeChatUnionIDLinksTheThreeWeChatLogins(t *testing.T) {
	tests := []struct {
		name string
		opts []qiaotest.Option
		// which of web, mp and mini share the web login's sub
		mpSame, miniSame bool
	}{
		{"linking on", []qiaotest.Option{linkWeChat(true)}, true, true},
		{"linking off", []qiaotest.Option{linkWeChat(false)}, false, false},
		{"Official Account without unionid", []qiaotest.Option{linkWeChat(true), mpNoUnionID()}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newWorld(t, tt.opts...)
			r := s.RP(qiaotest.WebClient)
			web := r.MustLogin(t, s.Browser(""), "wechat", "alice").Claims["sub"]
			mp := r.MustLogin(t, s.Browser(qiaotest.WeChatUA), "wechat_mp", "alice").Claims["sub"]
			status, m, body := s.PostToken(t, exchangeForm(s.LoginCode(miniConnector, "alice"), "openid profile"))
			if status != http.StatusOK {
				t.Fatalf("mini-program login: HTTP %d: %s", status, body)
			}
			miniClaims := s.VerifyIDToken(t, m["id_token"].(string), qiaotest.MiniClient)
			mini := miniClaims["sub"]
			if (mp == web) != tt.mpSame {
				t.Errorf("Official Account sub %v, website sub %v: same = %v, want %v", mp, web, mp == web, tt.mpSame)
			}
			if (mini == web) != tt.miniSame {
				t.Errorf("mini-program sub %v, website sub %v: same = %v, want %v", mini, web, mini == web, tt.miniSame)
			}
			if mini == mp && !(tt.mpSame && tt.miniSame) {
				t.Errorf("mini-program and Official Account share sub %v", mini)
			}
			if tt.miniSame && miniClaims["name"] != qiaotest.Person(t, "alice").Name {
				// The linked user's profile comes from the web identity.
				t.Errorf("mini-program login of the linked user: name %v, want alice's", miniClaims["name"])
			}
			// Another person never joins alice.
			bob := r.MustLogin(t, s.Browser(""), "wechat", "bob").Claims["sub"]
			if bob == web || bob == mp || bob == mini {
				t.Errorf("bob got one of alice's subs (%v)", bob)
			}
		})
	}
}
