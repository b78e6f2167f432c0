package e2e_test

import (
	"net/http"
	"testing"

	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// TestMetricsCountLoginsAndUpstreamCalls: after real logins, /metrics has
// the login counter by connector and result, and the upstream call
// counter and latency histogram by connector and endpoint.
func TestMetricsCountLoginsAndUpstreamCalls(t *testing.T) {
	s := newWorld(t)
	r := s.RP(qiaotest.WebClient)
	tests := []struct {
		connector, ua, endpoint string
	}{
		{"wechat", "", "sns/oauth2/access_token"},
		{"wechat_mp", qiaotest.WeChatUA, "sns/userinfo"},
		{"qq", "", "oauth2.0/token"},
		{"weibo", "", "oauth2/access_token"},
	}
	for _, tt := range tests {
		t.Run(tt.connector, func(t *testing.T) {
			r.MustLogin(t, s.Browser(tt.ua), tt.connector, "alice")
			r.MustLogin(t, s.Browser(tt.ua), tt.connector, "bob")
			if v, ok := s.Metric(t, "qiao_logins_total", map[string]string{"connector": tt.connector, "result": "success"}); v != 2 {
				t.Errorf("qiao_logins_total{connector=%q,result=success} = %v (present %v), want 2", tt.connector, v, ok)
			}
			if v, ok := s.Metric(t, "qiao_upstream_requests_total", map[string]string{"connector": tt.connector, "endpoint": tt.endpoint, "result": "ok"}); v != 2 {
				t.Errorf("qiao_upstream_requests_total{connector=%q,endpoint=%q,result=ok} = %v (present %v), want 2", tt.connector, tt.endpoint, v, ok)
			}
			if v, ok := s.Metric(t, "qiao_upstream_request_duration_seconds_count", map[string]string{"connector": tt.connector, "endpoint": tt.endpoint}); v != 2 {
				t.Errorf("qiao_upstream_request_duration_seconds_count{connector=%q,endpoint=%q} = %v (present %v), want 2", tt.connector, tt.endpoint, v, ok)
			}
		})
	}

	t.Run("failures", func(t *testing.T) {
		s.WeChat.InjectFault(sandbox.Fault{Path: "/sns/jscode2session", Code: 45011, Times: 1})
		if status, _, body := s.PostToken(t, exchangeForm(s.LoginCode(miniConnector, "alice"), "openid")); status != http.StatusServiceUnavailable {
			t.Fatalf("HTTP %d: %s", status, body)
		}
		if v, _ := s.Metric(t, "qiao_logins_total", map[string]string{"connector": "wechat_miniprogram", "result": "unavailable"}); v != 1 {
			t.Errorf("mini-program unavailable logins = %v, want 1", v)
		}
		if v, _ := s.Metric(t, "qiao_upstream_requests_total", map[string]string{"connector": "wechat_miniprogram", "endpoint": "sns/jscode2session", "result": "unavailable"}); v != 1 {
			t.Errorf("jscode2session unavailable calls = %v, want 1", v)
		}
		if status, _, body := s.PostToken(t, exchangeForm(s.LoginCode(miniConnector, "alice"), "openid")); status != http.StatusOK {
			t.Fatalf("HTTP %d: %s", status, body)
		}
		if v, _ := s.Metric(t, "qiao_tokens_issued_total", map[string]string{"grant_type": qiaotest.TokenExchangeGrant}); v != 1 {
			t.Errorf("qiao_tokens_issued_total{grant_type=token-exchange} = %v, want 1", v)
		}
		if v, _ := s.Metric(t, "qiao_tokens_issued_total", map[string]string{"grant_type": "authorization_code"}); v != 8 {
			t.Errorf("qiao_tokens_issued_total{grant_type=authorization_code} = %v, want 8", v)
		}
	})
}
