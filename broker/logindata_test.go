package broker_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/connectors"
)

// dataFake keeps per-login data at the provider, as an OpenID Connect
// upstream keeps its nonce and PKCE verifier.
type dataFake struct {
	*fakeWeb
	size int // bytes of data per login
	seen chan []byte
}

func (d dataFake) LoginURL(ctx context.Context, req connectors.LoginRequest) (string, []byte, error) {
	if d.size < 0 {
		return "", nil, fmt.Errorf("discovery: %w", connectors.ErrUnavailable)
	}
	u, _, err := d.fakeWeb.LoginURL(ctx, req)
	data := []byte(strings.Repeat("n", d.size-len(req.State)) + req.State)
	return u, data, err
}

func (d dataFake) HandleCallback(ctx context.Context, req connectors.LoginRequest, q url.Values) (connectors.Identity, error) {
	d.seen <- req.Data
	if !strings.HasSuffix(string(req.Data), req.State) {
		return connectors.Identity{}, fmt.Errorf("per-login data %q is not this login's: %w", req.Data, connectors.ErrAccessDenied)
	}
	return d.fakeWeb.HandleCallback(ctx, req, q)
}

// TestWebLoginKeepsTheConnectorsPerLoginData: what LoginURL returns comes
// back to HandleCallback of the same login; more than MaxLoginData bytes
// is the connector's bug and ends at an error page, nothing stored.
func TestWebLoginKeepsTheConnectorsPerLoginData(t *testing.T) {
	seen := make(chan []byte, 4)
	size := 64
	e := newEnv(t, envOptions{wrap: func(id string, f *fakeWeb) any {
		if id == "beta" {
			return dataFake{fakeWeb: f, size: connectors.MaxLoginData + 1, seen: seen}
		}
		return dataFake{fakeWeb: f, size: size, seen: seen}
	}})
	r := e.webRP()
	tk := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "alpha"))
	if tk.idToken == nil {
		t.Fatal("no ID token")
	}
	if got := <-seen; len(got) != size {
		t.Fatalf("HandleCallback got %d bytes of data, want %d", len(got), size)
	}

	resp := e.newBrowser().get(r.authURL(oauth2.SetAuthURLParam("connector_id", "beta")).url)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("a connector with %d bytes of per-login data: status %d, want 502", connectors.MaxLoginData+1, resp.StatusCode)
	}
	select {
	case <-seen:
		t.Fatal("the oversized login reached the callback")
	default:
	}
}

// TestUnreachableProviderBeforeTheLoginIsUnavailable: a connector that
// must ask its provider before it can build the login URL (OpenID Connect
// discovery) and cannot reach it gives a 503 "try again" page, not the
// page for a misconfiguration.
func TestUnreachableProviderBeforeTheLoginIsUnavailable(t *testing.T) {
	e := newEnv(t, envOptions{wrap: func(id string, f *fakeWeb) any { return dataFake{fakeWeb: f, size: -1} }})
	r := e.webRP()
	resp := e.newBrowser().get(r.authURL(oauth2.SetAuthURLParam("connector_id", "alpha")).url)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
}
