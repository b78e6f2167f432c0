package broker

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/broker/seal"
)

// unsealedAtMost is how many login cookies of one request are unsealed
// at most: this broker's four and another broker's four on the same host
// name (docs/security.md).
const unsealedAtMost = 2 * maxLoginFlows

// TestManyLoginCookiesAreNotAllUnsealed: a request carrying a thousand
// login cookies, every one this broker's own, costs /auth and the
// callback no more unsealing than a browser's own cookies would
// (unsealedAtMost), and cookies that cannot be login cookies (another
// name shape, an oversized value) do not crowd out the real ones.
func TestManyLoginCookiesAreNotAllUnsealed(t *testing.T) {
	sealer, err := seal.New([]byte(strings.Repeat("s", 32)), "login-cookie")
	if err != nil {
		t.Fatal(err)
	}
	resumes, err := seal.New([]byte(strings.Repeat("s", 32)), "resume-cookie")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	h := &loginHandler{site: &site{now: func() time.Time { return now }}, loginSealer: sealer, resumes: resumes}
	login := func(i int) *http.Cookie {
		state := fmt.Sprintf("S%07dxxxxxxxxxxxxxxxx", i)
		v := h.sealLogin(pendingData{State: state, ConnectorID: "alpha", Purpose: purposeLogin, ExpiresAt: now.Add(time.Duration(i) * time.Second)})
		return &http.Cookie{Name: loginCookieName(state), Value: v}
	}

	many := httptest.NewRequest(http.MethodGet, "/auth", nil)
	for i := range 1000 {
		many.AddCookie(login(i))
	}
	if got := h.otherLogins(many, ""); len(got) > unsealedAtMost {
		t.Errorf("%d of 1000 login cookies were unsealed, want at most %d", len(got), unsealedAtMost)
	}
	w := httptest.NewRecorder()
	h.setLoginCookie(w, many, pendingData{State: "Newxxxxxxxxxxxxxxxxxxxxx", ConnectorID: "alpha", ExpiresAt: now.Add(time.Hour)})
	if n := len(w.Result().Cookies()); n > unsealedAtMost+2 { // and the new login's, and qiao_resume
		t.Errorf("starting a login answered %d Set-Cookie headers, want at most %d", n, unsealedAtMost+2)
	}

	junk := httptest.NewRequest(http.MethodGet, "/auth", nil)
	for i := range 100 {
		junk.AddCookie(&http.Cookie{Name: fmt.Sprintf("qiao_login_x%d", i), Value: login(i).Value}) // not a state's prefix
		junk.AddCookie(&http.Cookie{Name: login(i).Name, Value: strings.Repeat("A", loginCookieBudget+1)})
	}
	for i := range maxLoginFlows - 1 {
		junk.AddCookie(login(2000 + i))
	}
	if got := h.otherLogins(junk, ""); len(got) != maxLoginFlows-1 {
		t.Errorf("behind 200 cookies that cannot be login cookies, %d of the browser's %d logins were found", len(got), maxLoginFlows-1)
	}
}
