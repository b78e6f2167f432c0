package broker

import (
	"net/http"
)

// unbindView is what the unbind confirmation shows.
type unbindView struct {
	ConnectorID, Type, Provider, DisplayName, Picture, Icon string
	CSRF, Action, CancelURL                                 string
}

// handleAccountUnbindConfirm asks before unbinding: the account page's
// unbind button leads here (a plain link, no JavaScript needed), and the
// form here posts the unbind. An identity that cannot be unbound sends
// the person back to the account page with the reason.
func (h *accountHandler) handleAccountUnbindConfirm(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess := h.signedIn(w, r)
	if sess == nil {
		return
	}
	connectorID := r.URL.Query().Get("connector_id")
	ids, err := h.store.ListIdentities(ctx, sess.UserID)
	if err != nil {
		h.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	var v *unbindView
	for _, id := range ids {
		if id.ConnectorID != connectorID {
			continue
		}
		v = &unbindView{ConnectorID: id.ConnectorID, Type: id.ConnectorType, Provider: id.ConnectorID, DisplayName: id.DisplayName, Icon: h.iconURL(id.ConnectorID)}
		if k, ok := h.connectors[id.ConnectorID]; ok {
			v.Provider = h.providerName(k, r)
		}
		if id.RealProfile {
			v.Picture = id.Picture
		}
	}
	switch {
	case v == nil:
		h.redirectAccount(w, r, "error", msgUnknownConnector)
		return
	case len(ids) == 1:
		h.redirectAccount(w, r, "error", msgLastIdentity)
		return
	case !h.recentSignIn(sess.AuthTime):
		h.askReauth(w, r, msgReauth, pendingAction{Action: pendingUnbind, Target: connectorID})
		return
	}
	v.CSRF, v.Action, v.CancelURL = h.accountCSRF(sess), h.url("/account/unbind"), h.url("/account")
	h.render(w, r, http.StatusOK, "unbind.html", pageData{Title: msgUnbindTitle, Unbind: v})
}
