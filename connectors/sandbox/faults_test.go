package sandbox

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// faultSim is one simulator under the fault tests, with its endpoints.
type faultSim struct {
	name    string
	handler interface {
		http.Handler
		InjectFault(Fault)
		ClearFaults()
		Calls(string) int
	}
	endpoints []string
	// apiType and emptyType are the Content-Types of FaultRaw without one
	// and of FaultEmpty.
	apiType, emptyType string
	// code is the provider error FaultError injects; wantError and
	// wantBusy check the provider's own shape of it and of FaultBusy.
	code      int
	wantError func(t *testing.T, path string, a faultAnswer)
	wantBusy  func(t *testing.T, path string, a faultAnswer)
}

// callTimeout bounds a call that should be answered, generously: the
// machine may be busy.
const callTimeout = 10 * time.Second

// faultAnswer is what a client got for one call.
type faultAnswer struct {
	err         error
	status      int
	contentType string
	body        string
}

func faultSims(t *testing.T) []faultSim {
	t.Helper()
	wx, err := NewWeChat(WeChatOptions{Apps: []WeChatApp{{AppID: "wxweb", Secret: "s", Type: WeChatWebsite}}})
	if err != nil {
		t.Fatal(err)
	}
	isPage := func(path string) bool { return strings.HasPrefix(path, "/connect/") }
	wxWant := func(code int) func(*testing.T, string, faultAnswer) {
		return func(t *testing.T, path string, a faultAnswer) {
			t.Helper()
			if isPage(path) {
				a.want(t, 200, "text/html; charset=utf-8", `data-wechat-error="`+strconv.Itoa(code)+`"`)
			} else {
				a.want(t, 200, "text/plain", `{"errcode":`+strconv.Itoa(code)+`,"errmsg":"`)
			}
		}
	}
	qqWant := func(t *testing.T, path string, a faultAnswer) {
		t.Helper()
		switch path {
		case QQPathAuthorize:
			a.want(t, 200, "text/html; charset=utf-8", `data-error-code="100030"`)
		case QQPathUserInfo:
			a.want(t, 200, "text/html", `{"msg":"user has not authorized this api","ret":100030}`)
		default:
			a.want(t, 200, "text/html", `callback( {"error":100030,"error_description":"user has not authorized this api"} );`)
		}
	}
	weiboWant := func(code, status int) func(*testing.T, string, faultAnswer) {
		return func(t *testing.T, path string, a faultAnswer) {
			t.Helper()
			if path == WeiboPathAuthorize && code != 10002 {
				a.want(t, 400, "text/html; charset=utf-8", `data-error-code="`+strconv.Itoa(code)+`"`)
			} else {
				a.want(t, status, "text/plain;charset=UTF-8", `"error_code":`+strconv.Itoa(code)+`,`, `"request":"`+path+`"`)
			}
		}
	}
	return []faultSim{
		{
			name: "wechat", handler: wx,
			endpoints: []string{"/connect/qrconnect", "/connect/oauth2/authorize", "/sns/oauth2/access_token", "/sns/userinfo",
				"/sns/jscode2session", "/cgi-bin/token", "/cgi-bin/stable_token", "/wxa/getwxacodeunlimit"},
			apiType: "text/plain", emptyType: "text/html; charset=gbk",
			code: 45011, wantError: wxWant(45011), wantBusy: wxWant(-1),
		},
		{
			name: "qq", handler: NewQQ(QQOptions{}),
			endpoints: []string{QQPathAuthorize, QQPathToken, QQPathMe, QQPathUserInfo},
			apiType:   "text/html", emptyType: "text/html",
			code: 100030, wantError: qqWant,
			wantBusy: func(t *testing.T, _ string, a faultAnswer) {
				t.Helper()
				a.want(t, 503, "text/html", "<hr>tws</body>")
			},
		},
		{
			name: "weibo", handler: NewWeibo(WeiboOptions{}),
			endpoints: []string{WeiboPathAuthorize, WeiboPathToken, WeiboPathTokenInfo, WeiboPathRevoke, WeiboPathUsersShow, WeiboPathEmail},
			apiType:   "text/plain;charset=UTF-8", emptyType: "text/plain;charset=UTF-8",
			code: 10023, wantError: weiboWant(10023, 403), wantBusy: weiboWant(10002, 503),
		},
	}
}

func (a faultAnswer) want(t *testing.T, status int, contentType string, bodyParts ...string) {
	t.Helper()
	if a.err != nil || a.status != status || a.contentType != contentType {
		t.Errorf("got %v, HTTP %d, %q, %.200q; want HTTP %d, %q", a.err, a.status, a.contentType, a.body, status, contentType)
	}
	for _, part := range bodyParts {
		if !strings.Contains(a.body, part) {
			t.Errorf("body %.300q, want one with %q", a.body, part)
		}
	}
}

// faultCall sends one POST to path on a connection of its own (so that
// Go's client does not retry a dropped one), and gives up after timeout.
func faultCall(srv *httptest.Server, path string, timeout time.Duration) faultAnswer {
	c := &http.Client{
		Timeout:       timeout,
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.PostForm(srv.URL+path, nil)
	if err != nil {
		return faultAnswer{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return faultAnswer{err: err, status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: string(b)}
}

// TestEveryFaultKindAnswersAlikeOnEveryEndpoint injects each kind of
// fault into each endpoint of each simulator, once through InjectFault
// and once through POST /sandbox/fault, and checks the answer: the
// provider's own shape for error and busy, the same answer everywhere
// for the other kinds, and only for the one call asked for.
func TestEveryFaultKindAnswersAlikeOnEveryEndpoint(t *testing.T) {
	kinds := []struct {
		fault Fault
		check func(t *testing.T, s faultSim, path string, a faultAnswer)
	}{
		{Fault{Kind: FaultError}, func(t *testing.T, s faultSim, path string, a faultAnswer) { s.wantError(t, path, a) }},
		{Fault{Kind: FaultBusy}, func(t *testing.T, s faultSim, path string, a faultAnswer) { s.wantBusy(t, path, a) }},
		{Fault{Kind: FaultTimeout}, func(t *testing.T, _ faultSim, _ string, a faultAnswer) {
			var ne interface{ Timeout() bool }
			if !errors.As(a.err, &ne) || !ne.Timeout() {
				t.Errorf("got %v, HTTP %d; want the client to time out", a.err, a.status)
			}
		}},
		{Fault{Kind: FaultDown}, func(t *testing.T, _ faultSim, _ string, a faultAnswer) {
			var ne interface{ Timeout() bool }
			if a.err == nil || errors.As(a.err, &ne) && ne.Timeout() {
				t.Errorf("got %v, HTTP %d; want the connection dropped", a.err, a.status)
			}
		}},
		{Fault{Kind: FaultEmpty}, func(t *testing.T, s faultSim, _ string, a faultAnswer) {
			a.want(t, 200, s.emptyType, "")
			if a.body != "" {
				t.Errorf("body %q, want none", a.body)
			}
		}},
		{Fault{Kind: FaultHTML}, func(t *testing.T, _ faultSim, _ string, a faultAnswer) {
			a.want(t, 200, "text/html; charset=utf-8", faultHTMLPage)
		}},
		{Fault{Kind: FaultRaw, Status: 418, Body: "teapot"}, func(t *testing.T, s faultSim, _ string, a faultAnswer) {
			a.want(t, 418, s.apiType, "teapot")
		}},
		{Fault{Kind: FaultRaw, ContentType: "application/xml", Body: "<a/>"}, func(t *testing.T, _ faultSim, _ string, a faultAnswer) {
			a.want(t, 200, "application/xml", "<a/>")
		}},
	}
	for _, s := range faultSims(t) {
		srv := httptest.NewServer(s.handler)
		t.Cleanup(srv.Close)
		for _, path := range s.endpoints {
			t.Run(s.name+path, func(t *testing.T) {
				t.Parallel()
				unfaulted := faultCall(srv, path, callTimeout)
				if unfaulted.err != nil {
					t.Fatalf("%s without a fault: %v", path, unfaulted.err)
				}
				for _, k := range kinds {
					f := k.fault
					f.Path, f.Times = path, 1
					if f.Kind == FaultError {
						f.Code = s.code
					}
					inject := map[string]func(t *testing.T){
						"InjectFault": func(*testing.T) { s.handler.InjectFault(f) },
						"POST /sandbox/fault": func(t *testing.T) {
							form := url.Values{"path": {path}, "kind": {f.Kind.String()}, "times": {"1"}, "body": {f.Body}, "content_type": {f.ContentType}}
							if f.Code != 0 {
								form.Set("code", strconv.Itoa(f.Code))
							}
							if f.Status != 0 {
								form.Set("status", strconv.Itoa(f.Status))
							}
							resp, err := http.PostForm(srv.URL+faultPath, form)
							if err != nil {
								t.Fatal(err)
							}
							resp.Body.Close()
							if resp.StatusCode != 200 {
								t.Fatalf("POST %s %v: HTTP %d", faultPath, form, resp.StatusCode)
							}
						},
					}
					for _, via := range []string{"InjectFault", "POST /sandbox/fault"} {
						t.Run(f.Kind.String()+" via "+via, func(t *testing.T) {
							calls := s.handler.Calls(path)
							inject[via](t)
							timeout := callTimeout
							if f.Kind == FaultTimeout {
								timeout = 200 * time.Millisecond
							}
							k.check(t, s, path, faultCall(srv, path, timeout))
							if after := faultCall(srv, path, callTimeout); after.err != nil || after.status != unfaulted.status || after.contentType != unfaulted.contentType {
								t.Errorf("the call after the fault: %v, HTTP %d %q; want it unfaulted (HTTP %d %q)", after.err, after.status, after.contentType, unfaulted.status, unfaulted.contentType)
							}
							if got := s.handler.Calls(path); got != calls+2 {
								t.Errorf("Calls(%s) went from %d to %d, want +2", path, calls, got)
							}
						})
					}
				}
			})
		}
	}
}

// TestFaultsOnEveryPathLeaveTheSandboxHelpersAlone: a fault with no Path
// takes down every endpoint of the simulator, but its avatars and the
// fault form still answer, so that the form can clear it.
func TestFaultsOnEveryPathLeaveTheSandboxHelpersAlone(t *testing.T) {
	for _, s := range faultSims(t) {
		t.Run(s.name, func(t *testing.T) {
			srv := httptest.NewServer(s.handler)
			defer srv.Close()
			s.handler.InjectFault(Fault{Kind: FaultDown})
			for _, path := range s.endpoints {
				if a := faultCall(srv, path, callTimeout); a.err == nil {
					t.Errorf("%s answered HTTP %d while down", path, a.status)
				}
			}
			if resp, err := http.Get(srv.URL + avatarPrefix + "alice.svg"); err != nil || resp.StatusCode != 200 {
				t.Errorf("avatar while down: %v %v", resp, err)
			} else {
				resp.Body.Close()
			}
			resp, err := http.PostForm(srv.URL+faultPath, url.Values{"clear": {"1"}})
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("clearing while down: %v %v", resp, err)
			}
			resp.Body.Close()
			if a := faultCall(srv, s.endpoints[0], callTimeout); a.err != nil {
				t.Errorf("%s after clear=1: %v", s.endpoints[0], a.err)
			}
		})
	}
}

// TestFaultFormRefusesWhatItCannotDo: POST /sandbox/fault answers 400 to
// a fault it cannot inject, on every simulator.
func TestFaultFormRefusesWhatItCannotDo(t *testing.T) {
	for _, s := range faultSims(t) {
		srv := httptest.NewServer(s.handler)
		t.Cleanup(srv.Close)
		for name, form := range map[string]url.Values{
			"no path":         {"code": {"-1"}, "times": {"1"}},
			"a sandbox path":  {"path": {"/sandbox/avatar/alice.svg"}, "code": {"-1"}, "times": {"1"}},
			"error, no code":  {"path": {s.endpoints[1]}, "times": {"1"}},
			"unknown kind":    {"path": {s.endpoints[1]}, "kind": {"slow"}, "times": {"1"}},
			"no times":        {"path": {s.endpoints[1]}, "kind": {"busy"}},
			"too many times":  {"path": {s.endpoints[1]}, "kind": {"busy"}, "times": {"1001"}},
			"a status of 42":  {"path": {s.endpoints[1]}, "kind": {"raw"}, "status": {"42"}, "times": {"1"}},
			"a status of abc": {"path": {s.endpoints[1]}, "kind": {"raw"}, "status": {"abc"}, "times": {"1"}},
		} {
			resp, err := http.PostForm(srv.URL+faultPath, form)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s, %s: HTTP %d, want 400", s.name, name, resp.StatusCode)
			}
		}
		resp, err := http.Get(srv.URL + faultPath + "?" + url.Values{"path": {s.endpoints[1]}, "kind": {"busy"}, "times": {"1"}}.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != http.MethodPost {
			t.Errorf("%s, GET: HTTP %d Allow %q, want 405 and Allow POST", s.name, resp.StatusCode, resp.Header.Get("Allow"))
		}
		if a := faultCall(srv, s.endpoints[1], callTimeout); a.err != nil || a.status == 418 {
			t.Errorf("%s: a refused fault was injected: %+v", s.name, a)
		}
	}
}
