package connectors

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
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

// Limits on the profile strings a provider gives.
const (
	MaxNickname  = 64   // characters (runes)
	MaxAvatarURL = 2048 // bytes
)

// Clean returns the identity with its provider-given profile made safe to
// store and show: the nickname without control characters (nor bidi
// overrides, which reorder what a terminal or page shows), trimmed and at
// most MaxNickname characters; the avatar an absolute http(s) URL with a
// host and no user information, at most MaxAvatarURL bytes, or "". Every
// connector returns its identities through Clean, so the broker, its
// pages, the tokens and the admin commands get clean strings from one
// place. Clean is idempotent.
func (id Identity) Clean() Identity {
	id.DisplayName = Nickname(id.DisplayName)
	id.Picture = AvatarURL(id.Picture)
	return id
}

// Nickname cleans a provider's display name (see Identity.Clean).
func Nickname(s string) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || isBidiControl(r) {
			return -1
		}
		return r
	}, s)
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > MaxNickname {
		s = strings.TrimSpace(string(r[:MaxNickname]))
	}
	return s
}

// isBidiControl reports the invisible characters that change the display
// order of text (U+200E/F, U+202A–U+202E, U+2066–U+2069, U+061C).
func isBidiControl(r rune) bool {
	return r == 0x200e || r == 0x200f || r == 0x061c || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// AvatarURL keeps an avatar URL only if it is an absolute http(s) URL with
// a host, no user information and at most MaxAvatarURL bytes: apps put it
// in <img src> (or an href), so a javascript: or data: value must not
// reach them.
func AvatarURL(s string) string {
	if len(s) > MaxAvatarURL || strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return ""
	}
	return s
}
