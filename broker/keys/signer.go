package keys

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	josev3 "github.com/go-jose/go-jose/v3"
	jose "github.com/go-jose/go-jose/v4"
	"github.com/ory/fosite/token/jwt"
)

// Signer returns the fosite JWT signer backed by the manager's keys: it
// signs with the current key and verifies with the current and retired
// keys.
func (m *Manager) Signer() jwt.Signer {
	return &jwtSigner{m: m}
}

// jwtSigner implements fosite's jwt.Signer with go-jose v4, for RS256,
// ES256 and EdDSA.
type jwtSigner struct {
	m *Manager
}

var _ jwt.Signer = (*jwtSigner)(nil)

// reservedHeaders are JOSE header parameters a caller may not set: they
// are the signer's (alg, kid) or change how the token is verified.
var reservedHeaders = map[string]bool{
	"alg": true, "kid": true, "jku": true, "jwk": true, "x5u": true,
	"x5c": true, "x5t": true, "x5t#S256": true, "crit": true, "b64": true,
	"zip": true, "enc": true,
}

// Generate signs claims with the current key of the algorithm the
// header's "alg" names (as AlgHint gives it; absent or not kept: the
// default algorithm). The header carries alg, that key's kid and typ
// "JWT"; the extra headers fosite passes are added (a typ there replaces
// "JWT"; alg, kid and the parameters that steer verification are
// ignored).
func (s *jwtSigner) Generate(ctx context.Context, claims jwt.MapClaims, header jwt.Mapper) (string, string, error) {
	st := s.m.state.Load()
	if st == nil || st.current == nil {
		return "", "", ErrNoKey
	}
	if claims == nil {
		return "", "", errors.New("keys: no claims to sign")
	}
	k := st.current
	if header != nil {
		if hint, _ := header.Get("alg").(string); hint != "" {
			if sk := st.signing[algOfHint(hint)]; sk != nil {
				k = sk
			}
		}
	}
	payload, err := json.Marshal(map[string]any(claims))
	if err != nil {
		return "", "", fmt.Errorf("keys: encode claims: %w", err)
	}
	signer := k.signer
	if header != nil {
		if extra := header.ToMap(); hasExtra(extra) {
			opts := (&jose.SignerOptions{}).WithType("JWT")
			for name, v := range extra {
				if !reservedHeaders[name] {
					opts.WithHeader(jose.HeaderKey(name), v)
				}
			}
			opts.WithHeader("kid", k.id)
			signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(k.alg), Key: k.private}, opts)
			if err != nil {
				return "", "", fmt.Errorf("keys: signer: %w", err)
			}
		}
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", "", fmt.Errorf("keys: sign: %w", err)
	}
	token, err := jws.CompactSerialize()
	if err != nil {
		return "", "", fmt.Errorf("keys: serialize: %w", err)
	}
	return token, token[strings.LastIndexByte(token, '.')+1:], nil
}

// hasExtra reports whether extra holds a header the cached signer does
// not already produce.
func hasExtra(extra map[string]any) bool {
	for name, v := range extra {
		if reservedHeaders[name] {
			continue
		}
		if name == "typ" && v == "JWT" {
			continue
		}
		return true
	}
	return false
}

// Decode verifies token against the published key its kid names and
// returns it with its claims, as fosite's own signer does: an expired
// (or not yet valid) token comes back with its claims and a
// *jwt.ValidationError carrying ValidationErrorExpired (or
// ValidationErrorNotValidYet, ValidationErrorIssuedAt).
func (s *jwtSigner) Decode(ctx context.Context, token string) (*jwt.Token, error) {
	keyFunc := func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, err := s.m.lookup(kid, string(t.Method))
		if err != nil {
			return nil, err
		}
		return &josev3.JSONWebKey{Key: k.publicKey, KeyID: k.id, Algorithm: k.alg}, nil
	}
	return jwt.ParseWithClaims(token, jwt.MapClaims{}, keyFunc)
}

// Validate verifies token as Decode does and returns its signature.
func (s *jwtSigner) Validate(ctx context.Context, token string) (string, error) {
	if _, err := s.Decode(ctx, token); err != nil {
		return "", err
	}
	return s.GetSignature(ctx, token)
}

// GetSignature returns the signature part of a compact JWS.
func (s *jwtSigner) GetSignature(ctx context.Context, token string) (string, error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return "", fmt.Errorf("%w: header, body and signature must all be set", ErrInvalidToken)
	}
	return parts[2], nil
}

// Hash hashes in with the hash of the current key's algorithm, as OpenID
// Connect's at_hash and c_hash use it: SHA-256 for RS256 and ES256,
// SHA-512 for EdDSA (what go-oidc verifies).
func (s *jwtSigner) Hash(ctx context.Context, in []byte) ([]byte, error) {
	if s.m.Algorithm() == EdDSA {
		sum := sha512.Sum512(in)
		return sum[:], nil
	}
	sum := sha256.Sum256(in)
	return sum[:], nil
}

// GetSigningMethodLength returns the size of Hash's output.
func (s *jwtSigner) GetSigningMethodLength(ctx context.Context) int {
	if s.m.Algorithm() == EdDSA {
		return sha512.Size
	}
	return sha256.Size
}

// HashAlgHint returns the value to put under "alg" in the headers of
// fosite's openid.DefaultSession (session.Headers.Add("alg", hint)) so
// that fosite computes at_hash and c_hash with the hash this manager's
// tokens need. fosite's IDTokenHandleHelper.ComputeHash does not ask the
// signer: it reads alg[2:] from those headers and takes SHA-512 for
// "512", SHA-256 otherwise, which is wrong for EdDSA (Ed25519 tokens use
// SHA-512). fosite drops "alg" from the headers before signing, so the
// hint never reaches the token.
func (m *Manager) HashAlgHint() string {
	return AlgHint(m.Algorithm())
}

// AlgHint is HashAlgHint for tokens signed with alg: the value to put
// under "alg" in a session's ID token headers so that the signer signs
// with alg's key and fosite computes at_hash with alg's hash.
func AlgHint(alg string) string {
	if alg == EdDSA {
		return "Ed512"
	}
	return alg
}

// algOfHint is the algorithm an AlgHint names.
func algOfHint(hint string) string {
	if hint == "Ed512" {
		return EdDSA
	}
	return hint
}
