package broker_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/internal/qiaotest"
	"github.com/qiaoidp/qiao/storage"
	"github.com/qiaoidp/qiao/storage/sqlite"
)

// getPage fetches a broker page in br and returns its status and body.
func (br *browser) getPage(u string) (int, string) {
	br.t.Helper()
	p, err := br.Get(u)
	if err != nil {
		br.t.Fatal(err)
	}
	return p.Status, p.Body
}

// postPage posts a form in br and returns the final status and body.
func (br *browser) postPage(u string, form url.Values) (int, string) {
	br.t.Helper()
	p, err := br.PostForm(u, form)
	if err != nil {
		br.t.Fatal(err)
	}
	return p.Status, p.Body
}

// TestMergeAccountsByBinding: a person with a beta user of its own signs
// in to their alpha account and binds beta; the page explains the merge,
// and after confirmation the beta identity is theirs, the beta user is
// gone with its tokens, the move is audited on both users, and the
// confirmation cannot be replayed or used by another browser.
func TestMergeAccountsByBinding(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.webRP()

	// The same person signed in with beta some time ago: a user of its own.
	e.fakes["beta"].setPerson("alice-on-beta")
	old := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "beta"))
	oldSub := old.idToken.Subject

	br := e.newBrowser()
	_, body := br.getPage(e.issuer + "/account/login?connector_id=alpha")
	mine := qiaotest.Between(body, "data-user-id>", "<")
	csrf := qiaotest.Between(body, `name="csrf" value="`, `"`)
	if mine == "" || mine == oldSub || csrf == "" {
		t.Fatalf("account page after sign-in: user %q, csrf %q", mine, csrf)
	}

	st, body := br.postPage(e.issuer+"/account/bind", url.Values{"connector_id": {"beta"}, "csrf": {csrf}})
	if st != 200 || !strings.Contains(body, "data-confirm-merge") || !strings.Contains(body, oldSub) {
		t.Fatalf("binding an identity of a one-identity user does not offer the merge: %d\n%s", st, body)
	}
	offer := qiaotest.Between(body, `name="offer" value="`, `"`)
	if offer == "" {
		t.Fatal("no merge offer in the page")
	}
	// Nothing has changed yet.
	if _, acct := br.getPage(e.issuer + "/account"); strings.Contains(acct, `data-identity="beta"`) {
		t.Fatal("the identity moved before confirmation")
	}

	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		want   string
	}{
		{"no CSRF token", url.Values{"offer": {offer}}, 403, "表单已过期"},
		{"tampered offer", url.Values{"offer": {offer[:len(offer)-2] + "AA"}, "csrf": {csrf}}, 200, `data-error="merge_expired"`},
		{"no offer", url.Values{"csrf": {csrf}}, 200, `data-error="merge_expired"`},
	} {
		st, b := br.postPage(e.issuer+"/account/merge", tc.form)
		if st != tc.status || !strings.Contains(b, tc.want) {
			t.Errorf("%s: %d, page lacks %s:\n%.600s", tc.name, st, tc.want, b)
		}
	}
	// Another browser (another session) cannot spend this browser's offer.
	other := e.newBrowser()
	_, ob := other.getPage(e.issuer + "/account/login?connector_id=alpha")
	_, b := other.postPage(e.issuer+"/account/merge", url.Values{"offer": {offer}, "csrf": {qiaotest.Between(ob, `name="csrf" value="`, `"`)}})
	if !strings.Contains(b, `data-error="merge_expired"`) {
		t.Fatalf("another session used the offer:\n%.600s", b)
	}

	st, body = br.postPage(e.issuer+"/account/merge", url.Values{"offer": {offer}, "csrf": {csrf}})
	if st != 200 || !strings.Contains(body, `data-status="merged_ok"`) || !strings.Contains(body, `data-identity="beta"`) || !strings.Contains(body, mine) {
		t.Fatalf("after confirming: %d\n%s", st, body)
	}
	// Spent: a replay finds nothing to merge.
	if _, b := br.postPage(e.issuer+"/account/merge", url.Values{"offer": {offer}, "csrf": {csrf}}); !strings.Contains(b, `data-error="merge_expired"`) {
		t.Fatalf("replayed offer:\n%.600s", b)
	}
	// The absorbed sub's tokens are revoked and it is never issued again.
	if _, err := r.refresh(old.token.RefreshToken); err == nil {
		t.Fatal("the absorbed user's refresh token still works")
	}
	if tk := r.login(e.newBrowser(), oauth2.SetAuthURLParam("connector_id", "beta")); tk.idToken.Subject != mine {
		t.Fatalf("beta now signs in as %s, want %s", tk.idToken.Subject, mine)
	}

	store, err := sqlite.Open(context.Background(), e.dbPath())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if _, err := store.GetUser(context.Background(), oldSub); err == nil {
		t.Fatal("the absorbed user still exists")
	}
	for _, user := range []string{mine, oldSub} {
		events, err := store.ListAudit(context.Background(), storage.AuditFilter{UserID: user})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, ev := range events {
			found = found || (ev.Action == "merge" && ev.Result == "success" && ev.ConnectorID == "beta")
		}
		if !found {
			t.Errorf("no successful merge in the audit log of %s: %+v", user, events)
		}
	}
}

// TestMergeOfUserWithMoreIdentitiesAsksTheAdmin: when the user holding
// the identity has others, the page says to ask the administrator, shows
// both ids and changes nothing.
func TestMergeOfUserWithMoreIdentitiesAsksTheAdmin(t *testing.T) {
	e := newEnv(t, envOptions{})
	// Carol has alpha and beta.
	e.fakes["alpha"].setPerson("carol")
	e.fakes["beta"].setPerson("carol")
	carol := e.newBrowser()
	_, body := carol.getPage(e.issuer + "/account/login?connector_id=alpha")
	carolID := qiaotest.Between(body, "data-user-id>", "<")
	if _, b := carol.postPage(e.issuer+"/account/bind", url.Values{"connector_id": {"beta"}, "csrf": {qiaotest.Between(body, `name="csrf" value="`, `"`)}}); !strings.Contains(b, `data-identity="beta"`) {
		t.Fatal("carol's bind failed")
	}
	// Dave (alpha) binds carol's beta.
	e.fakes["alpha"].setPerson("dave")
	dave := e.newBrowser()
	_, body = dave.getPage(e.issuer + "/account/login?connector_id=alpha")
	daveID := qiaotest.Between(body, "data-user-id>", "<")
	st, b := dave.postPage(e.issuer+"/account/bind", url.Values{"connector_id": {"beta"}, "csrf": {qiaotest.Between(body, `name="csrf" value="`, `"`)}})
	if st != 200 || !strings.Contains(b, "data-merge-admin") || strings.Contains(b, "data-confirm-merge") ||
		!strings.Contains(b, carolID) || !strings.Contains(b, daveID) || !strings.Contains(b, "qiao users merge "+carolID+" "+daveID) {
		t.Fatalf("ask-the-admin page is wrong: %d\n%s", st, b)
	}
	if _, acct := dave.getPage(e.issuer + "/account"); strings.Contains(acct, `data-identity="beta"`) {
		t.Fatal("the identity moved")
	}
}

// TestUnbindAsksForConfirmation: the unbind button leads to a
// confirmation page (a link and a form, no JavaScript); only its POST
// unbinds; the last identity says why it cannot be unbound.
func TestUnbindAsksForConfirmation(t *testing.T) {
	e := newEnv(t, envOptions{})
	br := e.newBrowser()
	_, body := br.getPage(e.issuer + "/account/login?connector_id=alpha")
	if !strings.Contains(body, "data-last-identity") || strings.Contains(body, "data-unbind=") {
		t.Fatalf("a single identity shows no reason, or an unbind button:\n%s", body)
	}
	if _, b := br.getPage(e.issuer + "/account/unbind/confirm?connector_id=alpha"); !strings.Contains(b, `data-error="last_identity"`) {
		t.Fatalf("confirming the unbind of the last identity:\n%s", b)
	}
	csrf := qiaotest.Between(body, `name="csrf" value="`, `"`)
	if _, b := br.postPage(e.issuer+"/account/bind", url.Values{"connector_id": {"beta"}, "csrf": {csrf}}); !strings.Contains(b, `data-identity="beta"`) || strings.Contains(b, "data-last-identity") {
		t.Fatalf("after binding a second identity:\n%s", b)
	}
	st, b := br.getPage(e.issuer + "/account/unbind/confirm?connector_id=beta")
	if st != 200 || !strings.Contains(b, `data-confirm-unbind="beta"`) || !strings.Contains(b, `data-cancel`) || !strings.Contains(b, `method="post"`) {
		t.Fatalf("confirmation page: %d\n%s", st, b)
	}
	if _, acct := br.getPage(e.issuer + "/account"); !strings.Contains(acct, `data-identity="beta"`) {
		t.Fatal("showing the confirmation unbound already")
	}
	if _, b := br.getPage(e.issuer + "/account/unbind/confirm?connector_id=nope"); !strings.Contains(b, `data-error="unknown_connector"`) {
		t.Fatalf("confirming an unknown connector:\n%s", b)
	}
	_, b = br.postPage(e.issuer+"/account/unbind", url.Values{"connector_id": {"beta"}, "csrf": {qiaotest.Between(b, `name="csrf" value="`, `"`)}})
	if !strings.Contains(b, `data-status="unbound_ok"`) || strings.Contains(b, `data-identity="beta"`) {
		t.Fatalf("after confirming:\n%s", b)
	}
	// Signed out, the confirmation sends the person to sign in.
	if _, b := e.newBrowser().getPage(e.issuer + "/account/unbind/confirm?connector_id=beta"); !strings.Contains(b, `data-error="sign_in_first"`) {
		t.Fatalf("signed out:\n%s", b)
	}
}
