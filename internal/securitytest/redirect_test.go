package securitytest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// TestRedirectURITricksNeverMatch sends authorization requests whose
// redirect_uri is a near miss of a registered one: the broker must show
// its own error page and redirect nowhere.
func TestRedirectURITricksNeverMatch(t *testing.T) {
	e := newEnv(t)
	br := e.newBrowser()
	tricks := []string{
		"https://APP.example/cb",
		"HTTPS://app.example/CB",
		"https://app.example/cb/",
		"https://app.example/cb?x=1",
		"https://app.example/cb#frag",
		"https://app.example/cb/../cb",
		"https://app.example/%63b",
		"https://app.example/cb%2f..%2fevil",
		"https://app.example@evil.example/cb",
		"https://evil.example@app.example/cb",
		"https://app.example.evil.example/cb",
		"https://app.example:443/cb",
		"http://app.example/cb",
		"//app.example/cb",
		"https://app.example\\@evil.example/cb",
		"https://app.example/cb\x00",
		"javascript:alert(1)//https://app.example/cb",
		"https://evil.example/cb",
		" https://app.example/cb",
	}
	for _, redirect := range tricks {
		t.Run(redirect, func(t *testing.T) {
			p := e.authParams("web", redirect)
			req, err := http.NewRequest(http.MethodGet, e.issuer+"/auth?"+p.Encode(), nil)
			if err != nil {
				t.Fatal(err)
			}
			r, err := br.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if loc := location(r); loc != "" {
				t.Fatalf("redirected to %q (status %d)", loc, r.Status)
			}
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", r.Status)
			}
		})
	}
	t.Run("unknown client with an attacker redirect", func(t *testing.T) {
		p := e.authParams("ghost", "https://evil.example/cb")
		r := br.get(e.issuer + "/auth?" + p.Encode())
		if location(r) != "" || r.Status != http.StatusBadRequest {
			t.Fatalf("status %d location %q", r.Status, location(r))
		}
	})
	t.Run("registered URI of another client", func(t *testing.T) {
		p := e.authParams("web", "https://other.example/cb")
		r := br.get(e.issuer + "/auth?" + p.Encode())
		if location(r) != "" || r.Status != http.StatusBadRequest {
			t.Fatalf("status %d location %q", r.Status, location(r))
		}
	})
	t.Run("errors go to the registered URI only", func(t *testing.T) {
		p := e.authParams("web", "https://app.example/cb", "connector_id", "nope")
		u := br.authorize(p)
		if u.Scheme+"://"+u.Host+u.Path != "https://app.example/cb" || u.Query().Get("error") != "invalid_request" {
			t.Fatalf("error redirect %s", u)
		}
	})
}

func TestLogoutRedirectsOnlyToRegisteredURIs(t *testing.T) {
	e := newEnv(t)
	br := e.newBrowser()
	tok := e.loginTokens(br)
	hint := str(tok, "id_token")
	tests := []struct {
		name string
		form url.Values
	}{
		{"attacker URI with client_id", url.Values{"client_id": {"web"}, "post_logout_redirect_uri": {"https://evil.example/bye"}}},
		{"attacker URI with hint", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://evil.example/bye"}}},
		{"attacker URI without client", url.Values{"post_logout_redirect_uri": {"https://evil.example/bye"}}},
		{"registered URI without client or hint", url.Values{"post_logout_redirect_uri": {"https://app.example/bye"}}},
		{"another client's registered URI", url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://other.example/bye"}}},
		{"hint of web with client_id other", url.Values{"id_token_hint": {hint}, "client_id": {"other"}, "post_logout_redirect_uri": {"https://other.example/bye"}}},
		{"a redirect_uri (not a logout URI)", url.Values{"client_id": {"web"}, "post_logout_redirect_uri": {"https://app.example/cb"}}},
		{"near miss: trailing slash", url.Values{"client_id": {"web"}, "post_logout_redirect_uri": {"https://app.example/bye/"}}},
		{"near miss: userinfo", url.Values{"client_id": {"web"}, "post_logout_redirect_uri": {"https://app.example@evil.example/bye"}}},
		{"near miss: extra query", url.Values{"client_id": {"web"}, "post_logout_redirect_uri": {"https://app.example/bye?next=https://evil.example"}}},
		{"unknown client", url.Values{"client_id": {"ghost"}, "post_logout_redirect_uri": {"https://app.example/bye"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.newBrowser().StepGet(t, e.issuer+"/logout?"+tc.form.Encode())
			if location(r) != "" {
				t.Fatalf("redirected to %q", location(r))
			}
			if r.Status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400", r.Status)
			}
		})
	}
	t.Run("registered URI gets state and nothing else", func(t *testing.T) {
		r := br.StepGet(t, e.issuer+"/logout?"+url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://app.example/bye"}, "state": {"s1"}}.Encode())
		if r.Status != http.StatusFound || location(r) != "https://app.example/bye?state=s1" {
			t.Fatalf("status %d location %q", r.Status, location(r))
		}
	})
}

// TestForgedIDTokenHintsAreRefused: a hint must verify with a published
// key and its own algorithm; a refused hint neither redirects nor ends the
// browser's session.
func TestForgedIDTokenHintsAreRefused(t *testing.T) {
	e := newEnv(t)
	br := e.newBrowser()
	tok := e.loginTokens(br)
	hint := str(tok, "id_token")
	parts := strings.Split(hint, ".")
	if len(parts) != 3 {
		t.Fatalf("id_token %q", hint)
	}
	header, claims := qiaotest.JWT(t, hint)
	kid, _ := header["kid"].(string)
	payload := parts[1]

	// The broker's public key, as a key confusion attack would use it.
	jwks := e.newBrowser().StepGet(t, e.issuer+"/keys")
	pubJSON, _ := json.Marshal(jwks.JSON())
	var pubPEM []byte
	if keys, _ := jwks.JSON()["keys"].([]any); len(keys) > 0 {
		k, _ := keys[0].(map[string]any)
		n, _ := base64.RawURLEncoding.DecodeString(k["n"].(string))
		eb, _ := base64.RawURLEncoding.DecodeString(k["e"].(string))
		var ei int
		for _, b := range eb {
			ei = ei<<8 | int(b)
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: ei}
		der, _ := x509.MarshalPKIXPublicKey(pub)
		pubPEM = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	if len(pubPEM) == 0 {
		t.Fatal("no RSA key in the JWKS")
	}
	seg := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	hs256 := func(key []byte, h map[string]any) string {
		in := seg(h) + "." + payload
		m := hmac.New(sha256.New, key)
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	foreignRSA := func() string {
		k, _ := rsa.GenerateKey(rand.Reader, 2048)
		in := seg(map[string]any{"alg": "RS256", "kid": kid, "typ": "JWT"}) + "." + payload
		sum := sha256.Sum256([]byte(in))
		sig, _ := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
		return in + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	foreignES := func() string {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		in := seg(map[string]any{"alg": "ES256", "kid": kid}) + "." + payload
		sum := sha256.Sum256([]byte(in))
		r, s, _ := ecdsa.Sign(rand.Reader, k, sum[:])
		sig := append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
		return in + "." + base64.RawURLEncoding.EncodeToString(sig)
	}
	evil := map[string]any{}
	for k, v := range claims {
		evil[k] = v
	}
	evil["aud"] = "other"
	tests := []struct{ name, hint string }{
		{"alg none", seg(map[string]any{"alg": "none", "kid": kid}) + "." + payload + "."},
		{"alg none without kid", seg(map[string]any{"alg": "none"}) + "." + payload + "."},
		{"alg NONE", seg(map[string]any{"alg": "NONE", "kid": kid}) + "." + payload + "."},
		{"HS256 keyed with the PEM public key", hs256(pubPEM, map[string]any{"alg": "HS256", "kid": kid})},
		{"HS256 keyed with the JWKS JSON", hs256(pubJSON, map[string]any{"alg": "HS256", "kid": kid})},
		{"RS256 signed by a foreign key under the broker's kid", foreignRSA()},
		{"ES256 under the broker's RSA kid", foreignES()},
		{"payload swapped, signature kept", parts[0] + "." + seg(evil) + "." + parts[2]},
		{"signature stripped", parts[0] + "." + parts[1] + "."},
		{"unknown kid", seg(map[string]any{"alg": "RS256", "kid": "nope"}) + "." + payload + "." + parts[2]},
		{"JWS JSON serialization", `{"payload":"` + payload + `","signatures":[]}`},
		{"garbage", "a.b.c"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			form := url.Values{"id_token_hint": {tc.hint}, "post_logout_redirect_uri": {"https://app.example/bye"}}
			r := br.get(e.issuer + "/logout?" + form.Encode())
			if r.Status != http.StatusBadRequest || location(r) != "" {
				t.Fatalf("status %d location %q, want 400 without redirect", r.Status, location(r))
			}
			if !signedIn(t, e, br) {
				t.Fatal("a refused logout ended the session")
			}
		})
	}
	t.Run("the genuine hint logs out", func(t *testing.T) {
		form := url.Values{"id_token_hint": {hint}, "post_logout_redirect_uri": {"https://app.example/bye"}}
		if r := br.get(e.issuer + "/logout?" + form.Encode()); r.Status != http.StatusFound {
			t.Fatalf("status %d", r.Status)
		}
		if signedIn(t, e, br) {
			t.Fatal("still signed in after logout")
		}
	})
}

// signedIn reports whether the browser's SSO session is alive (the
// account page shows a user id).
func signedIn(t *testing.T, e *env, br *browser) bool {
	t.Helper()
	r := br.get(e.issuer + "/account?lang=en")
	if r.Status != http.StatusOK {
		t.Fatalf("account page: %d", r.Status)
	}
	return strings.Contains(r.Body, "data-user-id")
}
