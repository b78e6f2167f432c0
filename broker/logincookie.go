package broker

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// An upstream login in flight lives in the browser, not in the store: the
// authorization request (only the parameters the flow needs), the purpose
// and the upstream state are sealed (AES-256-GCM, broker/seal) into the
// login cookie, which gets a fresh value for every flow. An
// unauthenticated request therefore writes nothing. At the callback the
// state the provider returns must equal the sealed one (the cookie binds
// the state to this browser), and the state is spent by a row written in
// the same transaction as the new session (storage.LoginCompletion), so a
// replayed callback fails.

// maxAuthQuery caps the authorization request kept in the login cookie
// (its parameters after dropping those the flow does not use, URL-encoded),
// so that the cookie, with a connector's per-login data
// (connectors.MaxLoginData), stays under the 4 KB browsers keep.
const maxAuthQuery = 1800

// authParams are the authorization request parameters a login keeps for
// the callback; fosite re-validates them there.
var authParams = []string{
	"response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
	"code_challenge", "code_challenge_method", "prompt", "max_age", "response_mode",
	"connector_id", "ui_locales", "claims_locales", "login_hint", "id_token_hint",
	"acr_values", "display", "audience",
}

// errAuthTooLarge: the kept parameters exceed maxAuthQuery.
var errAuthTooLarge = errors.New("the authorization request is too large")

// keptAuthQuery returns the parameters of form the callback needs,
// URL-encoded, or errAuthTooLarge.
func keptAuthQuery(form url.Values) (string, error) {
	kept := url.Values{}
	for _, k := range authParams {
		if v, ok := form[k]; ok {
			kept[k] = v
		}
	}
	q := kept.Encode()
	if len(q) > maxAuthQuery {
		return "", errAuthTooLarge
	}
	return q, nil
}

// loginPurpose is why the person signs in at the provider.
type loginPurpose string

const (
	purposeLogin   loginPurpose = "login"   // for a relying party's authorization request
	purposeAccount loginPurpose = "account" // to the account page
	purposeBind    loginPurpose = "bind"    // to bind another identity from the account page
	purposeReauth  loginPurpose = "reauth"  // to confirm a bind or unbind by signing in again
)

// pendingData is what an upstream login carries to its callback, sealed
// in the login cookie.
type pendingData struct {
	State       string       `json:"s"`
	ConnectorID string       `json:"c"`
	Purpose     loginPurpose `json:"p"`
	AuthQuery   string       `json:"q,omitempty"` // the authorization request, for login
	UserID      string       `json:"u,omitempty"` // the user to bind to (bind), or who must sign in again (reauth)
	RequestedAt time.Time    `json:"t"`           // when the request arrived
	ExpiresAt   time.Time    `json:"e"`           // when the login expires
	// Action ("bind" or "unbind") of the connector Target waits for a
	// re-authentication (reauth).
	Action string `json:"a,omitempty"`
	Target string `json:"g,omitempty"`
	// ConnData is the connector's per-login data (a nonce, a PKCE
	// verifier) from its LoginURL, handed back to its HandleCallback (at
	// most connectors.MaxLoginData bytes).
	ConnData []byte `json:"d,omitempty"`
}

// loginAAD binds a sealed login to its use.
var loginAAD = []byte("qiao login cookie v1")

// sealLogin returns the login cookie's value for data.
func (h *loginHandler) sealLogin(data pendingData) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the query's '&' stays one byte
	_ = enc.Encode(data)     // plain strings and times: cannot fail
	return base64.RawURLEncoding.EncodeToString(h.loginSealer.Seal(buf.Bytes(), loginAAD))
}

// A browser may sign in in several tabs (or to several applications) at
// once: every login has a cookie of its own, named after the start of its
// upstream state (loginCookieName), which the callback finds from the
// state parameter. A browser keeps at most maxLoginFlows of them, and at
// most loginCookieBudget bytes of them: starting a login deletes the
// oldest ones beyond that, so the Cookie header stays bounded. A login
// cookie outlives its login (resumeTTL), so that a callback that arrives
// too late still knows the original request (originalRequest); once spent
// it is deleted.
const (
	maxLoginFlows = 4
	// loginCookieBudget caps the names and values of a browser's login
	// cookies and resume cookie together (the newest login is always
	// kept; it is under 4 KB by itself).
	loginCookieBudget = 4096
	// loginStatePrefix is how much of the state names the cookie.
	loginStatePrefix = 8
	// maxLoginCandidates caps the login cookies of a request that are
	// unsealed, so that a request carrying many costs no more than a
	// browser's own: this broker's maxLoginFlows and as many of another
	// broker's on the same host name (under http, cookies ignore the
	// port). Further ones are ignored unopened.
	maxLoginCandidates = 2 * maxLoginFlows
)

// loginCookieName is the (unprefixed) name of the login cookie of the
// login whose upstream state is state.
func loginCookieName(state string) string {
	if len(state) > loginStatePrefix {
		state = state[:loginStatePrefix]
	}
	return loginCookie + "_" + state
}

// openLogin returns the pending login of upstream state the request's
// login cookies hold, or an error if there is none, it does not open, or
// it has expired.
func (h *loginHandler) openLogin(r *http.Request, state string) (pendingData, error) {
	data, err := h.readLogin(r, state)
	if err != nil {
		return pendingData{}, err
	}
	if !h.now().Before(data.ExpiresAt) {
		return pendingData{}, errLoginExpired
	}
	return data, nil
}

// readLogin opens the login cookie of state, expired or not.
func (h *loginHandler) readLogin(r *http.Request, state string) (pendingData, error) {
	c, err := h.cookie(r, loginCookieName(state))
	if err != nil || c.Value == "" {
		return pendingData{}, http.ErrNoCookie
	}
	return h.openLoginValue(c.Value)
}

// openLoginValue opens a login cookie's value.
func (h *loginHandler) openLoginValue(v string) (pendingData, error) {
	raw, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil {
		return pendingData{}, err
	}
	plain, err := h.loginSealer.Open(raw, loginAAD)
	if err != nil {
		return pendingData{}, err
	}
	var data pendingData
	if err := json.Unmarshal(plain, &data); err != nil {
		return pendingData{}, err
	}
	return data, nil
}

var errLoginExpired = errors.New("the login has expired")

// sameState compares states in constant time.
func sameState(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// browserLogin is one of the browser's login cookies.
type browserLogin struct {
	name string // unprefixed
	size int    // name and value
	data pendingData
}

// otherLogins returns the login cookies of r (those this broker sealed)
// but the one of state, newest first. Only cookies that could be a login
// cookie (a state's prefix for a name, a value under loginCookieBudget)
// are unsealed, the first maxLoginCandidates of them.
func (h *loginHandler) otherLogins(r *http.Request, state string) []browserLogin {
	var out []browserLogin
	if r == nil {
		return nil
	}
	prefix, own := h.cookieName(loginCookie+"_"), h.cookieName(loginCookieName(state))
	tried := 0
	for _, c := range r.Cookies() {
		suffix, ok := strings.CutPrefix(c.Name, prefix)
		if !ok || c.Name == own || len(suffix) != loginStatePrefix || !validStateChars(suffix) || len(c.Value) > loginCookieBudget {
			continue
		}
		if tried++; tried > maxLoginCandidates {
			break
		}
		data, err := h.openLoginValue(c.Value)
		if err != nil {
			continue // not this broker's (another one on the same host name)
		}
		out = append(out, browserLogin{
			name: strings.TrimPrefix(c.Name, h.cookieName("")),
			size: len(c.Name) + len(c.Value),
			data: data,
		})
	}
	slices.SortFunc(out, func(x, y browserLogin) int { return y.data.ExpiresAt.Compare(x.data.ExpiresAt) })
	return out
}

// setLoginCookie sets the login cookie of data, keeps the browser's
// newest other logins within maxLoginFlows and loginCookieBudget and
// deletes the rest, whose requests the resume cookie remembers instead
// (so that their callbacks still offer a way forward), as far as they fit
// the same budget. The completed requests it held are forgotten: the new
// login is now the browser's last request.
//
// Its Path is the broker's, as for its other cookies (under https the
// __Host- prefix requires Path=/): the login starts read the other
// logins' cookies. Two brokers on one host name (cookies ignore the
// port) keep their logins apart by name, and each counts only its own.
func (h *loginHandler) setLoginCookie(w http.ResponseWriter, r *http.Request, data pendingData) {
	name, value := loginCookieName(data.State), h.sealLogin(data)
	total, kept := len(h.cookieName(name))+len(value), 1
	var evicted []resumeRecord
	for _, o := range h.otherLogins(r, data.State) {
		if kept < maxLoginFlows && total+o.size <= loginCookieBudget {
			kept++
			total += o.size
			continue
		}
		h.setCookie(w, o.name, "", -1)
		evicted = append(evicted, h.resumeRecordOf(o.data, true))
	}
	for _, rec := range h.resumeRecords(r) {
		if rec.Evicted {
			evicted = append(evicted, rec)
		}
	}
	room := loginCookieBudget - total - len(h.cookieName(resumeCookie))
	if !h.writeResume(w, evicted, room) && r != nil {
		if _, err := h.cookie(r, resumeCookie); err == nil {
			h.setCookie(w, resumeCookie, "", -1)
		}
	}
	h.setCookie(w, name, value, int(resumeTTL/time.Second))
}

// spendLogin removes the login cookie of a spent login, and remembers its
// request in the resume cookie (for a reloaded callback, Back after
// signing in) in front of those it holds, as far as they fit with the
// browser's other logins in loginCookieBudget.
func (h *loginHandler) spendLogin(w http.ResponseWriter, r *http.Request, data pendingData) {
	if data.State == "" {
		return // a scan login has no login cookie
	}
	h.setCookie(w, loginCookieName(data.State), "", -1)
	if r == nil {
		return
	}
	room := loginCookieBudget - len(h.cookieName(resumeCookie))
	for _, o := range h.otherLogins(r, data.State) {
		room -= o.size
	}
	recs := []resumeRecord{h.resumeRecordOf(data, false)}
	for _, rec := range h.resumeRecords(r) {
		if rec.State != data.State {
			recs = append(recs, rec)
		}
	}
	h.writeResume(w, recs, room)
}
