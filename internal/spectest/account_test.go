package spectest

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors/sandbox"
)

type apiCall struct {
	status int
	body   map[string]any
	header http.Header
}

func (s *stack) api(t *testing.T, method, path, token string, body any) apiCall {
	t.Helper()
	res := s.Bearer(t, method, path, token, body)
	c := apiCall{status: res.Status, header: res.Header}
	if len(strings.TrimSpace(res.Body)) > 0 {
		c.body = res.MustJSON(t)
	}
	return c
}

func checkIdentity(t *testing.T, id map[string]any, connector, typ string) {
	t.Helper()
	for _, k := range []string{"connector_id", "type", "display_name", "picture", "bound_at"} {
		if _, ok := id[k]; !ok && k != "display_name" && k != "picture" {
			t.Errorf("identity lacks %q: %v", k, id)
		}
	}
	if id["connector_id"] != connector || id["type"] != typ {
		t.Errorf("identity %v, want connector_id %s type %s", id, connector, typ)
	}
	ba, _ := id["bound_at"].(string)
	if _, err := time.Parse(time.RFC3339, ba); err != nil {
		t.Errorf("bound_at %q is not RFC 3339: %v", ba, err)
	}
}

// SPEC: "Account API, bearer access token of the user: GET
// {issuer}/api/v1/me → {"sub", "name", "picture", "identities":
// [{"connector_id", "type", "display_name", "picture", "bound_at"}]}" and
// "`bound_at` is RFC 3339."
func TestAccountAPIMeShape(t *testing.T) {
	s := shared
	tk := s.accountLogin(t, "weibo", "p17")
	me := s.api(t, http.MethodGet, "/api/v1/me", tk.AccessToken, nil)
	if me.status != 200 {
		t.Fatalf("GET /api/v1/me: %d %v", me.status, me.body)
	}
	if me.body["sub"] != claims(t, tk.IDToken)["sub"] || me.body["name"] != "Person p17" || me.body["picture"] == nil {
		t.Errorf("me %v", me.body)
	}
	ids, _ := me.body["identities"].([]any)
	if len(ids) != 1 {
		t.Fatalf("identities %v, want one", me.body["identities"])
	}
	id := ids[0].(map[string]any)
	checkIdentity(t, id, "weibo", "weibo")
	if id["display_name"] != "Person p17" {
		t.Errorf("display_name %v", id["display_name"])
	}
}

// SPEC: "A missing, bad or revoked token → 401 with `WWW-Authenticate:
// Bearer`" (README) for the account API.
func TestAccountAPIRefusesMissingBadOrRevokedTokens(t *testing.T) {
	s := shared
	tk := s.accountLogin(t, "weibo", "p22")
	if st := s.Post(t, "/revoke", map[string][]string{"token": {tk.AccessToken}}, webClient, webSecret).Status; st != 200 {
		t.Fatalf("revoke: %d", st)
	}
	for name, token := range map[string]string{"missing": "", "bad": "ory_at_bad.bad", "revoked": tk.AccessToken} {
		for _, call := range []struct{ method, path string }{
			{http.MethodGet, "/api/v1/me"},
			{http.MethodPost, "/api/v1/me/identities"},
			{http.MethodDelete, "/api/v1/me/identities/weibo"},
		} {
			t.Run(name+" "+call.method+" "+call.path, func(t *testing.T) {
				var body any
				if call.method == http.MethodPost {
					body = map[string]string{"connector_id": "mini", "code": "x"}
				}
				c := s.api(t, call.method, call.path, token, body)
				if c.status != http.StatusUnauthorized || !strings.HasPrefix(c.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%d WWW-Authenticate %q, want 401 Bearer", c.status, c.header.Get("WWW-Authenticate"))
				}
			})
		}
	}
}

// SPEC: "POST {issuer}/api/v1/me/identities with JSON {"connector_id",
// "code"} binds a mini-program identity → 201; bound to someone else → 409
// {"error": "identity_already_bound"}", "DELETE ... → 204; the last one →
// 409 {"error": "last_identity"}" and the details: "the 201 body of a bind
// is the identity object; binding an identity already bound to the same
// user → 200 with it; unbinding a connector that is not bound → 404
// `not_found`; a connector that is not a mini-program one → 400
// `invalid_request`; a bad code → 400 `invalid_grant`; provider busy → 503
// `temporarily_unavailable`."
func TestAccountAPIBindAndUnbind(t *testing.T) {
	s := shared
	tk := s.accountLogin(t, "weibo", "p18")
	other := s.miniLogin(t, "p19", "openid")
	if claims(t, other.IDToken)["sub"] == claims(t, tk.IDToken)["sub"] {
		t.Fatal("two persons share a sub")
	}
	code := func(app, person string) string {
		c, err := s.WeChat.LoginCode(app, person)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	steps := []struct {
		name   string
		method string
		path   string
		body   func() any
		setup  func(t *testing.T)
		status int
		err    string
		check  func(t *testing.T, c apiCall)
	}{
		{name: "unbinding a connector that is not bound is 404 not_found", method: http.MethodDelete, path: "/api/v1/me/identities/qq", status: 404, err: "not_found"},
		{name: "unbinding the last identity is 409 last_identity", method: http.MethodDelete, path: "/api/v1/me/identities/weibo", status: 409, err: "last_identity"},
		{name: "a bad code is 400 invalid_grant", method: http.MethodPost, path: "/api/v1/me/identities",
			body: func() any {
				return map[string]string{"connector_id": "mini", "code": "0123456789abcdef0123456789abcdef"}
			}, status: 400, err: "invalid_grant"},
		{name: "a web connector is 400 invalid_request", method: http.MethodPost, path: "/api/v1/me/identities",
			body: func() any { return map[string]string{"connector_id": "qq", "code": code(wxMiniAppID, "p18")} }, status: 400, err: "invalid_request"},
		{name: "a mini-program connector the client may not use is 400 invalid_request", method: http.MethodPost, path: "/api/v1/me/identities",
			body: func() any { return map[string]string{"connector_id": "mini2", "code": code(wxMini2ID, "p18")} }, status: 400, err: "invalid_request"},
		{name: "an unknown connector is 400 invalid_request", method: http.MethodPost, path: "/api/v1/me/identities",
			body: func() any { return map[string]string{"connector_id": "nosuch", "code": code(wxMiniAppID, "p18")} }, status: 400, err: "invalid_request"},
		{name: "WeChat busy is 503 temporarily_unavailable", method: http.MethodPost, path: "/api/v1/me/identities",
			body: func() any { return map[string]string{"connector_id": "mini", "code": code(wxMiniAppID, "p18")} },
			setup: func(t *testing.T) {
				s.WeChat.InjectFault(sandbox.Fault{Path: "/sns/jscode2session", Code: -1})
				t.Cleanup(s.WeChat.ClearFaults)
			}, status: 503, err: "temporarily_unavailable"},
		{name: "an identity bound to someone else is 409 identity_already_bound", method: http.MethodPost, path: "/api/v1/me/identities",
			body: func() any { return map[string]string{"connector_id": "mini", "code": code(wxMiniAppID, "p19")} }, status: 409, err: "identity_already_bound"},
		{name: "binding a mini-program identity is 201 with the identity", method: http.MethodPost, path: "/api/v1/me/identities",
			body: func() any { return map[string]string{"connector_id": "mini", "code": code(wxMiniAppID, "p18")} }, status: 201,
			check: func(t *testing.T, c apiCall) { checkIdentity(t, c.body, "mini", "wechat_miniprogram") }},
		{name: "binding it again is 200 with it", method: http.MethodPost, path: "/api/v1/me/identities",
			body: func() any { return map[string]string{"connector_id": "mini", "code": code(wxMiniAppID, "p18")} }, status: 200,
			check: func(t *testing.T, c apiCall) { checkIdentity(t, c.body, "mini", "wechat_miniprogram") }},
		{name: "me lists both identities", method: http.MethodGet, path: "/api/v1/me", status: 200,
			check: func(t *testing.T, c apiCall) {
				ids, _ := c.body["identities"].([]any)
				got := map[string]bool{}
				for _, x := range ids {
					m := x.(map[string]any)
					got[m["connector_id"].(string)] = true
					checkIdentity(t, m, m["connector_id"].(string), m["type"].(string))
				}
				if len(ids) != 2 || !got["mini"] || !got["weibo"] {
					t.Errorf("identities %v, want mini and weibo", ids)
				}
			}},
		{name: "the mini-program now signs in as the same user", method: http.MethodGet, path: "/api/v1/me", status: 200,
			check: func(t *testing.T, c apiCall) {
				mt := s.miniLogin(t, "p18", "openid")
				if sub := claims(t, mt.IDToken)["sub"]; sub != c.body["sub"] {
					t.Errorf("mini-program login sub %v, want the bound user's %v", sub, c.body["sub"])
				}
			}},
		{name: "unbinding a bound identity is 204", method: http.MethodDelete, path: "/api/v1/me/identities/mini", status: 204},
		{name: "unbinding it again is 404 not_found", method: http.MethodDelete, path: "/api/v1/me/identities/mini", status: 404, err: "not_found"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			var body any
			if st.body != nil {
				body = st.body()
			}
			if st.setup != nil {
				st.setup(t)
			}
			c := s.api(t, st.method, st.path, tk.AccessToken, body)
			if c.status != st.status {
				t.Fatalf("%s %s: %d %v, want %d", st.method, st.path, c.status, c.body, st.status)
			}
			if st.err != "" && (c.body == nil || c.body["error"] != st.err) {
				t.Errorf("body %v, want error %q", c.body, st.err)
			}
			if st.check != nil {
				st.check(t, c)
			}
		})
	}
}

// SPEC: "A user's `name` and `picture` come from the most recently used
// identity that has a real profile (not WeChat's placeholder); a user with
// none has no such claims."
func TestNameAndPictureComeFromARealProfile(t *testing.T) {
	s := shared
	t.Run("a mini-program-only user has no name or picture", func(t *testing.T) {
		tk := s.miniLogin(t, "p20", "openid profile account")
		c := claims(t, tk.IDToken)
		if _, ok := c["name"]; ok {
			t.Errorf("name %v", c["name"])
		}
		if _, ok := c["picture"]; ok {
			t.Errorf("picture %v", c["picture"])
		}
		me := s.api(t, http.MethodGet, "/api/v1/me", tk.AccessToken, nil)
		if _, ok := me.body["name"]; ok || me.status != 200 {
			t.Errorf("me %d %v, want no name", me.status, me.body)
		}
	})
	t.Run("WeChat's placeholder profile is not a name", func(t *testing.T) {
		s.WeChat.SetPlaceholderProfile("p27", true)
		t.Cleanup(func() { s.WeChat.SetPlaceholderProfile("p27", false) })
		tk, _ := s.webLogin(t, "wechat", "p27")
		c := claims(t, tk.IDToken)
		if n, ok := c["name"]; ok {
			t.Errorf("name %v from the placeholder profile", n)
		}
		if p, ok := c["picture"]; ok {
			t.Errorf("picture %v from the placeholder profile", p)
		}
	})
}
