package broker

import (
	"crypto/hmac"
	"errors"
	"net/http"
	"net/url"

	"github.com/ory/fosite"

	"github.com/qiaoidp/qiao/storage"
)

// handleLogout is RP-initiated logout (OpenID Connect RP-Initiated
// Logout 1.0). It ends the browser session at once only when the request
// proves who is asking: an id_token_hint that this broker signed (an
// expired one is fine) for the user of this browser's session. Anything
// else (client_id alone, another user's hint, no session) shows a
// confirmation page whose form, posted with its CSRF token, signs out and
// still returns to the client's registered post_logout_redirect_uri with
// state. So no page can sign people out with an <img>.
func (h *oauthHandler) handleLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		h.errorPage(w, r, http.StatusBadRequest, msgBadRequest)
		return
	}
	hint := r.Form.Get("id_token_hint")
	clientID := r.Form.Get("client_id")
	redirect := r.Form.Get("post_logout_redirect_uri")
	state := r.Form.Get("state")

	var c *client
	hintSubject := ""
	if hint != "" {
		claims, err := h.keys.Verify(ctx, hint)
		if err != nil || claims["iss"] != h.issuer {
			h.errorPage(w, r, http.StatusBadRequest, msgBadIDTokenHint)
			return
		}
		auds := audiences(claims["aud"])
		if clientID != "" && !contains(auds, clientID) {
			h.errorPage(w, r, http.StatusBadRequest, msgBadIDTokenHint)
			return
		}
		if clientID == "" && len(auds) > 0 {
			clientID = auds[0]
		}
		hintSubject, _ = claims["sub"].(string)
	}
	if clientID != "" {
		var ok bool
		if c, ok = h.clients.get(clientID); !ok {
			h.errorPage(w, r, http.StatusBadRequest, msgUnknownClient)
			return
		}
	}
	var target *url.URL
	if redirect != "" {
		if c == nil {
			h.errorPage(w, r, http.StatusBadRequest, msgLogoutNeedsClient)
			return
		}
		u, err := fosite.MatchRedirectURIWithClientRedirectURIs(redirect, &fosite.DefaultClient{RedirectURIs: c.PostLogout})
		if err != nil {
			h.errorPage(w, r, http.StatusBadRequest, msgBadLogoutRedirect)
			return
		}
		target = u
	}

	sess, err := h.currentSession(r)
	if err != nil {
		h.log.Error("logout: loading session", "err", err)
		h.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	// Only a hint for this session's user is proof enough to sign out
	// without asking. With no session and nowhere to return to, there is
	// nothing to do or to ask.
	known := sess != nil && hintSubject != "" && hintSubject == sess.UserID
	if !known && (sess != nil || target != nil) {
		token := h.logoutToken(sess)
		if r.Method != http.MethodPost || !hmac.Equal([]byte(r.PostForm.Get("csrf")), []byte(token)) {
			hidden := map[string][]string{}
			if clientID != "" {
				hidden["client_id"] = []string{clientID}
			}
			if target != nil {
				hidden["post_logout_redirect_uri"] = []string{redirect}
				if state != "" {
					hidden["state"] = []string{state}
				}
			}
			h.render(w, r, http.StatusOK, "logout.html", pageData{Title: msgSignOut, Message: msgSignOutConfirm,
				Action: h.url("/logout"), CSRF: token, Hidden: hidden})
			return
		}
	}
	if sess != nil {
		if err := h.store.DeleteSession(ctx, sess.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			h.log.Error("logout: deleting session", "err", err)
			h.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
			return
		}
		h.audit(ctx, r, storage.AuditEvent{Action: string(actionLogout), UserID: sess.UserID, ConnectorID: sess.ConnectorID, ClientID: clientID, Result: string(outcomeSuccess)})
	}
	h.setCookie(w, sessionCookie, "", -1)

	if target != nil {
		q := target.Query()
		if state != "" {
			q.Set("state", state)
		}
		target.RawQuery = q.Encode()
		http.Redirect(w, r, target.String(), http.StatusFound)
		return
	}
	h.render(w, r, http.StatusOK, "message.html", pageData{Title: msgSignedOutTitle, Message: msgSignedOut, Notice: true})
}

// logoutToken is the CSRF token of the confirmation form: bound to the
// browser's session, or (with no session, when the form only returns to
// the client) to the broker.
func (s *site) logoutToken(sess *browserSession) string {
	if sess == nil {
		return s.mac("logout", "no session")
	}
	return s.mac("logout", sess.ID)
}

func audiences(v any) []string {
	switch a := v.(type) {
	case string:
		return []string{a}
	case []any:
		out := make([]string, 0, len(a))
		for _, x := range a {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
		return out
	case []string:
		return a
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
