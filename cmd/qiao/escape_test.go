package main

import (
	"context"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/qiaoidp/qiao/storage"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

func TestUsersAndAuditPrintControlCharactersEscaped(t *testing.T) {
	path, db := writeConfig(t, "127.0.0.1:5556")
	ctx := context.Background()
	s, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	const evilName = "Mallory\x1b[2J\x1b]0;pwned\x07\r\t\u202etxt.exe"
	if err := s.CreateUser(ctx, storage.User{ID: "u-evil", CreatedAt: now}, storage.Identity{
		ConnectorID: "weibo", Subject: "sub\x1b[1m", ConnectorType: "weibo",
		DisplayName: evilName, RealProfile: true, BoundAt: now, LastUsedAt: now,
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.AppendAudit(ctx, storage.AuditEvent{Time: now, Action: "login", UserID: "u-evil", ConnectorID: "weibo",
		IP: "127.0.0.1", Result: "denied", Detail: "provider said \x1b[31mred\x1b[0m\nFAKE LINE"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, args := range [][]string{
		{"users", "list", "--config", path},
		{"users", "show", "u-evil", "--config", path},
		{"audit", "--config", path},
	} {
		code, out, errOut := runCLI(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		for _, r := range out {
			if r != '\n' && (unicode.IsControl(r) || r == '\u202e') {
				t.Fatalf("%v prints the control character %U raw:\n%q", args, r, out)
			}
		}
		if args[0] == "users" && !strings.Contains(out, `Mallory\x1b[2J\x1b]0;pwned\x07\x0d\x09\u202etxt.exe`) {
			t.Errorf("%v: the nickname is not shown escaped:\n%s", args, out)
		}
		if args[0] == "audit" && !strings.Contains(out, `provider said \x1b[31mred\x1b[0m\x0aFAKE LINE`) {
			t.Errorf("audit: the detail is not shown escaped:\n%s", out)
		}
	}
}

func TestDemoConfigIsValidOnALANAddress(t *testing.T) {
	secrets := map[string]string{"QIAO_SECRET": randomHex(32), "WECHAT_WEB_SECRET": "a", "WECHAT_MP_SECRET": "b",
		"WECHAT_MINI_SECRET": "c", "QQ_SECRET": "d", "WEIBO_SECRET": "e", "EXAMPLE_APP_SECRET": randomHex(24)}
	for _, host := range []string{"127.0.0.1", "192.168.1.5", "[fd00::5]"} {
		cfg, err := demoConfig(host+":5556", "http://"+host+":5560", "http://"+host+":5561", "http://"+host+":5562", "http://"+host+":5563",
			t.TempDir()+"/qiao.db", secrets)
		if err != nil {
			t.Fatalf("%s: %v", host, err)
		}
		for _, c := range cfg.Clients {
			if c.Public() != (c.Secret == "") {
				t.Errorf("%s: client %s", host, c.ID)
			}
		}
	}
}
