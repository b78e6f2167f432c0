package connectors

import (
	"fmt"
	"net/url"
	"strings"
)

// maxMessage is how many characters of a provider's message Truncate
// keeps.
const maxMessage = 300

// Redact replaces every non-empty secret in s with "[redacted]", in the
// order given. Provider messages pass through it before they reach an
// error, in case the provider echoes a code, a token or the app secret.
func Redact(s string, secrets ...string) string {
	for _, v := range secrets {
		if v != "" {
			s = strings.ReplaceAll(s, v, "[redacted]")
		}
	}
	return s
}

// Truncate keeps a provider message to one short printable line: control
// characters become spaces and the text is cut after 300 characters,
// with "…" added.
func Truncate(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if r := []rune(s); len(r) > maxMessage {
		s = string(r[:maxMessage]) + "…"
	}
	return s
}

// Unparseable is an answer a connector cannot understand, which makes
// the provider unavailable: ErrUnavailable with the text of format. The
// text must never quote the body.
func Unparseable(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnavailable}, args...)...)
}

// BaseURL checks a configured base URL named name (auth_base_url, ...):
// "" is def, anything else must be an absolute http(s) URL without query
// or fragment, and comes back without its trailing slashes. The error
// wraps ErrConfig and names the setting; the caller adds the provider.
func BaseURL(name, value, def string) (string, error) {
	if value == "" {
		return def, nil
	}
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%s %q must be an absolute http(s) URL without query: %w", name, value, ErrConfig)
	}
	return strings.TrimRight(value, "/"), nil
}
