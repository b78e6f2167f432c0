package broker

import (
	"errors"
	"net/http"

	"github.com/ory/fosite"

	"github.com/qiaoidp/qiao/connectors"
)

// loginResult is a login's result: the result label of
// qiao_logins_total and the result of its audit entry.
type loginResult string

const (
	resultSuccess     loginResult = "success"
	resultDenied      loginResult = "denied"
	resultInvalidCode loginResult = "invalid_code"
	resultUnavailable loginResult = "unavailable"
	resultError       loginResult = "error"
)

// failure is what the broker makes of one connector failure on a code a
// client sent it (the token exchange, the account API's bind, the scan
// API): the login result it counts and audits, and the OAuth answer.
type failure struct {
	Result loginResult
	Status int    // the HTTP status of the answer
	Error  string // its OAuth error code
	Hint   string // its error_description
}

// classify sorts a failure of a mini-program code's exchange. A code the
// provider refuses is the client's fault (400 invalid_grant); anything
// else, the provider busy or refusing the application's own configuration,
// is 503 temporarily_unavailable, never a 500 (docs/miniprogram.md); the
// admin learns which from the log line and the result label.
func classify(err error) failure {
	switch {
	case errors.Is(err, connectors.ErrInvalidCode), errors.Is(err, connectors.ErrAccessDenied):
		return failure{Result: resultInvalidCode, Status: http.StatusBadRequest, Error: fosite.ErrInvalidGrant.ErrorField,
			Hint: "The code is invalid, expired or already used."}
	case errors.Is(err, connectors.ErrUnavailable):
		return failure{Result: resultUnavailable, Status: http.StatusServiceUnavailable, Error: fosite.ErrTemporarilyUnavailable.ErrorField,
			Hint: "WeChat is busy or unreachable. Please retry."}
	}
	return failure{Result: resultError, Status: http.StatusServiceUnavailable, Error: fosite.ErrTemporarilyUnavailable.ErrorField,
		Hint: "WeChat refused this application's configuration. Please retry later."}
}

// rfc is the failure as fosite's error, wrapping err for the log.
func (f failure) rfc(err error) *fosite.RFC6749Error {
	base := fosite.ErrTemporarilyUnavailable
	if f.Error == fosite.ErrInvalidGrant.ErrorField {
		base = fosite.ErrInvalidGrant
	}
	return base.WithHint(f.Hint).WithWrap(err)
}

// write answers the failure as the OAuth JSON error.
func (f failure) write(w http.ResponseWriter) {
	writeJSON(w, f.Status, oauthError{Error: f.Error, Description: f.Hint})
}
