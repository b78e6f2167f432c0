package broker

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/ory/fosite"
	"github.com/ory/fosite/token/jwt"
)

// Stored requests and their sessions are encoded on every code and token
// a login writes (five encodings per web login). encoding/json finds
// their fields by reflection and allocates for every map entry and time;
// encodeSession and encodeRequest write the same bytes directly
// (TestRecordEncodingIsEncodingJSON holds them to encoding/json's
// output). What they do not know how to write exactly (another session
// type, an Extra claim of another type, a time encoding/json refuses)
// goes to encoding/json. Decoding stays encoding/json's.

// encodeSession is json.Marshal(s).
func encodeSession(s fosite.Session) ([]byte, error) {
	if g, ok := s.(*grantSession); ok && g != nil {
		return appendSession(make([]byte, 0, 640), g)
	}
	return json.Marshal(s)
}

// encodeRequest is json.Marshal(r), for a Session that is compact JSON
// (as encodeSession writes it).
func encodeRequest(r *storedRequest) ([]byte, error) {
	return appendRequest(make([]byte, 0, 512+len(r.Session)), r)
}

func appendSession(b []byte, s *grantSession) ([]byte, error) {
	var err error
	b = append(b, `{"id_token_claims":`...)
	if b, err = appendClaims(b, s.Claims); err != nil {
		return nil, err
	}
	b = append(b, `,"headers":`...)
	if s.Headers == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"extra":`...)
		if b, err = appendSorted(b, s.Headers.Extra, appendValue); err != nil {
			return nil, err
		}
		b = append(b, '}')
	}
	b = append(b, `,"expires_at":`...)
	if b, err = appendSorted(b, s.ExpiresAt, appendTime); err != nil {
		return nil, err
	}
	b = append(b, `,"username":`...)
	b = appendString(b, s.Username)
	b = append(b, `,"subject":`...)
	b = appendString(b, s.DefaultSession.Subject)
	b = append(b, `,"idp":`...)
	b = appendString(b, s.IDP)
	if s.IdentitySubject != "" {
		b = append(b, `,"idp_subject":`...)
		b = appendString(b, s.IdentitySubject)
	}
	return append(b, '}'), nil
}

func appendClaims(b []byte, c *jwt.IDTokenClaims) ([]byte, error) {
	if c == nil {
		return append(b, "null"...), nil
	}
	var err error
	b = append(b, `{"jti":`...)
	b = appendString(b, c.JTI)
	b = append(b, `,"iss":`...)
	b = appendString(b, c.Issuer)
	b = append(b, `,"sub":`...)
	b = appendString(b, c.Subject)
	b = append(b, `,"aud":`...)
	b = appendStrings(b, c.Audience)
	b = append(b, `,"nonce":`...)
	b = appendString(b, c.Nonce)
	for _, t := range []struct {
		key string
		t   time.Time
	}{{`,"exp":`, c.ExpiresAt}, {`,"iat":`, c.IssuedAt}, {`,"rat":`, c.RequestedAt}, {`,"auth_time":`, c.AuthTime}} {
		b = append(b, t.key...)
		if b, err = appendTime(b, t.t); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"at_hash":`...)
	b = appendString(b, c.AccessTokenHash)
	b = append(b, `,"acr":`...)
	b = appendString(b, c.AuthenticationContextClassReference)
	b = append(b, `,"amr":`...)
	b = appendStrings(b, c.AuthenticationMethodsReferences)
	b = append(b, `,"c_hash":`...)
	b = appendString(b, c.CodeHash)
	b = append(b, `,"ext":`...)
	if b, err = appendSorted(b, c.Extra, appendValue); err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendSorted writes m as a JSON object with its keys sorted, as
// encoding/json does, each value written by appendV.
func appendSorted[K ~string, V any](b []byte, m map[K]V, appendV func([]byte, V) ([]byte, error)) ([]byte, error) {
	if m == nil {
		return append(b, "null"...), nil
	}
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, string(k))
		b = append(b, ':')
		var err error
		if b, err = appendV(b, m[k]); err != nil {
			return nil, err
		}
	}
	return append(b, '}'), nil
}

// appendValue writes the claim values the broker sets (strings, bools,
// strings lists) itself and leaves any other to encoding/json.
func appendValue(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case string:
		return appendString(b, v), nil
	case bool:
		return strconv.AppendBool(b, v), nil
	case int:
		return strconv.AppendInt(b, int64(v), 10), nil
	case int64:
		return strconv.AppendInt(b, v, 10), nil
	case []string:
		return appendStrings(b, v), nil
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, raw...), nil
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendTime writes t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds), which refuses years outside 0 to 9999: those go to it.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		raw, err := t.MarshalJSON()
		if err != nil {
			return nil, err
		}
		return append(b, raw...), nil
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}

const hexDigits = "0123456789abcdef"

// appendString writes s as a JSON string exactly as encoding/json does
// (HTML-escaped: <, > and & as \u003c, \u003e, \u0026; invalid UTF-8 as
// \ufffd; U+2028 and U+2029 escaped).
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

func appendRequest(b []byte, r *storedRequest) ([]byte, error) {
	var err error
	b = append(b, `{"id":`...)
	b = appendString(b, r.ID)
	b = append(b, `,"requested_at":`...)
	if b, err = appendTime(b, r.RequestedAt); err != nil {
		return nil, err
	}
	b = append(b, `,"client_id":`...)
	b = appendString(b, r.ClientID)
	for _, l := range []struct {
		key string
		ss  []string
	}{{`,"scope":`, r.RequestedScope}, {`,"granted_scope":`, r.GrantedScope}, {`,"audience":`, r.RequestedAudience}, {`,"granted_audience":`, r.GrantedAudience}} {
		if len(l.ss) > 0 {
			b = append(b, l.key...)
			b = appendStrings(b, l.ss)
		}
	}
	if len(r.Form) > 0 {
		b = append(b, `,"form":`...)
		b = appendForm(b, r.Form)
	}
	b = append(b, `,"session":`...)
	if r.Session == nil {
		b = append(b, "null"...)
	} else if json.Valid(r.Session) {
		b = append(b, r.Session...)
	} else {
		return nil, errors.New("encoding request: the session is not JSON")
	}
	if r.V != 0 {
		b = append(b, `,"v":`...)
		b = strconv.AppendInt(b, int64(r.V), 10)
	}
	if r.HasPKCE {
		b = append(b, `,"has_pkce":true`...)
	}
	if len(r.PKCEForm) > 0 {
		b = append(b, `,"pkce_form":`...)
		b = appendForm(b, r.PKCEForm)
	}
	if r.HasOIDC {
		b = append(b, `,"has_oidc":true`...)
	}
	if len(r.OIDCForm) > 0 {
		b = append(b, `,"oidc_form":`...)
		b = appendForm(b, r.OIDCForm)
	}
	return append(b, '}'), nil
}

// appendForm writes the JSON string of url.Values(f).Encode(): its keys
// sorted, keys and values query-escaped, "&" (which encoding/json writes
// as \u0026) between the pairs.
func appendForm(b []byte, f storedForm) []byte {
	var buf [16]string
	keys := buf[:0]
	for k := range f {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '"')
	first := true
	for _, k := range keys {
		for _, v := range f[k] {
			if !first {
				b = append(b, `\u0026`...)
			}
			first = false
			b = appendQueryEscape(b, k)
			b = append(b, '=')
			b = appendQueryEscape(b, v)
		}
	}
	return append(b, '"')
}

// appendQueryEscape appends url.QueryEscape(s).
func appendQueryEscape(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b = append(b, c)
		case c == ' ':
			b = append(b, '+')
		default:
			b = append(b, '%', upperHex[c>>4], upperHex[c&0xF])
		}
	}
	return b
}

const upperHex = "0123456789ABCDEF"
