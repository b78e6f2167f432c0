package spectest

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// SPEC "Errors and bad input": "an oversized or malformed request: a clear
// error, 4xx, ... and nothing stored changes"; README: "Clients without
// `secret` are public and must use PKCE S256." The request must be refused
// before the provider login, and no user may be created.
func TestMalformedAuthorizationRequestIsRefusedBeforeTheProvider(t *testing.T) {
	s := shared
	tests := []struct {
		name, client, redirect string
		mod                    url.Values
	}{
		{"public client without code_challenge", spaClient, spaRedirect, url.Values{"code_challenge": nil, "code_challenge_method": nil}},
		{"public client with plain", spaClient, spaRedirect, url.Values{"code_challenge_method": {"plain"}}},
		{"unknown code_challenge_method", webClient, rpRedirect, url.Values{"code_challenge_method": {"S512"}}},
		{"unknown prompt value", webClient, rpRedirect, url.Values{"prompt": {"bogus"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := qiaotest.NewRawAuth(tc.client, tc.redirect, "weibo")
			u, _ := url.Parse(a.URL(s.Issuer))
			q := u.Query()
			for k, v := range tc.mod {
				if v == nil {
					q.Del(k)
				} else {
					q[k] = v
				}
			}
			u.RawQuery = q.Encode()
			p := s.Browser(desktopUA).StepGet(t, u.String())
			lu, _ := url.Parse(p.Location)
			if !isRedirect(p.Status) || !strings.HasPrefix(p.Location, tc.redirect+"?") || lu.Query().Get("error") != "invalid_request" || lu.Query().Get("state") != a.State() {
				t.Errorf("%d %q, want an invalid_request redirect to %s at once (not the provider's login page)", p.Status, p.Location, tc.redirect)
			}
		})
	}
	t.Run("no user is created by a refused request", func(t *testing.T) {
		a := qiaotest.NewRawAuth(spaClient, spaRedirect, "weibo")
		u, _ := url.Parse(a.URL(s.Issuer))
		q := u.Query()
		q.Del("code_challenge")
		q.Del("code_challenge_method")
		u.RawQuery = q.Encode()
		s.follow(t, s.Browser(desktopUA), u.String(), "p40")
		if _, out, _ := runCLI(t, "users", "list", "--config", s.ConfigPath); strings.Contains(out, "Person p40") {
			t.Errorf("a refused authorization request created a user:\n%s", out)
		}
	})
}

// SPEC "Errors and bad input": "OAuth errors are RFC 6749 JSON at the token
// endpoint": RFC 6749 §5.2 names an unknown grant type unsupported_grant_type.
func TestUnknownGrantTypeIsUnsupportedGrantType(t *testing.T) {
	s := shared
	for _, gt := range []string{"password", "client_credentials", "urn:example:bogus"} {
		t.Run(gt, func(t *testing.T) {
			res := s.Post(t, "/token", url.Values{"grant_type": {gt}}, webClient, webSecret)
			if res.Status != http.StatusBadRequest || res.MustJSON(t)["error"] != "unsupported_grant_type" {
				t.Errorf("%d %s, want 400 unsupported_grant_type", res.Status, res.Body)
			}
		})
	}
}

// SPEC: "Authorization-endpoint errors redirect to a valid, registered
// redirect URI with `error` and `state`"; OIDC Core 6: request and
// request_uri unsupported → request_not_supported / request_uri_not_supported.
func TestRequestObjectsAreRefusedByRedirect(t *testing.T) {
	s := shared
	for param, want := range map[string]string{"request": "request_not_supported", "request_uri": "request_uri_not_supported"} {
		t.Run(param, func(t *testing.T) {
			a := qiaotest.NewRawAuth(webClient, rpRedirect, "weibo")
			a.Set(param, "eyJhbGciOiJub25lIn0.e30.")
			p := s.Browser(desktopUA).StepGet(t, a.URL(s.Issuer))
			lu, _ := url.Parse(p.Location)
			if !isRedirect(p.Status) || lu.Query().Get("error") != want || lu.Query().Get("state") != a.State() {
				t.Errorf("%d %q, want a redirect with error=%s and state", p.Status, p.Location, want)
			}
		})
	}
}

// OIDC Core 3.1.2.1: prompt=none with any other value is an error
// (invalid_request), even with a session.
func TestPromptNoneWithAnotherValueIsInvalidRequest(t *testing.T) {
	s := shared
	_, b := s.webLogin(t, "weibo", "p41")
	a := qiaotest.NewRawAuth(webClient, rpRedirect, "")
	a.Set("prompt", "none login")
	p := b.StepGet(t, a.URL(s.Issuer))
	lu, _ := url.Parse(p.Location)
	if lu == nil || lu.Query().Get("error") != "invalid_request" {
		t.Errorf("%d %q, want error=invalid_request", p.Status, p.Location)
	}
}

// README: "/introspect ... (HTTP Basic or client_secret_post)" — discovery
// should advertise both.
func TestDiscoveryAdvertisesIntrospectionClientSecretPost(t *testing.T) {
	s := shared
	if d := s.Bearer(t, http.MethodGet, "/.well-known/openid-configuration", "", nil).MustJSON(t); !containsAny(d["introspection_endpoint_auth_methods_supported"], "client_secret_post") {
		t.Errorf("introspection_endpoint_auth_methods_supported %v lacks client_secret_post, which works", d["introspection_endpoint_auth_methods_supported"])
	}
}

// RFC 7636 §4.2: code_challenge is 43 characters (S256: base64url of 32 bytes).
func TestMalformedCodeChallengeIsRefused(t *testing.T) {
	s := shared
	a := qiaotest.NewRawAuth(webClient, rpRedirect, "weibo")
	u, _ := url.Parse(a.URL(s.Issuer))
	q := u.Query()
	q.Set("code_challenge", "abc")
	u.RawQuery = q.Encode()
	p := s.follow(t, s.Browser(desktopUA), u.String(), "p42")
	lu, _ := url.Parse(p.Location)
	if lu == nil || lu.Query().Get("error") != "invalid_request" {
		t.Errorf("%d %q, want error=invalid_request", p.Status, p.Location)
	}
}
