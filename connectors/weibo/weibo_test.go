package weibo_test

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
	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/connectors/weibo"
)

const (
	appKey = "1352222456"
	secret = "weibo-secret-0123456789abcdef"
	state  = "abcdefghijklmnop1234"
)

// recorder sits between the connector and the simulator: it notes every
// value that must never reach an error (codes, secrets, tokens, in query
// strings, form bodies and token replies) and what the observer was told.
type recorder struct {
	conntest.Recorder
	conntest.Observed
}

var tokenPattern = regexp.MustCompile(`2\.00[0-9a-f]+`)

func newRecorder() *recorder {
	r := &recorder{}
	r.Keys = []string{"code", "client_secret", "access_token"}
	r.Replies = func(_ string, body []byte) []string { return tokenPattern.FindAllString(string(body), -1) }
	return r
}

func (r *recorder) assertNoLeak(t *testing.T, err error) {
	t.Helper()
	r.AssertNoLeak(t, err, secret)
}

type env struct {
	sim      *sandbox.Weibo
	srv      *httptest.Server
	clock    *conntest.Clock
	rec      *recorder
	client   *http.Client
	callback string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{clock: conntest.NewClock(time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)), callback: "https://broker.example/callback/weibo"}
	e.sim = sandbox.NewWeibo(sandbox.WeiboOptions{
		Apps:  []sandbox.WeiboApp{{ClientID: appKey, Secret: secret, RedirectURI: e.callback}},
		Clock: e.clock.Now,
	})
	e.srv = httptest.NewServer(e.sim)
	t.Cleanup(e.srv.Close)
	e.rec = newRecorder()
	e.client = &http.Client{Transport: e.rec}
	return e
}

func (e *env) connector(t *testing.T, cfg weibo.Config) *weibo.Connector {
	t.Helper()
	if cfg.ClientID == "" {
		cfg.ClientID = appKey
	}
	if cfg.ClientSecret == "" {
		cfg.ClientSecret = secret
	}
	cfg.AuthBaseURL, cfg.APIBaseURL = e.srv.URL, e.srv.URL
	c, err := weibo.New(cfg, &connectors.Caller{HTTP: e.client, ConnectorID: "weibo", Observe: e.rec.Observe})
	if err != nil {
		t.Fatalf("weibo.New: %v", err)
	}
	return c
}

func (e *env) request() connectors.LoginRequest {
	return connectors.LoginRequest{State: state, CallbackURL: e.callback}
}

// browse plays the browser: login URL, picker, the link with attr, and
// returns the callback's query.
func (e *env) browse(t *testing.T, c *weibo.Connector, attr string) url.Values {
	t.Helper()
	loginURL, _, err := c.LoginURL(context.Background(), e.request())
	if err != nil {
		t.Fatal(err)
	}
	q := conntest.Browse(t, loginURL, attr, e.callback)
	if q.Get("state") != state {
		t.Fatalf("callback without the state: %s", q.Encode())
	}
	return q
}

func TestLoginURLUsesTheMobilePageOnPhones(t *testing.T) {
	c, err := weibo.New(weibo.Config{ClientID: appKey, ClientSecret: secret}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mobile bool
		prefix string
	}{
		{false, "https://api.weibo.com/oauth2/authorize?"},
		{true, "https://open.weibo.cn/oauth2/authorize?"},
	}
	for _, tt := range tests {
		req := connectors.LoginRequest{State: state, CallbackURL: "https://broker.example/callback/weibo", Mobile: tt.mobile}
		raw, _, err := c.LoginURL(context.Background(), req)
		if err != nil || !strings.HasPrefix(raw, tt.prefix) {
			t.Fatalf("mobile=%v: %s, %v; want %s...", tt.mobile, raw, err, tt.prefix)
		}
		u, _ := url.Parse(raw)
		q := u.Query()
		if q.Get("client_id") != appKey || q.Get("redirect_uri") != req.CallbackURL || q.Get("state") != state ||
			q.Get("response_type") != "code" || (q.Get("display") == "mobile") != tt.mobile {
			t.Errorf("mobile=%v: login URL %s", tt.mobile, raw)
		}
	}

	e := newEnv(t)
	req := e.request()
	req.Mobile = true
	raw, _, err := e.connector(t, weibo.Config{}).LoginURL(context.Background(), req)
	if err != nil || !strings.HasPrefix(raw, e.srv.URL+"/oauth2/authorize?") {
		t.Fatalf("with auth_base_url set, the mobile page is on it too: %s, %v", raw, err)
	}
	resp, err := http.Get(raw)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(page, []byte(`data-display="mobile"`)) {
		t.Errorf("the simulator did not show the mobile page")
	}
}

func TestLoginYieldsTheStringUIDAndProfile(t *testing.T) {
	e := newEnv(t)
	c := e.connector(t, weibo.Config{})
	// bob's id is above 2^53: a float would corrupt it.
	id, err := c.HandleCallback(context.Background(), e.request(), e.browse(t, c, `data-person="bob"`))
	if err != nil {
		t.Fatalf("HandleCallback: %v", err)
	}
	bob, ok := sandbox.DefaultPerson("bob")
	if !ok {
		t.Fatal("no default person bob")
	}
	if id.Subject != e.sim.UID("bob") || id.Subject != "9007199254740993" || id.UnionID != "" ||
		id.DisplayName != bob.Name || id.Picture != sandbox.AvatarURL(e.srv.URL, "bob") || !id.RealProfile || id.Secret != nil {
		t.Errorf("identity %+v, want uid %s, %s, %s", id, e.sim.UID("bob"), bob.Name, sandbox.AvatarURL(e.srv.URL, "bob"))
	}
	want := "oauth2/access_token=ok oauth2/get_token_info=ok 2/users/show.json=ok"
	if got := strings.Join(e.rec.List(), " "); got != want {
		t.Errorf("observer saw %q, want %q", got, want)
	}
}

func TestRefusalIsAccessDenied(t *testing.T) {
	e := newEnv(t)
	c := e.connector(t, weibo.Config{})
	_, err := c.HandleCallback(context.Background(), e.request(), e.browse(t, c, "data-deny"))
	var pe *connectors.ProviderError
	if !errors.Is(err, connectors.ErrAccessDenied) || !errors.As(err, &pe) || pe.Code != 21330 {
		t.Errorf("deny: %v, want ErrAccessDenied with code 21330", err)
	}
	_, err = c.HandleCallback(context.Background(), e.request(), url.Values{"state": {state}})
	if !errors.Is(err, connectors.ErrAccessDenied) {
		t.Errorf("callback with neither code nor error: %v, want ErrAccessDenied", err)
	}
	_, err = c.HandleCallback(context.Background(), e.request(), url.Values{"error": {"access_denied"}, "state": {state}})
	if !errors.Is(err, connectors.ErrAccessDenied) {
		t.Errorf("error=access_denied without error_code: %v, want ErrAccessDenied", err)
	}
}

func TestErrorsMapToWhatTheBrokerShows(t *testing.T) {
	type setupFunc func(t *testing.T, e *env, cfg *weibo.Config, req *connectors.LoginRequest, q url.Values)
	raw := func(path string, status int, body string) setupFunc {
		return func(_ *testing.T, e *env, _ *weibo.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: path, Kind: sandbox.FaultRaw, Status: status, ContentType: "text/plain;charset=UTF-8", Body: body, Times: 1})
		}
	}
	fail := func(path string, code int) setupFunc {
		return func(_ *testing.T, e *env, _ *weibo.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: path, Code: code, Times: 1})
		}
	}
	tests := []struct {
		name  string
		setup setupFunc
		kind  error
		code  int
	}{
		{"reused code", func(t *testing.T, e *env, cfg *weibo.Config, req *connectors.LoginRequest, q url.Values) {
			if _, err := e.connector(t, *cfg).HandleCallback(context.Background(), *req, q); err != nil {
				t.Fatalf("first use of the code: %v", err)
			}
		}, connectors.ErrInvalidCode, 21325},
		{"expired code", func(_ *testing.T, e *env, _ *weibo.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.clock.Advance(time.Hour)
		}, connectors.ErrInvalidCode, 21325},
		{"expired token", fail(sandbox.WeiboPathToken, 21327), connectors.ErrInvalidCode, 21327},
		{"token refused at users/show", fail(sandbox.WeiboPathUsersShow, 21332), connectors.ErrInvalidCode, 21332},
		{"bad secret", func(_ *testing.T, _ *env, cfg *weibo.Config, _ *connectors.LoginRequest, _ url.Values) {
			cfg.ClientSecret = "wrong-secret"
		}, connectors.ErrConfig, 21324},
		{"callback differs from authorize", func(_ *testing.T, _ *env, _ *weibo.Config, req *connectors.LoginRequest, _ url.Values) {
			req.CallbackURL += "/elsewhere"
		}, connectors.ErrConfig, 21322},
		{"IP rate limit", fail(sandbox.WeiboPathToken, 10022), connectors.ErrUnavailable, 10022},
		{"user rate limit", func(_ *testing.T, e *env, _ *weibo.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.WeiboPathUsersShow, Code: 10023, Times: 1})
		}, connectors.ErrUnavailable, 10023},
		{"user rate limit for an API", fail(sandbox.WeiboPathTokenInfo, 10024), connectors.ErrUnavailable, 10024},
		{"error_code as a string", raw(sandbox.WeiboPathToken, 400,
			`{"error":"invalid_grant","error_code":"21325","request":"/oauth2/access_token"}`), connectors.ErrInvalidCode, 21325},
		{"error in a 200", raw(sandbox.WeiboPathUsersShow, 200,
			`{"error":"expired_token","error_code":21327,"request":"/2/users/show.json"}`), connectors.ErrInvalidCode, 21327},
		{"error echoing the code and secret", func(_ *testing.T, e *env, _ *weibo.Config, _ *connectors.LoginRequest, q url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.WeiboPathToken, Kind: sandbox.FaultRaw, Status: 400, ContentType: "text/plain;charset=UTF-8", Body: `{"error":"invalid_grant","error_code":21325,"error_description":"invalid authorization code:` + q.Get("code") + ` ` + secret + `"}`, Times: 1})
		}, connectors.ErrInvalidCode, 21325},
		{"token of another app", func(_ *testing.T, e *env, _ *weibo.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.WeiboPathTokenInfo, Kind: sandbox.FaultRaw, Status: 200, ContentType: "text/plain;charset=UTF-8", Body: `{"uid":` + e.sim.UID("alice") + `,"appkey":999,"scope":null,"create_at":1,"expire_in":2}`, Times: 1})
		}, connectors.ErrConfig, 0},
		{"busy", func(_ *testing.T, e *env, _ *weibo.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.WeiboPathToken, Kind: sandbox.FaultBusy, Times: 1})
		}, connectors.ErrUnavailable, 0},
		{"down", func(_ *testing.T, e *env, _ *weibo.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Kind: sandbox.FaultDown})
		}, connectors.ErrUnavailable, 0},
		{"slower than the timeout", func(_ *testing.T, e *env, _ *weibo.Config, _ *connectors.LoginRequest, _ url.Values) {
			e.sim.InjectFault(sandbox.Fault{Path: sandbox.WeiboPathUsersShow, Kind: sandbox.FaultTimeout, Times: 1})
			e.client.Timeout = 200 * time.Millisecond
		}, connectors.ErrUnavailable, 0},
		{"empty 200", raw(sandbox.WeiboPathToken, 200, ""), connectors.ErrUnavailable, 0},
		{"HTML 200", raw(sandbox.WeiboPathUsersShow, 200, "<html><body>upgrading</body></html>"), connectors.ErrUnavailable, 0},
		{"HTML 403", raw(sandbox.WeiboPathToken, 403, "<html>forbidden</html>"), connectors.ErrUnavailable, 0},
		{"JSON array", raw(sandbox.WeiboPathTokenInfo, 200, "[]"), connectors.ErrUnavailable, 0},
		{"token without uid", raw(sandbox.WeiboPathToken, 200, `{"access_token":"2.00abc","expires_in":1}`), connectors.ErrUnavailable, 0},
		{"id as a float", raw(sandbox.WeiboPathUsersShow, 200, `{"id":9.007199254740992e15}`), connectors.ErrUnavailable, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := weibo.Config{}
			q := e.browse(t, e.connector(t, cfg), `data-person="alice"`)
			req := e.request()
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

func TestNewRefusesIncompleteConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  weibo.Config
	}{
		{"no client_id", weibo.Config{ClientSecret: "s"}},
		{"no secret", weibo.Config{ClientID: "1"}},
		{"relative base URL", weibo.Config{ClientID: "1", ClientSecret: "s", APIBaseURL: "api.weibo.com"}},
		{"mobile base URL not http", weibo.Config{ClientID: "1", ClientSecret: "s", MobileAuthBaseURL: "ftp://open.weibo.cn"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := weibo.New(tt.cfg, nil); !errors.Is(err, connectors.ErrConfig) {
				t.Errorf("New: %v, want ErrConfig", err)
			}
		})
	}
}
