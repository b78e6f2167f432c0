package securitytest

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// The fuzz targets send requests straight to the broker's handler. Their
// seed corpus runs in every `go test`; `go test -fuzz FuzzToken` (one
// target at a time) explores further. Every target checks the same
// invariants: no 5xx (a panic is answered 500 by the middleware), no
// redirect anywhere but the broker, a registered client URI or a
// provider, and no markup that runs script.

// fuzzEnv is a broker shared by every input of one target, with a
// signed-in browser, its account CSRF token and a bearer access token.
type fuzzEnv struct {
	*env
	handler               http.Handler
	session, csrf, access string
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	e := newEnv(f, noLimits())
	br := e.newBrowser()
	e.accountLogin(br, "alpha", "alice")
	fe := &fuzzEnv{env: e, handler: e.Broker.Handler(), session: br.cookie("qiao_session")}
	fe.csrf = parsePage(f, br.get(e.issuer+"/account").Body).hiddenInputs().Get("csrf")
	fe.access = str(e.loginTokens(br), "access_token")
	if fe.session == "" || fe.csrf == "" || fe.access == "" {
		f.Fatal("fuzz setup: no session, CSRF token or access token")
	}
	return fe
}

// serve runs one request through the handler and checks the invariants.
func (fe *fuzzEnv) serve(t *testing.T, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	req.RemoteAddr = "192.0.2.1:1234"
	w := httptest.NewRecorder()
	fe.handler.ServeHTTP(w, req)
	if w.Code >= 500 {
		t.Fatalf("%s %s: status %d\n%.400s", req.Method, req.URL, w.Code, w.Body.String())
	}
	if loc := w.Header().Get("Location"); loc != "" && !fe.allowedRedirect(loc) {
		t.Fatalf("%s %s: redirect to %q", req.Method, req.URL, loc)
	}
	if strings.Contains(strings.ToLower(w.Body.String()), "<script") {
		t.Fatalf("%s %s: a script element in the response\n%.400s", req.Method, req.URL, w.Body.String())
	}
	return w
}

var registeredURIs = []string{
	"https://app.example/cb", "https://app.example/bye", "https://other.example/cb", "https://other.example/bye",
	"https://spa.example/cb", "https://consent.example/cb", "https://webonly.example/cb",
}

func (fe *fuzzEnv) allowedRedirect(loc string) bool {
	if strings.HasPrefix(loc, "/") && !strings.HasPrefix(loc, "//") && !strings.HasPrefix(loc, "/\\") {
		return true // same origin
	}
	u, err := url.Parse(loc)
	if err != nil {
		return false
	}
	if iss, _ := url.Parse(fe.issuer); u.Scheme == iss.Scheme && u.Host == iss.Host && u.User == nil {
		return true
	}
	if u.Scheme == "http" && u.User == nil && u.Host != "" && fe.IsWorld(u.Host) {
		return true // a provider (the simulators)
	}
	bare := u.Scheme + "://" + u.Host + u.Path
	for _, r := range registeredURIs {
		if bare == r && u.User == nil {
			return true
		}
	}
	// The loopback redirect URI of client web, on any port (RFC 8252;
	// fosite also lets a userinfo through there, which the report notes:
	// the host stays the loopback address).
	if ip := net.ParseIP(u.Hostname()); u.Scheme == "http" && ip != nil && ip.IsLoopback() && u.Path == "/loop" {
		return true
	}
	return false
}

func (fe *fuzzEnv) request(method, path, rawQuery, body, ctype string) *http.Request {
	req := httptest.NewRequest(method, fe.issuer+"/", strings.NewReader(body))
	req.URL.Path = "/qiao" + path
	req.URL.RawQuery = rawQuery
	req.RequestURI = ""
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	return req
}

const formType = "application/x-www-form-urlencoded"

func FuzzAuthorize(f *testing.F) {
	fe := newFuzzEnv(f)
	good := fe.authParams("web", "https://app.example/cb").Encode()
	for _, s := range []string{
		good, good + "&prompt=none", good + "&prompt=login%20consent&max_age=0", good + "&max_age=-1",
		good + "&max_age=99999999999999999999", good + "&connector_id=mini", good + "&connector_id=%00",
		fe.authParams("consent", "https://consent.example/cb").Encode() + "&consent_action=allow&consent_csrf=x",
		fe.authParams("spa", "https://spa.example/cb", "code_challenge_method", "plain").Encode(),
		fe.authParams("web", "http://127.0.0.1:7/loop").Encode(), fe.authParams("web", "http://user@127.0.0.1:7/loop").Encode(),
		"client_id=web&response_type=code&redirect_uri=https://app.example/cb&scope=openid&state=%zz",
		"client_id=web&client_id=other&response_type=code", "response_type=token&client_id=web", "request=eyJ&client_id=web",
		"", "%", "&&&", "client_id=" + strings.Repeat("a", 5000), good + "&ui_locales=en%20zh&lang=en",
		good + "&claims=%7B%22id_token%22%3A%7B%7D%7D", good + "&scope=openid%20phone%20admin",
	} {
		f.Add(s, false, false)
		f.Add(s, true, true)
	}
	f.Fuzz(func(t *testing.T, query string, post, signedIn bool) {
		var req *http.Request
		if post {
			req = fe.request(http.MethodPost, "/auth", "", query, formType)
		} else {
			req = fe.request(http.MethodGet, "/auth", query, "", "")
		}
		if signedIn {
			req.AddCookie(&http.Cookie{Name: "qiao_session", Value: fe.session})
		}
		fe.serve(t, req)
	})
}

func FuzzToken(f *testing.F) {
	fe := newFuzzEnv(f)
	for _, s := range []string{
		"grant_type=authorization_code&code=qiao_ac_x.y&redirect_uri=https://app.example/cb&code_verifier=" + strings.Repeat("v", 43),
		"grant_type=refresh_token&refresh_token=ory_rt_x.y", "grant_type=refresh_token&refresh_token=.",
		"grant_type=client_credentials", "grant_type=password&username=a&password=b", "grant_type=",
		"grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=alice:1&subject_token_type=urn:qiao:params:oauth:token-type:wechat-js-code&subject_issuer=mini&client_id=miniapp&scope=openid%20phone&phone_code=x",
		"grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token=&subject_issuer=mini&client_id=miniapp",
		"grant_type=urn:ietf:params:oauth:grant-type:token-exchange&subject_token_type=urn:qiao:params:oauth:token-type:wechat-js-code&subject_issuer=alpha&client_id=miniapp&subject_token=a:b",
		"grant_type=authorization_code&grant_type=refresh_token", "client_id=web&client_secret=" + webSecret + "x&grant_type=refresh_token",
		"client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer&client_assertion=a.b.c&grant_type=authorization_code",
		"%", "a=%zz", "", "grant_type=refresh_token&refresh_token=" + strings.Repeat("x", 4000),
	} {
		f.Add(s, "", "", formType)
		f.Add(s, "web", webSecret, formType)
	}
	f.Add("{}", "web", webSecret, "application/json")
	f.Add("--X\r\n", "", "", "multipart/form-data; boundary=X")
	f.Add("a=b", "%zz", "%", "text/plain")
	f.Fuzz(func(t *testing.T, body, user, pass, ctype string) {
		req := fe.request(http.MethodPost, "/token", "", body, ctype)
		if user != "" || pass != "" {
			req.SetBasicAuth(user, pass)
		}
		fe.serve(t, req)
	})
}

// FuzzCallback replaces STATE in the query with the state of a pending
// login started just before, and CODE with the code the provider (the
// Weibo simulator) gave alice for it, so that inputs reach the connector
// and the sign-in behind it.
func FuzzCallback(f *testing.F) {
	fe := newFuzzEnv(f)
	for _, s := range []string{
		"state=STATE&code=CODE", "state=STATE", "state=STATE&code=", "state=STATE&code=" + strings.Repeat("b", 100),
		"state=STATE&error=access_denied&error_description=%3Cscript%3E", "state=STATE&state=x&code=CODE", "state=STATE&code=alice",
		"state=x&code=alice", "state=" + strings.Repeat("A", 200), "state=%00AAAAAAAAAAAAAAAAAAAA", "code=alice", "", "%",
	} {
		for _, conn := range []string{"alpha", "beta", "mini", "nope", ""} {
			f.Add(conn, s, true, false)
		}
		f.Add("alpha", s, false, true)
	}
	f.Fuzz(func(t *testing.T, connector, query string, withCookie, bind bool) {
		// Start a pending login (or bind) to get a state and its cookie.
		var start *http.Request
		if bind {
			start = fe.request(http.MethodPost, "/account/bind", "", url.Values{"csrf": {fe.csrf}, "connector_id": {"beta"}}.Encode(), formType)
			start.AddCookie(&http.Cookie{Name: "qiao_session", Value: fe.session})
		} else {
			start = fe.request(http.MethodGet, "/auth", fe.authParams("web", "https://app.example/cb").Encode(), "", "")
		}
		w := fe.serve(t, start)
		loc, err := url.Parse(w.Header().Get("Location"))
		if err != nil || loc.Query().Get("state") == "" {
			t.Fatalf("no pending login: %d %q", w.Code, w.Header().Get("Location"))
		}
		var loginName, login string
		for _, c := range w.Result().Cookies() {
			if strings.HasPrefix(c.Name, "qiao_login_") {
				loginName, login = c.Name, c.Value
			}
		}
		query = strings.ReplaceAll(query, "STATE", loc.Query().Get("state"))
		if strings.Contains(query, "CODE") {
			cb, err := url.Parse(fe.newBrowser().CallbackOf(t, loc.String(), "alice"))
			if err != nil {
				t.Fatal(err)
			}
			query = strings.ReplaceAll(query, "CODE", cb.Query().Get("code"))
		}
		req := fe.request(http.MethodGet, "/callback/"+url.PathEscape(connector), query, "", "")
		if withCookie {
			req.AddCookie(&http.Cookie{Name: loginName, Value: login})
		}
		if bind {
			req.AddCookie(&http.Cookie{Name: "qiao_session", Value: fe.session})
		}
		fe.serve(t, req)
	})
}

func FuzzLogout(f *testing.F) {
	fe := newFuzzEnv(f)
	for _, s := range []string{
		"", "client_id=web", "client_id=web&post_logout_redirect_uri=https://app.example/bye&state=x",
		"post_logout_redirect_uri=https://app.example/bye", "id_token_hint=a.b.c", "id_token_hint=eyJhbGciOiJub25lIn0.e30.",
		"id_token_hint=" + strings.Repeat("e", 3000), "client_id=ghost&post_logout_redirect_uri=x", "%", "id_token_hint=%zz",
		"client_id=web&post_logout_redirect_uri=https://app.example/bye%23x", "client_id=web&post_logout_redirect_uri=javascript:alert(1)",
	} {
		f.Add(s, false, true)
		f.Add(s, true, false)
	}
	f.Fuzz(func(t *testing.T, query string, post, signedIn bool) {
		var req *http.Request
		if post {
			req = fe.request(http.MethodPost, "/logout", "", query, formType)
		} else {
			req = fe.request(http.MethodGet, "/logout", query, "", "")
		}
		if signedIn {
			// A throwaway session: the shared one must survive.
			req.AddCookie(&http.Cookie{Name: "qiao_session", Value: "not-a-live-session-" + strings.Repeat("x", 24)})
		}
		fe.serve(t, req)
	})
}

func FuzzAccountAPI(f *testing.F) {
	fe := newFuzzEnv(f)
	for _, s := range []struct{ method, path, body string }{
		{"GET", "/api/v1/me", ""},
		{"POST", "/api/v1/me/identities", `{"connector_id":"mini","code":"bob:1"}`},
		{"POST", "/api/v1/me/identities", `{"connector_id":"alpha","code":"x"}`},
		{"POST", "/api/v1/me/identities", `{"connector_id":"mini","code":""}`},
		{"POST", "/api/v1/me/identities", `{"connector_id":1,"code":null}`},
		{"POST", "/api/v1/me/identities", `[`},
		{"POST", "/api/v1/me/identities", `{"connector_id":"mini","code":"a:b"}{"x":1}`},
		{"POST", "/api/v1/me/identities", strings.Repeat(`{"a":`, 10000)},
		{"DELETE", "/api/v1/me/identities/nope", ""},
		{"DELETE", "/api/v1/me/identities/%2e%2e", ""},
		{"DELETE", "/api/v1/me/identities/", ""},
		{"PUT", "/api/v1/me", "{}"},
	} {
		f.Add(s.method, s.path, s.body, true)
		f.Add(s.method, s.path, s.body, false)
	}
	f.Fuzz(func(t *testing.T, method, path, body string, auth bool) {
		if !validMethod(method) {
			return
		}
		req := fe.request(method, "/", "", body, "application/json")
		req.URL.Path = "/qiao" + path
		if auth {
			req.Header.Set("Authorization", "Bearer "+fe.access)
		}
		fe.serve(t, req)
	})
}

func FuzzAccountForms(f *testing.F) {
	fe := newFuzzEnv(f)
	for _, s := range []string{
		"csrf=CSRF&connector_id=beta", "csrf=CSRF&connector_id=mini", "csrf=CSRF&connector_id=", "csrf=CSRF",
		"csrf=CSRF&connector_id=nope", "csrf=x&connector_id=alpha", "connector_id=alpha", "%", "csrf=CSRF&csrf=x",
	} {
		f.Add("/account/bind", s)
		f.Add("/account/unbind", s)
	}
	f.Add("/account", "")
	f.Add("/account/login", "")
	f.Fuzz(func(t *testing.T, path, body string) {
		body = strings.ReplaceAll(body, "CSRF", fe.csrf)
		if strings.Contains(body, "connector_id=alpha") && path == "/account/unbind" {
			return // keep the shared user's first identity, so later inputs stay meaningful
		}
		req := fe.request(http.MethodPost, "/", "", body, formType)
		req.URL.Path = "/qiao" + path
		req.AddCookie(&http.Cookie{Name: "qiao_session", Value: fe.session})
		fe.serve(t, req)
	})
}

func FuzzUserinfo(f *testing.F) {
	fe := newFuzzEnv(f)
	for _, s := range []struct{ header, query, body string }{
		{"Bearer ACCESS", "", ""}, {"bearer ACCESS", "", ""}, {"Bearer  ACCESS", "", ""}, {"Bearer", "", ""},
		{"Basic d2ViOng=", "", ""}, {"", "access_token=ACCESS", ""}, {"", "", "access_token=ACCESS"},
		{"Bearer ACCESSx", "", ""}, {"Bearer ory_at_x.y", "", ""}, {"Bearer " + strings.Repeat("a", 5000), "", ""},
		{"Bearer ACCESS", "", "access_token=other"}, {"", "", "%"}, {"Bearer %zz", "%", "a=%zz"}, {"", "", ""},
	} {
		f.Add(s.header, s.query, s.body, false)
		f.Add(s.header, s.query, s.body, true)
	}
	f.Fuzz(func(t *testing.T, header, query, body string, post bool) {
		header = strings.ReplaceAll(header, "ACCESS", fe.access)
		query = strings.ReplaceAll(query, "ACCESS", fe.access)
		body = strings.ReplaceAll(body, "ACCESS", fe.access)
		var req *http.Request
		if post {
			req = fe.request(http.MethodPost, "/userinfo", query, body, formType)
		} else {
			req = fe.request(http.MethodGet, "/userinfo", query, "", "")
		}
		if header != "" && validHeader(header) {
			req.Header.Set("Authorization", header)
		}
		fe.serve(t, req)
	})
}

// FuzzIntrospect and FuzzRevoke: ACCESS in the body is the shared
// access token; the credentials are sent with HTTP Basic when set.
func FuzzIntrospect(f *testing.F) {
	fuzzClientAuthEndpoint(f, "/introspect")
}

func FuzzRevoke(f *testing.F) {
	fuzzClientAuthEndpoint(f, "/revoke")
}

func fuzzClientAuthEndpoint(f *testing.F, path string) {
	fe := newFuzzEnv(f)
	for _, s := range []string{
		"token=ACCESS", "token=ACCESS&token_type_hint=access_token", "token=ACCESS&token_type_hint=refresh_token",
		"token=ory_rt_x.y&token_type_hint=refresh_token", "token=", "token_type_hint=bogus", "token=ACCESS&token=x",
		"client_id=web&client_secret=" + webSecret + "&token=x", "client_id=spa&token=x", "client_id=ghost&client_secret=x&token=x",
		"token=" + strings.Repeat("t", 4000), "%", "a=%zz", "",
	} {
		f.Add(s, "", "", formType)
		f.Add(s, "web", webSecret, formType)
		f.Add(s, "other", "wrong", formType)
	}
	f.Add("{}", "web", webSecret, "application/json")
	f.Add("token=x", "%zz", "%", "text/plain")
	f.Add("token=x", "spa", "", formType)
	f.Fuzz(func(t *testing.T, body, user, pass, ctype string) {
		// The shared token survives revocation inputs: revoking it would
		// make every later input meaningless.
		token := fe.access
		if path == "/revoke" {
			token = "revoked-" + token
		}
		req := fe.request(http.MethodPost, path, "", strings.ReplaceAll(body, "ACCESS", token), ctype)
		if user != "" || pass != "" {
			req.SetBasicAuth(user, pass)
		}
		fe.serve(t, req)
	})
}

// validHeader reports whether Go's HTTP client could send v as a header
// value (the handler sees nothing else).
func validHeader(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}
