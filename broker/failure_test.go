package broker

import (
	"errors"
	"fmt"
	"net/http"
	"testing"

	"github.com/qiaoidp/qiao/connectors"
)

// TestClassifyConnectorFailures pins the one mapping of a connector
// failure to its login result, its kind, and the OAuth answers of the
// browser login (classify) and of a mini-program code (classifyCode).
func TestClassifyConnectorFailures(t *testing.T) {
	wrap := func(kind error) error {
		return fmt.Errorf("wechat sns/jscode2session: %w", &connectors.ProviderError{Provider: "wechat", Code: 1, Kind: kind})
	}
	tests := []struct {
		name         string
		err          error
		result       outcome
		kind         string
		browserError string
		browserMsg   msgID
		codeResult   outcome
		codeStatus   int
		codeError    string
	}{
		{"cancelled", wrap(connectors.ErrAccessDenied), outcomeDenied, "access_denied", "access_denied", msgCancelledAt, outcomeInvalidCode, http.StatusBadRequest, "invalid_grant"},
		{"code refused", wrap(connectors.ErrInvalidCode), outcomeInvalidCode, "invalid_code", "access_denied", msgProviderFailed, outcomeInvalidCode, http.StatusBadRequest, "invalid_grant"},
		{"busy", wrap(connectors.ErrUnavailable), outcomeUnavailable, "unavailable", "temporarily_unavailable", msgUnavailable, outcomeUnavailable, http.StatusServiceUnavailable, "temporarily_unavailable"},
		{"configuration", wrap(connectors.ErrConfig), outcomeError, "configuration", "server_error", msgProviderFailed, outcomeError, http.StatusServiceUnavailable, "temporarily_unavailable"},
		{"anything else", errors.New("unexpected reply"), outcomeError, "error", "server_error", msgProviderFailed, outcomeError, http.StatusServiceUnavailable, "temporarily_unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := classify(tc.err)
			if f.Result != tc.result || f.Kind != tc.kind || f.Error != tc.browserError || f.Msg != tc.browserMsg || f.Hint == "" {
				t.Errorf("classify = %+v, want result %s kind %s error %s message %s with a hint", f, tc.result, tc.kind, tc.browserError, tc.browserMsg)
			}
			if rfc := f.rfc(tc.err); rfc.ErrorField != tc.browserError || rfc.HintField != f.Hint {
				t.Errorf("classify(...).rfc = %s %q, want %s %q", rfc.ErrorField, rfc.HintField, tc.browserError, f.Hint)
			}
			c := classifyCode(tc.err)
			if c.Result != tc.codeResult || c.Status != tc.codeStatus || c.Error != tc.codeError || c.Hint == "" {
				t.Errorf("classifyCode = %+v, want result %s, %d %s with a hint", c, tc.codeResult, tc.codeStatus, tc.codeError)
			}
			if rfc := c.rfc(tc.err); rfc.ErrorField != tc.codeError || rfc.CodeField != tc.codeStatus {
				t.Errorf("classifyCode(...).rfc = %d %s, want %d %s", rfc.CodeField, rfc.ErrorField, tc.codeStatus, tc.codeError)
			}
		})
	}
}
