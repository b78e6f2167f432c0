package spectest

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const validYAML = `issuer: http://127.0.0.1:5556/sso
secret: "${QIAO_SECRET}"
connectors:
  - id: weibo
    type: weibo
    config: { client_id: "1352000001", client_secret: "${WEIBO_SECRET}" }
clients:
  - id: app
    secret: "${EXTRA_SECRET}"
    redirect_uris: [http://127.0.0.1/cb]
`

// SPEC: "`qiao check-config --config FILE` validates; exit 0 with a
// summary, or exit 1 listing every error with its YAML path (and line)" and
// "`check-config` prints one line per error, `FILE:LINE: PATH: message`,
// PATH like `connectors[2].config.client_secret` (0-based); a duplicate id
// names the second occurrence."
func TestCheckConfigListsEveryErrorAsFileLinePathMessage(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		want []string // "LINE: PATH" of every error, in order
	}{
		{
			name: "unknown keys, bad durations, missing fields and duplicate ids",
			yaml: `issuer: http://127.0.0.1:5556
secret: "${QIAO_SECRET}"
bogus: 1
tokens:
  id_token_ttl: 1hour
connectors:
  - id: weibo
    type: weibo
    config: { client_id: "1", client_secret: "x" }
  - id: qq
    type: qq
    config:
      client_id: "1"
  - id: weibo
    type: weibo
    config: { client_id: "2", client_secret: "y", colour: red }
clients:
  - id: app
    redirect_uris: [http://127.0.0.1/cb]
    public: true
  - id: app
    redirect_uris: [http://127.0.0.1/cb]
    public: true
`,
			want: []string{
				"3: bogus",
				"5: tokens.id_token_ttl",
				"1?: connectors[1].config.client_secret", // the config: key (12) or its mapping (13)
				"14: connectors[2].id",
				"16: connectors[2].config.colour",
				"21: clients[1].id",
			},
		},
		{
			name: "secret shorter than 32 bytes after expansion",
			yaml: validYAML,
			env:  map[string]string{"QIAO_SECRET": "short-secret"},
			want: []string{"2: secret"},
		},
		{
			name: "unset variable",
			yaml: strings.Replace(validYAML, "${WEIBO_SECRET}", "${SPECTEST_UNSET_VARIABLE}", 1),
			want: []string{"6: connectors[0].config.client_secret"},
		},
		{
			name: "bad duration of session_ttl and keys.rotate_every",
			yaml: validYAML + "session_ttl: forever\nkeys: { rotate_every: 30 }\n",
			want: []string{"11: session_ttl", "12: keys.rotate_every"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, "bad.yaml", tc.yaml)
			args := []string{"check-config", "--config", path}
			code, stdout, stderr := runCLIEnv(t, tc.env, args...)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			got := lines(stdout + stderr)
			if len(got) != len(tc.want) {
				t.Fatalf("%d lines, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				re := regexp.MustCompile("^" + regexp.QuoteMeta(path) + ":" + strings.ReplaceAll(regexp.QuoteMeta(w), "\\?", "[23]") + ": .+")
				if !re.MatchString(got[i]) {
					t.Errorf("line %d = %q, want %q", i, got[i], path+":"+w+": message")
				}
			}
			for _, secret := range []string{"short-secret", env["QIAO_SECRET"], env["WEIBO_SECRET"]} {
				if strings.Contains(stdout+stderr, secret) {
					t.Errorf("the output shows a secret %q", secret)
				}
			}
		})
	}
}

func runCLIEnv(t *testing.T, extra map[string]string, args ...string) (int, string, string) {
	t.Helper()
	saved := map[string]string{}
	for k, v := range extra {
		saved[k] = env[k]
		env[k] = v
	}
	defer func() {
		for k, v := range saved {
			env[k] = v
		}
	}()
	return runCLI(t, args...)
}

// SPEC: "A missing or unreadable file is exit 1 with a clear message." and
// the valid case: exit 0 with a summary that shows no secret.
func TestCheckConfigExitCodes(t *testing.T) {
	t.Run("a missing file is exit 1 with a clear message", func(t *testing.T) {
		missing := filepath.Join(t.TempDir(), "nope.yaml")
		code, stdout, stderr := runCLI(t, "check-config", "--config", missing)
		if code != 1 || !strings.Contains(stdout+stderr, missing) {
			t.Errorf("exit %d, output %q; want 1 naming the file", code, stdout+stderr)
		}
	})
	t.Run("an unreadable file is exit 1", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "check-config", "--config", t.TempDir())
		if code != 1 || strings.TrimSpace(stdout+stderr) == "" {
			t.Errorf("exit %d, output %q; want 1 with a message", code, stdout+stderr)
		}
	})
	t.Run("a valid file is exit 0 with a summary and no secret", func(t *testing.T) {
		path := writeFile(t, "ok.yaml", validYAML)
		code, stdout, stderr := runCLIEnv(t, map[string]string{"EXTRA_SECRET": "app-client-secret-app-client-secret-0001"}, "check-config", "--config", path)
		if code != 0 {
			t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
		}
		out := stdout + stderr
		if !strings.Contains(out, "weibo") || !strings.Contains(out, "app") {
			t.Errorf("summary %q does not name the connector and client", out)
		}
		for _, secret := range []string{env["QIAO_SECRET"], env["WEIBO_SECRET"], "app-client-secret-app-client-secret-0001"} {
			if strings.Contains(out, secret) {
				t.Errorf("summary shows a secret")
			}
		}
	})
	t.Run("the length of secret is checked after expansion", func(t *testing.T) {
		path := writeFile(t, "ok.yaml", strings.Replace(validYAML, `"${QIAO_SECRET}"`, `"${SPECTEST_SECRET:-0123456789abcdef0123456789abcdef}"`, 1))
		if code, o, e := runCLIEnv(t, map[string]string{"EXTRA_SECRET": "app-client-secret-app-client-secret-0001"}, "check-config", "--config", path); code != 0 {
			t.Errorf("a 32-byte default: exit %d %s%s", code, o, e)
		}
		path = writeFile(t, "short.yaml", strings.Replace(validYAML, `"${QIAO_SECRET}"`, `"${SPECTEST_SECRET:-0123456789abcdef0123456789abcde}"`, 1))
		if code, _, _ := runCLIEnv(t, map[string]string{"EXTRA_SECRET": "app-client-secret-app-client-secret-0001"}, "check-config", "--config", path); code != 1 {
			t.Errorf("a 31-byte default: exit %d, want 1", code)
		}
	})
}

// SPEC: "Start-up prints the issuer, the listen address, the store, the
// enabled connectors and each connector's callback URL".
func TestStartupPrintsIssuerListenStoreConnectorsAndCallbackURLs(t *testing.T) {
	s := shared
	// The output reaches us through a pipe: wait for the last connector.
	waitFor(t, func() bool { return strings.Contains(s.Process.Out.String(), s.Issuer+"/callback/qqu") }, "the start-up banner")
	out := s.Process.Out.String()
	want := []string{s.Issuer, strings.TrimPrefix(s.Root(), "http://"), s.dbPath()}
	for _, c := range []string{"wechat", "wechat_mp", "qq", "weibo"} {
		want = append(want, s.Issuer+"/callback/"+c)
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("start-up output lacks %q:\n%s", w, out)
		}
	}
	for _, c := range []string{"mini", "mini2"} {
		if !regexp.MustCompile(`(?m)^\s*` + c + `\s+wechat_miniprogram`).MatchString(out) {
			t.Errorf("start-up output does not list the enabled connector %s", c)
		}
	}
	for k, v := range env {
		if strings.Contains(out, v) {
			t.Errorf("start-up output shows %s", k)
		}
	}
}

// SPEC: "`qiao version`: version".
func TestVersion(t *testing.T) {
	code, stdout, _ := runCLI(t, "version")
	if code != 0 || !strings.Contains(stdout, "qiao") || strings.TrimSpace(stdout) == "qiao" {
		t.Errorf("exit %d %q", code, stdout)
	}
}

// SPEC: "`${VAR}` and `${VAR:-default}` are expanded from the environment."
func TestConfigExpandsVariablesWithDefaults(t *testing.T) {
	yaml := strings.Replace(validYAML, `"${QIAO_SECRET}"`, `"${SPECTEST_EMPTY:-0123456789abcdef0123456789abcdef}"`, 1)
	yaml = strings.Replace(yaml, "http://127.0.0.1:5556/sso", "${SPECTEST_ISSUER:-http://127.0.0.1:5556/sso}", 1)
	path := writeFile(t, "vars.yaml", yaml)
	code, stdout, stderr := runCLIEnv(t, map[string]string{"SPECTEST_EMPTY": "", "SPECTEST_ISSUER": "https://sso.example.com/prefix"}, "check-config", "--config", path)
	if code != 0 {
		t.Fatalf("exit %d:\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "https://sso.example.com/prefix/callback/weibo") {
		t.Errorf("the summary does not use the expanded issuer:\n%s", stdout)
	}
}

// SPEC: "SIGTERM/SIGINT drain in-flight requests and exit 0."
func TestSIGINTExitsZero(t *testing.T) {
	p := newStack(t, "").Process
	if err := p.Cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.Done():
	case <-time.After(15 * time.Second):
		t.Fatal("no exit 15 s after SIGINT")
	}
	if code := p.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit %d after SIGINT, want 0\n%s", code, p.Out.String())
	}
}
