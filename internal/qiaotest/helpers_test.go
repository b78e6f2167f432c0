package qiaotest_test

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// TestSamplesReadsPrometheusText: names, labels (escaped quotes too) and
// values of each sample; comments and junk are passed over.
func TestSamplesReadsPrometheusText(t *testing.T) {
	body := "# HELP x y\n# TYPE a counter\na_total 3\nb{c=\"d\",e=\"say \\\"hi\\\"\"} 1.5\nnot a sample\n"
	got := qiaotest.Samples(body)
	want := []qiaotest.Sample{
		{Name: "a_total", Labels: map[string]string{}, Value: 3},
		{Name: "b", Labels: map[string]string{"c": "d", "e": `say "hi"`}, Value: 1.5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Samples = %+v, want %+v", got, want)
	}
}

// TestJWTDecodesHeaderAndClaims decodes without verifying.
func TestJWTDecodesHeaderAndClaims(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	h, c := qiaotest.JWT(t, enc([]byte(`{"alg":"ES256","kid":"k1"}`))+"."+enc([]byte(`{"sub":"u1"}`))+".sig")
	if h["kid"] != "k1" || c["sub"] != "u1" {
		t.Errorf("header %v claims %v", h, c)
	}
}

func TestBetween(t *testing.T) {
	for _, tc := range []struct{ s, a, b, want string }{
		{`name="csrf" value="tok"`, `value="`, `"`, "tok"},
		{"no start", "[", "]", ""},
		{"[no end", "[", "]", ""},
		{"[a][b]", "[", "]", "a"},
	} {
		if got := qiaotest.Between(tc.s, tc.a, tc.b); got != tc.want {
			t.Errorf("Between(%q, %q, %q) = %q, want %q", tc.s, tc.a, tc.b, got, tc.want)
		}
	}
}

// TestRawAuthCarriesPKCEAndChecksTheRedirectBack: the request has state,
// nonce and an S256 challenge of its verifier; Code takes the code of a
// redirect to the redirect URI with the request's state; CodeForm
// redeems it with the verifier.
func TestRawAuthCarriesPKCEAndChecksTheRedirectBack(t *testing.T) {
	a := qiaotest.NewRawAuth("web", "https://rp.example/cb", "qq")
	u, err := url.Parse(a.URL("https://idp.example/sso"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if u.Path != "/sso/auth" || q.Get("client_id") != "web" || q.Get("connector_id") != "qq" || q.Get("state") == "" ||
		q.Get("nonce") == "" || q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") != s256(a.Verifier) || len(a.Verifier) < 43 {
		t.Errorf("authorization request %s (verifier %q)", u, a.Verifier)
	}
	p := &qiaotest.Page{Status: http.StatusFound, Location: "https://rp.example/cb?code=c1&state=" + url.QueryEscape(a.State())}
	if code := a.Code(t, p); code != "c1" {
		t.Errorf("Code = %q, want c1", code)
	}
	f := a.CodeForm("c1")
	if f.Get("grant_type") != "authorization_code" || f.Get("code_verifier") != a.Verifier || f.Get("redirect_uri") != "https://rp.example/cb" {
		t.Errorf("CodeForm = %v", f)
	}
	if strings.Contains(qiaotest.NewRawAuth("web", "https://rp.example/cb", "").URL(""), "connector_id") {
		t.Error("a request without a connector names one")
	}
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
