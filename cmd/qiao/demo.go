package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qiaoidp/qiao/cmd/qiao/registry"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/exampleapp"
)

// The demo's preferred ports; a port that is taken falls back to a free one.
const (
	demoBrokerPort = 5556
	demoAppPort    = 8080
	demoWeChatPort = 5557
	demoQQPort     = 5558
	demoWeiboPort  = 5559
)

// The demo's apps at the simulated providers.
const (
	demoWeChatWebAppID  = "wxd3e0000000000001" // website app (QR-code login)
	demoWeChatMPAppID   = "wxd3e0000000000002" // Official Account
	demoWeChatMiniAppID = "wxd3e0000000000003" // mini-program
	demoQQAppID         = "101000001"
	demoWeiboAppKey     = "1352000001"
	demoAppClientID     = "example-app"
	demoMiniClientID    = "miniprogram"
	demoMiniConnector   = "wechat_miniprogram"
)

// demoOptions is what `qiao demo` runs with.
type demoOptions struct {
	host    string
	dataDir string // "": a temporary directory, removed on exit
	// anyPort skips the preferred ports (tests, so as not to take a port
	// someone is using by hand).
	anyPort bool
}

func cmdDemo(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host := fs.String("listen", "127.0.0.1", "host (IP address or name) to listen on and to put in every URL")
	data := fs.String("data", "", "directory for the SQLite store and the secrets that open it (default: a temporary directory removed on exit)")
	anyPort := fs.Bool("any-port", false, "take free ports rather than the preferred ones (for tests and scripts that read the printed URLs)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *host == "" || strings.ContainsAny(*host, "/:?#@ ") && net.ParseIP(*host) == nil {
		fmt.Fprintf(stderr, "demo: --listen %q is not a host name or IP address\n", *host)
		return 2
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return runDemo(ctx, demoOptions{host: *host, dataDir: *data, anyPort: *anyPort}, stdout, stderr)
}

// demo is the running sandbox: three simulators, the broker and the
// example app, each on its own server.
type demo struct {
	opts    demoOptions
	log     *slog.Logger
	dataDir string
	tempDir bool

	wechat *sandbox.WeChat
	qq     *sandbox.QQ
	weibo  *sandbox.Weibo
	// the simulators' and the app's servers, and their base URLs
	sims      []*http.Server
	app       *http.Server
	wechatURL string
	qqURL     string
	weiboURL  string
	appURL    string
	broker    *server
	errc      chan error
	// notes say which preferred ports were taken and what was used.
	notes []string
}

func runDemo(ctx context.Context, opts demoOptions, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	d := &demo{opts: opts, log: log, errc: make(chan error, 8)}
	if err := d.start(ctx); err != nil {
		fmt.Fprintln(stderr, "demo:", err)
		d.stop()
		return 1
	}
	d.printURLs(stdout)
	code := 0
	select {
	case <-ctx.Done():
	case err := <-d.broker.errc:
		log.Error("broker stopped", "err", err)
		code = 1
	case err := <-d.errc:
		log.Error("demo server stopped", "err", err)
		code = 1
	}
	log.Info("shutting down: draining in-flight requests")
	if err := d.stop(); err != nil {
		log.Error("shutdown", "err", err)
		code = 1
	}
	log.Info("stopped")
	return code
}

// start listens, builds everything and serves.
func (d *demo) start(ctx context.Context) error {
	if d.opts.dataDir == "" {
		dir, err := os.MkdirTemp("", "qiao-demo-")
		if err != nil {
			return fmt.Errorf("creating a data directory: %w", err)
		}
		d.dataDir, d.tempDir = dir, true
	} else {
		if err := os.MkdirAll(d.opts.dataDir, 0o700); err != nil {
			return fmt.Errorf("creating the data directory: %w", err)
		}
		d.dataDir = d.opts.dataDir
	}

	// Every server keeps its listener from the start: the broker's
	// address goes into the configuration and the simulators' callbacks,
	// and nobody can take a port between the choice and the serving.
	var brokerLn, appLn, wechatLn, qqLn, weiboLn net.Listener
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			ln.Close()
		}
	}
	for _, p := range []struct {
		port int
		name string
		ln   *net.Listener
	}{
		{demoBrokerPort, "broker", &brokerLn},
		{demoAppPort, "example app", &appLn},
		{demoWeChatPort, "WeChat simulator", &wechatLn},
		{demoQQPort, "QQ simulator", &qqLn},
		{demoWeiboPort, "Weibo simulator", &weiboLn},
	} {
		ln, err := d.listen(p.port, p.name)
		if err != nil {
			closeAll()
			return err
		}
		*p.ln = ln
		lns = append(lns, ln)
	}
	d.wechatURL = baseURL(wechatLn)
	d.qqURL = baseURL(qqLn)
	d.weiboURL = baseURL(weiboLn)
	d.appURL = baseURL(appLn)

	secrets, err := d.secrets()
	if err != nil {
		closeAll()
		return err
	}
	cfg, err := demoConfig(brokerLn.Addr().String(), d.appURL, d.wechatURL, d.qqURL, d.weiboURL, filepath.Join(d.dataDir, "qiao.db"), secrets)
	if err != nil {
		closeAll()
		return err
	}
	if err := d.newSimulators(cfg, secrets); err != nil {
		closeAll()
		return err
	}
	// startBroker owns the broker's listener from here on, failed or not.
	lns = lns[1:]
	d.broker, err = startBroker(ctx, cfg, d.log, nil, brokerLn)
	if err != nil {
		closeAll()
		return fmt.Errorf("starting the broker: %w", err)
	}

	app, err := exampleapp.New(ctx, exampleapp.Config{
		Issuer:       cfg.Issuer,
		ClientID:     demoAppClientID,
		ClientSecret: secrets["EXAMPLE_APP_SECRET"],
		BaseURL:      d.appURL,
		Connectors: []exampleapp.Connector{
			{ID: "wechat", Name: "WeChat (QR code)"},
			{ID: "wechat_mp", Name: "WeChat Official Account (in the WeChat browser)"},
			{ID: "qq", Name: "QQ"},
			{ID: "weibo", Name: "Weibo"},
		},
		Logger: d.log,
	})
	if err != nil {
		closeAll()
		return err
	}
	d.sims = []*http.Server{d.serve(wechatLn, d.wechat), d.serve(qqLn, d.qq), d.serve(weiboLn, d.weibo)}
	d.app = d.serve(appLn, app)
	return nil
}

// demoSecretsFile holds the demo's generated secrets in a kept data
// directory, so that its store (whose keys the broker secret seals)
// opens again on the next run.
const demoSecretsFile = "demo-secrets.json"

// demoSecretNames are the secrets the demo configuration uses, with
// their sizes in random bytes.
var demoSecretNames = []struct {
	name  string
	bytes int
}{
	{"QIAO_SECRET", 32},
	{"WECHAT_WEB_SECRET", 16},
	{"WECHAT_MP_SECRET", 16},
	{"WECHAT_MINI_SECRET", 16},
	{"QQ_SECRET", 16},
	{"WEIBO_SECRET", 16},
	{"EXAMPLE_APP_SECRET", 24},
}

// secrets returns the demo's secrets: new ones for a temporary
// directory; for a kept one (--data) those an earlier run stored there,
// generating and storing (mode 0600) any that are missing.
func (d *demo) secrets() (map[string]string, error) {
	secrets := map[string]string{}
	path := filepath.Join(d.dataDir, demoSecretsFile)
	if !d.tempDir {
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			if err := json.Unmarshal(data, &secrets); err != nil {
				return nil, fmt.Errorf("reading %s: %w (remove the data directory to start afresh)", path, err)
			}
			// A copy loosened by hand is tightened: it opens the keys.
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, fmt.Errorf("protecting the demo's secrets: %w", err)
			}
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("reading the demo's secrets: %w", err)
		default:
			if _, err := os.Stat(filepath.Join(d.dataDir, "qiao.db")); err == nil {
				return nil, fmt.Errorf("%s holds a store without the secrets that open it (%s is missing): remove the directory or use another", d.dataDir, demoSecretsFile)
			}
		}
	}
	missing := false
	for _, s := range demoSecretNames {
		if secrets[s.name] == "" {
			secrets[s.name] = randomHex(s.bytes)
			missing = true
		}
	}
	if d.tempDir || !missing {
		return secrets, nil
	}
	if err := writeSecretFile(path, secrets); err != nil {
		return nil, fmt.Errorf("storing the demo's secrets: %w", err)
	}
	return secrets, nil
}

// writeSecretFile writes v as JSON to path, mode 0600, all or nothing.
func writeSecretFile(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".demo-secrets-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	err = tmp.Chmod(0o600)
	if err == nil {
		_, err = tmp.Write(append(data, '\n'))
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// listen listens on the preferred port of the demo's host or, when it is
// taken, on a free one, and notes the change for the banner.
func (d *demo) listen(port int, name string) (net.Listener, error) {
	if !d.opts.anyPort {
		ln, err := net.Listen("tcp", net.JoinHostPort(d.opts.host, strconv.Itoa(port)))
		if err == nil {
			return ln, nil
		}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(d.opts.host, "0"))
	if err != nil {
		return nil, fmt.Errorf("listening on %s for the %s: %w", d.opts.host, name, err)
	}
	if !d.opts.anyPort {
		d.notes = append(d.notes, fmt.Sprintf("port %d (%s) was taken; using %d", port, name, ln.Addr().(*net.TCPAddr).Port))
	}
	return ln, nil
}

// hostOf is the host of an absolute URL, without brackets or port.
func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return ""
	}
	return p.Hostname()
}

func baseURL(ln net.Listener) string {
	return "http://" + ln.Addr().String()
}

// newSimulators builds the three providers with the demo's apps
// registered at them: the broker's callbacks, and the same app ids and
// secrets as the connectors.
func (d *demo) newSimulators(cfg *config.Config, secrets map[string]string) error {
	host := d.opts.host
	if ip := net.ParseIP(host); ip != nil && ip.To4() == nil {
		host = "[" + host + "]"
	}
	wc, err := sandbox.NewWeChat(sandbox.WeChatOptions{
		Apps: []sandbox.WeChatApp{
			{AppID: demoWeChatWebAppID, Secret: secrets["WECHAT_WEB_SECRET"], Type: sandbox.WeChatWebsite, CallbackDomain: host},
			{AppID: demoWeChatMPAppID, Secret: secrets["WECHAT_MP_SECRET"], Type: sandbox.WeChatMP, CallbackDomain: host},
			{AppID: demoWeChatMiniAppID, Secret: secrets["WECHAT_MINI_SECRET"], Type: sandbox.WeChatMiniProgram},
		},
		Account: "qiao-demo",
		// The sandbox phone page plays the mini-program of the scan login.
		ScanLoginAPI: cfg.Issuer + "/api/v1/scan",
	})
	if err != nil {
		return fmt.Errorf("starting the WeChat simulator: %w", err)
	}
	d.wechat = wc
	d.qq = sandbox.NewQQ(sandbox.QQOptions{Apps: []sandbox.QQApp{
		{ClientID: demoQQAppID, Secret: secrets["QQ_SECRET"], RedirectURI: cfg.CallbackURL("qq"), UnionID: true},
	}})
	d.weibo = sandbox.NewWeibo(sandbox.WeiboOptions{Apps: []sandbox.WeiboApp{
		{ClientID: demoWeiboAppKey, Secret: secrets["WEIBO_SECRET"], RedirectURI: cfg.CallbackURL("weibo")},
	}})
	return nil
}

// demoConfigYAML is the demo's configuration; the secrets come in as
// variables, so that they appear in no text.
const demoConfigYAML = `
issuer: {{ISSUER}}
http: { listen: "{{LISTEN}}" }
storage: { type: sqlite, sqlite: { path: "{{DB}}" } }
secret: "${QIAO_SECRET}"
log: { level: info, format: text }
connectors:
  - id: wechat
    type: wechat
    config: { client_id: ` + demoWeChatWebAppID + `, client_secret: "${WECHAT_WEB_SECRET}", auth_base_url: "{{WECHAT}}", api_base_url: "{{WECHAT}}" }
  - id: wechat_mp
    type: wechat_mp
    config: { client_id: ` + demoWeChatMPAppID + `, client_secret: "${WECHAT_MP_SECRET}", auth_base_url: "{{WECHAT}}", api_base_url: "{{WECHAT}}", scope: snsapi_userinfo }
  - id: ` + demoMiniConnector + `
    type: wechat_miniprogram
    config:
      client_id: ` + demoWeChatMiniAppID + `
      client_secret: "${WECHAT_MINI_SECRET}"
      auth_base_url: "{{WECHAT}}"
      api_base_url: "{{WECHAT}}"
      # Sign in on a computer by scanning a mini-program code; in the
      # demo the sandbox phone page ({{WECHAT}}/sandbox/phone) scans.
      scan_login: { page: pages/scan/index }
  - id: qq
    type: qq
    config: { client_id: "` + demoQQAppID + `", client_secret: "${QQ_SECRET}", auth_base_url: "{{QQ}}", api_base_url: "{{QQ}}" }
  - id: weibo
    type: weibo
    config: { client_id: "` + demoWeiboAppKey + `", client_secret: "${WEIBO_SECRET}", auth_base_url: "{{WEIBO}}", api_base_url: "{{WEIBO}}" }
clients:
  - id: ` + demoAppClientID + `
    secret: "${EXAMPLE_APP_SECRET}"
    name: Example App
    redirect_uris: ["{{APP}}/callback"]
    post_logout_redirect_uris: ["{{APP}}/"]
    # The demo runs on plain http, on --listen's host (a LAN address to
    # try it from a phone).
    allow_http_hosts: ["{{APPHOST}}"]
    connectors: [wechat, wechat_mp, ` + demoMiniConnector + `, qq, weibo]
    account_api: true
  - id: ` + demoMiniClientID + `
    public: true
    name: Demo Mini-Program
    # A client that uses only mini-program connectors signs in at the
    # token endpoint and needs no redirect URI.
    connectors: [` + demoMiniConnector + `]
    account_api: true
`

// demoConfig is the broker's configuration for a broker at brokerAddr.
func demoConfig(brokerAddr, appURL, wechatURL, qqURL, weiboURL, dbPath string, secrets map[string]string) (*config.Config, error) {
	y := strings.NewReplacer(
		"{{ISSUER}}", "http://"+brokerAddr,
		"{{LISTEN}}", brokerAddr,
		"{{DB}}", strings.ReplaceAll(dbPath, `"`, `\"`),
		"{{WECHAT}}", wechatURL, "{{QQ}}", qqURL, "{{WEIBO}}", weiboURL,
		"{{APP}}", appURL, "{{APPHOST}}", hostOf(appURL),
	).Replace(demoConfigYAML)
	cfg, err := config.Parse([]byte(y), "demo configuration", func(k string) (string, bool) {
		v, ok := secrets[k]
		return v, ok
	}, registry.Types())
	if err != nil {
		return nil, fmt.Errorf("the demo configuration: %w", err)
	}
	return cfg, nil
}

// serve serves h on ln until stop.
func (d *demo) serve(ln net.Listener, h http.Handler) *http.Server {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(d.log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.errc <- fmt.Errorf("%s: %w", ln.Addr(), err)
		}
	}()
	return srv
}

// stop shuts the app, the broker and the simulators down, in that order
// so that in-flight logins can finish, and removes a temporary data
// directory.
func (d *demo) stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()
	var errs []error
	if d.app != nil {
		errs = append(errs, d.app.Shutdown(ctx))
	}
	if d.broker != nil {
		errs = append(errs, d.broker.shutdown())
	}
	for _, s := range d.sims {
		errs = append(errs, s.Shutdown(ctx))
	}
	if d.tempDir {
		errs = append(errs, os.RemoveAll(d.dataDir))
	}
	return errors.Join(errs...)
}

// printURLs tells the user what to open.
func (d *demo) printURLs(w io.Writer) {
	issuer := d.broker.cfg.Issuer
	d.broker.printBanner(w)
	fmt.Fprintf(w, "\nQiao sandbox demo: simulated WeChat, QQ and Weibo; nothing leaves this machine.\n\n")
	for _, n := range d.notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	if len(d.notes) > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  example app:    %s/\n", d.appURL)
	fmt.Fprintf(w, "  broker issuer:  %s\n", issuer)
	fmt.Fprintf(w, "  discovery:      %s/.well-known/openid-configuration\n", issuer)
	fmt.Fprintf(w, "  account page:   %s/account\n", issuer)
	fmt.Fprintf(w, "  metrics:        %s/metrics\n", issuer)
	fmt.Fprintf(w, "  WeChat sim:     %s   (website app %s, Official Account %s, mini-program %s)\n", d.wechatURL, demoWeChatWebAppID, demoWeChatMPAppID, demoWeChatMiniAppID)
	fmt.Fprintf(w, "  sandbox phone:  %s/sandbox/phone   (scans the mini-program code of \"WeChat Mini Program\" on the sign-in page)\n", d.wechatURL)
	fmt.Fprintf(w, "  QQ sim:         %s   (APP ID %s)\n", d.qqURL, demoQQAppID)
	fmt.Fprintf(w, "  Weibo sim:      %s   (App Key %s)\n", d.weiboURL, demoWeiboAppKey)
	var persons []string
	for _, p := range sandbox.DefaultPersons() {
		persons = append(persons, p.ID)
	}
	fmt.Fprintf(w, "  sandbox people: %s (pick one on each provider's page)\n", strings.Join(persons, ", "))
	if d.tempDir {
		fmt.Fprintf(w, "  data:           %s (removed on exit; keep it with --data DIR)\n", d.dataDir)
	} else {
		fmt.Fprintf(w, "  data:           %s (kept, with the secrets that open it)\n", d.dataDir)
	}
	fmt.Fprintf(w, "\nMini-program login (wx.login, then the token exchange), from a shell:\n\n")
	fmt.Fprint(w, demoCurl(d.wechatURL, issuer))
	fmt.Fprintf(w, "\nPress Ctrl-C to stop.\n")
}

// demoCurl is the ready-to-run mini-program login: a code from the
// simulated wx.login, then the token exchange at the broker.
func demoCurl(wechatURL, issuer string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "  CODE=$(curl -s -X POST '%s/sandbox/wx.login?appid=%s&person=alice' | sed -E 's/.*\"code\":\"([^\"]+)\".*/\\1/')\n", wechatURL, demoWeChatMiniAppID)
	fmt.Fprintf(&b, "  curl -s -X POST '%s/token' \\\n", issuer)
	fmt.Fprintf(&b, "    -d grant_type=urn:ietf:params:oauth:grant-type:token-exchange \\\n")
	fmt.Fprintf(&b, "    -d subject_token=\"$CODE\" \\\n")
	fmt.Fprintf(&b, "    -d subject_token_type=urn:qiao:params:oauth:token-type:wechat-js-code \\\n")
	fmt.Fprintf(&b, "    -d subject_issuer=%s \\\n", demoMiniConnector)
	fmt.Fprintf(&b, "    -d client_id=%s \\\n", demoMiniClientID)
	fmt.Fprintf(&b, "    --data-urlencode 'scope=openid profile offline_access account'\n")
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand failed: %v", err)) // the platform is broken
	}
	return hex.EncodeToString(b)
}
