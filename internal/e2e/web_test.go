package e2e_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/connectors/sandbox"
)

// TestWebLoginThroughEachConnectorGivesTheSameKindOfToken runs a full
// browser login through each web connector against its simulator.
func TestWebLoginThroughEachConnectorGivesTheSameKindOfToken(t *testing.T) {
	s := newStack(t, stackOptions{})
	r := s.rp()
	alice := person(t, "alice")
	tests := []struct {
		connector string
		ua        string
	}{
		{"wechat", ""},
		{"wechat_mp", weChatUA},
		{"qq", ""},
		{"weibo", ""},
	}
	subs := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.connector, func(t *testing.T) {
			tk := r.mustLogin(t, s.newBrowser(tt.ua), tt.connector, "alice")
			c := tk.claims
			sub, _ := c["sub"].(string)
			if sub == "" {
				t.Fatalf("no sub in %v", c)
			}
			if c["idp"] != tt.connector {
				t.Errorf("idp = %v, want %s", c["idp"], tt.connector)
			}
			if c["iss"] != s.issuer {
				t.Errorf("iss = %v, want %s", c["iss"], s.issuer)
			}
			if c["name"] != alice.Name {
				t.Errorf("name = %v, want the simulator's %q", c["name"], alice.Name)
			}
			// The avatar the simulator serves itself, on its own host
			// (QQ adds its size parameter).
			pic, _ := c["picture"].(string)
			pu, err := url.Parse(pic)
			simURL := map[string]string{"wechat": s.wechatURL, "wechat_mp": s.wechatURL, "qq": s.qqURL, "weibo": s.weiboURL}[tt.connector]
			au, _ := url.Parse(sandbox.AvatarURL(simURL, "alice"))
			if err != nil || pu.Host != au.Host || pu.Path != au.Path {
				t.Errorf("picture = %q, want the simulator's %q", pic, au)
			}
			for _, provID := range []string{s.wechat.OpenID(wxWebAppID, "alice"), s.wechat.OpenID(wxMPAppID, "alice"), s.qq.OpenID(qqAppID, "alice"), s.weibo.UID("alice")} {
				if sub == provID {
					t.Errorf("sub %q is the provider's id", sub)
				}
			}
			if tk.token.RefreshToken == "" {
				t.Error("no refresh token with offline_access")
			}
			subs[tt.connector] = sub

			// The same person again, in a fresh browser: the same sub.
			again := r.mustLogin(t, s.newBrowser(tt.ua), tt.connector, "alice")
			if again.claims["sub"] != sub {
				t.Errorf("second login: sub = %v, want %s", again.claims["sub"], sub)
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
	s := newStack(t, stackOptions{})
	r := s.rp()
	tests := []struct {
		name, ua string
		want     []string
	}{
		{"desktop", "", []string{"wechat", "qq", "weibo"}},
		{"WeChat browser", weChatUA, []string{"wechat_mp", "qq", "weibo"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := s.newBrowser(tt.ua)
			a := r.authRequest("")
			p, err := br.Get(a.url)
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
			tk, err := r.finish(back, a)
			if err != nil {
				t.Fatal(err)
			}
			if tk.claims["idp"] != tt.want[0] || tk.claims["name"] != person(t, "bob").Name {
				t.Errorf("claims %v, want idp %s and bob's name", tk.claims, tt.want[0])
			}
		})
	}
}

// TestRefusalAtTheProviderIsAccessDenied follows the simulators' deny
// links: the RP gets access_denied with its state.
func TestRefusalAtTheProviderIsAccessDenied(t *testing.T) {
	s := newStack(t, stackOptions{})
	r := s.rp()
	for _, connector := range []string{"wechat", "weibo"} {
		t.Run(connector, func(t *testing.T) {
			br := s.newBrowser("")
			a := r.authRequest(connector)
			picker, err := br.Get(a.url)
			if err != nil {
				t.Fatal(err)
			}
			p, err := br.Deny(picker)
			if err != nil {
				t.Fatal(err)
			}
			q, err := p.RedirectQuery()
			if err != nil {
				t.Fatal(err)
			}
			if q.Get("error") != "access_denied" || q.Get("state") != a.state || q.Get("code") != "" {
				t.Fatalf("redirect query %v, want error=access_denied with state %q and no code", q, a.state)
			}
			if v, ok := s.metric(t, "qiao_logins_total", map[string]string{"connector": connector, "result": "denied"}); !ok || v < 1 {
				t.Errorf("qiao_logins_total{connector=%q,result=\"denied\"} = %v (present %v), want >= 1", connector, v, ok)
			}
		})
	}
	t.Run("qq", func(t *testing.T) {
		// QQ closes its window on a cancel and never calls back: the
		// browser stays at QQ, and the broker hands out nothing.
		br := s.newBrowser("")
		a := r.authRequest("qq")
		picker, err := br.Get(a.url)
		if err != nil {
			t.Fatal(err)
		}
		p, err := br.Deny(picker)
		if err != nil {
			t.Fatal(err)
		}
		if p.Status != 200 || p.URL.Host != strings.TrimPrefix(s.qqURL, "http://") {
			t.Fatalf("after a cancel at QQ: HTTP %d at %s, want QQ's closed-window page", p.Status, p.URL)
		}
	})
}

// TestSnapshotUserIsAccessDenied: a WeChat "snapshot" user (is_snapshotuser
// = 1) is refused, and the RP gets access_denied.
func TestSnapshotUserIsAccessDenied(t *testing.T) {
	s := newStack(t, stackOptions{})
	r := s.rp()
	s.wechat.SetSnapshotUser("carol", true)
	q := r.loginError(t, s.newBrowser(weChatUA), "wechat_mp", "carol")
	if q.Get("error") != "access_denied" {
		t.Fatalf("error = %q (%s), want access_denied", q.Get("error"), q.Get("error_description"))
	}
	// Out of snapshot mode, the same person logs in.
	s.wechat.SetSnapshotUser("carol", false)
	tk := r.mustLogin(t, s.newBrowser(weChatUA), "wechat_mp", "carol")
	if tk.claims["name"] != person(t, "carol").Name {
		t.Errorf("name = %v, want carol's", tk.claims["name"])
	}
}
