package wechat_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/connectors/wechat"
)

func TestExchangeCodeYieldsOpenIDUnionIDAndSessionKey(t *testing.T) {
	e := newEnv(t, nil)
	m := e.mini(t, nil)
	code, err := e.sim.LoginCode(appMini, "alice")
	if err != nil {
		t.Fatal(err)
	}
	id, err := m.ExchangeCode(t.Context(), code)
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != e.sim.OpenID(appMini, "alice") || id.UnionID != e.sim.UnionID("alice") ||
		string(id.Secret) != e.sim.SessionKey(appMini, "alice") || id.RealProfile || id.DisplayName != "" {
		t.Errorf("identity %+v", id)
	}
	_, err = m.ExchangeCode(t.Context(), code)
	if !errors.Is(err, connectors.ErrInvalidCode) || providerCode(err) != 40163 {
		t.Errorf("reused code: %v, want ErrInvalidCode 40163", err)
	}
	assertClean(t, err, code, string(id.Secret))

	code, _ = e.sim.LoginCode(appMini, "alice")
	e.clock.Advance(5 * time.Minute)
	if _, err := m.ExchangeCode(t.Context(), code); !errors.Is(err, connectors.ErrInvalidCode) || providerCode(err) != 42003 {
		t.Errorf("expired code: %v, want ErrInvalidCode 42003", err)
	}
}

func TestExchangeCodeRefusesMalformedCodesLocally(t *testing.T) {
	e := newEnv(t, nil)
	m := e.mini(t, nil)
	for _, code := range []string{"", "a b", "code\n", strings.Repeat("x", 600), "码",
		strings.Repeat("x", 129), "a/b", "a+b=", "%41", "a&js_code=b", "a#b", "a\x00b"} {
		if _, err := m.ExchangeCode(t.Context(), code); !errors.Is(err, connectors.ErrInvalidCode) {
			t.Errorf("code %.10q: %v, want ErrInvalidCode", code, err)
		}
		if _, err := m.PhoneNumber(t.Context(), code); !errors.Is(err, connectors.ErrInvalidCode) {
			t.Errorf("phone code %.10q: %v, want ErrInvalidCode", code, err)
		}
	}
	if n := e.sim.Calls("/sns/jscode2session") + e.sim.Calls("/cgi-bin/stable_token"); n != 0 {
		t.Errorf("WeChat called %d times for malformed codes", n)
	}
}

// TestExchangeCodeSendsPlausibleFutureCodes: the local check refuses
// only what cannot be a code; a longer code in the URL-safe alphabet
// still goes to WeChat, which decides.
func TestExchangeCodeSendsPlausibleFutureCodes(t *testing.T) {
	e := newEnv(t, nil)
	m := e.mini(t, nil)
	for i, code := range []string{strings.Repeat("Ab9", 41) + "-._~Z", "0a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P"} {
		_, err := m.ExchangeCode(t.Context(), code)
		if !errors.Is(err, connectors.ErrInvalidCode) || providerCode(err) != 40029 {
			t.Errorf("code %.10q: %v, want WeChat's 40029", code, err)
		}
		if n := e.sim.Calls("/sns/jscode2session"); n != i+1 {
			t.Errorf("after code %d WeChat saw %d calls, want %d", i, n, i+1)
		}
	}
}

// TestQuotaErrorIsLoggedForTheAdmin: WeChat's quota errors (45011 a
// minute, 45009 a day) make the connector unavailable and leave an
// error line for the admin that names the app, without secret or code.
func TestQuotaErrorIsLoggedForTheAdmin(t *testing.T) {
	for _, errcode := range []int{45011, 45009} {
		t.Run(fmt.Sprint(errcode), func(t *testing.T) {
			e := newEnv(t, nil)
			var logs bytes.Buffer
			cfg := e.cfg(appMini)
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			m, err := wechat.NewMiniProgram(cfg, e.caller, nil)
			if err != nil {
				t.Fatal(err)
			}
			code, _ := e.sim.LoginCode(appMini, "bob")
			e.sim.InjectFault(sandbox.Fault{Path: "/sns/jscode2session", Code: errcode, Times: 1})
			_, err = m.ExchangeCode(t.Context(), code)
			if !errors.Is(err, connectors.ErrUnavailable) || providerCode(err) != errcode {
				t.Fatalf("got %v, want ErrUnavailable %d", err, errcode)
			}
			line := logs.String()
			for _, want := range []string{"level=ERROR", "quota reached", "appid=" + appMini, fmt.Sprintf("errcode=%d", errcode)} {
				if !strings.Contains(line, want) {
					t.Errorf("log %q lacks %q", line, want)
				}
			}
			if strings.Contains(line, secret) || strings.Contains(line, code) {
				t.Errorf("log leaks the secret or the code: %q", line)
			}
		})
	}
}

func TestExchangeCodeErrors(t *testing.T) {
	cases := []struct {
		name  string
		fault sandbox.Fault
		want  error
		calls int
	}{
		{"rate limit", sandbox.Fault{Path: "/sns/jscode2session", Code: 45011}, connectors.ErrUnavailable, 1},
		{"blocked user", sandbox.Fault{Path: "/sns/jscode2session", Code: 40226}, connectors.ErrAccessDenied, 1},
		{"busy twice", sandbox.Fault{Path: "/sns/jscode2session", Code: -1}, connectors.ErrUnavailable, 2},
		{"busy once", sandbox.Fault{Path: "/sns/jscode2session", Code: -1, Times: 1}, nil, 2},
		{"empty body", sandbox.Fault{Path: "/sns/jscode2session", Kind: sandbox.FaultEmpty}, connectors.ErrUnavailable, 1},
		{"no session_key", sandbox.Fault{Path: "/sns/jscode2session", Kind: sandbox.FaultRaw, Body: `{"openid":"o1"}`}, connectors.ErrUnavailable, 1},
		{"garbage", sandbox.Fault{Path: "/sns/jscode2session", Kind: sandbox.FaultHTML}, connectors.ErrUnavailable, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil)
			m := e.mini(t, nil)
			code, _ := e.sim.LoginCode(appMini, "bob")
			e.sim.InjectFault(c.fault)
			id, err := m.ExchangeCode(t.Context(), code)
			if c.want == nil {
				if err != nil || id.Subject != e.sim.OpenID(appMini, "bob") {
					t.Errorf("got %+v, %v", id, err)
				}
			} else if !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
			if n := e.sim.Calls("/sns/jscode2session"); n != c.calls {
				t.Errorf("called %d times, want %d", n, c.calls)
			}
			assertClean(t, err, code)
		})
	}
	t.Run("wrong secret", func(t *testing.T) {
		e := newEnv(t, nil)
		cfg := e.cfg(appMini)
		cfg.ClientSecret = "AnotherSecretValue"
		m, err := wechat.NewMiniProgram(cfg, e.caller, nil)
		if err != nil {
			t.Fatal(err)
		}
		code, _ := e.sim.LoginCode(appMini, "bob")
		_, err = m.ExchangeCode(t.Context(), code)
		if !errors.Is(err, connectors.ErrConfig) || providerCode(err) != 40125 {
			t.Errorf("got %v, want ErrConfig 40125", err)
		}
		assertClean(t, err, code, "AnotherSecretValue")
	})
}

func TestPhoneNumberIsE164(t *testing.T) {
	cases := []struct {
		name   string
		mutate func(*sandbox.WeChatOptions)
		person string
		want   string
	}{
		{"countryCode as string", nil, "alice", "+8613800138001"},
		{"countryCode as number", func(o *sandbox.WeChatOptions) { o.CountryCodeAsNumber = true }, "carol", "+8613800138003"},
		{"configured number", func(o *sandbox.WeChatOptions) { o.Phones = map[string]string{"bob": "13912345678"} }, "bob", "+8613912345678"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, c.mutate)
			m := e.mini(t, nil)
			code, err := e.sim.PhoneCode(appMini, c.person)
			if err != nil {
				t.Fatal(err)
			}
			got, err := m.PhoneNumber(t.Context(), code)
			if err != nil || got != c.want {
				t.Errorf("got %q, %v, want %q", got, err, c.want)
			}
		})
	}
}

func TestPhoneNumberErrors(t *testing.T) {
	cases := []struct {
		name  string
		fault *sandbox.Fault
		code  func(e *env) string
		want  error
	}{
		{"reused code", nil, func(e *env) string {
			c, _ := e.sim.PhoneCode(appMini, "alice")
			if _, err := e.mini(t, nil).PhoneNumber(t.Context(), c); err != nil {
				t.Fatal(err)
			}
			return c
		}, connectors.ErrInvalidCode},
		{"wx.login code", nil, func(e *env) string { c, _ := e.sim.LoginCode(appMini, "alice"); return c }, connectors.ErrInvalidCode},
		{"rate limit", &sandbox.Fault{Path: "/wxa/business/getuserphonenumber", Code: 45011}, nil, connectors.ErrUnavailable},
		{"no phone_info", &sandbox.Fault{Path: "/wxa/business/getuserphonenumber", Kind: sandbox.FaultRaw, Body: `{"errcode":0,"errmsg":"ok"}`}, nil, connectors.ErrUnavailable},
		{"not a number", &sandbox.Fault{Path: "/wxa/business/getuserphonenumber", Kind: sandbox.FaultRaw, Body: `{"phone_info":{"purePhoneNumber":"138-0013","countryCode":"86"}}`}, nil, connectors.ErrUnavailable},
		{"another app's number", &sandbox.Fault{Path: "/wxa/business/getuserphonenumber", Kind: sandbox.FaultRaw, Body: `{"phone_info":{"purePhoneNumber":"13800138000","countryCode":"86","watermark":{"appid":"wxother"}}}`}, nil, connectors.ErrUnavailable},
		{"token endpoint empty", &sandbox.Fault{Path: "/cgi-bin/stable_token", Kind: sandbox.FaultEmpty}, nil, connectors.ErrUnavailable},
		{"token endpoint bad secret", &sandbox.Fault{Path: "/cgi-bin/stable_token", Code: 40001}, nil, connectors.ErrConfig},
		{"token without expires_in", &sandbox.Fault{Path: "/cgi-bin/stable_token", Kind: sandbox.FaultRaw, Body: `{"access_token":"abc"}`}, nil, connectors.ErrUnavailable},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, nil)
			m := e.mini(t, nil)
			var code string
			if c.code != nil {
				code = c.code(e)
			} else {
				code, _ = e.sim.PhoneCode(appMini, "alice")
			}
			if c.fault != nil {
				e.sim.InjectFault(*c.fault)
			}
			got, err := m.PhoneNumber(t.Context(), code)
			if !errors.Is(err, c.want) || got != "" {
				t.Errorf("got %q, %v, want %v", got, err, c.want)
			}
			assertClean(t, err, code)
		})
	}
}

// phoneCodes returns n phone codes of the default persons.
func phoneCodes(t *testing.T, e *env, n int) []string {
	t.Helper()
	persons := []string{"alice", "bob", "carol"}
	codes := make([]string, n)
	for i := range codes {
		c, err := e.sim.PhoneCode(appMini, persons[i%3])
		if err != nil {
			t.Fatal(err)
		}
		codes[i] = c
	}
	return codes
}

// concurrently asks for the phone numbers of codes all at once.
func concurrently(t *testing.T, m *wechat.MiniProgram, codes []string) {
	t.Helper()
	want := []string{"+8613800138001", "+8613800138002", "+8613800138003"}
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, len(codes))
	for i, code := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got, err := m.PhoneNumber(t.Context(), code)
			if err == nil && got != want[i%3] {
				err = fmt.Errorf("caller %d got %q, want %q", i, got, want[i%3])
			}
			errs <- err
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func TestAccessTokenFetchedOnceForConcurrentCallers(t *testing.T) {
	e := newEnv(t, nil)
	m := e.mini(t, nil)
	concurrently(t, m, phoneCodes(t, e, 20))
	if n := e.sim.Calls("/cgi-bin/stable_token"); n != 1 {
		t.Errorf("stable_token called %d times for 20 concurrent callers, want 1", n)
	}
	// The token is revoked: all 20 see 40001, one refresh serves them all.
	e.sim.RevokeAccessTokens(appMini)
	concurrently(t, m, phoneCodes(t, e, 20))
	if n := e.sim.Calls("/cgi-bin/stable_token"); n != 2 {
		t.Errorf("stable_token called %d times in all after a revocation, want 2", n)
	}
	// 20, then 20 more of which those that started before the refresh
	// were refused and retried once each (at least one was).
	if n := e.sim.Calls("/wxa/business/getuserphonenumber"); n < 41 || n > 60 {
		t.Errorf("getuserphonenumber called %d times, want 41 to 60", n)
	}
	// A later call uses the cached token.
	concurrently(t, m, phoneCodes(t, e, 3))
	if n := e.sim.Calls("/cgi-bin/stable_token"); n != 2 {
		t.Errorf("stable_token called again (%d) with a valid cached token", n)
	}
}

func TestExpiredAccessTokenIsRefreshedAndRetriedOnce(t *testing.T) {
	e := newEnv(t, nil)
	m := e.mini(t, nil)
	concurrently(t, m, phoneCodes(t, e, 1))
	e.clock.Advance(2 * time.Hour) // WeChat now answers 42001; this process still holds the token
	concurrently(t, m, phoneCodes(t, e, 1))
	if n := e.sim.Calls("/cgi-bin/stable_token"); n != 2 {
		t.Errorf("stable_token called %d times, want 2", n)
	}

	e.sim.InjectFault(sandbox.Fault{Path: "/wxa/business/getuserphonenumber", Code: 40001})
	code := phoneCodes(t, e, 1)[0]
	_, err := m.PhoneNumber(t.Context(), code)
	if !errors.Is(err, connectors.ErrUnavailable) || providerCode(err) != 40001 {
		t.Errorf("token refused twice: %v, want ErrUnavailable 40001", err)
	}
	if n := e.sim.Calls("/wxa/business/getuserphonenumber"); n != 5 {
		t.Errorf("getuserphonenumber called %d times, want 1 + (refused, retried) + (refused, retried refused)", n)
	}
	if n := e.sim.Calls("/cgi-bin/stable_token"); n != 3 {
		t.Errorf("stable_token called %d times, want one more refresh", n)
	}
}

func TestStableTokenBusyIsRetried(t *testing.T) {
	e := newEnv(t, nil)
	m := e.mini(t, nil)
	e.sim.InjectFault(sandbox.Fault{Path: "/cgi-bin/stable_token", Code: -1, Times: 1})
	concurrently(t, m, phoneCodes(t, e, 2))
	if n := e.sim.Calls("/cgi-bin/stable_token"); n != 2 {
		t.Errorf("stable_token called %d times, want 2", n)
	}
}

// memCache is a TokenCache shared by two connectors, as two replicas
// share the broker's store.
type memCache struct {
	mu     sync.Mutex
	tokens map[string]string
	until  map[string]time.Time
	broken bool
	gets   int
}

func (c *memCache) GetToken(_ context.Context, key string) (string, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gets++
	if c.broken {
		return "", time.Time{}, errors.New("store unreachable")
	}
	t, ok := c.tokens[key]
	if !ok {
		return "", time.Time{}, fmt.Errorf("key %s: %w", key, wechat.ErrCacheMiss)
	}
	return t, c.until[key], nil
}

func (c *memCache) PutToken(_ context.Context, key, token string, until time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.broken {
		return errors.New("store unreachable")
	}
	c.tokens[key], c.until[key] = token, until
	return nil
}

func TestAccessTokenSharedAcrossReplicas(t *testing.T) {
	e := newEnv(t, nil)
	cache := &memCache{tokens: map[string]string{}, until: map[string]time.Time{}}
	a, b := e.mini(t, cache), e.mini(t, cache)
	concurrently(t, a, phoneCodes(t, e, 5))
	concurrently(t, b, phoneCodes(t, e, 5))
	if n := e.sim.Calls("/cgi-bin/stable_token"); n != 1 {
		t.Errorf("stable_token called %d times by two replicas, want 1", n)
	}
	if len(cache.tokens) != 1 {
		t.Fatalf("cache holds %d tokens", len(cache.tokens))
	}
	for _, until := range cache.until {
		if d := time.Until(until); d < 100*time.Minute || d > 7200*time.Second {
			t.Errorf("cached until %v from now, want shortly before the 2 h expiry", d)
		}
	}
	// Replica a refreshes after a revocation; b then takes the new token
	// from the cache after its own one is refused, with no second fetch.
	e.sim.RevokeAccessTokens(appMini)
	concurrently(t, a, phoneCodes(t, e, 1))
	concurrently(t, b, phoneCodes(t, e, 1))
	if n := e.sim.Calls("/cgi-bin/stable_token"); n != 2 {
		t.Errorf("stable_token called %d times, want 2", n)
	}
}

func TestBrokenCacheFallsBackToThisProcess(t *testing.T) {
	e := newEnv(t, nil)
	cache := &memCache{tokens: map[string]string{}, until: map[string]time.Time{}, broken: true}
	var logs bytes.Buffer
	cfg := e.cfg(appMini)
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	m, err := wechat.NewMiniProgram(cfg, e.caller, cache)
	if err != nil {
		t.Fatal(err)
	}
	concurrently(t, m, phoneCodes(t, e, 4))
	if n := e.sim.Calls("/cgi-bin/stable_token"); n != 1 || cache.gets != 1 {
		t.Errorf("stable_token calls %d, cache reads %d, want 1 and 1", n, cache.gets)
	}
	if !strings.Contains(logs.String(), "cache unreadable") || !strings.Contains(logs.String(), "cache unwritable") {
		t.Errorf("no warning logged:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("log holds the secret:\n%s", logs.String())
	}
}
