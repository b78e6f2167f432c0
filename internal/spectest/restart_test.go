package spectest

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

func jwksKids(t *testing.T, s *stack) map[string]bool {
	t.Helper()
	res := s.Bearer(t, http.MethodGet, "/keys", "", nil)
	if res.Status != 200 {
		t.Fatalf("jwks: %d", res.Status)
	}
	kids := map[string]bool{}
	keys, _ := res.MustJSON(t)["keys"].([]any)
	for _, k := range keys {
		kid, _ := k.(map[string]any)["kid"].(string)
		kids[kid] = true
	}
	return kids
}

// SPEC: "SIGTERM/SIGINT drain in-flight requests and exit 0." and "Across a
// restart: users, identities, signing keys (still in the JWKS), unexpired
// access tokens and refresh tokens all survive."
func TestSIGTERMDrainsAndExitsZeroAndEverythingSurvivesARestart(t *testing.T) {
	s := newStack(t, "") // an issuer without a path prefix
	web := s.accountLogin(t, "weibo", "p01")
	mini := s.miniLogin(t, "p02", "openid offline_access")
	h, _ := qiaotest.JWT(t, web.IDToken)
	kid, _ := h["kid"].(string)
	if !jwksKids(t, s)[kid] {
		t.Fatalf("kid %q not in the JWKS", kid)
	}

	// An in-flight login: the broker is waiting for Weibo's token endpoint
	// (which never answers) when SIGTERM arrives.
	s.Weibo.InjectFault(sandbox.Fault{Path: sandbox.WeiboPathToken, Kind: sandbox.FaultTimeout, Times: 1})
	b := s.Browser(desktopUA)
	a := qiaotest.NewRawAuth(webClient, rpRedirect, "weibo")
	callback := b.CallbackOf(t, a.URL(s.Issuer), "p03")
	if !strings.HasPrefix(callback, s.Issuer+"/callback/weibo") {
		t.Fatalf("Weibo sent the browser to %q", callback)
	}
	before := s.SimulatorCalls("weibo")
	inflight := make(chan *qiaotest.Page, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, callback, nil)
		p, err := b.Step(req)
		if err != nil {
			inflight <- &qiaotest.Page{Status: -1, Body: err.Error()}
			return
		}
		inflight <- p
	}()
	waitFor(t, func() bool { return s.SimulatorCalls("weibo") > before }, "the broker to call Weibo")

	if err := s.Process.Cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Process.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("no exit 30 s after SIGTERM")
	}
	if code := s.Process.Cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0\n%s", code, s.Process.Out.String())
	}
	got := <-inflight
	if got.Status == -1 {
		t.Errorf("the in-flight request was cut off by SIGTERM: %s", got.Body)
	} else if u, _ := url.Parse(got.Location); !isRedirect(got.Status) || u.Query().Get("error") != "temporarily_unavailable" {
		t.Errorf("the in-flight request got %d %q, want its temporarily_unavailable redirect", got.Status, got.Location)
	}

	s.StartServe()
	t.Run("signing keys are still in the JWKS and verify old ID tokens", func(t *testing.T) {
		if !jwksKids(t, s)[kid] {
			t.Fatalf("kid %q gone from the JWKS after a restart", kid)
		}
		ctx := context.Background()
		provider, err := oidc.NewProvider(ctx, s.Issuer)
		if err != nil {
			t.Fatal(err)
		}
		v := provider.Verifier(&oidc.Config{ClientID: webClient})
		if _, err := v.Verify(ctx, web.IDToken); err != nil {
			t.Errorf("an ID token from before the restart: %v", err)
		}
	})
	t.Run("access tokens survive", func(t *testing.T) {
		for name, tk := range map[string]string{"web": web.AccessToken, "mini-program": mini.AccessToken} {
			if res := s.Bearer(t, http.MethodGet, "/userinfo", tk, nil); res.Status != 200 {
				t.Errorf("%s access token after a restart: %d %s", name, res.Status, res.Body)
			}
		}
	})
	t.Run("users and identities survive", func(t *testing.T) {
		me := s.api(t, http.MethodGet, "/api/v1/me", web.AccessToken, nil)
		if me.status != 200 || me.body["sub"] != claims(t, web.IDToken)["sub"] {
			t.Fatalf("me after a restart: %d %v", me.status, me.body)
		}
		again, _ := s.webLogin(t, "weibo", "p01")
		if claims(t, again.IDToken)["sub"] != claims(t, web.IDToken)["sub"] {
			t.Errorf("a new login after a restart got another sub")
		}
	})
	t.Run("refresh tokens survive", func(t *testing.T) {
		if st, r := refresh(t, s, web.RefreshToken, webClient, webSecret); st != 200 || r.IDToken == "" {
			t.Errorf("web refresh after a restart: %d %+v", st, r)
		} else if claims(t, r.IDToken)["sub"] != claims(t, web.IDToken)["sub"] {
			t.Errorf("the refreshed ID token after a restart has another sub")
		}
		if st, r := refresh(t, s, mini.RefreshToken, miniClient, ""); st != 200 {
			t.Errorf("mini-program refresh after a restart: %d %+v", st, r)
		}
	})
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	if !qiaotest.Eventually(10*time.Second, cond) {
		t.Fatalf("timed out waiting for %s", what)
	}
}
