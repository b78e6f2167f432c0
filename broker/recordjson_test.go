package broker

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/url"
	"reflect"
	"testing"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// TestRecordEncodingIsEncodingJSON: the stored request and session
// encoders write byte for byte what encoding/json writes, for the
// sessions the broker makes and for odd ones.
func TestRecordEncodingIsEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 6, 19, 20, 50, 836027288, time.UTC)
	full := func() *grantSession {
		s := newSession()
		s.Subject, s.Username, s.IDP, s.IdentitySubject = "user-1", "alice", "weibo", "sub-<1>&"
		s.Claims.Subject, s.Claims.Issuer, s.Claims.Nonce = "user-1", "https://sso.example/qiao", "n\u2028once"
		s.Claims.Audience = []string{"web", "mini"}
		s.Claims.AuthenticationMethodsReferences = []string{}
		s.Claims.AuthTime, s.Claims.RequestedAt = at, at.In(time.FixedZone("CST", 8*3600))
		s.Claims.ExpiresAt, s.Claims.IssuedAt = at.Add(time.Hour), at
		s.Claims.Extra["idp"] = "weibo"
		s.Claims.Extra["name"] = "爱丽丝 \"A\" \\ <b>\t\x01\xff"
		s.Claims.Extra["phone_number_verified"] = true
		s.Claims.Extra["n"], s.Claims.Extra["i"], s.Claims.Extra["f"] = int64(-7), 3, 1.5e21
		s.Claims.Extra["nested"] = map[string]any{"z": 1, "a": []any{"x", nil}}
		s.Claims.Extra["list"], s.Claims.Extra["none"] = []string{"a", "b"}, nil
		s.Headers.Add("alg", "RS256")
		s.SetExpiresAt("access_token", at.Add(time.Hour))
		s.SetExpiresAt("refresh_token", at.Add(720*time.Hour))
		s.SetExpiresAt("authorize_code", at.Add(10*time.Minute))
		return s
	}
	sessions := map[string]*grantSession{
		"new":                newSession(),
		"full":               full(),
		"no claims, headers": {DefaultSession: openid.DefaultSession{}},
		"empty maps":         {DefaultSession: openid.DefaultSession{Claims: &jwt.IDTokenClaims{Extra: map[string]any{}}, Headers: &jwt.Headers{}, ExpiresAt: map[fosite.TokenType]time.Time{}}},
		"year 12000": func() *grantSession {
			s := newSession()
			s.Claims.AuthTime = time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC)
			return s
		}(),
	}
	for name, s := range sessions {
		want, wantErr := json.Marshal(s)
		got, err := encodeSession(s)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Errorf("session %s:\n got %s (%v)\nwant %s (%v)", name, got, err, want, wantErr)
		}
	}
	sess, err := encodeSession(full())
	if err != nil {
		t.Fatal(err)
	}
	form := storedForm(url.Values{"nonce": {"a&b"}, "scope": {"openid profile"}, "redirect_uri": {"http://127.0.0.1:9/cb?x=<1>"}})
	requests := map[string]storedRequest{
		"empty": {},
		"token": {ID: "req-1", RequestedAt: at, ClientID: "web", RequestedScope: []string{"openid", "offline_access"},
			GrantedScope: []string{"openid"}, RequestedAudience: []string{}, GrantedAudience: []string{"web"}, Form: form, Session: sess},
		"code": {ID: "req-2", RequestedAt: at, ClientID: "web", Form: form, Session: sess, V: 2, HasPKCE: true,
			PKCEForm: storedForm(url.Values{"code_challenge": {"abc"}}), HasOIDC: true, OIDCForm: storedForm(url.Values{})},
	}
	for name, r := range requests {
		want, wantErr := json.Marshal(r)
		got, err := encodeRequest(&r)
		if (err != nil) != (wantErr != nil) || !bytes.Equal(got, want) {
			t.Errorf("request %s:\n got %s (%v)\nwant %s (%v)", name, got, err, want, wantErr)
		}
	}
	// Forms: every escape url.Values.Encode makes, in encoding/json's
	// string.
	for _, f := range []url.Values{nil, {}, {"": {""}}, {"a": {"1", "2"}, "b": {}, "c d": {"x&y=z/ü~-_.!*'()"}}} {
		want, _ := json.Marshal(storedForm(f))
		if got := appendForm(nil, storedForm(f)); !bytes.Equal(got, want) {
			t.Errorf("form %v: got %s, want %s", f, got, want)
		}
	}
	// Strings: every escape encoding/json makes.
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "\"", "\\", "<", ">", "&", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f",
		"é", "爱", "\u2028", "\u2029", "\xff", "\xe2\x80", "😀"}
	for range 2000 {
		var s string
		for range rng.IntN(12) {
			s += alphabet[rng.IntN(len(alphabet))]
		}
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("string %q: got %s, want %s", s, got, want)
		}
		f := url.Values{s: {s, "x"}}
		want, _ = json.Marshal(storedForm(f))
		if got := appendForm(nil, storedForm(f)); !bytes.Equal(got, want) {
			t.Fatalf("form %v: got %s, want %s", f, got, want)
		}
		// Read back: the fast path and encoding/json agree.
		var back storedForm
		if err := json.Unmarshal(want, &back); err != nil || !reflect.DeepEqual(url.Values(back), f) {
			t.Fatalf("form %s read back as %v (%v), want %v", want, back, err, f)
		}
		quoted, _ := json.Marshal(s)
		var viaJSON string
		_ = json.Unmarshal(quoted, &viaJSON)
		if got, ok := formString(quoted); ok && got != viaJSON {
			t.Fatalf("formString(%s) = %q, want %q", quoted, got, viaJSON)
		}
	}
}
