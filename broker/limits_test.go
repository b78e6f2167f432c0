package broker_test

import (
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/internal/qiaotest"
)

// limitsConfig is the test configuration with a reverse proxy on
// loopback (so that X-Forwarded-For names the client) and the given
// limits: section (nil: none).
func limitsConfig(limits map[string]any) envOptions {
	return envOptions{config: func(c *qiaotest.Config) {
		c.HTTP = &qiaotest.HTTP{TrustedProxies: []string{"127.0.0.1"}}
		if limits != nil {
			extra(c, "limits", limits)
		}
	}}
}

// limit is one endpoint's limits.
type limit = map[string]any

// send makes one request as the client at ip (through the trusted proxy).
func (e *env) send(method, path, ip string, form url.Values, header http.Header) (*http.Response, string) {
	e.t.Helper()
	var body io.Reader
	target := e.issuer + path
	if method == http.MethodPost {
		body = strings.NewReader(form.Encode())
	} else if form != nil {
		target += "?" + form.Encode()
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if method == http.MethodPost {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("X-Forwarded-For", ip)
	p, err := e.Browser().Step(req)
	if err != nil {
		e.t.Fatal(err)
	}
	return &http.Response{StatusCode: p.Status, Header: p.Header}, p.Body
}

// rateLimited is the count qiao_rate_limited_total{endpoint,limit} of
// /metrics; -1 when absent.
func (e *env) rateLimited(endpoint, limit string) float64 {
	e.t.Helper()
	v, ok := e.Metric(e.t, "qiao_rate_limited_total", map[string]string{"endpoint": endpoint, "limit": limit})
	if !ok {
		return -1
	}
	return v
}

// TestRateLimitsAnswer429WithRetryAfterAndMetric: each endpoint's limit
// per client address refuses the request over the burst with 429, a
// Retry-After, the endpoint's own kind of answer (OAuth JSON or the
// message page), and counts it; another address is not affected.
func TestRateLimitsAnswer429WithRetryAfterAndMetric(t *testing.T) {
	e := newEnv(t, limitsConfig(map[string]any{
		"auth":     limit{"per_ip": 0.1, "per_ip_burst": 2, "per_client": 0},
		"token":    limit{"per_ip": 0.1, "per_ip_burst": 2, "per_client": 0},
		"callback": limit{"per_ip": 0.1, "per_ip_burst": 2},
		"account":  limit{"per_ip": 0.1, "per_ip_burst": 2, "per_client": 0},
	}))
	authQuery := url.Values{"client_id": {"web"}, "response_type": {"code"}, "redirect_uri": {"http://127.0.0.1:9/callback"}, "scope": {"openid"}, "state": {"s"}}
	tokenForm := url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "client_id": {"spa"}}
	tests := []struct {
		name, endpoint, method, path string
		form                         url.Values
		json                         bool
	}{
		{"authorization", "auth", http.MethodGet, "/auth", authQuery, false},
		{"token", "token", http.MethodPost, "/token", tokenForm, true},
		{"callback", "callback", http.MethodGet, "/callback/alpha", url.Values{"state": {"x"}, "code": {"y"}}, false},
		{"account API", "account", http.MethodGet, "/api/v1/me", nil, true},
		{"account page", "account", http.MethodGet, "/account", nil, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ip := "198.51.100." + strconv.Itoa(10+i)
			for n := 0; n < 2; n++ {
				if resp, body := e.send(tc.method, tc.path, ip, tc.form, nil); resp.StatusCode == http.StatusTooManyRequests {
					t.Fatalf("request %d within the burst refused: %s", n+1, body)
				}
			}
			before := e.rateLimited(tc.endpoint, "ip")
			resp, body := e.send(tc.method, tc.path, ip, tc.form, nil)
			if resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("third request: HTTP %d, want 429; body %.300s", resp.StatusCode, body)
			}
			if ra, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 10 {
				t.Errorf("Retry-After %q, want 1..10 seconds", resp.Header.Get("Retry-After"))
			}
			ct := resp.Header.Get("Content-Type")
			if tc.json {
				if !strings.HasPrefix(ct, "application/json") || !strings.Contains(body, `"error":"temporarily_unavailable"`) {
					t.Errorf("JSON endpoint answered %s: %s", ct, body)
				}
			} else if !strings.HasPrefix(ct, "text/html") || !strings.Contains(body, "请求过多") {
				t.Errorf("page endpoint answered %s: %.400s", ct, body)
			}
			if after := e.rateLimited(tc.endpoint, "ip"); after != before+1 {
				t.Errorf("qiao_rate_limited_total{endpoint=%q,limit=ip} went %v -> %v, want +1", tc.endpoint, before, after)
			}
			if resp, _ := e.send(tc.method, tc.path, "198.51.100.200", tc.form, nil); resp.StatusCode == http.StatusTooManyRequests {
				t.Errorf("another address was refused too")
			}
		})
	}
}

// TestRateLimitsPerClient: a client id's bucket is shared by every
// address, and is separate from the other clients'.
func TestRateLimitsPerClient(t *testing.T) {
	e := newEnv(t, limitsConfig(map[string]any{
		"auth":  limit{"per_ip": 0, "per_client": 0.1, "per_client_burst": 2},
		"token": limit{"per_ip": 0, "per_client": 0.1, "per_client_burst": 2},
	}))
	authQuery := func(client string) url.Values {
		return url.Values{"client_id": {client}, "response_type": {"code"}, "redirect_uri": {"http://127.0.0.1:9/callback"}, "scope": {"openid"}, "state": {"s"}}
	}
	tokenForm := func(client string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {"nope"}, "client_id": {client}}
	}
	tests := []struct {
		endpoint, method, path string
		form                   func(string) url.Values
		json                   bool
	}{
		{"auth", http.MethodGet, "/auth", authQuery, false},
		{"token", http.MethodPost, "/token", tokenForm, true},
	}
	for _, tc := range tests {
		t.Run(tc.endpoint, func(t *testing.T) {
			for n := 0; n < 2; n++ {
				if resp, body := e.send(tc.method, tc.path, "203.0.113."+strconv.Itoa(n+1), tc.form("spa"), nil); resp.StatusCode == http.StatusTooManyRequests {
					t.Fatalf("request %d within the burst refused: %s", n+1, body)
				}
			}
			resp, body := e.send(tc.method, tc.path, "203.0.113.99", tc.form("spa"), nil)
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("third request of the client from a third address: HTTP %d, Retry-After %q; %.300s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
			}
			if got := e.rateLimited(tc.endpoint, "client"); got != 1 {
				t.Errorf("qiao_rate_limited_total{endpoint=%q,limit=client} = %v, want 1", tc.endpoint, got)
			}
			if resp, _ := e.send(tc.method, tc.path, "203.0.113.99", tc.form("second"), nil); resp.StatusCode == http.StatusTooManyRequests {
				t.Errorf("another client was refused too")
			}
			// Made-up client ids get no bucket of their own.
			for n := 0; n < 3; n++ {
				if resp, _ := e.send(tc.method, tc.path, "203.0.113.98", tc.form("ghost"), nil); resp.StatusCode == http.StatusTooManyRequests {
					t.Fatalf("an unknown client id was rate-limited per client")
				}
			}
		})
	}
}

// TestAccountAPIRateLimitPerClient: the account API counts each client's
// calls, whichever address they come from.
func TestAccountAPIRateLimitPerClient(t *testing.T) {
	e := newEnv(t, limitsConfig(map[string]any{
		"account": limit{"per_ip": 0, "per_client": 0.1, "per_client_burst": 2},
	}))
	tk := e.webRP(accountScopes...).login(e.newBrowser(), alpha)
	auth := http.Header{"Authorization": {"Bearer " + tk.token.AccessToken}}
	for n := 0; n < 2; n++ {
		if resp, body := e.send(http.MethodGet, "/api/v1/me", "192.0.2."+strconv.Itoa(n+1), nil, auth); resp.StatusCode != http.StatusOK {
			t.Fatalf("call %d: HTTP %d %s", n+1, resp.StatusCode, body)
		}
	}
	resp, body := e.send(http.MethodGet, "/api/v1/me", "192.0.2.3", nil, auth)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" || !strings.Contains(body, "temporarily_unavailable") {
		t.Fatalf("third call: HTTP %d, Retry-After %q, %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if got := e.rateLimited("account", "client"); got != 1 {
		t.Errorf("qiao_rate_limited_total{endpoint=account,limit=client} = %v, want 1", got)
	}
}

// TestDefaultLimitsLetANATBurstOfLoginsThrough: with the default limits,
// an office or campus behind one NAT address signing in 60 people at the
// same instant (the clock stands still: the worst case of "within a
// second") passes untouched, authorization, callback and token request.
func TestDefaultLimitsLetANATBurstOfLoginsThrough(t *testing.T) {
	clock := &clock{start: time.Now()}
	// Defaults, except that loopback, where the test runs, is not exempt.
	e := newEnv(t, envOptions{now: clock.Now, config: func(c *qiaotest.Config) {
		extra(c, "limits", map[string]any{"exempt": []string{}})
	}})
	web := e.webRP()
	for i := 0; i < 60; i++ {
		if tk := web.login(e.newBrowser(), alpha); tk.idToken == nil {
			t.Fatalf("login %d gave no ID token", i+1)
		}
	}
	for _, endpoint := range []string{"auth", "callback", "token"} {
		if got := e.rateLimited(endpoint, "ip"); got != 0 {
			t.Errorf("qiao_rate_limited_total{endpoint=%q,limit=ip} = %v, want 0", endpoint, got)
		}
	}
}

// TestLoopbackIsExemptByDefault: a reverse proxy on the same host that
// the admin did not list in trusted_proxies must not make every person
// one client address.
func TestLoopbackIsExemptByDefault(t *testing.T) {
	e := newEnv(t, envOptions{config: func(c *qiaotest.Config) {
		extra(c, "limits", map[string]any{"auth": limit{"per_ip": 0.1, "per_ip_burst": 1}})
	}})
	for n := 0; n < 5; n++ {
		resp, body := e.send(http.MethodGet, "/auth", "", url.Values{"client_id": {"web"}}, nil)
		if resp.StatusCode == http.StatusTooManyRequests {
			t.Fatalf("request %d from loopback rate-limited: %s", n+1, body)
		}
	}
}

// TestClientSecretGuessingBacksOff: wrong secrets for one client slow
// every further attempt down, before the secret is checked, so guessing
// collapses from hundreds a second to one every few seconds; the rightful
// client signs in again within the backoff's cap once the guessing stops.
func TestClientSecretGuessingBacksOff(t *testing.T) {
	// The clock starts in the past: fosite refuses an auth_time ahead of
	// its own clock.
	clock := &clock{start: time.Now().Add(-2 * time.Minute)}
	o := limitsConfig(nil)
	o.now = clock.Now
	e := newEnv(t, o)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(e.Logs.String())
		}
	})
	guess := func(ip string) *http.Response {
		resp, _ := e.send(http.MethodPost, "/token", ip, url.Values{"grant_type": {"authorization_code"}, "code": {"x"}},
			http.Header{"Authorization": {"Basic " + basic("web", "guess-"+qiaotest.RandString())}})
		return resp
	}
	// One simulated minute of guessing, 20 a second from rotating
	// addresses (staying under the per-address limits).
	checked, refused := 0, 0
	for i := 0; i < 1200; i++ {
		resp := guess("192.0.2." + strconv.Itoa(1+i%200))
		switch resp.StatusCode {
		case http.StatusUnauthorized:
			checked++
		case http.StatusTooManyRequests:
			refused++
			if resp.Header.Get("Retry-After") == "" {
				t.Fatal("429 without Retry-After")
			}
		default:
			t.Fatalf("guess %d: HTTP %d", i, resp.StatusCode)
		}
		clock.Advance(50 * time.Millisecond)
	}
	t.Logf("one simulated minute, 1200 guesses: %d checked, %d refused with 429", checked, refused)
	// 5 free failures, then at most one check per window of 1, 2, 4, 5, 5... s.
	if checked > 5+15 {
		t.Errorf("%d of 1200 guesses were checked in a minute, want at most 20", checked)
	}
	if got := e.rateLimited("token", "client_auth"); got != float64(refused) || refused == 0 {
		t.Errorf("qiao_rate_limited_total{endpoint=token,limit=client_auth} = %v, want %d", got, refused)
	}
	if !strings.Contains(e.Logs.String(), `"msg":"client authentication keeps failing; backing off","client_id":"web"`) {
		t.Error("no warning for the admin about the failing client authentications")
	}
	// Another client is not affected.
	if resp, _ := e.send(http.MethodPost, "/token", "192.0.2.1", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}},
		http.Header{"Authorization": {"Basic " + basic("second", "wrong")}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("another client's attempt: HTTP %d, want 401", resp.StatusCode)
	}
	// The guessing stops; within the cap the rightful client is back.
	clock.Advance(5 * time.Second)
	if tk := e.webRP(accountScopes...).login(e.newBrowser(), alpha); tk.idToken == nil {
		t.Fatalf("the rightful client got no ID token; %s", e.Logs.String())
	}
	// Its success forgot the failures: one wrong secret is checked again.
	if resp := guess("192.0.2.1"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after a success, a wrong secret: HTTP %d, want 401", resp.StatusCode)
	}
}

// TestClientAuthBackoffCoversIntrospectionAndRevocation: the other
// endpoints that check a client secret share the backoff.
func TestClientAuthBackoffCoversIntrospectionAndRevocation(t *testing.T) {
	for _, endpoint := range []string{"introspect", "revoke"} {
		t.Run(endpoint, func(t *testing.T) {
			clock := &clock{start: time.Now()}
			o := limitsConfig(map[string]any{"client_auth": limit{"failures": 2, "max_backoff": "3s"}})
			o.now = clock.Now
			e := newEnv(t, o)
			try := func(secret string) *http.Response {
				resp, _ := e.send(http.MethodPost, "/"+endpoint, "192.0.2.7", url.Values{"token": {"x"}},
					http.Header{"Authorization": {"Basic " + basic("web", secret)}})
				return resp
			}
			for n := 0; n < 2; n++ {
				if resp := try("wrong"); resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("failure %d: HTTP %d, want 401", n+1, resp.StatusCode)
				}
			}
			resp := try("web-secret-0123456789abcdef0123456789")
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
				t.Fatalf("in the backoff window, even the right secret: HTTP %d Retry-After %q, want 429 and 1", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			if got := e.rateLimited(endpoint, "client_auth"); got != 1 {
				t.Errorf("qiao_rate_limited_total{endpoint=%q,limit=client_auth} = %v, want 1", endpoint, got)
			}
			clock.Advance(time.Second)
			if resp := try("web-secret-0123456789abcdef0123456789"); resp.StatusCode != http.StatusOK {
				t.Errorf("after the window, the right secret: HTTP %d, want 200", resp.StatusCode)
			}
		})
	}
}

func basic(user, pass string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://x", nil)
	req.SetBasicAuth(url.QueryEscape(user), url.QueryEscape(pass))
	return strings.TrimPrefix(req.Header.Get("Authorization"), "Basic ")
}

var alpha = oauth2.SetAuthURLParam("connector_id", "alpha")
