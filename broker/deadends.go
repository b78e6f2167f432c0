package broker

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/qiaoidp/qiao/connectors"
)

// A callback whose pending login is gone (the callback reloaded, Back
// after signing in, a provider page left open past loginTTL, a sign-in
// evicted by newer ones) used to end on "This sign-in has expired or was
// already completed". The browser remembers those requests in a sealed
// cookie, so the broker can finish them with the SSO session, or offer to
// start them again.

const (
	resumeCookie = "qiao_resume"
	// resumeTTL is how long the browser remembers its last request.
	resumeTTL = time.Hour
	// maxResumeCookie keeps the cookie within what every browser stores.
	maxResumeCookie = 3500
)

// resumeRecord is one request the resume cookie holds: of a sign-in
// completed in this browser, or of one newer sign-ins evicted
// (setLoginCookie) before it came back.
type resumeRecord struct {
	State     string      `json:"s"`
	Connector string      `json:"c"`
	Data      pendingData `json:"d"`
	Expires   time.Time   `json:"e"`
	Evicted   bool        `json:"x,omitempty"`
}

// resumeRecordOf is the record of the request of data.
func (h *loginHandler) resumeRecordOf(data pendingData, evicted bool) resumeRecord {
	data.ConnData = nil // the connector's nonce or verifier stays with the login alone
	return resumeRecord{State: data.State, Connector: data.ConnectorID, Data: data, Expires: h.now().UTC().Add(resumeTTL), Evicted: evicted}
}

// resumeRecords returns the requests r's resume cookie holds that have
// not expired, newest first.
func (h *loginHandler) resumeRecords(r *http.Request) []resumeRecord {
	if r == nil {
		return nil
	}
	c, err := h.cookie(r, resumeCookie)
	if err != nil || c.Value == "" || len(c.Value) > maxResumeCookie {
		return nil
	}
	sealed, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return nil
	}
	raw, err := h.resumes.Open(sealed, []byte(resumeCookie))
	var recs []resumeRecord
	if err != nil || json.Unmarshal(raw, &recs) != nil {
		return nil
	}
	now := h.now()
	return slices.DeleteFunc(recs, func(rec resumeRecord) bool { return !now.Before(rec.Expires) })
}

// writeResume sets the resume cookie to recs, newest first, leaving out
// the oldest until its value fits in room bytes (and maxResumeCookie). It
// reports whether it set the cookie: an enormous request, or no room, is
// simply not remembered.
func (h *loginHandler) writeResume(w http.ResponseWriter, recs []resumeRecord, room int) bool {
	for n := len(recs); n > 0; n-- {
		raw, _ := json.Marshal(recs[:n])
		v := base64.RawURLEncoding.EncodeToString(h.resumes.Seal(raw, []byte(resumeCookie)))
		if len(v) <= maxResumeCookie && len(v) <= room {
			h.setCookie(w, resumeCookie, v, int(resumeTTL/time.Second))
			return true
		}
	}
	return false
}

// originalRequest returns the request of the login whose upstream state
// is state, when this browser still knows it: from its login cookie
// (expired or not) while the login is not spent, from the resume cookie
// after it was spent or evicted. It is the one place that knows where
// that is kept.
func (h *loginHandler) originalRequest(r *http.Request, connectorID, state string) (pendingData, bool) {
	if data, err := h.readLogin(r, state); err == nil {
		if data.ConnectorID == connectorID && sameState(data.State, state) {
			data.ConnData = nil
			return data, true
		}
	}
	for _, rec := range h.resumeRecords(r) {
		if rec.State == state && rec.Connector == connectorID {
			return rec.Data, true
		}
	}
	return pendingData{}, false
}

// loginDeadEnd answers a callback whose pending login is gone: it
// finishes the original request with the browser's session when it can,
// and otherwise says what happened with a way forward.
func (h *loginHandler) loginDeadEnd(w http.ResponseWriter, r *http.Request, conn *Connector, state string, msg msgID) {
	data, known := h.originalRequest(r, conn.ID, state)
	sess, err := h.currentSession(r)
	if err != nil {
		sess = nil
	}
	if !known {
		h.errorPageText(w, r, http.StatusBadRequest, msg, "")
		return
	}
	switch data.Purpose {
	case purposeAccount, purposeBind, purposeReauth:
		if sess != nil {
			h.redirectAccount(w, r, "", "")
			return
		}
		h.render(w, r, http.StatusBadRequest, "message.html", pageData{Title: msgErrorTitle, Message: msg, Links: []link{
			{Msg: msgTryAgain, URL: h.url("/account/login") + "?connector_id=" + url.QueryEscape(conn.ID), Kind: "retry", Primary: true},
			{Msg: msgAccountTitle, URL: h.url("/account"), Kind: "account"},
		}})
		return
	}
	ar, err := h.resumeAuthorize(r, data.AuthQuery)
	if err != nil {
		h.errorPageText(w, r, http.StatusBadRequest, msg, "")
		return
	}
	c, _ := ar.GetClient().(*client)
	if c == nil {
		h.errorPageText(w, r, http.StatusBadRequest, msg, "")
		return
	}
	retry := h.url("/auth") + "?" + data.AuthQuery
	if sess != nil && h.sessionUsable(sess, ar, c, ar.GetRequestForm().Get("connector_id"), h.now().UTC()) {
		// Signed in already: the authorization endpoint answers the
		// original request from the session (consent included).
		http.Redirect(w, r, retry, http.StatusSeeOther)
		return
	}
	links := []link{{Msg: msgTryAgain, URL: retry, Kind: "retry", Primary: true}}
	if back, ok := h.backLink(c.ID); ok {
		links = append(links, back)
	}
	h.render(w, r, http.StatusBadRequest, "message.html", pageData{Title: msgErrorTitle, Message: msg, Links: links})
}

// ------------------------------------------------- provider refusals

// providerTypeNames are the English names of the provider types, for
// texts that must be ASCII (an OAuth error_description).
var providerTypeNames = map[string]string{
	"wechat": "WeChat", "wechat_mp": "WeChat Official Account",
	"wechat_miniprogram": "WeChat Mini Program", "qq": "QQ", "weibo": "Weibo",
}

// englishName is the connector's name in English when that is plain
// ASCII, else the name of its type.
func englishName(conn *Connector) string {
	name := connectorName(conn, "en")
	ascii := name != ""
	for i := 0; i < len(name); i++ {
		if name[i] < 0x20 || name[i] > 0x7e {
			ascii = false
			break
		}
	}
	if ascii {
		return name
	}
	if n, ok := providerTypeNames[conn.Type]; ok {
		return n
	}
	return conn.ID
}

// technicalDetail is what a person may pass on to the administrator
// about a provider failure: the provider, its endpoint and its own
// error code, never its message (which may echo request details).
func technicalDetail(conn *Connector, err error) string {
	var pe *connectors.ProviderError
	if errors.As(err, &pe) {
		s := pe.Provider
		if s == "" {
			s = conn.Type
		}
		if pe.Endpoint != "" {
			s += " " + pe.Endpoint
		}
		if pe.Code != 0 {
			s += fmt.Sprintf(": error code %d", pe.Code)
		}
		return s + " (" + classify(err).Kind + ")"
	}
	return conn.Type + " (" + classify(err).Kind + ")"
}

// cancelledHint is the error_description a relying party gets when the
// person cancelled at the provider: the same sentence for every provider
// (in English, as error_description must be ASCII), with the provider's
// own code when it sent one.
func cancelledHint(conn *Connector, err error) string {
	s := "The sign-in was cancelled at " + englishName(conn) + "."
	var pe *connectors.ProviderError
	if errors.As(err, &pe) && pe.Code != 0 {
		s += fmt.Sprintf(" Provider error code: %d.", pe.Code)
	}
	return s
}

// providerFailedPage tells the person, on the broker's own page, that the
// sign-in at the provider did not work, with the provider's code under
// "Technical details" and a way forward.
func (h *loginHandler) providerFailedPage(w http.ResponseWriter, r *http.Request, conn *Connector, data pendingData, err error) {
	d := pageData{Title: msgErrorTitle, Message: classify(err).Msg, Detail: technicalDetail(conn, err)}
	if d.Message == msgCancelledAt {
		d.MessageArg = h.providerName(conn, r)
	}
	if data.Purpose == purposeAccount {
		d.Links = append(d.Links, link{Msg: msgTryAgain, URL: h.url("/account/login") + "?connector_id=" + url.QueryEscape(conn.ID), Kind: "retry", Primary: true})
	}
	if back, ok := h.backLink(clientOf(data.AuthQuery)); ok {
		d.Links = append(d.Links, back)
	}
	d.Links = append(d.Links, link{Msg: msgAccountTitle, URL: h.url("/account"), Kind: "account"})
	h.render(w, r, http.StatusBadGateway, "message.html", d)
}

// redirectAccountCancelled sends a bind the person cancelled at the
// provider back to the account page, which says so.
func (s *site) redirectAccountCancelled(w http.ResponseWriter, r *http.Request, conn *Connector, err error) {
	q := url.Values{"error": {msgCancelledAt}, "connector": {conn.ID}}
	var pe *connectors.ProviderError
	if errors.As(err, &pe) && pe.Code != 0 {
		q.Set("code", fmt.Sprint(pe.Code))
	}
	http.Redirect(w, r, s.url("/account")+"?"+q.Encode(), http.StatusSeeOther)
}

// accountErrorContext completes an account page error that names a
// provider: its name for the message and its code for the details.
// Both come from the query, so they are checked: a connector that is not
// configured, or a code that is not a number, is not shown.
func (h *accountHandler) accountErrorContext(r *http.Request, v *accountView) {
	if v.Error != msgCancelledAt {
		return
	}
	q := r.URL.Query()
	conn, ok := h.connectors[q.Get("connector")]
	if !ok {
		v.Error = msgProviderFailed
		return
	}
	v.ErrorArg = h.providerName(conn, r)
	v.ErrorDetail = conn.Type + " (access_denied)"
	if code := q.Get("code"); code != "" && len(code) <= 12 && strings.Trim(code, "-0123456789") == "" {
		v.ErrorDetail = conn.Type + ": error code " + code + " (access_denied)"
	}
}

// fromCookie remembers, for the browser session, which application opened
// the account page, so the way back survives the page's own round trips
// (sign-in, bind, unbind).
const fromCookie = "qiao_from"

// accountBack is the account page's "Back to <app>": the application in
// ?client_id=, else the one that opened the page earlier in this browser
// session. Only a configured client with a home URL gives a link.
func (h *accountHandler) accountBack(w http.ResponseWriter, r *http.Request) *link {
	if id := r.URL.Query().Get("client_id"); id != "" {
		back, ok := h.backLink(id)
		if !ok {
			return nil
		}
		h.setCookie(w, fromCookie, id, 0)
		return &back
	}
	if c, err := h.cookie(r, fromCookie); err == nil {
		if back, ok := h.backLink(c.Value); ok {
			return &back
		}
	}
	return nil
}
