package securitytest

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// secrets collects every secret value a run of the broker handles.
type secrets map[string]string // value -> what it is

func (s secrets) add(what string, values ...string) {
	for _, v := range values {
		if len(v) >= 8 {
			s[v] = what
		}
	}
}

func (s secrets) findIn(t *testing.T, where, text string, skip ...string) {
	t.Helper()
	for v, what := range s {
		if contains(skip, what) {
			continue
		}
		if strings.Contains(text, v) {
			t.Errorf("%s contains the %s", where, what)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// TestSecretsStayOutOfLogsPagesAndTheStore drives every flow, the
// successful and the refused, with distinctive secrets, then searches the
// log, every response the broker sent (except where the protocol hands a
// value to its owner) and the SQLite files for them.
func TestSecretsStayOutOfLogsPagesAndTheStore(t *testing.T) {
	e := newEnv(t)
	s := secrets{}
	s.add("broker secret", brokerSecret)
	s.add("client secret", webSecret, otherSecret, consentSecret, webOnlySecret)
	s.add("provider secret", e.providerSecrets()...)
	sessionKey := func(person string) { s.add("session_key", e.WeChat.SessionKey(e.AppID("mini"), person)) }

	var bodies []*qiaotest.Page // responses that must carry no secret at all
	keep := func(r *qiaotest.Page) *qiaotest.Page { bodies = append(bodies, r); return r }
	keepBroker := func(rs []*qiaotest.Page) { // a walk's responses from the broker
		for _, r := range rs {
			if r.URL.Host == e.host {
				keep(r)
			}
		}
	}

	br := e.newBrowser()
	// A web login, its tokens, a refresh, the refused replays.
	p := e.authParams("web", "https://app.example/cb", "scope", accountScope)
	rs := br.walk(e.issuer + "/auth?" + p.Encode())
	keepBroker(rs[:len(rs)-1])
	var callback string // the provider's redirect to the broker's callback
	for _, r := range rs {
		if strings.HasPrefix(location(r), e.issuer+"/callback/") {
			callback = location(r)
		}
	}
	if callback == "" {
		t.Fatal("the login did not pass the broker's callback")
	}
	cu, _ := url.Parse(location(rs[len(rs)-1]))
	code := cu.Query().Get("code")
	s.add("authorization code", code)
	s.add("PKCE verifier", p.Verifier)
	tok := e.redeem(code, p, "web", webSecret)
	if tok.Status != http.StatusOK {
		t.Fatalf("redeem: %d %s", tok.Status, tok.Body)
	}
	at, rt, idt := str(tok.JSON(), "access_token"), str(tok.JSON(), "refresh_token"), str(tok.JSON(), "id_token")
	s.add("access token", at)
	s.add("refresh token", rt)
	s.add("ID token", idt)
	s.add("session cookie", br.cookie("qiao_session"))
	s.add("login binding cookie", br.cookie("qiao_login"))
	r2 := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "web", webSecret)
	if r2.Status != http.StatusOK {
		t.Fatalf("refresh: %d %s", r2.Status, r2.Body)
	}
	s.add("access token", str(r2.JSON(), "access_token"))
	s.add("refresh token", str(r2.JSON(), "refresh_token"))
	keep(e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "web", webSecret))
	keep(e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {str(r2.JSON(), "refresh_token")}}, "other", otherSecret))
	keep(e.redeem(code, p, "other", otherSecret))
	keep(e.redeem(code, p, "web", webSecret))
	// Wrong client secrets (each contains the real one), both ways.
	keep(e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "web", webSecret+"x"))
	keep(e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"web"}, "client_secret": {"x" + webSecret}}, "", ""))
	keep(e.Post(t, "/introspect", url.Values{"token": {at}}, "web", webSecret+"x"))
	keep(e.Post(t, "/revoke", url.Values{"token": {at}}, "web", webSecret+"x"))

	// A client_secret_post login.
	p2 := e.authParams("other", "https://other.example/cb")
	code2 := br.code(p2)
	s.add("authorization code", code2)
	s.add("PKCE verifier", p2.Verifier)
	tok2 := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code2}, "redirect_uri": {"https://other.example/cb"}, "code_verifier": {p2.Verifier}, "client_id": {"other"}, "client_secret": {otherSecret}}, "", "")
	if tok2.Status != http.StatusOK {
		t.Fatalf("client_secret_post: %d %s", tok2.Status, tok2.Body)
	}
	s.add("access token", str(tok2.JSON(), "access_token"))
	s.add("refresh token", str(tok2.JSON(), "refresh_token"))
	keep(e.Post(t, "/introspect", url.Values{"token": {str(tok2.JSON(), "access_token")}, "client_id": {"other"}, "client_secret": {otherSecret}}, "", ""))
	keep(e.Post(t, "/revoke", url.Values{"token": {str(tok2.JSON(), "refresh_token")}}, "other", otherSecret))

	// The mini-program exchange, its replay, and a bind through the API.
	mcode := e.LoginCode("mini", "alice")
	s.add("wx.login code", mcode)
	mt := e.miniTokens("miniapp", mcode)
	if mt.Status != http.StatusOK {
		t.Fatalf("mini: %d %s", mt.Status, mt.Body)
	}
	sessionKey("alice")
	s.add("access token", str(mt.JSON(), "access_token"))
	s.add("refresh token", str(mt.JSON(), "refresh_token"))
	keep(e.miniTokens("miniapp", mcode))
	keep(e.miniTokens("webonly", e.LoginCode("mini", "alice")))
	bcode := e.LoginCode("mini", "bob")
	s.add("wx.login code", bcode)
	keep(e.Bearer(t, http.MethodPost, "/api/v1/me/identities", at, map[string]string{"connector_id": "mini", "code": bcode}))
	sessionKey("bob")
	keep(e.Bearer(t, http.MethodGet, "/api/v1/me", str(mt.JSON(), "access_token"), nil))

	// The account page, a bind, a callback replay, a bad hint, a logout.
	acct := keep(br.get(e.issuer + "/account?lang=en"))
	csrf := parsePage(t, acct.Body).hiddenInputs().Get("csrf")
	s.add("account CSRF token", csrf)
	keepBroker(br.walkPost(e.issuer+"/account/bind", url.Values{"csrf": {csrf}, "connector_id": {"beta"}}))
	keep(br.StepGet(t, callback)) // the provider's callback, replayed
	keep(br.get(e.issuer + "/logout?id_token_hint=" + url.QueryEscape(idt[:len(idt)-4]+"AAAA")))
	keepBroker(br.walk(e.issuer + "/logout?" + url.Values{"id_token_hint": {idt}, "post_logout_redirect_uri": {"https://app.example/bye"}}.Encode()))

	t.Run("log", func(t *testing.T) {
		logs := e.Logs.String()
		if len(logs) == 0 {
			t.Fatal("nothing was logged")
		}
		s.findIn(t, "the log", logs)
	})
	t.Run("responses", func(t *testing.T) {
		for _, r := range bodies {
			// A consent or account page carries its own CSRF token.
			s.findIn(t, "a response body", r.Body, "account CSRF token")
			for k, vs := range r.Header {
				s.findIn(t, "response header "+k, strings.Join(vs, "\n"), "session cookie", "login binding cookie")
			}
		}
	})
	t.Run("store", func(t *testing.T) {
		files, _ := filepath.Glob(e.Config.Storage.SQLite.Path + "*")
		if len(files) == 0 {
			t.Fatal("no SQLite files")
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s.findIn(t, "SQLite file "+filepath.Base(f), string(data), "ID token", "PKCE verifier")
		}
	})
}
