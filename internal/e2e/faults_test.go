package e2e_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// TestProviderErrorsDuringWebLoginBecomeOAuthErrors injects each provider
// error the simulators can produce into a web login: the RP always gets a
// redirect with the right OAuth error and its state, never a 500.
func TestProviderErrorsDuringWebLoginBecomeOAuthErrors(t *testing.T) {
	s := newWorld(t)
	r := s.RP(qiaotest.WebClient)
	const (
		wxToken    = "/sns/oauth2/access_token"
		wxUserInfo = "/sns/userinfo"
		qqToken    = sandbox.QQPathToken
		qqMe       = sandbox.QQPathMe
		qqInfo     = sandbox.QQPathUserInfo
		wbToken    = sandbox.WeiboPathToken
		wbShow     = sandbox.WeiboPathUsersShow
	)
	tests := []struct {
		name      string
		connector string
		ua        string
		inject    func()
		want      string // OAuth error at the RP
		result    string // qiao_logins_total result label
	}{
		{"wechat busy twice (-1)", "wechat", "", func() { s.WeChat.InjectFault(sandbox.Fault{Path: wxToken, Code: -1, Times: 2}) }, "temporarily_unavailable", "unavailable"},
		{"wechat quota (45011)", "wechat", "", func() { s.WeChat.InjectFault(sandbox.Fault{Path: wxToken, Code: 45011, Times: 1}) }, "temporarily_unavailable", "unavailable"},
		{"wechat daily quota (45009)", "wechat", "", func() { s.WeChat.InjectFault(sandbox.Fault{Path: wxToken, Code: 45009, Times: 1}) }, "temporarily_unavailable", "unavailable"},
		{"wechat down", "wechat", "", func() { s.WeChat.InjectFault(sandbox.Fault{Path: wxToken, Kind: sandbox.FaultDown}) }, "temporarily_unavailable", "unavailable"},
		{"wechat empty gbk reply", "wechat", "", func() { s.WeChat.InjectFault(sandbox.Fault{Path: wxToken, Kind: sandbox.FaultEmpty, Times: 1}) }, "temporarily_unavailable", "unavailable"},
		{"wechat captive portal HTML", "wechat", "", func() { s.WeChat.InjectFault(sandbox.Fault{Path: wxToken, Kind: sandbox.FaultHTML, Times: 1}) }, "temporarily_unavailable", "unavailable"},
		{"wechat code invalid (40029)", "wechat", "", func() { s.WeChat.InjectFault(sandbox.Fault{Path: wxToken, Code: 40029, Times: 1}) }, "access_denied", "invalid_code"},
		{"wechat code used (40163)", "wechat", "", func() { s.WeChat.InjectFault(sandbox.Fault{Path: wxToken, Code: 40163, Times: 1}) }, "access_denied", "invalid_code"},
		{"wechat high-risk user (40226)", "wechat", "", func() { s.WeChat.InjectFault(sandbox.Fault{Path: wxToken, Code: 40226, Times: 1}) }, "access_denied", "denied"},
		{"wechat bad secret (40125)", "wechat", "", func() { s.WeChat.InjectFault(sandbox.Fault{Path: wxToken, Code: 40125, Times: 1}) }, "server_error", "error"},
		{"wechat_mp userinfo busy", "wechat_mp", qiaotest.WeChatUA, func() { s.WeChat.InjectFault(sandbox.Fault{Path: wxUserInfo, Code: -1, Times: 2}) }, "temporarily_unavailable", "unavailable"},
		{"wechat_mp API not granted (48001)", "wechat_mp", qiaotest.WeChatUA, func() { s.WeChat.InjectFault(sandbox.Fault{Path: wxUserInfo, Code: 48001, Times: 1}) }, "server_error", "error"},
		{"qq gateway 503", "qq", "", func() { s.QQ.InjectFault(sandbox.Fault{Path: qqToken, Kind: sandbox.FaultBusy, Times: 1}) }, "temporarily_unavailable", "unavailable"},
		{"qq down", "qq", "", func() { s.QQ.InjectFault(sandbox.Fault{Kind: sandbox.FaultDown}) }, "temporarily_unavailable", "unavailable"},
		{"qq bad code (100019)", "qq", "", func() { s.QQ.InjectFault(sandbox.Fault{Path: qqToken, Code: 100019, Times: 1}) }, "access_denied", "invalid_code"},
		{"qq code reused (100020)", "qq", "", func() { s.QQ.InjectFault(sandbox.Fault{Path: qqToken, Code: 100020, Times: 1}) }, "access_denied", "invalid_code"},
		{"qq bad app key (100009)", "qq", "", func() { s.QQ.InjectFault(sandbox.Fault{Path: qqToken, Code: 100009, Times: 1}) }, "server_error", "error"},
		{"qq token refused at /me (100016)", "qq", "", func() { s.QQ.InjectFault(sandbox.Fault{Path: qqMe, Code: 100016, Times: 1}) }, "access_denied", "invalid_code"},
		{"qq get_user_info busy", "qq", "", func() { s.QQ.InjectFault(sandbox.Fault{Path: qqInfo, Kind: sandbox.FaultBusy, Times: 1}) }, "temporarily_unavailable", "unavailable"},
		{"weibo 503", "weibo", "", func() { s.Weibo.InjectFault(sandbox.Fault{Path: wbToken, Kind: sandbox.FaultBusy, Times: 1}) }, "temporarily_unavailable", "unavailable"},
		{"weibo rate limit (10023)", "weibo", "", func() { s.Weibo.InjectFault(sandbox.Fault{Path: wbToken, Code: 10023, Times: 1}) }, "temporarily_unavailable", "unavailable"},
		{"weibo down", "weibo", "", func() { s.Weibo.InjectFault(sandbox.Fault{Kind: sandbox.FaultDown}) }, "temporarily_unavailable", "unavailable"},
		{"weibo invalid grant (21325)", "weibo", "", func() { s.Weibo.InjectFault(sandbox.Fault{Path: wbToken, Code: 21325, Times: 1}) }, "access_denied", "invalid_code"},
		{"weibo invalid client (21324)", "weibo", "", func() { s.Weibo.InjectFault(sandbox.Fault{Path: wbToken, Code: 21324, Times: 1}) }, "server_error", "error"},
		{"weibo users/show rate limit", "weibo", "", func() { s.Weibo.InjectFault(sandbox.Fault{Path: wbShow, Code: 10023, Times: 1}) }, "temporarily_unavailable", "unavailable"},
		{"weibo users/show garbage", "weibo", "", func() {
			s.Weibo.InjectFault(sandbox.Fault{Path: wbShow, Kind: sandbox.FaultRaw, Status: 200, ContentType: "text/html", Body: "<html>portal</html>", Times: 1})
		}, "temporarily_unavailable", "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Cleanup(func() {
				s.WeChat.ClearFaults()
				s.QQ.ClearFaults()
				s.Weibo.ClearFaults()
			})
			labels := map[string]string{"connector": tt.connector, "result": tt.result}
			before, _ := s.Metric(t, "qiao_logins_total", labels)
			q := r.LoginError(t, s.Browser(tt.ua), tt.connector, "alice", tt.inject)
			if q.Get("error") != tt.want {
				t.Fatalf("error = %q (%s), want %s", q.Get("error"), q.Get("error_description"), tt.want)
			}
			if q.Get("error_description") == "" {
				t.Error("no error_description for the user")
			}
			if after, _ := s.Metric(t, "qiao_logins_total", labels); after != before+1 {
				t.Errorf("qiao_logins_total%v went from %v to %v, want +1", labels, before, after)
			}
			for _, secret := range s.Config.Secrets() {
				if strings.Contains(q.Encode(), secret) {
					t.Error("a secret reached the redirect")
				}
			}
		})
	}
	// The provider is back: the login works again.
	tk := r.MustLogin(t, s.Browser(""), "weibo", "bob")
	if tk.Claims["idp"] != "weibo" {
		t.Errorf("idp = %v", tk.Claims["idp"])
	}
	if strings.Contains(s.Logs.String(), `"panic while serving"`) {
		t.Error("the broker panicked")
	}
	for _, secret := range s.Config.Secrets() {
		if strings.Contains(s.Logs.String(), secret) {
			t.Errorf("a secret (%.6s...) reached the broker log", secret)
		}
	}
}

// TestSlowProviderIsTemporarilyUnavailable: a provider that does not
// answer within the connector timeout (5 s) fails the login cleanly.
func TestSlowProviderIsTemporarilyUnavailable(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 5 s provider timeout")
	}
	s := newWorld(t)
	q := s.RP(qiaotest.WebClient).LoginError(t, s.Browser(""), "qq", "alice", func() {
		s.QQ.InjectFault(sandbox.Fault{Path: sandbox.QQPathToken, Kind: sandbox.FaultTimeout, Times: 1})
	})
	if q.Get("error") != "temporarily_unavailable" {
		t.Fatalf("error = %q (%s), want temporarily_unavailable", q.Get("error"), q.Get("error_description"))
	}
}

// TestQQUnionIDWithoutPermissionTellsTheAdmin: a qq connector with
// unionid: true, for an app QQ has not granted the unionid permission
// (100048), fails the login, and says why in the broker log.
func TestQQUnionIDWithoutPermissionTellsTheAdmin(t *testing.T) {
	t.Run("refused", func(t *testing.T) {
		s := newWorld(t, qqUnionID(false))
		q := s.RP(qiaotest.WebClient).LoginError(t, s.Browser(""), "qq", "alice", nil)
		if q.Get("error") != "server_error" {
			t.Fatalf("error = %q (%s), want server_error", q.Get("error"), q.Get("error_description"))
		}
		if d := q.Get("error_description"); !strings.Contains(d, "administrator") {
			t.Errorf("error_description %q does not say the administrator must act", d)
		}
		lines := s.LogLines("upstream login failed: check the connector configuration")
		if len(lines) != 1 {
			t.Fatalf("%d admin log lines, want 1; log:\n%s", len(lines), s.Logs.String())
		}
		l := lines[0]
		if l["level"] != "ERROR" || l["connector"] != "qq" || fmt.Sprint(l["code"]) != "100048" {
			t.Errorf("log line %v, want level ERROR, connector qq, code 100048", l)
		}
		if msg := fmt.Sprint(l["err"]); !strings.Contains(msg, "unionid permission") {
			t.Errorf("log err %q does not name the missing unionid permission", msg)
		}
	})
	t.Run("granted", func(t *testing.T) {
		s := newWorld(t, qqUnionID(true))
		tk := s.RP(qiaotest.WebClient).MustLogin(t, s.Browser(""), "qq", "alice")
		if tk.Claims["idp"] != "qq" {
			t.Errorf("idp = %v, want qq", tk.Claims["idp"])
		}
	})
}
