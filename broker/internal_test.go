package broker

import (
	"bytes"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/broker/seal"
	"github.com/qiaoidp/qiao/connectors"
)

func TestClientIPBelievesOnlyTrustedProxies(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		trusted      []netip.Prefix
		want         string
	}{
		{"no proxies configured", "203.0.113.7:5000", []string{"198.51.100.1"}, nil, "203.0.113.7"},
		{"untrusted peer's header ignored", "203.0.113.7:5000", []string{"198.51.100.1"}, trusted, "203.0.113.7"},
		{"trusted proxy", "10.1.2.3:5000", []string{"198.51.100.1"}, trusted, "198.51.100.1"},
		{"chain of trusted proxies", "10.1.2.3:5000", []string{"198.51.100.1, 10.9.9.9"}, trusted, "198.51.100.1"},
		{"spoofed left part ignored", "10.1.2.3:5000", []string{"1.2.3.4, 198.51.100.1"}, trusted, "198.51.100.1"},
		{"several headers", "10.1.2.3:5000", []string{"1.2.3.4", "198.51.100.1"}, trusted, "198.51.100.1"},
		{"garbage stops the walk", "10.1.2.3:5000", []string{"198.51.100.1, nonsense"}, trusted, "10.1.2.3"},
		{"no header", "10.1.2.3:5000", nil, trusted, "10.1.2.3"},
		{"ipv6 proxy", "[::1]:5000", []string{"2001:db8::5"}, trusted, "2001:db8::5"},
		{"only proxies", "10.1.2.3:5000", []string{"10.0.0.1"}, trusted, "10.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			r.RemoteAddr = tc.remote
			for _, v := range tc.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := clientIP(r, tc.trusted); got != tc.want {
				t.Fatalf("clientIP = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPickLang(t *testing.T) {
	for _, tc := range []struct {
		name, url, cookie, accept, want string
	}{
		{"default is Chinese", "/auth", "", "", "zh-CN"},
		{"accept-language", "/auth", "", "fr-FR, en-US;q=0.8", "en"},
		{"ui_locales beats the browser", "/auth?ui_locales=en-GB+zh", "", "zh-CN", "en"},
		{"cookie beats ui_locales", "/auth?ui_locales=en", "zh-CN", "", "zh-CN"},
		{"explicit switch beats all", "/auth?lang=en&ui_locales=zh", "zh-CN", "zh", "en"},
		{"unknown ui_locales fall through", "/auth?ui_locales=fr", "", "en", "en"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tc.url, nil)
			if tc.cookie != "" {
				r.Header.Set("Cookie", "qiao_lang="+tc.cookie)
			}
			if tc.accept != "" {
				r.Header.Set("Accept-Language", tc.accept)
			}
			if got := pickLang(r); got != tc.want {
				t.Fatalf("pickLang = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRandomStringIsUniformOverItsAlphabet(t *testing.T) {
	for _, n := range []int{1, 16, 32, 43, 128} {
		if s := randomString(n); len(s) != n || !validState(strings.Repeat(s, 16/n+1)) {
			t.Fatalf("randomString(%d) = %q", n, s)
		}
	}
	counts := map[rune]int{}
	for i := 0; i < 2000; i++ {
		for _, c := range randomString(100) {
			counts[c]++
		}
	}
	// 200 000 characters, ~3 226 each (a standard deviation of ~57, 1.8 %).
	// Modulo bias (256 = 4×62 + 8) would give the first eight characters
	// 25 % more than the others: compare the two groups' means, which
	// chance moves by well under 1 %, and bound every character loosely.
	if len(counts) != 62 {
		t.Fatalf("characters seen %d, want 62", len(counts))
	}
	var first, rest float64
	for i, c := range alnum {
		n := float64(counts[c])
		if n < 3226*0.85 || n > 3226*1.15 {
			t.Fatalf("character %q seen %v times, want about 3 226", c, n)
		}
		if i < 8 {
			first += n / 8
		} else {
			rest += n / 54
		}
	}
	if ratio := first / rest; ratio > 1.05 || ratio < 0.95 {
		t.Fatalf("the first eight characters come %.3f times as often as the others", ratio)
	}
}

// TestLoginCookieStaysUnder4KB: the largest login the broker keeps (the
// kept authorization parameters at their cap, a connector's per-login
// data at its cap, long ids) seals into a cookie browsers keep.
func TestLoginCookieStaysUnder4KB(t *testing.T) {
	s, err := seal.New([]byte(strings.Repeat("k", 32)), "login-cookie")
	if err != nil {
		t.Fatal(err)
	}
	b := &loginHandler{site: &site{secure: true}, loginSealer: s}
	data := pendingData{
		State: randomString(32), ConnectorID: strings.Repeat("c", 32), Purpose: "reauth",
		AuthQuery: strings.Repeat("q", maxAuthQuery), UserID: newUserID(),
		RequestedAt: time.Now(), ExpiresAt: time.Now().Add(loginTTL),
		Action: "unbind", Target: strings.Repeat("t", 32),
		ConnData: bytes.Repeat([]byte{0xff}, connectors.MaxLoginData),
	}
	w := httptest.NewRecorder()
	b.setLoginCookie(w, nil, data)
	c := w.Result().Cookies()[0]
	if n := len(c.Name) + len(c.Value); n > 4000 {
		t.Fatalf("the largest login cookie has %d bytes of name and value, want at most 4000", n)
	}
}
