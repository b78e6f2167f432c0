package broker

import (
	"strings"

	"github.com/ory/fosite"
)

// promptValues are the prompt values the broker understands.
var promptValues = map[string]bool{"none": true, "login": true, "consent": true}

// checkAuthorizeRequest refuses, before anyone goes to a provider, what
// fosite would only refuse once the code is issued: a bad prompt, and PKCE
// parameters that could never redeem a code (RFC 7636). So a malformed
// request is answered at once and nothing is stored.
func checkAuthorizeRequest(ar fosite.AuthorizeRequester) error {
	form := ar.GetRequestForm()
	prompts := strings.Fields(form.Get("prompt"))
	for _, p := range prompts {
		if !promptValues[p] {
			return fosite.ErrInvalidRequest.WithHintf("Unknown prompt value %q.", p)
		}
		if p == "none" && len(prompts) > 1 {
			return fosite.ErrInvalidRequest.WithHint("prompt=none cannot be combined with other values.")
		}
	}
	challenge, method := form.Get("code_challenge"), form.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		return fosite.ErrInvalidRequest.WithHint("code_challenge_method without code_challenge.")
	case challenge == "" && ar.GetClient().IsPublic():
		return fosite.ErrInvalidRequest.WithHint("Public clients must use PKCE: code_challenge is missing.")
	case challenge == "":
		return nil
	case method != "S256":
		return fosite.ErrInvalidRequest.WithHint("code_challenge_method must be S256.")
	case !validChallenge(challenge):
		return fosite.ErrInvalidRequest.WithHint("code_challenge must be 43 to 128 characters of [A-Za-z0-9-._~].")
	}
	return nil
}

func validChallenge(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// grantTypes are the grants the token endpoint knows.
var grantTypes = map[string]bool{"authorization_code": true, "refresh_token": true, grantTokenExchange: true}
