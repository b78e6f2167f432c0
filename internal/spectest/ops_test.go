package spectest

import (
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// SPEC: "`/healthz`, `/readyz` and `/metrics` are served at the root of the
// listen address, whatever path prefix the issuer has."
func TestHealthReadyAndMetricsAtTheRootWithAnIssuerPrefix(t *testing.T) {
	s := shared
	if !strings.HasSuffix(s.Issuer, "/sso") {
		t.Fatalf("the shared issuer %s has no path prefix", s.Issuer)
	}
	b := s.Browser("")
	for _, path := range []string{"/healthz", "/readyz", "/metrics"} {
		t.Run(path, func(t *testing.T) {
			p := b.StepGet(t, s.Root()+path)
			if p.Status != 200 {
				t.Errorf("GET %s%s: %d", s.Root(), path, p.Status)
			}
			if path != "/metrics" && !strings.Contains(p.Body, "ok") {
				t.Errorf("GET %s%s: %q, want ok", s.Root(), path, p.Body)
			}
		})
	}
}

// metricLabels returns, for each metric name with labels, the label
// names of its series (sorted, as the exposition writes them).
func metricLabels(body string) map[string][]string {
	got := map[string][]string{}
	for _, s := range qiaotest.Samples(body) {
		if len(s.Labels) > 0 {
			got[s.Name] = slices.Sorted(maps.Keys(s.Labels))
		}
	}
	return got
}

// SPEC: "`/metrics` has at least `qiao_logins_total{connector,result}`,
// `qiao_tokens_issued_total{grant_type}`,
// `qiao_upstream_requests_total{connector,endpoint,result}` and the
// histogram `qiao_upstream_request_duration_seconds`."
func TestMetricsNamesAndLabels(t *testing.T) {
	s := shared
	s.webLogin(t, "weibo", "p23")
	s.miniLogin(t, "p23", "openid")
	p := s.Browser("").StepGet(t, s.Root()+"/metrics")
	if p.Status != 200 {
		t.Fatalf("metrics: %d", p.Status)
	}
	got := metricLabels(p.Body)
	want := map[string]string{
		"qiao_logins_total":                             "connector,result",
		"qiao_tokens_issued_total":                      "grant_type",
		"qiao_upstream_requests_total":                  "connector,endpoint,result",
		"qiao_upstream_request_duration_seconds_bucket": "connector,endpoint,le",
	}
	for name, labels := range want {
		if strings.Join(got[name], ",") != labels {
			t.Errorf("%s labels %v, want %s", name, got[name], labels)
		}
	}
	if !strings.Contains(p.Body, "# TYPE qiao_upstream_request_duration_seconds histogram") {
		t.Error("qiao_upstream_request_duration_seconds is not a histogram")
	}
	for _, series := range []string{
		`qiao_logins_total{connector="weibo",result="success"}`,
		`qiao_tokens_issued_total{grant_type="authorization_code"}`,
		`qiao_tokens_issued_total{grant_type="` + tokenExGrant + `"}`,
	} {
		if !regexp.MustCompile(regexp.QuoteMeta(series) + ` [1-9]`).MatchString(p.Body) {
			t.Errorf("metrics lack a non-zero %s", series)
		}
	}
}

// SPEC: "`qiao users list / show ID / unbind ID CONNECTOR / delete ID
// --config FILE`: admin operations on the configured store".
func TestUsersAdminCommands(t *testing.T) {
	s := shared
	web, _ := s.webLogin(t, "wechat", "p29")
	mini := s.miniLogin(t, "p29", "openid")
	id := claims(t, web.IDToken)["sub"].(string)
	if claims(t, mini.IDToken)["sub"] != id {
		t.Fatalf("WeChat unionid linking did not join the mini-program identity to the web user")
	}
	cfg := []string{"--config", s.ConfigPath}
	steps := []struct {
		name     string
		args     []string
		code     int
		contains []string
		lacks    []string
	}{
		{"list shows the user", []string{"users", "list"}, 0, []string{id}, nil},
		{"show lists the user's identities", []string{"users", "show", id}, 0, []string{id, "wechat", "mini"}, nil},
		{"show of an unknown user fails", []string{"users", "show", "nosuchuser"}, 1, nil, nil},
		{"unbind of a connector not bound fails", []string{"users", "unbind", id, "qq"}, 1, nil, nil},
		{"unbind removes one identity", []string{"users", "unbind", id, "mini"}, 0, nil, nil},
		{"show no longer lists it", []string{"users", "show", id}, 0, []string{"wechat"}, []string{"wechat_miniprogram"}},
		{"unbind of the last identity is refused", []string{"users", "unbind", id, "wechat"}, 1, nil, nil},
		{"delete removes the user", []string{"users", "delete", id}, 0, nil, nil},
		{"show of the deleted user fails", []string{"users", "show", id}, 1, nil, nil},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append(st.args, cfg...)...)
			if code != st.code {
				t.Fatalf("qiao %v: exit %d, want %d\n%s%s", st.args, code, st.code, stdout, stderr)
			}
			for _, c := range st.contains {
				if !strings.Contains(stdout, c) {
					t.Errorf("output lacks %q:\n%s", c, stdout)
				}
			}
			for _, c := range st.lacks {
				if strings.Contains(stdout, c) {
					t.Errorf("output still has %q:\n%s", c, stdout)
				}
			}
			if code != 0 && strings.TrimSpace(stderr) == "" {
				t.Error("a failure without a message")
			}
		})
	}
	t.Run("the deleted user's tokens no longer work", func(t *testing.T) {
		if st := s.Bearer(t, http.MethodGet, "/userinfo", web.AccessToken, nil).Status; st != http.StatusUnauthorized {
			t.Errorf("userinfo with a deleted user's token: %d, want 401", st)
		}
		if st, r := refresh(t, s, web.RefreshToken, webClient, webSecret); st != http.StatusBadRequest || r.Error != "invalid_grant" {
			t.Errorf("refresh of a deleted user's token: %d %q", st, r.Error)
		}
	})
}
