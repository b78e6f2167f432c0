package broker

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

// A person who signed in with QQ first and with WeChat later has two
// users. Binding the WeChat identity to the QQ user finds it taken; when
// the user holding it has no other identity, the person may merge it in:
// they are signed in as the target user (the browser session) and have
// just signed in at the provider with the identity (the bind flow), so
// they control both. The confirmation page carries a sealed offer bound
// to that session and that identity, valid for mergeOfferTTL; the merge
// itself deletes the absorbed user, so an offer can be spent once.

// mergeOfferTTL is how long a merge confirmation stays valid.
const mergeOfferTTL = 10 * time.Minute

// mergeOffer is what the confirmation page's sealed field proves: this
// browser session, signed in as Into, has just signed in with the
// identity (Connector, Subject) of user From.
type mergeOffer struct {
	Session   string    `json:"s"` // the session's stored id (a MAC, not the cookie)
	Into      string    `json:"i"`
	From      string    `json:"f"`
	Connector string    `json:"c"`
	Subject   string    `json:"u"`
	Expires   time.Time `json:"e"`
}

// mergeView is what the merge page shows.
type mergeView struct {
	Provider    string // the connector's display name
	DisplayName string // the identity's nickname
	Picture     string
	Type        string
	Icon        string
	IntoID      string
	FromID      string
	CanMerge    bool   // false: the other user has more identities (ask the admin)
	AdminHint   string // the admin's command, under technical details
	Offer       string
	CSRF        string
	Action      string
	CancelURL   string
}

// offerMerge answers a bind that found the identity taken by another
// user: the merge confirmation when that user has nothing else, an
// explanation (ask the admin) when it has more, the old refusal when the
// identity cannot move here at all.
func (h *accountHandler) offerMerge(w http.ResponseWriter, r *http.Request, sess *browserSession, conn *Connector, ident connectors.Identity) {
	ctx := r.Context()
	owner, err := h.store.GetIdentity(ctx, conn.ID, ident.Subject)
	if errors.Is(err, storage.ErrNotFound) {
		// Unbound meanwhile: the person may simply bind again.
		h.redirectAccount(w, r, "error", msgAlreadyBound)
		return
	} else if err != nil {
		h.log.Error("merge: loading the identity", "err", err)
		h.redirectAccount(w, r, "error", msgUnavailable)
		return
	}
	if owner.UserID == sess.UserID {
		h.redirectAccount(w, r, "status", msgBoundOK)
		return
	}
	mine, err := h.store.ListIdentities(ctx, sess.UserID)
	if err != nil {
		h.redirectAccount(w, r, "error", msgUnavailable)
		return
	}
	for _, id := range mine {
		if id.ConnectorID == conn.ID {
			// One identity per connector: the account already has one.
			h.redirectAccount(w, r, "error", msgAlreadyBound)
			return
		}
	}
	theirs, err := h.store.ListIdentities(ctx, owner.UserID)
	if err != nil {
		h.redirectAccount(w, r, "error", msgUnavailable)
		return
	}
	v := &mergeView{
		Provider: h.providerName(conn, r), DisplayName: owner.DisplayName, Type: conn.Type, Icon: h.iconURL(conn.ID),
		IntoID: sess.UserID, FromID: owner.UserID, CanMerge: len(theirs) == 1,
		CSRF: h.accountCSRF(sess), Action: h.url("/account/merge"), CancelURL: h.url("/account"),
	}
	if owner.RealProfile {
		v.Picture = owner.Picture
	}
	if !v.CanMerge {
		v.AdminHint = "qiao users merge " + owner.UserID + " " + sess.UserID
		h.render(w, r, http.StatusOK, "merge.html", pageData{Title: msgMergeTitle, Merge: v})
		return
	}
	raw, _ := json.Marshal(mergeOffer{
		Session: sess.ID, Into: sess.UserID, From: owner.UserID,
		Connector: conn.ID, Subject: ident.Subject, Expires: h.now().UTC().Add(mergeOfferTTL),
	})
	v.Offer = base64.RawURLEncoding.EncodeToString(h.merges.Seal(raw, []byte("merge-offer")))
	h.render(w, r, http.StatusOK, "merge.html", pageData{Title: msgMergeTitle, Merge: v})
}

// handleAccountMerge carries out a confirmed merge.
func (h *accountHandler) handleAccountMerge(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess := h.accountSession(w, r)
	if sess == nil {
		return
	}
	offer, ok := h.openMergeOffer(r.PostForm.Get("offer"))
	if !ok || offer.Session != sess.ID || offer.Into != sess.UserID || !h.now().Before(offer.Expires) {
		h.redirectAccount(w, r, "error", msgMergeExpired)
		return
	}
	if !h.recentSignIn(sess.AuthTime) {
		// After signing in again, the bind (and so this offer) starts over.
		h.askReauth(w, r, msgReauth, pendingAction{Action: pendingBind, Target: offer.Connector})
		return
	}
	result, err := h.identity.merge(ctx, offer.From, offer.Into, offer.Connector, offer.Subject)
	switch result {
	case outcomeSuccess:
		h.redirectAccount(w, r, "status", msgMergedOK)
	case outcomeNotFound:
		h.redirectAccount(w, r, "error", msgMergeExpired)
	case outcomeRefusedChanged:
		h.redirectAccount(w, r, "error", msgMergeChanged)
	default:
		h.log.Error("merge failed", "err", err)
		h.redirectAccount(w, r, "error", msgUnavailable)
	}
}

func (h *accountHandler) openMergeOffer(s string) (mergeOffer, bool) {
	var o mergeOffer
	if s == "" || len(s) > 2048 {
		return o, false
	}
	sealed, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return o, false
	}
	raw, err := h.merges.Open(sealed, []byte("merge-offer"))
	if err != nil || json.Unmarshal(raw, &o) != nil {
		return o, false
	}
	return o, true
}

// providerName is the connector's name for the reader of r.
func (s *site) providerName(conn *Connector, r *http.Request) string {
	return connectorName(conn, pickLang(r))
}
