package config

import (
	"errors"
	"fmt"
	"strings"
)

var (
	errUnterminated = errors.New(`unterminated "${" (write "$${" for a literal "${")`)
	errBadReference = errors.New(`invalid variable reference: use ${NAME} or ${NAME:-default}, NAME of letters, digits and _`)
	errNested       = errors.New("nested variable references in a default are not supported")
)

// unsetError is an unset variable without a default.
type unsetError struct{ name string }

func (e unsetError) Error() string {
	return fmt.Sprintf("environment variable %s is not set", e.name)
}

// expand replaces ${VAR} and ${VAR:-default} in s (see the package
// comment for the rules). Its errors name the variable, never the value.
func expand(s string, env func(string) (string, bool)) (string, error) {
	if !strings.Contains(s, "${") {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			b.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				return "", errUnterminated
			}
			ref := s[i+2 : i+2+end]
			i += 2 + end + 1
			name, def, hasDefault := strings.Cut(ref, ":-")
			if !validName(name) {
				return "", errBadReference
			}
			if strings.Contains(def, "${") {
				return "", errNested
			}
			v, ok := env(name)
			switch {
			case hasDefault && v == "":
				v = def
			case !ok:
				return "", unsetError{name}
			}
			b.WriteString(v)
		default:
			b.WriteByte(s[i])
			i++
		}
	}
	return b.String(), nil
}

func validName(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r == '_', r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
