package broker_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"syscall"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/internal/qiaotest"
	"golang.org/x/oauth2"
)

// The benchmarks run the whole broker in this process, on a real HTTP
// server on loopback and a SQLite file (qiaotest's world), with the harness's fakeWeb
// connectors (no upstream HTTP calls). The relying party and the browser
// are in the same process, so the CPU figures they report (cpu-ms/op)
// include the client's work: TLS-free HTTP on both sides, go-oidc's
// signature check of the ID token. bench/login measures the broker's own
// CPU from outside its process.

// newBenchEnv is newEnv for a benchmark: the same configuration, fakes
// and relying party, with the broker logging at info level (as `qiao
// serve` does by default).
func newBenchEnv(b *testing.B, alg string) *env {
	b.Helper()
	return newEnv(b, envOptions{alg: alg, config: func(c *qiaotest.Config) { c.Log = &qiaotest.Log{Level: "info", Format: "json"} }})
}

// benchBrowser is a fresh cookie jar that follows redirects within the
// broker and stops at the relying party (a qiaotest browser's client).
func (e *env) benchBrowser() *http.Client { return e.Browser().Client }

// authorizeCode runs an authorization request in browser and returns the
// code the client received.
func authorizeCode(browser *http.Client, a authRequest) (string, error) {
	resp, err := browser.Get(a.url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		return "", fmt.Errorf("authorize: status %d, want a redirect to the client", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		return "", err
	}
	q := loc.Query()
	if q.Get("error") != "" {
		return "", fmt.Errorf("authorize: %s: %s", q.Get("error"), q.Get("error_description"))
	}
	if q.Get("state") != a.state || q.Get("code") == "" {
		return "", fmt.Errorf("authorize: state %q (want %q), code present %v", q.Get("state"), a.state, q.Get("code") != "")
	}
	return q.Get("code"), nil
}

// benchLogin is one full login: authorization request, the (fake)
// provider's redirect, the callback, the code and the token exchange with
// PKCE, the ID token verified with its nonce.
func benchLogin(r *rp, browser *http.Client, extra ...oauth2.AuthCodeOption) (*tokens, error) {
	a := r.authURL(extra...)
	code, err := authorizeCode(browser, a)
	if err != nil {
		return nil, err
	}
	tk, err := r.exchange(code, a.verifier)
	if err != nil {
		return nil, fmt.Errorf("exchange: %w", err)
	}
	if tk.idToken == nil || tk.idToken.Nonce != a.nonce {
		return nil, fmt.Errorf("ID token missing or nonce mismatch")
	}
	return tk, nil
}

// cpuTime is the CPU (user and system) this process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measureCPU runs the timed loop and reports the process CPU per
// iteration under unit.
func measureCPU(b *testing.B, unit string, body func()) {
	b.ReportAllocs()
	start := cpuTime(b)
	n := 0
	for b.Loop() {
		body()
		n++
	}
	if n > 0 {
		used := cpuTime(b) - start
		b.ReportMetric(float64(used)/float64(time.Millisecond)/float64(n), unit)
	}
}

func BenchmarkFullLogin(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			e := newBenchEnv(b, alg)
			r := e.webRP()
			connector := oauth2.SetAuthURLParam("connector_id", "alpha")
			measureCPU(b, "cpu-ms/login", func() {
				if _, err := benchLogin(r, e.benchBrowser(), connector); err != nil {
					b.Fatal(err)
				}
			})
		})
	}
}

func BenchmarkTokenRefresh(b *testing.B) {
	e := newBenchEnv(b, "RS256")
	r := e.webRP()
	tk, err := benchLogin(r, e.benchBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	if err != nil {
		b.Fatal(err)
	}
	refresh := tk.token.RefreshToken
	measureCPU(b, "cpu-ms/op", func() {
		next, err := r.refresh(refresh)
		if err != nil {
			b.Fatalf("refresh: %v", err)
		}
		if next.token.RefreshToken == "" || next.token.RefreshToken == refresh {
			b.Fatal("the refresh token was not rotated")
		}
		refresh = next.token.RefreshToken
	})
}

func BenchmarkAuthorizeSSO(b *testing.B) {
	e := newBenchEnv(b, "RS256")
	browser := e.benchBrowser()
	if _, err := benchLogin(e.webRP(), browser, oauth2.SetAuthURLParam("connector_id", "alpha")); err != nil {
		b.Fatal(err)
	}
	second := e.rp("second", "second-secret-0123456789abcdef0123456789", "https://second.example/cb")
	calls := e.fakes["alpha"].calls.Load()
	// code: the authorization request alone, answered from the session.
	b.Run("code", func(b *testing.B) {
		measureCPU(b, "cpu-ms/op", func() {
			if _, err := authorizeCode(browser, second.authURL()); err != nil {
				b.Fatal(err)
			}
		})
	})
	// code+token: the second client's whole login, as it costs the broker.
	b.Run("code+token", func(b *testing.B) {
		measureCPU(b, "cpu-ms/login", func() {
			if _, err := benchLogin(second, browser); err != nil {
				b.Fatal(err)
			}
		})
	})
	if got := e.fakes["alpha"].calls.Load(); got != calls {
		b.Fatalf("SSO logins went to the provider %d times", got-calls)
	}
}

// benchSignedIn is an RS256 bench world where the web client has signed
// in through alpha, its tokens, and a client for the calls to time.
func benchSignedIn(b *testing.B) (*env, *tokens, *http.Client) {
	b.Helper()
	e := newBenchEnv(b, "RS256")
	r := e.webRP()
	tk, err := benchLogin(r, e.benchBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	if err != nil {
		b.Fatal(err)
	}
	return e, tk, &http.Client{Timeout: 10 * time.Second}
}

func BenchmarkUserinfo(b *testing.B) {
	e, tk, client := benchSignedIn(b)
	measureCPU(b, "cpu-ms/op", func() {
		req := qiaotest.BearerRequest(b, http.MethodGet, e.issuer+"/userinfo", tk.token.AccessToken, nil)
		var claims map[string]any
		if err := doJSON(client, req, &claims); err != nil {
			b.Fatalf("userinfo: %v", err)
		}
		if claims["sub"] != tk.idToken.Subject {
			b.Fatalf("userinfo sub = %v, want %s", claims["sub"], tk.idToken.Subject)
		}
	})
}

func BenchmarkIntrospect(b *testing.B) {
	e, tk, client := benchSignedIn(b)
	form := url.Values{"token": {tk.token.AccessToken}}
	measureCPU(b, "cpu-ms/op", func() {
		req := qiaotest.FormRequest(b, e.issuer+"/introspect", form, "web", "web-secret-0123456789abcdef0123456789")
		var reply struct {
			Active bool   `json:"active"`
			Sub    string `json:"sub"`
		}
		if err := doJSON(client, req, &reply); err != nil {
			b.Fatalf("introspect: %v", err)
		}
		if !reply.Active || reply.Sub != tk.idToken.Subject {
			b.Fatalf("introspect = %+v, want active for %s", reply, tk.idToken.Subject)
		}
	})
}

// doJSON sends req and decodes a 200 JSON reply into v.
func doJSON(client *http.Client, req *http.Request, v any) error {
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}
