// Package seal encrypts small secrets at rest (signing keys, provider
// session keys, cached provider tokens) with AES-256-GCM under keys
// derived from the broker's configured secret, and derives key material
// for other uses (HMAC keys, cookie keys) from the same secret.
//
// Every key is derived with HKDF-SHA256 and a purpose string, so that a
// sealer for one purpose cannot open what another purpose sealed, and no
// derived key equals another.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// MinSecretLen is the shortest secret New accepts.
const MinSecretLen = 32

const (
	version1     byte = 1
	keyLen            = 32 // AES-256
	nonceLen          = 12 // the GCM standard nonce
	tagLen            = 16
	overhead          = 1 + nonceLen + tagLen
	sealInfo          = "qiao/seal/v1/"
	deriveInfo        = "qiao/derive/v1/"
	maxDeriveLen      = 255 * sha256.Size
)

// Errors Open returns, so that callers can tell a damaged value from a
// value sealed under another secret only as far as that is possible: GCM
// cannot tell a wrong key from a tampered ciphertext, so both are
// ErrOpen.
var (
	// ErrShortSecret: the secret is shorter than MinSecretLen bytes.
	ErrShortSecret = fmt.Errorf("seal: secret must be at least %d bytes", MinSecretLen)
	// ErrMalformed: the sealed value is truncated or of an unknown version.
	ErrMalformed = errors.New("seal: malformed sealed value")
	// ErrOpen: authentication failed (tampered value, wrong secret,
	// wrong purpose or wrong associated data).
	ErrOpen = errors.New("seal: message authentication failed")
)

// Sealer seals and opens values for one purpose. It is safe for
// concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// New returns a Sealer whose key is derived from secret for purpose
// (e.g. "signing-keys", "identity-secrets", "cache"). It fails if secret
// is shorter than MinSecretLen bytes.
func New(secret []byte, purpose string) (*Sealer, error) {
	if len(secret) < MinSecretLen {
		return nil, ErrShortSecret
	}
	key, err := hkdf.Key(sha256.New, secret, nil, sealInfo+purpose, keyLen)
	if err != nil {
		return nil, fmt.Errorf("seal: derive key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// Seal encrypts and authenticates plaintext, and authenticates aad (which
// is not stored: Open needs the same aad). The output is a version byte,
// a random nonce, and the ciphertext with its tag.
func (s *Sealer) Seal(plaintext, aad []byte) []byte {
	out := make([]byte, 1+nonceLen, overhead+len(plaintext))
	out[0] = version1
	// crypto/rand.Read never fails (it crashes the program if the
	// system's random source is broken).
	_, _ = rand.Read(out[1 : 1+nonceLen])
	return s.aead.Seal(out, out[1:1+nonceLen], plaintext, aad)
}

// Open authenticates and decrypts what Seal returned. It returns
// ErrMalformed for a truncated value or an unknown version, and ErrOpen
// when the value was tampered with or sealed under another key, purpose
// or aad.
func (s *Sealer) Open(sealed, aad []byte) ([]byte, error) {
	if len(sealed) < overhead {
		return nil, ErrMalformed
	}
	if sealed[0] != version1 {
		return nil, ErrMalformed
	}
	nonce := sealed[1 : 1+nonceLen]
	plaintext, err := s.aead.Open(nil, nonce, sealed[1+nonceLen:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return plaintext, nil
}

// Derive returns n bytes of key material derived from secret for purpose
// with HKDF-SHA256, for uses other than sealing (the HMAC key of opaque
// tokens, cookie keys). The output never equals a Sealer's key for the
// same purpose. The caller checks the secret's length (as New does); n
// is a constant of the caller's code: Derive panics if n is not between
// 1 and 8160, the most HKDF-SHA256 can produce.
func Derive(secret []byte, purpose string, n int) []byte {
	if n <= 0 || n > maxDeriveLen {
		panic(fmt.Sprintf("seal: Derive length %d out of range 1..%d", n, maxDeriveLen))
	}
	key, err := hkdf.Key(sha256.New, secret, nil, deriveInfo+purpose, n)
	if err != nil {
		// Unreachable: hkdf.Key fails only for lengths checked above.
		panic("seal: " + err.Error())
	}
	return key
}
