package replicas

import (
	"bufio"
	"bytes"
	"debug/buildinfo"
	"debug/elf"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/qiaoidp/qiao/cmd/qiao/registry"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// No Docker engine runs here: these tests check what can be checked
// without one. The compose file parses and says what it should, its
// configuration is one qiao accepts, the Dockerfile has the stages and
// settings we want, and its build commands make static binaries.

// composeFile is the part of docker-compose.yml the tests read.
type composeFile struct {
	Services map[string]struct {
		Image       string            `yaml:"image"`
		Build       any               `yaml:"build"`
		Environment map[string]string `yaml:"environment"`
		DependsOn   map[string]struct {
			Condition string `yaml:"condition"`
		} `yaml:"depends_on"`
		Configs []struct {
			Source string `yaml:"source"`
			Target string `yaml:"target"`
		} `yaml:"configs"`
		Volumes     []string `yaml:"volumes"`
		Ports       []string `yaml:"ports"`
		ReadOnly    bool     `yaml:"read_only"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
	Configs map[string]struct {
		Content string `yaml:"content"`
		File    string `yaml:"file"`
	} `yaml:"configs"`
}

func readCompose(t *testing.T) (composeFile, string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(qiaotest.ModuleRoot(t), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cf composeFile
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&cf); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return cf, string(raw)
}

// composeRef is a compose variable reference: ${NAME}, ${NAME:-default},
// ${NAME-default}, ${NAME:?error}, ${NAME?error}. $${ is an escape.
var composeRef = regexp.MustCompile(`(^|[^$])\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?])?([^}]*)\}`)

// isSecretName: QQ calls its app secret the App Key; Weibo's App Key is
// the public client id.
func isSecretName(name string) bool {
	return strings.Contains(name, "SECRET") || strings.Contains(name, "PASSWORD") || name == "QQ_APPKEY"
}

func TestComposeFileDescribesQiaoOnPostgres(t *testing.T) {
	cf, raw := readCompose(t)
	pg, ok := cf.Services["postgres"]
	if !ok {
		t.Fatal("no postgres service")
	}
	q, ok := cf.Services["qiao"]
	if !ok {
		t.Fatal("no qiao service")
	}
	if pg.Image != "postgres:15" {
		t.Errorf("postgres image %q, want postgres:15", pg.Image)
	}
	if !slices.ContainsFunc(pg.Healthcheck.Test, func(s string) bool { return strings.Contains(s, "pg_isready") }) {
		t.Errorf("postgres healthcheck %q does not run pg_isready", pg.Healthcheck.Test)
	}
	if !slices.ContainsFunc(pg.Volumes, func(v string) bool { return strings.HasSuffix(v, ":/var/lib/postgresql/data") }) {
		t.Errorf("postgres volumes %q keep no data", pg.Volumes)
	}
	if q.Build == nil {
		t.Error("the qiao service is not built from the Dockerfile")
	}
	if got := q.DependsOn["postgres"].Condition; got != "service_healthy" {
		t.Errorf("qiao depends on postgres with condition %q, want service_healthy", got)
	}
	if len(q.Healthcheck.Test) < 2 || q.Healthcheck.Test[0] != "CMD" || !strings.HasSuffix(q.Healthcheck.Test[len(q.Healthcheck.Test)-1], "/readyz") {
		t.Errorf("qiao healthcheck %q, want an exec-form check of /readyz (the image has no shell)", q.Healthcheck.Test)
	}
	if !slices.Contains(q.Ports, "5556:5556") {
		t.Errorf("qiao ports %q, want 5556:5556", q.Ports)
	}

	// Every secret comes from the environment with no default: compose
	// fails when it is missing.
	refs := composeRef.FindAllStringSubmatch(raw, -1)
	if len(refs) == 0 {
		t.Fatal("no ${VAR} references at all")
	}
	for _, m := range refs {
		name, op := m[2], m[3]
		if isSecretName(name) && op != ":?" && op != "?" {
			t.Errorf("${%s%s%s}: a secret must be required (${%s:?message}), not defaulted", name, op, m[4], name)
		}
	}
	for name, want := range map[string]string{"QIAO_SECRET": "QIAO_SECRET", "WEIBO_APPSECRET": "WEIBO_APPSECRET", "EXAMPLE_APP_SECRET": "EXAMPLE_APP_SECRET"} {
		v := q.Environment[name]
		if !regexp.MustCompile(`^\$\{` + want + `:\?[^}]*\}$`).MatchString(v) {
			t.Errorf("qiao environment %s = %q, want ${%s:?...}", name, v, want)
		}
	}
	if dsn := q.Environment["QIAO_DATABASE_URL"]; !strings.Contains(dsn, "@postgres:5432/") || !strings.Contains(dsn, "${POSTGRES_PASSWORD:?") {
		t.Errorf("QIAO_DATABASE_URL %q: want the postgres service, password from ${POSTGRES_PASSWORD:?...}", dsn)
	}

	// The configuration is mounted (read-only, as configs are) where the
	// image's CMD reads it, and qiao accepts it.
	if len(q.Configs) != 1 || q.Configs[0].Target != "/etc/qiao/config.yaml" {
		t.Fatalf("qiao configs %+v, want one mounted at /etc/qiao/config.yaml", q.Configs)
	}
	content := cf.Configs[q.Configs[0].Source].Content
	if content == "" {
		t.Fatalf("config %q has no content", q.Configs[0].Source)
	}
	if strings.Contains(content, "${") && !strings.Contains(content, "$${") {
		t.Error("the configuration has unescaped ${...}: compose would expand it and write the secret into the file")
	}
	// What qiao reads after compose's interpolation turns $${ into ${.
	yamlText := strings.ReplaceAll(content, "$${", "${")
	env := map[string]string{
		"QIAO_ISSUER":        "https://sso.example.com",
		"QIAO_DATABASE_URL":  "postgres://qiao:pw@postgres:5432/qiao?sslmode=disable&pool_max_conns=16",
		"QIAO_SECRET":        "compose-test-secret-0123456789abcdef0123456789",
		"WEIBO_APPKEY":       "1352222456",
		"WEIBO_APPSECRET":    "weibo-secret",
		"EXAMPLE_APP_SECRET": "app-secret-0123456789abcdef0123456789",
	}
	for name := range env {
		if _, ok := q.Environment[name]; !ok {
			t.Errorf("the configuration uses %s but the qiao service does not set it", name)
		}
	}
	cfg, err := config.Parse([]byte(yamlText), "docker-compose.yml#qiao_config", func(k string) (string, bool) {
		v, ok := env[k]
		return v, ok
	}, registry.Types())
	if err != nil {
		t.Fatalf("qiao rejects the compose configuration: %v", err)
	}
	if cfg.Storage.Type != "postgres" || cfg.Storage.Postgres.DSN != env["QIAO_DATABASE_URL"] {
		t.Errorf("storage %q dsn %q, want postgres from QIAO_DATABASE_URL", cfg.Storage.Type, cfg.Storage.Postgres.DSN)
	}
	if cfg.HTTP.Listen != "0.0.0.0:5556" {
		t.Errorf("listen %q, want 0.0.0.0:5556 (reachable from outside the container)", cfg.HTTP.Listen)
	}
	if cfg.Issuer != env["QIAO_ISSUER"] || cfg.Secret != env["QIAO_SECRET"] {
		t.Error("issuer or secret not taken from the environment")
	}
}

func TestDockerfileBuildsStaticNonRootImage(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(qiaotest.ModuleRoot(t), "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	// Join continuation lines; drop comments.
	var instrs []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || line == "" && cur.Len() == 0 {
			continue
		}
		if s, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(s + " ")
			continue
		}
		cur.WriteString(line)
		instrs = append(instrs, cur.String())
		cur.Reset()
	}
	var froms, final []string
	for _, in := range instrs {
		if strings.HasPrefix(in, "FROM ") {
			froms = append(froms, in)
			final = nil
		}
		final = append(final, in)
	}
	if len(froms) != 2 {
		t.Fatalf("stages %q, want a build stage and a run stage", froms)
	}
	if !regexp.MustCompile(`^FROM golang:1\.26\S* AS build$`).MatchString(froms[0]) {
		t.Errorf("build stage %q, want FROM golang:1.26 AS build", froms[0])
	}
	if !regexp.MustCompile(`^FROM (gcr\.io/distroless/static\S*|scratch)$`).MatchString(froms[1]) {
		t.Errorf("run stage %q, want distroless/static or scratch", froms[1])
	}
	all := strings.Join(instrs, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/qiao"} {
		if !strings.Contains(all, want) {
			t.Errorf("the Dockerfile does not mention %s", want)
		}
	}
	runStage := strings.Join(final, "\n")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^COPY --from=build /out/qiao /usr/local/bin/qiao$`),
		regexp.MustCompile(`(?m)^USER (nonroot|65532)`),
		regexp.MustCompile(`(?m)^EXPOSE 5556$`),
		regexp.MustCompile(`(?m)^HEALTHCHECK .*CMD \["/usr/local/bin/qiao", "healthcheck"`),
		regexp.MustCompile(`(?m)^ENTRYPOINT \["/usr/local/bin/qiao"\]$`),
		regexp.MustCompile(`(?m)^CMD \["serve", "--config", "/etc/qiao/config.yaml"\]$`),
	} {
		if !want.MatchString(runStage) {
			t.Errorf("the run stage lacks %s", want)
		}
	}
	// A root user in the run stage would undo USER.
	if regexp.MustCompile(`(?m)^USER (root|0)\b`).MatchString(runStage) {
		t.Error("the run stage switches back to root")
	}
	// The build context keeps what the build needs.
	ignore, err := os.ReadFile(filepath.Join(qiaotest.ModuleRoot(t), ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(ignore), "\n") {
		line = strings.TrimSpace(line)
		for _, needed := range []string{"go.mod", "go.sum", "cmd", "broker", "connectors", "storage", "config", "internal"} {
			if line == needed || line == needed+"/" || line == "*" || line == "**" {
				t.Errorf(".dockerignore excludes %s, which the build needs", line)
			}
		}
	}
}

// TestStaticBinariesBuildWithoutCgo builds qiao as the Dockerfile does and
// checks that it is static and runs, health probe included.
//
// The build shares the test run's build cache: it adds no -trimpath (the
// Dockerfile's GOFLAGS=-trimpath only strips file paths from the binary,
// which decides nothing checked here) and no -a, so with the README's
// test command (CGO_ENABLED=0, as the image is built) it compiles nothing
// the test binaries did not, and only links.
func TestStaticBinariesBuildWithoutCgo(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a binary")
	}
	dir := t.TempDir()
	cmd := exec.Command("go", "build", "-ldflags", "-s -w -X main.version=static-test",
		"-o", dir+string(filepath.Separator), "./cmd/qiao")
	cmd.Dir = qiaotest.ModuleRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("CGO_ENABLED=0 go build: %v\n%s", err, out)
	}
	qiao := filepath.Join(dir, "qiao")
	assertStatic(t, qiao)

	out, err := exec.Command(qiao, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "static-test") {
		t.Errorf("qiao version: %v %q", err, out)
	}

	// The probe against a real /readyz (a broker on SQLite), a failing
	// one, and nothing at all.
	e := newInProcess(t, qiaotest.SQLite)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer down.Close()
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	readyz := e.Root() + "/readyz"
	for _, c := range []struct {
		name, url string
		wantExit  int
	}{
		{"ready broker", readyz, 0},
		{"503", down.URL + "/readyz", 1},
		{"nothing listening", gone.URL + "/readyz", 1},
	} {
		err := exec.Command(qiao, "healthcheck", c.url).Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.wantExit {
			t.Errorf("healthcheck, %s: exit %d, want %d", c.name, code, c.wantExit)
		}
	}
}

// assertStatic checks that bin is a statically linked ELF built with
// CGO_ENABLED=0.
func assertStatic(t *testing.T, bin string) {
	t.Helper()
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("%s has a %s program header: dynamically linked", filepath.Base(bin), p.Type)
		}
	}
	if libs, _ := f.ImportedLibraries(); len(libs) > 0 {
		t.Errorf("%s needs shared libraries %q", filepath.Base(bin), libs)
	}
	info, err := buildinfo.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	cgo := ""
	for _, s := range info.Settings {
		if s.Key == "CGO_ENABLED" {
			cgo = s.Value
		}
	}
	if cgo != "0" {
		t.Errorf("%s built with CGO_ENABLED=%q, want 0", filepath.Base(bin), cgo)
	}
}

// TestCIRunsTheREADMETestCommand: .ci/run runs the one test command that
// README's "Tests" shows, once and as written, so that CI runs every test
// a developer runs, and in the same way.
func TestCIRunsTheREADMETestCommand(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(qiaotest.ModuleRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, tests, ok := strings.Cut(string(readme), "\n## Tests\n")
	if !ok {
		t.Fatal(`README.md has no "## Tests" section`)
	}
	m := regexp.MustCompile("(?s)```sh\n(.*?)\n```").FindStringSubmatch(tests)
	if m == nil {
		t.Fatal(`README's "Tests" shows no sh block`)
	}
	want := strings.TrimSpace(m[1])
	if !strings.Contains(want, "go test ") || !strings.HasSuffix(want, "./...") {
		t.Fatalf("README's first command in Tests is %q, want a go test of ./...", want)
	}
	ci, err := os.ReadFile(filepath.Join(qiaotest.ModuleRoot(t), ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	var runs []string // the lines of .ci/run that run go test on ./...
	for _, line := range strings.Split(string(ci), "\n") {
		if line = strings.TrimSpace(line); strings.Contains(line, "go test ") && strings.Contains(line, "./...") && !strings.HasPrefix(line, "#") {
			runs = append(runs, line)
		}
	}
	if len(runs) != 1 || runs[0] != want {
		t.Errorf(".ci/run runs %q; want README's test command %q, once", runs, want)
	}
}
