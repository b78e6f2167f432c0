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
		status, body, _ := doReq(t, mustReq(t, http.MethodGet, issuer+"/.well-known/openid-configuration"))
		if status != 200 || jsonMap(t, body)["issuer"] != issuer {
			t.Errorf("discovery: %d %s", status, body)
		}
	})
	t.Run("the example app", func(t *testing.T) {
		if status, _, _ := doReq(t, mustReq(t, http.MethodGet, app)); status != 200 {
			t.Errorf("example app: %d", status)
		}
	})
	t.Run("the printed mini-program login", func(t *testing.T) {
		m := regexp.MustCompile(`appid=(wx[0-9a-f]+)&person=alice`).FindStringSubmatch(p.Out.String())
		if m == nil {
			t.Fatalf("no wx.login command in the output")
		}
		status, body, _ := post(t, wechat+"/sandbox/wx.login?appid="+m[1]+"&person=alice", url.Values{}, "", "")
		var c struct{ Code string }
		if status != 200 || json.Unmarshal(body, &c) != nil || c.Code == "" {
			t.Fatalf("wx.login: %d %s", status, body)
		}
		form := url.Values{"grant_type": {tokenExGrant}, "subject_token": {c.Code}, "subject_token_type": {jsCodeType},
			"subject_issuer": {"wechat_miniprogram"}, "client_id": {"miniprogram"}, "scope": {"openid profile offline_access"}}
		status, body, _ = post(t, issuer+"/token", form, "", "")
		got := jsonMap(t, body)
		if status != 200 || got["id_token"] == nil || got["refresh_token"] == nil {
			t.Fatalf("token exchange: %d %s", status, body)
		}
		status, body, _ = post(t, issuer+"/token", form, "", "")
		if status != 400 || jsonMap(t, body)["error"] != "invalid_grant" {
			t.Errorf("the same code again: %d %s, want 400 invalid_grant", status, body)
		}
	})
	if code := p.Stop(t); code != 0 {
		t.Errorf("qiao demo exit %d after SIGTERM, want 0", code)
	}
	t.Run("the temporary data directory is removed on exit", func(t *testing.T) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, err := os.Stat(data); os.IsNotExist(err) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still exists", data)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
	if strings.Contains(p.Out.String(), "panic") {
		t.Errorf("the demo panicked:\n%s", p.Out.String())
	}
}
