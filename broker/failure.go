package broker

import (
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/qiaoidp/qiao/connectors"
)

// failure is what the broker makes of one connector failure: the login
// result it counts and audits, the kind it shows under "Technical
// details", the OAuth answer, and the message its own pages show.
type failure struct {
	Result outcome
	Kind   string // access_denied, invalid_code, unavailable, configuration or error
	Status int    // the HTTP status of a JSON answer
	Error  string // the OAuth error code
	Hint   string // its error_description
	Msg    msgID  // the message on the broker's pages
}

// classify sorts a failure of a browser login at the provider (the
// callback, or building the provider's login URL): the person cancelled,
// the provider refused its own code, it is busy, or it refused this
// application's configuration. The answer goes to the client in the
// authorization redirect; a cancellation's description names the provider
// (cancelledHint).
func classify(err error) failure {
	switch {
	case errors.Is(err, connectors.ErrAccessDenied):
		return failure{Result: outcomeDenied, Kind: "access_denied", Status: http.StatusForbidden, Error: fosite.ErrAccessDenied.ErrorField,
			Hint: "The sign-in was cancelled at the provider.", Msg: msgCancelledAt}
	case errors.Is(err, connectors.ErrUnavailable):
		return failure{Result: outcomeUnavailable, Kind: "unavailable", Status: http.StatusServiceUnavailable, Error: fosite.ErrTemporarilyUnavailable.ErrorField,
			Hint: "The provider is busy or unreachable. Please try again.", Msg: msgUnavailable}
	case errors.Is(err, connectors.ErrInvalidCode):
		return failure{Result: outcomeInvalidCode, Kind: "invalid_code", Status: http.StatusForbidden, Error: fosite.ErrAccessDenied.ErrorField,
			Hint: "The provider did not accept the login (its code was invalid or already used). Please try again.", Msg: msgProviderFailed}
	}
	kind := "error"
	if errors.Is(err, connectors.ErrConfig) {
		kind = "configuration"
	}
	return failure{Result: outcomeError, Kind: kind, Status: http.StatusInternalServerError, Error: fosite.ErrServerError.ErrorField,
		Hint: "The provider refused this application's configuration. The administrator has been told.", Msg: msgProviderFailed}
}

// classifyCode sorts a failure of a mini-program code a client sent (the
// token exchange, the account API's bind, the scan API). A code the
// provider refuses, or refuses access for, is the client's fault: 400
// invalid_grant. Anything else, the provider busy or refusing the
// application's own configuration, is 503 temporarily_unavailable, never
// a 500 (docs/miniprogram.md); the admin learns which from the log line
// and the result label.
func classifyCode(err error) failure {
	f := classify(err)
	switch f.Result {
	case outcomeDenied, outcomeInvalidCode:
		f.Result, f.Status, f.Error = outcomeInvalidCode, http.StatusBadRequest, fosite.ErrInvalidGrant.ErrorField
		f.Hint = "The code is invalid, expired or already used."
	case outcomeUnavailable:
		f.Hint = "WeChat is busy or unreachable. Please retry."
	default:
		f.Status, f.Error = http.StatusServiceUnavailable, fosite.ErrTemporarilyUnavailable.ErrorField
		f.Hint = "WeChat refused this application's configuration. Please retry later."
	}
	return f
}

// rfc is the failure as fosite's error, wrapping err for the log.
func (f failure) rfc(err error) *fosite.RFC6749Error {
	for _, e := range []*fosite.RFC6749Error{fosite.ErrAccessDenied, fosite.ErrInvalidGrant, fosite.ErrTemporarilyUnavailable} {
		if e.ErrorField == f.Error {
			return e.WithHint(f.Hint).WithWrap(err)
		}
	}
	return fosite.ErrServerError.WithHint(f.Hint).WithWrap(err)
}

// write answers the failure as the OAuth JSON error.
func (f failure) write(w http.ResponseWriter) {
	writeJSON(w, f.Status, oauthError{Error: f.Error, Description: f.Hint})
}
