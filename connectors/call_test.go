package connectors_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/internal/conntest"
)

func TestCallReportsEachCallOnceWithItsResult(t *testing.T) {
	const secret, code = "app-secret-0123456789", "code-9876543210"
	tests := []struct {
		name   string
		status int
		parse  func(connectors.Reply) error
		result string // what the Observer is told
		kind   error  // what the error wraps; nil for success
		want   string // what the error text holds
	}{
		{"parsed reply", 200, func(connectors.Reply) error { return nil }, "ok", nil, ""},
		{"provider error", 200, func(connectors.Reply) error {
			return &connectors.ProviderError{Provider: "p", Code: 7, Message: "bad code " + code + " for " + secret, Kind: connectors.ErrInvalidCode}
		}, "error", connectors.ErrInvalidCode, "p token: error 7: bad code [redacted] for [redacted]"},
		{"provider busy", 200, func(connectors.Reply) error {
			return &connectors.ProviderError{Provider: "p", Code: -1, Message: "busy", Kind: connectors.ErrUnavailable}
		}, "unavailable", connectors.ErrUnavailable, "p token: error -1: busy"},
		{"unparseable reply", 200, func(connectors.Reply) error { return connectors.Unparseable("not JSON (%d bytes)", 3) },
			"unavailable", connectors.ErrUnavailable, "p token: provider unavailable: not JSON (3 bytes)"},
		{"server error", 502, func(connectors.Reply) error { t.Error("parse called for a 5xx"); return nil },
			"unavailable", connectors.ErrUnavailable, "p token: provider unavailable: HTTP 502"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tt.status)
				_, _ = w.Write([]byte("{}\n"))
			}))
			defer srv.Close()
			obs := &conntest.Observed{}
			c := &connectors.Caller{ConnectorID: "p1", Observe: obs.Observe}
			build := func() (*http.Request, error) {
				return http.NewRequest(http.MethodGet, srv.URL+"/token?secret="+secret+"&code="+code, nil)
			}
			err := c.Call(context.Background(), "p", "token", build, []string{secret, code}, tt.parse)
			if tt.kind == nil {
				if err != nil {
					t.Fatalf("Call: %v", err)
				}
			} else if !errors.Is(err, tt.kind) || err.Error() != tt.want {
				t.Fatalf("Call: %v, want %q wrapping %v", err, tt.want, tt.kind)
			}
			if got := strings.Join(obs.ListWithConnector(), ","); got != "p1 token="+tt.result {
				t.Errorf("observer told %q, want once %q", got, "p1 token="+tt.result)
			}
		})
	}
}

func TestCallFailuresBeforeAReplyNeverShowTheURL(t *testing.T) {
	const secret = "app-secret-0123456789"
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there any more
	obs := &conntest.Observed{}
	c := &connectors.Caller{ConnectorID: "p1", Observe: obs.Observe}
	parse := func(connectors.Reply) error { t.Error("parse called without a reply"); return nil }

	err := c.Call(context.Background(), "p", "token", func() (*http.Request, error) {
		return http.NewRequest(http.MethodGet, srv.URL+"/token?secret="+secret, nil)
	}, []string{secret}, parse)
	if !errors.Is(err, connectors.ErrUnavailable) || !strings.HasPrefix(err.Error(), "p token: ") || strings.Contains(err.Error(), secret) {
		t.Errorf("unreachable provider: %v, want ErrUnavailable without the URL", err)
	}
	if got := strings.Join(obs.ListWithConnector(), ","); got != "p1 token=unavailable" {
		t.Errorf("observer told %q for an unreachable provider", got)
	}

	obs.Reset()
	err = c.Call(context.Background(), "p", "token", func() (*http.Request, error) {
		return http.NewRequest("bad method", "http://x/?secret="+secret, nil)
	}, []string{secret}, parse)
	if !errors.Is(err, connectors.ErrConfig) || err.Error() != "p token: building request: "+connectors.ErrConfig.Error() {
		t.Errorf("unbuildable request: %v, want ErrConfig", err)
	}
	if seen := obs.List(); len(seen) != 0 {
		t.Errorf("observer told %q of a call that was never sent", seen)
	}
}

func TestRedactRemovesEverySecretGiven(t *testing.T) {
	tests := []struct {
		name, in string
		secrets  []string
		want     string
	}{
		{"none", "invalid code abc", nil, "invalid code abc"},
		{"each occurrence", "abc and abc", []string{"abc"}, "[redacted] and [redacted]"},
		{"several", "code abc secret xyz", []string{"xyz", "abc"}, "code [redacted] secret [redacted]"},
		{"empty secret ignored", "abc", []string{"", "abc"}, "[redacted]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := connectors.Redact(tt.in, tt.secrets...); got != tt.want {
				t.Errorf("Redact(%q, %q) = %q, want %q", tt.in, tt.secrets, got, tt.want)
			}
		})
	}
}

func TestTruncateKeepsOneShortPrintableLine(t *testing.T) {
	if got := connectors.Truncate("line one\nline\ttwo\x7f"); got != "line one line two " {
		t.Errorf("control characters: %q", got)
	}
	long := strings.Repeat("微", 301)
	if got := connectors.Truncate(long); got != strings.Repeat("微", 300)+"…" {
		t.Errorf("301 characters cut to %d runes", len([]rune(got)))
	}
	if got := connectors.Truncate(strings.Repeat("a", 300)); got != strings.Repeat("a", 300) {
		t.Errorf("300 characters were cut")
	}
}

func TestBaseURLAcceptsOnlyAbsoluteHTTPURLsWithoutQuery(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"", "https://default.example", true},
		{"https://proxy.example/qq/", "https://proxy.example/qq", true},
		{"http://127.0.0.1:9000", "http://127.0.0.1:9000", true},
		{"graph.qq.com", "", false},
		{"ftp://graph.qq.com", "", false},
		{"https://graph.qq.com/?x=1", "", false},
		{"https://graph.qq.com/#f", "", false},
		{"https://", "", false},
	}
	for _, tt := range tests {
		got, err := connectors.BaseURL("api_base_url", tt.in, "https://default.example")
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("BaseURL(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
		if !tt.ok && (!errors.Is(err, connectors.ErrConfig) || !strings.HasPrefix(err.Error(), "api_base_url ")) {
			t.Errorf("BaseURL(%q) = %q, %v; want an ErrConfig naming api_base_url", tt.in, got, err)
		}
	}
}

func TestProviderCallsNeverFollowRedirects(t *testing.T) {
	var followed atomic.Bool
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		followed.Store(true)
		_, _ = w.Write([]byte("{}"))
	}))
	defer elsewhere.Close()
	for _, status := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, elsewhere.URL+"/steal", status)
			}))
			defer srv.Close()
			obs := &conntest.Observed{}
			// Even a client that would follow redirects does not.
			c := &connectors.Caller{ConnectorID: "p1", Observe: obs.Observe, HTTP: &http.Client{}}
			_, err := c.Get(context.Background(), "token", srv.URL, "/token", url.Values{"secret": {"s3cret"}})
			if !errors.Is(err, connectors.ErrUnavailable) || !strings.Contains(err.Error(), "redirect") || strings.Contains(err.Error(), "s3cret") {
				t.Fatalf("err = %v, want ErrUnavailable naming the refused redirect", err)
			}
			if followed.Load() {
				t.Fatal("the redirect was followed")
			}
			if seen := obs.ListWithConnector(); len(seen) != 1 || seen[0] != "p1 token=unavailable" {
				t.Errorf("observer saw %v", seen)
			}
		})
	}
}

func TestProviderRepliesAreSizeCapped(t *testing.T) {
	for _, tc := range []struct {
		size int
		ok   bool
	}{{connectors.MaxReply, true}, {connectors.MaxReply + 1, false}, {8 * connectors.MaxReply, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = w.Write([]byte(strings.Repeat("x", tc.size)))
		}))
		c := &connectors.Caller{ConnectorID: "p1"}
		reply, err := c.Get(context.Background(), "userinfo", srv.URL, "/", nil)
		srv.Close()
		if tc.ok && (err != nil || len(reply.Body) != tc.size) {
			t.Errorf("%d bytes: %v, %d bytes read", tc.size, err, len(reply.Body))
		}
		if !tc.ok && !errors.Is(err, connectors.ErrUnavailable) {
			t.Errorf("%d bytes: err = %v, want ErrUnavailable (never a truncated body)", tc.size, err)
		}
	}
}
