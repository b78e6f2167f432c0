package qq_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/internal/conntest"
	"github.com/qiaoidp/qiao/connectors/qq"
	"github.com/qiaoidp/qiao/connectors/sandbox"
)

const (
	appID      = "101364207"
	unionAppID = "101888888"
	secret     = "qq-secret-0123456789abcdef"
	state      = "abcdefghijklmnop1234"
)

// recorder sits between the connector and the simulator: it notes every
// value that must never reach an error (codes, secrets, tokens), can make
// QQ answer in its default shapes by dropping fmt=json, and notes what
// the Caller's observer was told.
type recorder struct {
	conntest.Recorder
	stripFmt bool
	conntest.Observed
}

var hex32 = regexp.MustCompile(`[0-9A-F]{32}`)

func newRecorder() *recorder {
	r := &recorder{}
	r.Keys = []string{"code", "client_secret", "access_token", "refresh_token"}
	r.Replies = func(path string, body []byte) []string {
		if path != sandbox.QQPathToken {
			return nil
		}
		return hex32.FindAllString(string(body), -1)
	}
	r.Rewrite = func(req *http.Request) *http.Request {
		if !r.stripFmt {
			return req
		}
		q := req.URL.Query()
		q.Del("fmt")
		req = req.Clone(req.Context())
		req.URL.RawQuery = q.Encode()
		return req
	}
	return r
}

// assertNoLeak fails if err's text holds a code, secret or token.
func (r *recorder) assertNoLeak(t *testing.T, err error) {
	t.Helper()
	r.AssertNoLeak(t, err, secret)
}

type env struct {
	sim      *sandbox.QQ
	srv      *httptest.Server
	clock    *conntest.Clock
	rec      *recorder
	client   *http.Client // the connector's
	callback string
}

func newEnv(t *testing.T, opts sandbox.QQOptions) *env {
	t.Helper()
	e := &env{clock: conntest.NewClock(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC))}
	e.callback = "https://broker.example/callback/qq"
	if opts.Apps == nil {
		opts.Apps = []sandbox.QQApp{
			{ClientID: appID, Secret: secret, RedirectURI: e.callback},
			{ClientID: unionAppID, Secret: secret, RedirectURI: e.callback, UnionID: true},
		}
	}
	opts.Clock = e.clock.Now
	e.sim = sandbox.NewQQ(opts)
	e.srv = httptest.NewServer(e.sim)
	t.Cleanup(e.srv.Close)
	e.rec = newRecorder()
	e.client = &http.Client{Transport: e.rec}
	return e
}

func (e *env) connector(t *testing.T, cfg qq.Config) *qq.Connector {
	t.Helper()
	if cfg.ClientID == "" {
		cfg.ClientID = appID
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = secret
	}
	cfg.AuthBaseURL, cfg.APIBaseURL = e.srv.URL, e.srv.URL
	c, err := qq.New(cfg, &connectors.Caller{HTTP: e.client, ConnectorID: "qq", Observe: e.rec.Observe})
	if err != nil {
		t.Fatalf("qq.New: %v", err)
	}
	return c
}

func (e *env) request(mobile bool) connectors.LoginRequest {
	return connectors.LoginRequest{State: state, CallbackURL: e.callback, Mobile: mobile}
}

// browse plays the browser: the login URL, the picker, the person's
// link, and returns the callback's query.
func (e *env) browse(t *testing.T, c *qq.Connector, person string) url.Values {
	t.Helper()
	loginURL, _, err := c.LoginURL(context.Background(), e.request(false))
	if err != nil {
		t.Fatalf("LoginURL: %v", err)
	}
	return conntest.Browse(t, loginURL, `data-person="`+person+`"`, e.callback)
}

func TestLoginURLCarriesTheAppCallbackStateAndMobileDisplay(t *testing.T) {
	e := newEnv(t, sandbox.QQOptions{})
	c := e.connector(t, qq.Config{})
	for _, mobile := range []bool{false, true} {
		raw, _, err := c.LoginURL(context.Background(), e.request(mobile))
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		if u.Path != "/oauth2.0/authorize" || q.Get("response_type") != "code" || q.Get("client_id") != appID ||
			q.Get("redirect_uri") != e.callback || q.Get("state") != state || q.Get("scope") != "get_user_info" {
			t.Errorf("login URL %s", raw)
		}
		if got := q.Get("display") == "mobile"; got != mobile {
			t.Errorf("mobile=%v: display=%q", mobile, q.Get("display"))
		}
		resp, err := http.Get(raw)
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := map[bool]string{false: `data-display="pc"`, true: `data-display="mobile"`}[mobile]; !bytes.Contains(page, []byte(want)) {
			t.Errorf("mobile=%v: the simulator did not show the %s page", mobile, want)
		}
	}
	if _, _, err := c.LoginURL(context.Background(), connectors.LoginRequest{CallbackURL: e.callback}); !errors.Is(err, connectors.ErrConfig) {
		t.Errorf("LoginURL without state: %v", err)
	}
}

func TestLoginYieldsOpenIDAndProfileWhateverShapeQQAnswersIn(t *testing.T) {
	for _, stripFmt := range []bool{false, true} {
		name := map[bool]string{false: "fmt=json", true: "QQ's default form and JSONP"}[stripFmt]
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, sandbox.QQOptions{})
			e.rec.stripFmt = stripFmt
			c := e.connector(t, qq.Config{})
			id, err := c.HandleCallback(context.Background(), e.request(false), e.browse(t, c, "alice"))
			if err != nil {
				t.Fatalf("HandleCallback: %v", err)
			}
			alice, ok := sandbox.DefaultPerson("alice")
			if !ok {
				t.Fatal("no default person alice")
			}
			want := connectors.Identity{
				Subject:     e.sim.OpenID(appID, "alice"),
				DisplayName: alice.Name,
				Picture:     sandbox.AvatarURL(e.srv.URL, "alice") + "?s=100", // the simulator's own, QQ's size parameter
				RealProfile: true,
			}
			if id.Subject != want.Subject || id.UnionID != "" || id.DisplayName != want.DisplayName ||
				id.Picture != want.Picture || !id.RealProfile || id.Secret != nil {
				t.Errorf("identity %+v, want %+v", id, want)
			}
			wantObs := "oauth2.0/token=ok oauth2.0/me=ok user/get_user_info=ok"
			if got := strings.Join(e.rec.List(), " "); got != wantObs {
				t.Errorf("observer saw %q, want %q", got, wantObs)
			}
		})
	}
}

func TestPictureFallsBackWhenFigureurlQQ2IsMissing(t *testing.T) {
	e := newEnv(t, sandbox.QQOptions{OmitFigureQQ2: true})
	c := e.connector(t, qq.Config{})
	id, err := c.HandleCallback(context.Background(), e.request(false), e.browse(t, c, "bob"))
	if err != nil {
		t.Fatal(err)
	}
	if want := sandbox.AvatarURL(e.srv.URL, "bob") + "?s=40"; id.Picture != want {
		t.Errorf("picture %q, want the 40 px %q", id.Picture, want)
	}
}

func TestUnionIDIsStoredWhenGrantedAndExplainedWhenRefused(t *testing.T) {
	e := newEnv(t, sandbox.QQOptions{})
	granted := e.connector(t, qq.Config{ClientID: unionAppID, UnionID: true})
	id, err := granted.HandleCallback(context.Background(), e.request(false), e.browse(t, granted, "carol"))
	if err != nil {
		t.Fatal(err)
	}
	if id.UnionID != e.sim.UnionID("carol") || id.Subject != e.sim.OpenID(unionAppID, "carol") {
		t.Errorf("identity %+v, want unionid %s", id, e.sim.UnionID("carol"))
	}

	refused := e.connector(t, qq.Config{UnionID: true})
	_, err = refused.HandleCallback(context.Background(), e.request(false), e.browse(t, refused, "carol"))
	var pe *connectors.ProviderError
	if !errors.Is(err, connectors.ErrConfig) || !errors.As(err, &pe) || pe.Code != 100048 {
		t.Fatalf("unionid without permission: %v, want ErrConfig with code 100048", err)
	}
	if !strings.Contains(err.Error(), "unionid permission") {
		t.Errorf("error %q does not tell the admin the app lacks the unionid permission", err)
	}
	e.rec.assertNoLeak(t, err)
}

func TestCallbackWithoutCodeIsAccessDenied(t *testing.T) {
	e := newEnv(t, sandbox.QQOptions{})
	c := e.connector(t, qq.Config{})
	_, err := c.HandleCallback(context.Background(), e.request(false), url.Values{"state": {state}})
	if !errors.Is(err, connectors.ErrAccessDenied) {
		t.Errorf("callback without code: %v, want ErrAccessDenied", err)
	}
}

func TestProfileIsOptionalWhenTheUserDidNotGrantGetUserInfo(t *testing.T) {
	e := newEnv(t, sandbox.QQOptions{})
	c := e.connector(t, qq.Config{})
	q := e.browse(t, c, "alice")
	e.sim.InjectFault(sandbox.Fault{Path: sandbox.QQPathUserInfo, Code: 100030, Times: 1})
	id, err := c.HandleCallback(context.Background(), e.request(false), q)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != e.sim.OpenID(appID, "alice") || id.RealProfile || id.DisplayName != "" || id.Picture != "" {
		t.Errorf("identity %+v, want the openid and no profile", id)
	}
}

func TestErrorsMapToWhatTheBrokerShows(t *testing.T) {
	tests := []struct {
		name string
		// setup runs after the browser has the code; it may change the
		// connector config, the request or the simulator.
		setup func(t *testing.T, e *env, cfg *qq.Config, req *connectors.LoginRequest, q url.Values)
		kind  error
		code  int // the provider's code, 0 when it said nothing
	}{
		{"reused code", func(t *testing.T, e *env, cfg *qq.Config, req *connectors.LoginRequest, q url.Values) {
			if _, err := e.connector(t, *cfg).HandleCallback(context.Background(), *req, q); err != nil {
				t.Fatalf("first use of the code: %v", err)
			}
		}, connectors.ErrInvalidCode, 100020},
		{"expired code", func(_ *testing.T, e *env, _ *qq.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.clock.Advance(11 * time.Minute)
		}, connectors.ErrInvalidCode, 100019},
		{"bad secret", func(_ *testing.T, _ *env, cfg *qq.Config, _ *connectors.LoginRequest, _ url.Values) {
			cfg.ClientSecret = "wrong-secret"
		}, connectors.ErrConfig, 100009},
		{"callback differs from authorize", func(_ *testing.T, _ *env, _ *qq.Config, req *connectors.LoginRequest, _ url.Values) {
			req.CallbackURL += "/elsewhere"
		}, connectors.ErrConfig, 100010},
		{"token refused at /me", func(_ *testing.T, e *env, _ *qq.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.QQPathMe, Code: 100016, Times: 1})
		}, connectors.ErrInvalidCode, 100016},
		{"unknown QQ failure", func(_ *testing.T, e *env, _ *qq.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.QQPathToken, Code: 100021, Times: 1})
		}, connectors.ErrUnavailable, 100021},
		{"gateway busy", func(_ *testing.T, e *env, _ *qq.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.QQPathToken, Kind: sandbox.FaultBusy, Times: 1})
		}, connectors.ErrUnavailable, 0},
		{"down", func(_ *testing.T, e *env, _ *qq.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Kind: sandbox.FaultDown})
		}, connectors.ErrUnavailable, 0},
		{"slower than the timeout", func(_ *testing.T, e *env, _ *qq.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.QQPathMe, Kind: sandbox.FaultTimeout, Times: 1})
			e.client.Timeout = 200 * time.Millisecond
		}, connectors.ErrUnavailable, 0},
		{"empty token reply", func(_ *testing.T, e *env, _ *qq.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.QQPathToken, Kind: sandbox.FaultRaw, Status: 200, ContentType: "text/html", Times: 1})
		}, connectors.ErrUnavailable, 0},
		{"HTML token reply", func(_ *testing.T, e *env, _ *qq.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.QQPathToken, Kind: sandbox.FaultRaw, Status: 200, ContentType: "text/html", Body: "<html><body>维护中</body></html>", Times: 1})
		}, connectors.ErrUnavailable, 0},
		{"JSONP wrapping garbage", func(_ *testing.T, e *env, _ *qq.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.QQPathMe, Kind: sandbox.FaultRaw, Status: 200, ContentType: "text/html", Body: "callback( {\"openid\": ); garbage", Times: 1})
		}, connectors.ErrUnavailable, 0},
		{"user info not an object", func(_ *testing.T, e *env, _ *qq.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.QQPathUserInfo, Kind: sandbox.FaultRaw, Status: 200, ContentType: "text/html", Body: "[]", Times: 1})
		}, connectors.ErrUnavailable, 0},
		{"HTTP 404", func(_ *testing.T, e *env, _ *qq.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.QQPathToken, Kind: sandbox.FaultRaw, Status: 404, ContentType: "text/html", Body: "not found", Times: 1})
		}, connectors.ErrUnavailable, 0},
		{"error echoing the secret and code", func(_ *testing.T, e *env, _ *qq.Config, _ *connectors.LoginRequest, q url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.QQPathToken, Kind: sandbox.FaultRaw, Status: 200, ContentType: "text/html", Body: `callback( {"error":100019,"error_description":"bad code ` + q.Get("code") + ` for secret ` + secret + `",} );`, Times: 1})
		}, connectors.ErrInvalidCode, 100019},
	}
	for _, tt := range tests {
		for _, stripFmt := range []bool{false, true} {
			t.Run(tt.name+map[bool]string{false: "", true: "/default shapes"}[stripFmt], func(t *testing.T) {
				e := newEnv(t, sandbox.QQOptions{})
				e.rec.stripFmt = stripFmt
				cfg := qq.Config{ClientID: appID, ClientSecret: secret}
				q := e.browse(t, e.connector(t, cfg), "alice")
				req := e.request(false)
				tt.setup(t, e, &cfg, &req, q)
				start := time.Now()
				_, err := e.connector(t, cfg).HandleCallback(context.Background(), req, q)
				conntest.WantError(t, err, tt.kind, tt.code)
				if d := time.Since(start); d > 3*time.Second {
					t.Errorf("took %v", d)
				}
				e.rec.assertNoLeak(t, err)
			})
		}
	}
}

func TestNewRefusesIncompleteConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  qq.Config
	}{
		{"no client_id", qq.Config{ClientSecret: "s"}},
		{"no secret", qq.Config{ClientID: "1"}},
		{"relative base URL", qq.Config{ClientID: "1", ClientSecret: "s", APIBaseURL: "graph.qq.com"}},
		{"base URL with query", qq.Config{ClientID: "1", ClientSecret: "s", AuthBaseURL: "https://graph.qq.com/?x=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := qq.New(tt.cfg, nil); !errors.Is(err, connectors.ErrConfig) {
				t.Errorf("New: %v, want ErrConfig", err)
			}
		})
	}
	if _, err := qq.New(qq.Config{ClientID: "1", ClientSecret: "s"}, nil); err != nil {
		t.Errorf("New with defaults: %v", err)
	}
}
