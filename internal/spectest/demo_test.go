package spectest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// SPEC: "`qiao demo`: zero-config sandbox: simulated WeChat/QQ/Weibo, the
// broker on an embedded store, and an example web app; prints the URLs to
// open", with README's mini-program curl and clean exit on SIGTERM.
func TestDemoRunsWithoutConfigurationAndPrintsItsURLs(t *testing.T) {
	p := startProcess(t, "demo", "--listen", "127.0.0.1")
	field := func(name string) string {
		re := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(name) + `:\s+(\S+)`)
		var m []string
		waitFor(t, func() bool {
			select {
			case <-p.Done():
				t.Fatalf("qiao demo exited: %v\n%s", p.Err(), p.Out.String())
			default:
			}
			m = re.FindStringSubmatch(p.Out.String())
			return m != nil
		}, "the demo to print "+name)
		return m[1]
	}
	issuer, app, wechat, data := field("broker issuer"), field("example app"), field("WeChat sim"), field("data")
	waitFor(t, func() bool { return strings.Contains(p.Out.String(), "Press Ctrl-C to stop.") }, "the end of the demo's banner")

	t.Run("the broker's discovery", func(t *testing.T) {
		res := qiaotest.Do(t, nil, qiaotest.NewRequest(t, http.MethodGet, issuer+"/.well-known/openid-configuration"))
		if res.Status != 200 || res.MustJSON(t)["issuer"] != issuer {
			t.Errorf("discovery: %d %s", res.Status, res.Body)
		}
	})
	t.Run("the example app", func(t *testing.T) {
		if status := qiaotest.Do(t, nil, qiaotest.NewRequest(t, http.MethodGet, app)).Status; status != 200 {
			t.Errorf("example app: %d", status)
		}
	})
	t.Run("the printed mini-program login", func(t *testing.T) {
		m := regexp.MustCompile(`appid=(wx[0-9a-f]+)&person=alice`).FindStringSubmatch(p.Out.String())
		if m == nil {
			t.Fatalf("no wx.login command in the output")
		}
		res := qiaotest.Do(t, nil, qiaotest.FormRequest(t, wechat+"/sandbox/wx.login?appid="+m[1]+"&person=alice", url.Values{}, "", ""))
		var c struct{ Code string }
		if res.Status != 200 || json.Unmarshal([]byte(res.Body), &c) != nil || c.Code == "" {
			t.Fatalf("wx.login: %d %s", res.Status, res.Body)
		}
		form := qiaotest.ExchangeForm("wechat_miniprogram", "miniprogram", c.Code, "openid profile offline_access")
		res = qiaotest.Do(t, nil, qiaotest.FormRequest(t, issuer+"/token", form, "", ""))
		got := res.MustJSON(t)
		if res.Status != 200 || got["id_token"] == nil || got["refresh_token"] == nil {
			t.Fatalf("token exchange: %d %s", res.Status, res.Body)
		}
		res = qiaotest.Do(t, nil, qiaotest.FormRequest(t, issuer+"/token", form, "", ""))
		if res.Status != 400 || res.MustJSON(t)["error"] != "invalid_grant" {
			t.Errorf("the same code again: %d %s, want 400 invalid_grant", res.Status, res.Body)
		}
	})
	if code := p.Stop(t); code != 0 {
		t.Errorf("qiao demo exit %d after SIGTERM, want 0", code)
	}
	t.Run("the temporary data directory is removed on exit", func(t *testing.T) {
		if !qiaotest.Eventually(5*time.Second, func() bool { _, err := os.Stat(data); return os.IsNotExist(err) }) {
			t.Fatalf("%s still exists", data)
		}
	})
	if strings.Contains(p.Out.String(), "panic") {
		t.Errorf("the demo panicked:\n%s", p.Out.String())
	}
}
