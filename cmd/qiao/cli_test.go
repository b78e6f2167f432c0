package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/qiaotest"
	"github.com/qiaoidp/qiao/internal/syncbuf"

	"github.com/qiaoidp/qiao/storage"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

const cliSecret = "cli-test-secret-0123456789abcdef-0123"

func writeConfig(t *testing.T, listen string) (path, db string) {
	t.Helper()
	dir := t.TempDir()
	db = filepath.Join(dir, "qiao.db")
	path = filepath.Join(dir, "qiao.yaml")
	y := fmt.Sprintf(`issuer: http://%s
http: { listen: %q }
storage: { type: sqlite, sqlite: { path: %q } }
secret: %q
log: { level: debug, format: json }
connectors:
  - { id: weibo, type: weibo, name: 微博, config: { client_id: "123", client_secret: wb-secret } }
  - { id: mini, type: wechat_miniprogram, config: { client_id: wxmini, client_secret: mini-secret } }
clients:
  - { id: web, secret: web-secret-0123456789abcdef0123456789, redirect_uris: ["http://127.0.0.1:9/cb"] }
`, listen, listen, db, cliSecret)
	if err := os.WriteFile(path, []byte(y), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, db
}

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestVersionAndUsage(t *testing.T) {
	if code, out, _ := runCLI(t, "version"); code != 0 || !strings.HasPrefix(out, "qiao ") {
		t.Fatalf("version: %d %q", code, out)
	}
	if code, _, errOut := runCLI(t, "frobnicate"); code != 2 || !strings.Contains(errOut, "unknown command") {
		t.Fatalf("unknown: %d %q", code, errOut)
	}
	if code, _, _ := runCLI(t); code != 2 {
		t.Fatal("no args should be a usage error")
	}
}

// TestCheckConfigSummarySaysLimitsAndKeys: check-config's summary says
// the rate limits as they will apply (defaults, a changed rate with its
// derived burst, a switched-off bucket, the backoff, the exempt
// addresses) and that an RS256 key is kept whatever keys.algorithm says.
func TestCheckConfigSummarySaysLimitsAndKeys(t *testing.T) {
	for _, tc := range []struct {
		name, extra string // extra goes into the file
		want        []string
	}{
		{"defaults", "", []string{
			"keys:    RS256 by default, rotated every 720h\n         the RS256 key is always kept",
			"  /auth        50 (200) per address, 500 (2000) per client\n",
			"  /token       200 (1000) per address, 500 (2000) per client\n",
			"  /callback    50 (200) per address\n",
			"  account      20 (100) per address, 100 (500) per client\n",
			"  client auth  a backoff after 5 failures in a row, up to 5s\n",
			"  exempt       127.0.0.0/8, ::1\n",
		}},
		{"changed", `keys: { algorithm: EdDSA }
limits: { auth: { per_ip: 0.5 }, callback: { per_ip: 0 }, client_auth: { failures: 0 }, exempt: [] }
`, []string{
			"keys:    EdDSA by default, rotated every 720h\n         an RS256 key is always kept too",
			"  /auth        0.5 (2) per address, 500 (2000) per client\n",
			"  /callback    off per address\n",
			"  client auth  no backoff\n",
			"  exempt       none\n",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path, _ := writeConfig(t, "127.0.0.1:5556")
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, append(raw, tc.extra...), 0o600); err != nil {
				t.Fatal(err)
			}
			code, out, errOut := runCLI(t, "check-config", "--config", path)
			if code != 0 {
				t.Fatalf("check-config: %d\n%s", code, errOut)
			}
			for _, want := range tc.want {
				if !strings.Contains(out, want) {
					t.Errorf("the summary lacks %q:\n%s", want, out)
				}
			}
		})
	}
}

func TestCheckConfig(t *testing.T) {
	path, _ := writeConfig(t, "127.0.0.1:5556")
	if code, out, errOut := runCLI(t, "check-config", "--config", path); code != 0 || !strings.Contains(out, "callback/weibo") {
		t.Fatalf("good config: %d\n%s\n%s", code, out, errOut)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("issuer: http://x\nsecret: short\nbogus: 1\nconnectors: []\nclients: []\n"), 0o600)
	code, _, errOut := runCLI(t, "check-config", "--config", bad)
	if code != 1 || !strings.Contains(errOut, bad+":3: bogus: ") || !strings.Contains(errOut, ": secret: ") {
		t.Fatalf("bad config: %d\n%s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "check-config", "--config", filepath.Join(t.TempDir(), "missing.yaml")); code != 1 || errOut == "" {
		t.Fatalf("missing file: %d %q", code, errOut)
	}
}

// seed creates users directly in the store, with tokens for the first.
func seed(t *testing.T, db string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Now().UTC()
	for i, u := range []string{"u1", "u2", "u3"} {
		if err := s.CreateUser(ctx, storage.User{ID: u, CreatedAt: now}, storage.Identity{
			ConnectorID: "weibo", Subject: fmt.Sprint(1000 + i), ConnectorType: "weibo",
			DisplayName: "Person " + u, RealProfile: true, BoundAt: now, LastUsedAt: now,
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.BindIdentity(ctx, storage.Identity{ConnectorID: "mini", Subject: "o-mini", UserID: "u1", ConnectorType: "wechat_miniprogram", BoundAt: now, LastUsedAt: now}); err != nil {
		t.Fatal(err)
	}
	// u1's grants: one through weibo, one through the mini-program.
	for _, g := range []struct{ sig, connector, subject string }{{"sig-u1", "weibo", "1000"}, {"sig-u1-mini", "mini", "o-mini"}} {
		if err := s.ApplyTokenOps(ctx, storage.TokenOp{Type: storage.OpCreate, Record: storage.TokenRecord{
			Kind: storage.KindRefreshToken, Signature: g.sig, RequestID: "req-" + g.sig, ClientID: "web", Subject: "u1",
			Active: true, Data: []byte("{}"), CreatedAt: now, ExpiresAt: now.Add(time.Hour),
			IdentityConnector: g.connector, IdentitySubject: g.subject,
		}}); err != nil {
			t.Fatal(err)
		}
		if err := s.CreateSession(ctx, storage.Session{ID: "sess-" + g.sig, UserID: "u1", ConnectorID: g.connector,
			IdentitySubject: g.subject, AuthTime: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestUsersCommands(t *testing.T) {
	path, db := writeConfig(t, "127.0.0.1:5556")
	seed(t, db)

	code, out, errOut := runCLI(t, "users", "list", "--config", path, "--limit", "2")
	if code != 0 || !strings.Contains(out, "u1") || !strings.Contains(out, "u2") || strings.Contains(out, "u3 ") || !strings.Contains(out, "--after u2") {
		t.Fatalf("list page 1: %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runCLI(t, "users", "list", "--after", "u2", "--config", path); code != 0 || !strings.Contains(out, "u3") || strings.Contains(out, "u1 ") {
		t.Fatalf("list page 2: %d\n%s", code, out)
	}
	if code, out, _ := runCLI(t, "users", "show", "u1", "--config", path); code != 0 || !strings.Contains(out, "weibo") || !strings.Contains(out, "mini") {
		t.Fatalf("show: %d\n%s", code, out)
	}
	if code, _, errOut := runCLI(t, "users", "show", "nobody", "--config", path); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("show missing: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "users", "unbind", "u2", "weibo", "--config", path); code != 1 || !strings.Contains(errOut, "last identity") {
		t.Fatalf("unbind last: %d %s", code, errOut)
	}
	if code, out, _ := runCLI(t, "users", "unbind", "u1", "mini", "--config", path); code != 0 || !strings.Contains(out, "unbound") {
		t.Fatalf("unbind: %d %s", code, out)
	}
	// Unbinding revoked what came through the mini-program, and only that.
	s, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.GetToken(ctx, storage.KindRefreshToken, "sig-u1-mini"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("token through the unbound identity: %v", err)
	}
	if _, err := s.GetSession(ctx, "sess-sig-u1-mini"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("session through the unbound identity: %v", err)
	}
	if _, err := s.GetToken(ctx, storage.KindRefreshToken, "sig-u1"); err != nil {
		t.Errorf("token through weibo after unbinding mini: %v", err)
	}
	if _, err := s.GetSession(ctx, "sess-sig-u1"); err != nil {
		t.Errorf("session through weibo after unbinding mini: %v", err)
	}
	s.Close()
	if code, out, _ := runCLI(t, "users", "delete", "u1", "--config", path); code != 0 || !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %d %s", code, out)
	}
	// Deleting revoked the user's tokens.
	s, err = sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetToken(context.Background(), storage.KindRefreshToken, "sig-u1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("token of a deleted user: %v", err)
	}
	s.Close()
	// Every admin action is in the audit log.
	code, out, _ = runCLI(t, "audit", "--config", path, "--since", "1h")
	for _, want := range []string{"admin_delete", "admin_unbind", "refused_last_identity"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("audit lacks %s:\n%s", want, out)
		}
	}
	if code, out, _ := runCLI(t, "audit", "--config", path, "--user", "u2"); code != 0 || strings.Contains(out, "admin_delete") || !strings.Contains(out, "admin_unbind") {
		t.Errorf("audit --user u2:\n%s", out)
	}
	if code, _, _ := runCLI(t, "audit", "--config", path, "--since", "yesterday"); code != 2 {
		t.Error("bad --since accepted")
	}
	for _, limit := range []string{"0", "-1", "1001"} {
		if code, _, errOut := runCLI(t, "users", "list", "--config", path, "--limit", limit); code != 2 || !strings.Contains(errOut, "--limit must be between 1 and 1000") {
			t.Errorf("users list --limit %s: %d %s, want 2 and the allowed range", limit, code, errOut)
		}
	}
	if code, _, errOut := runCLI(t, "users", "frobnicate", "--config", path); code != 2 || !strings.Contains(errOut, "unknown subcommand") {
		t.Errorf("unknown subcommand: %d %s", code, errOut)
	}
	if code, _, _ := runCLI(t, "users", "show", "--config", path); code != 2 {
		t.Error("show without an id accepted")
	}
}

func TestServeStartsAndDrains(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	path, _ := writeConfig(t, addr)
	// A deprecated key still works and is logged at start.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("linking: { qq_unionid: true }\n")
	f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ow, ew := &syncbuf.Buffer{}, &syncbuf.Buffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", path}, ow, ew) }()
	if !qiaotest.Eventually(20*time.Second, func() bool { return qiaotest.Healthy("http://" + addr) }) {
		t.Fatalf("server did not come up")
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d", code)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	banner := ow.String()
	for _, want := range []string{"issuer:  http://" + addr, "listen:  " + addr, "store:   sqlite", "http://" + addr + "/callback/weibo", "(none: token endpoint only)"} {
		if !strings.Contains(banner, want) {
			t.Errorf("start-up banner lacks %q:\n%s", want, banner)
		}
	}
	if !strings.Contains(ew.String(), "linking.qq_unionid: deprecated: set link_by_unionid on each connector instead") {
		t.Errorf("the log does not warn of the deprecated linking key:\n%s", ew.String())
	}
	if strings.Contains(ew.String(), "wb-secret") || strings.Contains(ew.String(), cliSecret) {
		t.Error("a secret reached the logs")
	}
}

// TestServeChecksItsListenAddressBeforeCreatingAStore: an address that is
// taken fails the start with the address in the message, and leaves no
// database (and so no keys) behind.
func TestServeChecksItsListenAddressBeforeCreatingAStore(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	addr := taken.Addr().String()
	path, db := writeConfig(t, addr)
	code, _, errOut := runCLI(t, "serve", "--config", path)
	if code != 1 || !strings.Contains(errOut, "listening on "+addr) {
		t.Fatalf("serve on a taken address: exit %d, stderr %q; want 1 and %q", code, errOut, "listening on "+addr)
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("serve created %s before finding its address taken (stat: %v)", db, err)
	}
}

// TestUsersMerge merges one user into another: identities move, the
// absorbed user goes with its tokens, both audit trails say so, and a
// merge of two users with an identity of the same connector is refused
// naming it, with nothing changed.
func TestUsersMerge(t *testing.T) {
	path, db := writeConfig(t, "127.0.0.1:5556")
	seed(t, db) // u1: weibo + mini + a refresh token; u2, u3: weibo

	// u1 and u2 both have a weibo identity: refused, naming it.
	code, _, errOut := runCLI(t, "users", "merge", "u1", "u2", "--config", path)
	if code != 1 || !strings.Contains(errOut, "weibo: u1 has subject 1000, u2 has subject 1001") || !strings.Contains(errOut, "Nothing was changed") {
		t.Fatalf("conflicting merge: %d\n%s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "users", "merge", "u1", "nobody", "--config", path); code != 1 || !strings.Contains(errOut, "not found") {
		t.Fatalf("merge into a missing user: %d %s", code, errOut)
	}
	if code, _, errOut := runCLI(t, "users", "merge", "u1", "u1", "--config", path); code != 1 || !strings.Contains(errOut, "same user") {
		t.Fatalf("merge into itself: %d %s", code, errOut)
	}
	if code, _, _ := runCLI(t, "users", "merge", "u1", "--config", path); code != 2 {
		t.Fatal("merge with one argument accepted")
	}
	// Once u1 no longer has a weibo identity, it merges into u3.
	if code, _, errOut := runCLI(t, "users", "unbind", "u1", "weibo", "--config", path); code != 0 {
		t.Fatalf("unbind: %d %s", code, errOut)
	}
	code, out, errOut := runCLI(t, "users", "merge", "u1", "u3", "--config", path)
	if code != 0 || !strings.Contains(out, "merged user u1 into u3") || !strings.Contains(out, "mini") {
		t.Fatalf("merge: %d\n%s%s", code, out, errOut)
	}
	s, err := sqlite.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := s.GetUser(ctx, "u1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("absorbed user still there: %v", err)
	}
	if id, err := s.GetIdentity(ctx, "mini", "o-mini"); err != nil || id.UserID != "u3" {
		t.Errorf("mini identity: %+v %v, want it on u3", id, err)
	}
	if _, err := s.GetToken(ctx, storage.KindRefreshToken, "sig-u1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("token of the absorbed user: %v", err)
	}
	s.Close()
	for _, user := range []string{"u1", "u3"} {
		code, out, _ := runCLI(t, "audit", "--config", path, "--user", user)
		if code != 0 || !strings.Contains(out, "admin_merge") || !strings.Contains(out, "success") {
			t.Errorf("audit of %s lacks the merge:\n%s", user, out)
		}
	}
	if code, out, _ := runCLI(t, "audit", "--config", path, "--user", "u2"); code != 0 || !strings.Contains(out, "refused_same_connector") {
		t.Errorf("audit of u2 lacks the refused merge:\n%s", out)
	}
}
