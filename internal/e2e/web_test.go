package e2e_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// TestWebLoginThroughEachConnectorGivesTheSameKindOfToken runs a full
// browser login through each web connector against its simulator.
func TestWebLoginThroughEachConnectorGivesTheSameKindOfToken(t *testing.T) {
	s := newWorld(t)
	r := s.RP(qiaotest.WebClient)
	alice := qiaotest.Person(t, "alice")
	tests := []struct {
		connector string
		ua        string
	}{
		{"wechat", ""},
		{"wechat_mp", qiaotest.WeChatUA},
		{"qq", ""},
		{"weibo", ""},
	}
	subs := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.connector, func(t *testing.T) {
			tk := r.MustLogin(t, s.Browser(tt.ua), tt.connector, "alice")
			c := tk.Claims
			sub, _ := c["sub"].(string)
			if sub == "" {
				t.Fatalf("no sub in %v", c)
			}
			if c["idp"] != tt.connector {
				t.Errorf("idp = %v, want %s", c["idp"], tt.connector)
			}
			if c["iss"] != s.Issuer {
				t.Errorf("iss = %v, want %s", c["iss"], s.Issuer)
			}
			if c["name"] != alice.Name {
				t.Errorf("name = %v, want the simulator's %q", c["name"], alice.Name)
			}
			// The avatar the simulator serves itself, on its own host
			// (QQ adds its size parameter).
			pic, _ := c["picture"].(string)
			pu, err := url.Parse(pic)
			simURL := map[string]string{"wechat": s.WeChatURL, "wechat_mp": s.WeChatURL, "qq": s.QQURL, "weibo": s.WeiboURL}[tt.connector]
			au, _ := url.Parse(sandbox.AvatarURL(simURL, "alice"))
			if err != nil || pu.Host != au.Host || pu.Path != au.Path {
				t.Errorf("picture = %q, want the simulator's %q", pic, au)
			}
			for _, provID := range []string{s.WeChat.OpenID(s.AppID("wechat"), "alice"), s.WeChat.OpenID(s.AppID("wechat_mp"), "alice"), s.QQ.OpenID(s.AppID("qq"), "alice"), s.Weibo.UID("alice")} {
				if sub == provID {
					t.Errorf("sub %q is the provider's id", sub)
				}
			}
			if tk.Token.RefreshToken == "" {
				t.Error("no refresh token with offline_access")
			}
			subs[tt.connector] = sub

			// The same person again, in a fresh browser: the same sub.
			again := r.MustLogin(t, s.Browser(tt.ua), tt.connector, "alice")
			if again.Claims["sub"] != sub {
				t.Errorf("second login: sub = %v, want %s", again.Claims["sub"], sub)
			}
		})
	}
	// Linking is off in this stack and nothing else links: four users.
	seen := map[string]string{}
	for k, sub := range subs {
		if other, dup := seen[sub]; dup {
			t.Errorf("%s and %s share sub %s with linking off", k, other, sub)
		}
		seen[sub] = k
	}
}

// TestChooserOffersTheRightWeChatLogin checks the chooser page: the QR
// code outside WeChat, the Official Account inside it.
func TestChooserOffersTheRightWeChatLogin(t *testing.T) {
	s := newWorld(t)
	r := s.RP(qiaotest.WebClient)
	tests := []struct {
		name, ua string
		want     []string
	}{
		{"desktop", "", []string{"wechat", "qq", "weibo"}},
		{"WeChat browser", qiaotest.WeChatUA, []string{"wechat_mp", "qq", "weibo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := s.Browser(tt.ua)
			a := r.AuthRequest("")
			p, err := br.Get(a.URL)
			if err != nil {
				t.Fatal(err)
			}
			links, err := p.Links("data-connector-id")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, l := range links {
				got = append(got, l.Attrs["data-connector-id"])
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("chooser offers %v, want %v", got, tt.want)
			}
			// Choosing one runs that provider's login to the end.
			l, _ := p.Link("data-connector-id", tt.want[0])
			picker, err := br.Get(l.Href)
			if err != nil {
				t.Fatal(err)
			}
			back, err := br.Pick(picker, "bob")
			if err != nil {
				t.Fatal(err)
			}
			tk, err := r.Finish(back, a)
			if err != nil {
				t.Fatal(err)
			}
			if tk.Claims["idp"] != tt.want[0] || tk.Claims["name"] != qiaotest.Person(t, "bob").Name {
				t.Errorf("claims %v, want idp %s and bob's name", tk.Claims, tt.want[0])
			}
		})
	}
}

// TestRefusalAtTheProviderIsAccessDenied follows the simulators' deny
// links: the RP gets access_denied with its state.
func TestRefusalAtTheProviderIsAccessDenied(t *testing.T) {
	s := newWorld(t)
	r := s.RP(qiaotest.WebClient)
	for _, connector := range []string{"wechat", "weibo"} {
		t.Run(connector, func(t *testing.T) {
			q, err := s.Browser("").Deny(connector) // checks the state
			if err != nil {
				t.Fatal(err)
			}
			if q.Get("error") != "access_denied" || q.Get("code") != "" {
				t.Fatalf("redirect query %v, want error=access_denied and no code", q)
			}
			if v, ok := s.Metric(t, "qiao_logins_total", map[string]string{"connector": connector, "result": "denied"}); !ok || v < 1 {
				t.Errorf("qiao_logins_total{connector=%q,result=\"denied\"} = %v (present %v), want >= 1", connector, v, ok)
			}
		})
	}
	t.Run("qq", func(t *testing.T) {
		// QQ closes its window on a cancel and never calls back: the
		// browser stays at QQ, and the broker hands out nothing.
		br := s.Browser("")
		a := r.AuthRequest("qq")
		picker, err := br.Get(a.URL)
		if err != nil {
			t.Fatal(err)
		}
		p, err := br.Refuse(picker)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != 200 || p.URL.Host != strings.TrimPrefix(s.QQURL, "http://") {
			t.Fatalf("after a cancel at QQ: HTTP %d at %s, want QQ's closed-window page", p.Status, p.URL)
		}
	})
}

// TestSnapshotUserIsAccessDenied: a WeChat "snapshot" user (is_snapshotuser
// = 1) is refused, and the RP gets access_denied.
func TestSnapshotUserIsAccessDenied(t *testing.T) {
	s := newWorld(t)
	r := s.RP(qiaotest.WebClient)
	s.WeChat.SetSnapshotUser("carol", true)
	q := r.LoginError(t, s.Browser(qiaotest.WeChatUA), "wechat_mp", "carol", nil)
	if q.Get("error") != "access_denied" {
		t.Fatalf("error = %q (%s), want access_denied", q.Get("error"), q.Get("error_description"))
	}
	// Out of snapshot mode, the same person logs in.
	s.WeChat.SetSnapshotUser("carol", false)
	tk := r.MustLogin(t, s.Browser(qiaotest.WeChatUA), "wechat_mp", "carol")
	if tk.Claims["name"] != qiaotest.Person(t, "carol").Name {
		t.Errorf("name = %v, want carol's", tk.Claims["name"])
	}
}
