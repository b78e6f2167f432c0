package broker

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
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
func (b *Broker) sealLogin(data pendingData) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // the query's '&' stays one byte
	_ = enc.Encode(data)     // plain strings and times: cannot fail
	return base64.RawURLEncoding.EncodeToString(b.loginSealer.Seal(buf.Bytes(), loginAAD))
}

// openLogin returns the pending login the request's login cookie holds,
// or an error if there is none, it does not open, or it has expired.
func (b *Broker) openLogin(r *http.Request) (pendingData, error) {
	c, err := b.cookie(r, loginCookie)
	if err != nil || c.Value == "" {
		return pendingData{}, http.ErrNoCookie
	}
	raw, err := base64.RawURLEncoding.DecodeString(c.Value)
	if err != nil {
		return pendingData{}, err
	}
	plain, err := b.loginSealer.Open(raw, loginAAD)
	if err != nil {
		return pendingData{}, err
	}
	var data pendingData
	if err := json.Unmarshal(plain, &data); err != nil {
		return pendingData{}, err
	}
	if !b.now().Before(data.ExpiresAt) {
		return pendingData{}, errLoginExpired
	}
	return data, nil
}

var errLoginExpired = errors.New("the login has expired")

// sameState compares states in constant time.
func sameState(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// setLoginCookie sets the login cookie of a login through connectorID.
//
// Under http its Path is the connector's callback, the only place that
// reads it: two brokers on one host name (cookies ignore the port, so a
// broker that signs in through another one on the same host) then keep a
// login cookie each. Under https the __Host- prefix requires Path=/.
func (b *Broker) setLoginCookie(w http.ResponseWriter, connectorID, value string, maxAge int) {
	path := "/"
	if !b.secure {
		path = b.prefix + "/callback/" + connectorID
	}
	http.SetCookie(w, &http.Cookie{
		Name:     b.cookieName(loginCookie),
		Value:    value,
		Path:     path,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   b.secure,
		SameSite: http.SameSiteLaxMode,
	})
}

// clearLoginCookie removes the login cookie once its login is spent.
func (b *Broker) clearLoginCookie(w http.ResponseWriter, connectorID string) {
	b.setLoginCookie(w, connectorID, "", -1)
}
