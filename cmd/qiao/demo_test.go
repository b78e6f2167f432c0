package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/syncbuf"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

type lockedBuffer = syncbuf.Buffer

// printedURL returns the URL printed after label ("  example app:    URL").
func printedURL(out, label string) string {
	for _, line := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), label); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				return f[0]
			}
		}
	}
	return ""
}

// TestDemoRunsTheSandboxAndAnExampleAppLogin starts the demo in-process,
// signs in through the example app with two providers, runs the printed
// mini-program curl, and stops it with the context.
func TestDemoRunsTheSandboxAndAnExampleAppLogin(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- runDemo(ctx, demoOptions{host: "127.0.0.1", anyPort: true}, stdout, stderr) }()

	printed := qiaotest.Eventually(30*time.Second, func() bool {
		select {
		case code := <-done:
			t.Fatalf("the demo exited with %d; stderr:\n%s", code, stderr.String())
		default:
		}
		return strings.Contains(stdout.String(), "Press Ctrl-C to stop.")
	})
	if !printed {
		t.Fatalf("the demo printed no URLs in 30 s; stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	out := stdout.String()
	appURL := printedURL(out, "example app:")
	issuer := printedURL(out, "broker issuer:")
	dataDir := printedURL(out, "data:")
	for label, v := range map[string]string{"example app": appURL, "issuer": issuer, "data": dataDir,
		"account": printedURL(out, "account page:"), "wechat": printedURL(out, "WeChat sim:"),
		"qq": printedURL(out, "QQ sim:"), "weibo": printedURL(out, "Weibo sim:")} {
		if v == "" {
			t.Fatalf("the demo printed no %s URL:\n%s", label, out)
		}
	}
	if _, err := os.Stat(dataDir); err != nil {
		t.Fatalf("data directory: %v", err)
	}

	for _, tt := range []struct{ connector, person, name string }{
		{"wechat", "alice", "爱丽丝"},
		{"weibo", "carol", "卡罗尔"},
	} {
		br := qiaotest.NewBrowser(nil)
		home, err := br.Get(appURL)
		if err != nil {
			t.Fatal(err)
		}
		l, err := home.Link("data-login", tt.connector)
		if err != nil {
			t.Fatal(err)
		}
		page, err := br.LoginAt(l.Href, tt.person)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := page.Elements("tr", "data-claim")
		if err != nil {
			t.Fatal(err)
		}
		claims := map[string]string{}
		for _, r := range rows {
			if len(r.Cells) >= 2 {
				claims[r.Attrs["data-claim"]] = r.Cells[1]
			}
		}
		if claims["idp"] != tt.connector || claims["name"] != tt.name || claims["iss"] != issuer {
			t.Errorf("%s login through the example app: claims %v, want idp %s, name %s, iss %s; page %.400s", tt.connector, claims, tt.connector, tt.name, issuer, page.Body)
		}
	}

	// The printed curl, as a user would paste it.
	if _, err := exec.LookPath("curl"); err == nil {
		start := strings.Index(out, "  CODE=$(curl")
		end := strings.Index(out, "\nPress Ctrl-C")
		if start < 0 || end < start {
			t.Fatalf("no curl snippet in:\n%s", out)
		}
		script := out[start:end] + "\n"
		cmd := exec.CommandContext(ctx, "sh", "-e", "-c", script)
		res, err := cmd.Output()
		if err != nil {
			t.Fatalf("the printed curl failed: %v\n%s", err, script)
		}
		var m map[string]any
		if err := json.Unmarshal(res, &m); err != nil {
			t.Fatalf("the printed curl printed %q", res)
		}
		if m["id_token"] == nil || m["refresh_token"] == nil || m["issued_token_type"] == nil {
			t.Errorf("the printed curl got %s", res)
		}
	} else {
		t.Log("no curl on this machine: the printed command is not run")
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("the demo exited with %d on cancel; stderr:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the demo did not stop within 30 s of the cancel")
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("the temporary data directory is still there (%v)", err)
	}
	if strings.Contains(stderr.String(), "panic") {
		t.Errorf("a panic in the log:\n%s", stderr.String())
	}
}

// TestDemoFallsBackToAFreePort: a preferred port that is taken is
// replaced by a free one; a free preferred port is used.
func TestDemoFallsBackToAFreePort(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	d := &demo{opts: demoOptions{host: "127.0.0.1"}}
	ln, err := d.listen(port, "example app")
	if err != nil {
		t.Fatal(err)
	}
	got := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	if got == port || got == 0 {
		t.Fatalf("listen(%d) with the port taken gave port %d", port, got)
	}
	// The banner says so.
	want := fmt.Sprintf("port %d (example app) was taken; using %d", port, got)
	if len(d.notes) != 1 || d.notes[0] != want {
		t.Fatalf("notes %q, want [%q]", d.notes, want)
	}

	// got is free now: asking for it gets it, and there is nothing to say.
	ln, err = d.listen(got, "broker")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if p := ln.Addr().(*net.TCPAddr).Port; p != got {
		t.Fatalf("listen(%d) with the port free gave %d", got, p)
	}
	if len(d.notes) != 1 {
		t.Errorf("a free preferred port added a note: %q", d.notes)
	}
}

// startTestDemo runs the demo on free ports until the test ends and
// returns what it printed.
func startTestDemo(t *testing.T, opts demoOptions) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	done := make(chan int, 1)
	go func() { done <- runDemo(ctx, opts, stdout, stderr) }()
	stopped := false
	t.Cleanup(func() {
		cancel()
		if !stopped {
			<-done
		}
	})
	started := qiaotest.Eventually(30*time.Second, func() bool {
		select {
		case code := <-done:
			stopped = true
			t.Fatalf("the demo exited with %d; stderr:\n%s", code, stderr.String())
		default:
		}
		return strings.Contains(stdout.String(), "Press Ctrl-C to stop.")
	})
	if !started {
		t.Fatalf("the demo did not start in 30 s; stderr:\n%s", stderr.String())
	}
	return stdout.String()
}

// demoMiniLogin signs person in as the demo's mini-program and returns
// the ID token's sub.
func demoMiniLogin(t *testing.T, out, person string) string {
	t.Helper()
	wechatURL, issuer := printedURL(out, "WeChat sim:"), printedURL(out, "broker issuer:")
	resp, err := http.PostForm(wechatURL+"/sandbox/wx.login", url.Values{"appid": {demoWeChatMiniAppID}, "person": {person}})
	if err != nil {
		t.Fatal(err)
	}
	var code struct{ Code string }
	err = json.NewDecoder(resp.Body).Decode(&code)
	resp.Body.Close()
	if err != nil || code.Code == "" {
		t.Fatalf("wx.login: %v %+v", err, code)
	}
	resp, err = http.PostForm(issuer+"/token", qiaotest.ExchangeForm(demoMiniConnector, demoMiniClientID, code.Code, "openid"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token exchange: HTTP %d, %v", resp.StatusCode, err)
	}
	_, claims := qiaotest.JWT(t, tok.IDToken)
	sub, _ := claims["sub"].(string)
	if sub == "" {
		t.Fatalf("id_token claims %v: no sub", claims)
	}
	return sub
}

// TestDemoKeepsADataDirectory: with --data, the store and the secrets
// that open it (mode 0600) stay after exit; a second run starts on them
// and finds the first run's user.
func TestDemoKeepsADataDirectory(t *testing.T) {
	dir := t.TempDir() + "/kept"
	var first string
	t.Run("first run", func(t *testing.T) {
		out := startTestDemo(t, demoOptions{host: "127.0.0.1", dataDir: dir, anyPort: true})
		first = demoMiniLogin(t, out, "alice")
	})
	if _, err := os.Stat(dir + "/qiao.db"); err != nil {
		t.Fatalf("the store in --data is gone: %v", err)
	}
	fi, err := os.Stat(dir + "/" + demoSecretsFile)
	if err != nil {
		t.Fatalf("no secrets kept in --data: %v", err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", demoSecretsFile, fi.Mode().Perm())
	}
	// Loosened by hand: the next run tightens it again.
	if err := os.Chmod(dir+"/"+demoSecretsFile, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("second run", func(t *testing.T) {
		out := startTestDemo(t, demoOptions{host: "127.0.0.1", dataDir: dir, anyPort: true})
		if again := demoMiniLogin(t, out, "alice"); again != first {
			t.Errorf("alice is %q on the second run, %q on the first", again, first)
		}
	})
	if fi, err := os.Stat(dir + "/" + demoSecretsFile); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("after the second run %s has mode %v, want 0600", demoSecretsFile, fi.Mode().Perm())
	}
}

// TestDemoRefusesAStoreWithoutItsSecrets: a data directory whose store
// lost its secrets file says what to do rather than failing on the keys.
func TestDemoRefusesAStoreWithoutItsSecrets(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/qiao.db", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := runDemo(context.Background(), demoOptions{host: "127.0.0.1", dataDir: dir, anyPort: true}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "without the secrets that open it") {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
}

// TestDemoRefusesBadArguments: bad flags are exit 2 with a message.
func TestDemoRefusesBadArguments(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--bogus"}, "bogus"},
		{"extra argument", []string{"now"}, "unexpected argument"},
		{"listen with a port", []string{"--listen", "127.0.0.1:80"}, "not a host"},
		{"empty listen", []string{"--listen", ""}, "not a host"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := cmdDemo(context.Background(), tt.args, &stdout, &stderr)
			if code != 2 || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, stderr.String(), tt.want)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout %q", stdout.String())
			}
		})
	}
}

// TestDemoSaysWhichPreferredPortWasTaken: with its preferred Weibo port
// held by someone else, the demo starts on another and the banner says
// which port was taken and which one it used.
func TestDemoSaysWhichPreferredPortWasTaken(t *testing.T) {
	// Hold the port, unless someone already does: taken either way.
	if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", demoWeiboPort)); err == nil {
		defer ln.Close()
	}
	out := startTestDemo(t, demoOptions{host: "127.0.0.1"})
	weibo, err := url.Parse(printedURL(out, "Weibo sim:"))
	if err != nil || weibo.Port() == "" || weibo.Port() == fmt.Sprint(demoWeiboPort) {
		t.Fatalf("Weibo simulator at %q with its preferred port taken:\n%s", printedURL(out, "Weibo sim:"), out)
	}
	want := fmt.Sprintf("note: port %d (Weibo simulator) was taken; using %s", demoWeiboPort, weibo.Port())
	if !strings.Contains(out, want) {
		t.Errorf("the banner does not say %q:\n%s", want, out)
	}
}
