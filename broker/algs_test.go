package broker_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

func jwtAlg(t *testing.T, raw string) string {
	t.Helper()
	h, _ := qiaotest.JWT(t, raw)
	alg, _ := h["alg"].(string)
	return alg
}

func discovery(t *testing.T, e *env) map[string]any {
	t.Helper()
	resp, err := http.Get(e.issuer + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestEachClientGetsIDTokensOfItsAlgorithm(t *testing.T) {
	tests := []struct {
		name, defaultAlg, webAlg string
		wantWeb, wantSecond      string
		wantDiscovery            []any
	}{
		{"a client asks for ES256", "RS256", "ES256", "ES256", "RS256", []any{"RS256", "ES256"}},
		{"EdDSA by default and a client asks for RS256", "EdDSA", "RS256", "RS256", "EdDSA", []any{"RS256", "EdDSA"}},
		{"EdDSA for everyone still publishes RS256", "EdDSA", "", "EdDSA", "EdDSA", []any{"RS256", "EdDSA"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOptions{alg: tc.defaultAlg, config: func(c *qiaotest.Config) {
				c.Client("web").IDTokenSignedResponseAlg = tc.webAlg
			}})
			d := discovery(t, e)
			if got, _ := d["id_token_signing_alg_values_supported"].([]any); !equalAny(got, tc.wantDiscovery) {
				t.Errorf("id_token_signing_alg_values_supported = %v, want %v", got, tc.wantDiscovery)
			}
			if d["request_uri_parameter_supported"] != false {
				t.Errorf("request_uri_parameter_supported = %v, want false", d["request_uri_parameter_supported"])
			}
			// The JWKS holds a key of every algorithm discovery lists.
			jwks := map[string]bool{}
			resp, err := http.Get(e.issuer + "/keys")
			if err != nil {
				t.Fatal(err)
			}
			var set struct {
				Keys []struct {
					Alg string `json:"alg"`
				} `json:"keys"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&set)
			resp.Body.Close()
			for _, k := range set.Keys {
				jwks[k.Alg] = true
			}
			for _, a := range tc.wantDiscovery {
				if !jwks[a.(string)] {
					t.Errorf("the JWKS has no %s key: %v", a, set.Keys)
				}
			}
			// r.login verifies each ID token against the JWKS with go-oidc,
			// and its at_hash.
			web := e.webRP()
			tk := web.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
			if got := jwtAlg(t, tk.raw); got != tc.wantWeb {
				t.Errorf("web's ID token is %s, want %s", got, tc.wantWeb)
			}
			next, err := web.refresh(tk.token.RefreshToken)
			if err != nil {
				t.Fatalf("refresh: %v", err)
			}
			if got := jwtAlg(t, next.raw); got != tc.wantWeb {
				t.Errorf("web's refreshed ID token is %s, want %s", got, tc.wantWeb)
			}
			second := e.rp("second", "second-secret-0123456789abcdef0123456789", "https://second.example/cb")
			if got := jwtAlg(t, second.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha")).raw); got != tc.wantSecond {
				t.Errorf("second's ID token is %s, want %s", got, tc.wantSecond)
			}
		})
	}
}

func equalAny(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
