package securitytest

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

func TestCodeAndRefreshTokenAreBoundToTheirClient(t *testing.T) {
	e := newEnv(t)
	br := e.newBrowser()

	t.Run("code of web redeemed by other fails and stays usable by web", func(t *testing.T) {
		p := e.authParams("web", "https://app.example/cb")
		code := br.code(p)
		r := e.redeem(code, p, "other", otherSecret)
		if r.Status != http.StatusBadRequest || str(r.JSON(), "error") != "invalid_grant" {
			t.Fatalf("other redeemed web's code: %d %s", r.Status, r.Body)
		}
		// Redeeming with other's registered redirect URI does not help.
		r = e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {"https://other.example/cb"}, "code_verifier": {p.Verifier}}, "other", otherSecret)
		if r.Status < 400 || r.Status >= 500 || r.JSON()["access_token"] != nil {
			t.Fatalf("other redeemed web's code with its own redirect: %d %s", r.Status, r.Body)
		}
		if r := e.redeem(code, p, "web", webSecret); r.Status != http.StatusOK {
			t.Fatalf("web's own redemption after other's attempts: %d %s", r.Status, r.Body)
		}
	})
	t.Run("code redeemed with a wrong client secret fails", func(t *testing.T) {
		p := e.authParams("web", "https://app.example/cb")
		r := e.redeem(br.code(p), p, "web", webSecret+"x")
		if r.Status != http.StatusUnauthorized || str(r.JSON(), "error") != "invalid_client" {
			t.Fatalf("wrong secret: %d %s", r.Status, r.Body)
		}
	})
	t.Run("refresh token of web used by other fails and stays usable by web", func(t *testing.T) {
		tok := e.loginTokens(br)
		rt := str(tok, "refresh_token")
		r := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "other", otherSecret)
		if r.Status < 400 || r.Status >= 500 || r.JSON()["access_token"] != nil {
			t.Fatalf("other refreshed web's token: %d %s", r.Status, r.Body)
		}
		r = e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, "web", webSecret)
		if r.Status != http.StatusOK {
			t.Fatalf("web's own refresh after other's attempt: %d %s", r.Status, r.Body)
		}
	})
	t.Run("refresh token of a confidential client used by a public client fails", func(t *testing.T) {
		tok := e.loginTokens(br)
		r := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {str(tok, "refresh_token")}, "client_id": {"spa"}}, "", "")
		if r.Status < 400 || r.Status >= 500 || r.JSON()["access_token"] != nil {
			t.Fatalf("spa refreshed web's token: %d %s", r.Status, r.Body)
		}
	})
	t.Run("other cannot revoke web's tokens", func(t *testing.T) {
		tok := e.loginTokens(br)
		at, rt := str(tok, "access_token"), str(tok, "refresh_token")
		for _, token := range []string{at, rt} {
			r := e.Post(t, "/revoke", url.Values{"token": {token}}, "other", otherSecret)
			if r.Status >= 500 {
				t.Fatalf("revoke by other: %d %s", r.Status, r.Body)
			}
		}
		if !e.active(at, "") || !e.active(rt, "refresh_token") {
			t.Fatal("a token of web was revoked by client other")
		}
	})
}

func TestPKCE(t *testing.T) {
	e := newEnv(t)
	br := e.newBrowser()

	// A public client without a challenge or with plain is refused at
	// /auth: spectest's TestPublicClientsMustUsePKCES256.
	t.Run("plain method is refused for a confidential client too", func(t *testing.T) {
		p := e.authParams("web", "https://app.example/cb", "code_challenge_method", "plain")
		p.Set("code_challenge", p.Verifier)
		u := br.authorize(p)
		if u.Query().Get("code") != "" || u.Query().Get("error") != "invalid_request" {
			t.Fatalf("web with plain PKCE: %s", u)
		}
	})
	tests := []struct {
		name     string
		verifier func(p qiaotest.RawAuth) string
	}{
		{"missing verifier when a challenge was sent", func(qiaotest.RawAuth) string { return "" }},
		{"wrong verifier", func(qiaotest.RawAuth) string { return qiaotest.RandString() + qiaotest.RandString() }},
		{"the challenge itself as verifier", func(p qiaotest.RawAuth) string { return p.Get("code_challenge") }},
	}
	for _, tc := range tests {
		for _, client := range []struct{ id, redirect, secret string }{{"spa", "https://spa.example/cb", ""}, {"web", "https://app.example/cb", webSecret}} {
			t.Run(tc.name+" ("+client.id+")", func(t *testing.T) {
				p := e.authParams(client.id, client.redirect)
				code := br.code(p)
				form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {client.redirect}}
				if v := tc.verifier(p); v != "" {
					form.Set("code_verifier", v)
				}
				user := client.id
				if client.secret == "" {
					form.Set("client_id", client.id)
					user = ""
				}
				r := e.token(form, user, client.secret)
				if r.Status != http.StatusBadRequest || r.JSON()["access_token"] != nil {
					t.Fatalf("status %d %s, want 400 and no token", r.Status, r.Body)
				}
				if tc.name != "wrong verifier" {
					return // the right verifier may or may not revive the code: no token leaked
				}
				// A wrong guess is invalid_grant and spends the code: the
				// right verifier does not work after it (no guessing).
				if r.JSON()["error"] != "invalid_grant" {
					t.Errorf("wrong verifier: %s, want invalid_grant", r.Body)
				}
				form.Set("code_verifier", p.Verifier)
				if r := e.token(form, user, client.secret); r.Status == http.StatusOK || r.JSON()["access_token"] != nil {
					t.Fatalf("the right verifier worked after a wrong one: %d %s", r.Status, r.Body)
				}
			})
		}
	}
}

func TestMiniProgramExchangeRefusesDisallowedClients(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, client, user, pass, issuer string
	}{
		{"client whose connectors exclude mini", "webonly", "webonly", webOnlySecret, "mini"},
		{"web connector as subject_issuer", "miniapp", "", "", "alpha"},
		{"unknown subject_issuer", "miniapp", "", "", "nope"},
		{"confidential client without its secret", "webonly", "", "", "mini"},
		{"unknown client", "ghost", "", "", "mini"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.SimulatorCalls("wechat")
			form := qiaotest.ExchangeForm(tc.issuer, tc.client, e.LoginCode("mini", "alice"), "openid")
			if tc.user != "" {
				form.Del("client_id")
			}
			r := e.token(form, tc.user, tc.pass)
			if r.Status < 400 || r.Status >= 500 || r.JSON()["access_token"] != nil {
				t.Fatalf("status %d %s, want a 4xx without tokens", r.Status, r.Body)
			}
			if n := e.SimulatorCalls("wechat") - before; n != 0 {
				t.Fatalf("the code was sent to WeChat %d times for a refused request (it is burnt)", n)
			}
		})
	}
	t.Run("allowed client succeeds and the code works once", func(t *testing.T) {
		code := e.LoginCode("mini", "alice")
		if r := e.miniTokens("miniapp", code); r.Status != http.StatusOK {
			t.Fatalf("allowed: %d %s", r.Status, r.Body)
		}
		if r := e.miniTokens("miniapp", code); r.Status != http.StatusBadRequest || str(r.JSON(), "error") != "invalid_grant" {
			t.Fatalf("replayed code: %d %s", r.Status, r.Body)
		}
	})
}
