package qiaotest

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// The token exchange of a mini-program's wx.login code.
const (
	TokenExchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
	WeChatJSCodeType   = "urn:qiao:params:oauth:token-type:wechat-js-code"
)

// ExchangeForm is the token-exchange form of a public mini-program
// client trading a wx.login code at connector for tokens with scope.
func ExchangeForm(connector, client, code, scope string) url.Values {
	return url.Values{
		"grant_type":         {TokenExchangeGrant},
		"subject_token":      {code},
		"subject_token_type": {WeChatJSCodeType},
		"subject_issuer":     {connector},
		"client_id":          {client},
		"scope":              {scope},
	}
}

// PostToken posts a form to the token endpoint and decodes the JSON
// answer: the status, the object and the body.
func (w *World) PostToken(t testing.TB, form url.Values) (int, map[string]any, string) {
	t.Helper()
	resp, err := w.HTTP.PostForm(w.Provider.Endpoint().TokenURL, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("token endpoint: HTTP %d, not JSON: %.300s", resp.StatusCode, body)
	}
	return resp.StatusCode, m, string(body)
}

// VerifyIDToken verifies an ID token issued to clientID and returns its
// claims.
func (w *World) VerifyIDToken(t testing.TB, raw, clientID string) map[string]any {
	t.Helper()
	idt, err := w.Provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(context.Background(), raw)
	if err != nil {
		t.Fatalf("verifying the ID token: %v", err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

// UserInfo calls the userinfo endpoint with an access token; it must
// answer 200 with JSON.
func (w *World) UserInfo(t testing.TB, accessToken string) (map[string]any, string) {
	t.Helper()
	var meta struct {
		UserInfo string `json:"userinfo_endpoint"`
	}
	if err := w.Provider.Claims(&meta); err != nil {
		t.Fatal(err)
	}
	req := BearerRequest(t, http.MethodGet, meta.UserInfo, accessToken, nil)
	resp, err := w.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("userinfo: HTTP %d: %s", resp.StatusCode, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	return m, string(body)
}

// Metric returns the value of a sample of /metrics whose name is name and
// whose labels include labels, and whether there is one.
func (w *World) Metric(t testing.TB, name string, labels map[string]string) (float64, bool) {
	t.Helper()
	resp, err := w.HTTP.Get(w.Root() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Samples(string(body)) {
		if s.Name != name {
			continue
		}
		match := true
		for k, v := range labels {
			if s.Labels[k] != v {
				match = false
			}
		}
		if match {
			return s.Value, true
		}
	}
	return 0, false
}

// Sample is one sample of a Prometheus text exposition.
type Sample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

// Samples are the samples of a /metrics body, in order (comments and
// lines that are not a sample are passed over).
func Samples(body string) []Sample {
	var out []Sample
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if name, labels, value, ok := parseSample(line); ok {
			out = append(out, Sample{Name: name, Labels: labels, Value: value})
		}
	}
	return out
}

// parseSample parses a Prometheus text sample `name{a="x",b="y"} 12`.
func parseSample(line string) (string, map[string]string, float64, bool) {
	sp := strings.LastIndexByte(line, ' ')
	if sp < 0 {
		return "", nil, 0, false
	}
	v, err := strconv.ParseFloat(line[sp+1:], 64)
	if err != nil {
		return "", nil, 0, false
	}
	head := line[:sp]
	name, rest, hasLabels := strings.Cut(head, "{")
	labels := map[string]string{}
	if hasLabels {
		rest = strings.TrimSuffix(rest, "}")
		for rest != "" {
			k, after, ok := strings.Cut(rest, `="`)
			if !ok {
				return "", nil, 0, false
			}
			var val strings.Builder
			i := 0
			for ; i < len(after); i++ {
				c := after[i]
				if c == '\\' && i+1 < len(after) {
					i++
					val.WriteByte(after[i])
					continue
				}
				if c == '"' {
					break
				}
				val.WriteByte(c)
			}
			if i >= len(after) {
				return "", nil, 0, false
			}
			labels[k] = val.String()
			rest = strings.TrimPrefix(after[i+1:], ",")
		}
	}
	return name, labels, v, true
}

// LogLines returns the broker's log records whose msg is msg.
func (w *World) LogLines(msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(w.Logs.String(), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// Post posts form to path under the issuer (e.g. "/token") without
// cookies and without following a redirect; with user set it
// authenticates as that client with HTTP Basic (RFC 6749 2.3.1: the id
// and secret form-encoded). A failed request fails t.
func (w *World) Post(t testing.TB, path string, form url.Values, user, pass string) *Page {
	t.Helper()
	return w.Do(t, FormRequest(t, w.Issuer+path, form, user, pass))
}

// Bearer sends method to path under the issuer with an access token
// (Authorization: Bearer; "" sends none) and a JSON body (as
// BearerRequest), without cookies and without following a redirect.
func (w *World) Bearer(t testing.TB, method, path, token string, body any) *Page {
	t.Helper()
	return w.Do(t, BearerRequest(t, method, w.Issuer+path, token, body))
}

// Do sends req on the world's back channel (no cookies, no redirect
// followed) and reads the answer; a failed request fails t.
func (w *World) Do(t testing.TB, req *http.Request) *Page {
	t.Helper()
	return Do(t, w.HTTP.Transport, req)
}

// Do sends req on rt (nil: http.DefaultTransport) without cookies and
// without following a redirect, and reads the answer (a redirect's
// Location resolved against the request's URL); a failed request fails
// t. It is for servers outside a World (a `qiao demo`).
func Do(t testing.TB, rt http.RoundTripper, req *http.Request) *Page {
	t.Helper()
	c := &http.Client{Transport: rt, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	p, err := (&Browser{}).do(c, req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	return p
}

// NewRequest is a request of method to u with no body; a bad URL fails t.
func NewRequest(t testing.TB, method, u string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// FormRequest is a POST of form to u; with user set it authenticates as
// that client with HTTP Basic (RFC 6749 2.3.1: the id and secret
// form-encoded).
func FormRequest(t testing.TB, u string, form url.Values, user, pass string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	}
	return req
}

// BearerRequest is method to u with an access token (Authorization:
// Bearer; "" sends none) and a JSON body: nil sends none, a string is
// sent as it is (JSON text, or broken JSON on purpose), anything else is
// marshalled.
func BearerRequest(t testing.TB, method, u, token string, body any) *http.Request {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return req
}

// JSON is the page's body decoded as a JSON object (nil if it is not
// one).
func (p *Page) JSON() map[string]any {
	var m map[string]any
	if json.Unmarshal([]byte(p.Body), &m) != nil {
		return nil
	}
	return m
}

// MustJSON is JSON for a body that must be a JSON object: anything else
// fails t.
func (p *Page) MustJSON(t testing.TB) map[string]any {
	t.Helper()
	m := p.JSON()
	if m == nil {
		t.Fatalf("not a JSON object: HTTP %d %.300s", p.Status, p.Body)
	}
	return m
}

// JWT decodes a compact JWT's header and claims without verifying them
// (VerifyIDToken verifies); anything but three base64url parts whose
// first two are JSON objects fails t.
func JWT(t testing.TB, raw string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", raw)
	}
	var out [2]map[string]any
	for i := range out {
		data, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("JWT part %d: %v", i+1, err)
		}
		if err := json.Unmarshal(data, &out[i]); err != nil || out[i] == nil {
			t.Fatalf("JWT part %d is not a JSON object: %s", i+1, data)
		}
	}
	return out[0], out[1]
}

// Between is the text of s between the first a and the next b after it
// ("" when either is missing).
func Between(s, a, b string) string {
	_, after, ok := strings.Cut(s, a)
	if !ok {
		return ""
	}
	in, _, ok := strings.Cut(after, b)
	if !ok {
		return ""
	}
	return in
}

// Healthy reports whether the broker at root answers /healthz with 200.
func Healthy(root string) bool {
	resp, err := http.Get(root + "/healthz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Eventually polls cond every 20 ms until it holds or timeout has passed,
// and reports whether it held (the caller fails the test with what it
// waited for).
func Eventually(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
