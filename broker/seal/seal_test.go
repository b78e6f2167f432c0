package seal

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"testing"
)

var (
	secretA = []byte("0123456789abcdef0123456789abcdef")
	secretB = []byte("fedcba9876543210fedcba9876543210")
)

func mustNew(t *testing.T, secret []byte, purpose string) *Sealer {
	t.Helper()
	s, err := New(secret, purpose)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return s
}

func TestNewRejectsShortSecret(t *testing.T) {
	for _, n := range []int{0, 1, 31} {
		_, err := New(make([]byte, n), "p")
		if !errors.Is(err, ErrShortSecret) {
			t.Errorf("len %d: err = %v, want ErrShortSecret", n, err)
		}
	}
	if _, err := New(make([]byte, 32), "p"); err != nil {
		t.Errorf("len 32: %v", err)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	s := mustNew(t, secretA, "signing-keys")
	for _, tc := range []struct {
		name      string
		plaintext []byte
		aad       []byte
	}{
		{"empty", nil, nil},
		{"text with aad", []byte("session_key=abc"), []byte("kid-1")},
		{"large", bytes.Repeat([]byte{0xA5}, 1<<16), []byte("x")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sealed := s.Seal(tc.plaintext, tc.aad)
			if len(tc.plaintext) > 4 && bytes.Contains(sealed, tc.plaintext) {
				t.Fatal("sealed value contains the plaintext")
			}
			got, err := s.Open(sealed, tc.aad)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			if !bytes.Equal(got, tc.plaintext) {
				t.Fatalf("Open = %q, want %q", got, tc.plaintext)
			}
		})
	}
}

func TestSealUsesFreshNonce(t *testing.T) {
	s := mustNew(t, secretA, "cache")
	a, b := s.Seal([]byte("same"), nil), s.Seal([]byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Fatal("two seals of one plaintext are equal")
	}
}

func TestOpenRejects(t *testing.T) {
	s := mustNew(t, secretA, "signing-keys")
	sealed := s.Seal([]byte("private key"), []byte("kid-1"))
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 0x01
		return c
	}
	for _, tc := range []struct {
		name   string
		opener *Sealer
		sealed []byte
		aad    []byte
		want   error
	}{
		{"wrong aad", s, sealed, []byte("kid-2"), ErrOpen},
		{"missing aad", s, sealed, nil, ErrOpen},
		{"wrong purpose", mustNew(t, secretA, "cache"), sealed, []byte("kid-1"), ErrOpen},
		{"wrong secret", mustNew(t, secretB, "signing-keys"), sealed, []byte("kid-1"), ErrOpen},
		{"flipped nonce", s, flip(1), []byte("kid-1"), ErrOpen},
		{"flipped ciphertext", s, flip(1 + nonceLen), []byte("kid-1"), ErrOpen},
		{"flipped tag", s, flip(len(sealed) - 1), []byte("kid-1"), ErrOpen},
		{"unknown version", s, flip(0), []byte("kid-1"), ErrMalformed},
		{"truncated tag", s, sealed[:len(sealed)-1], []byte("kid-1"), ErrOpen},
		{"truncated below overhead", s, sealed[:overhead-1], []byte("kid-1"), ErrMalformed},
		{"version only", s, sealed[:1], []byte("kid-1"), ErrMalformed},
		{"empty", s, nil, nil, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.opener.Open(tc.sealed, tc.aad)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Open err = %v, want %v", err, tc.want)
			}
			if got != nil {
				t.Fatalf("Open returned %q with an error", got)
			}
		})
	}
}

func TestOpenNeverPanicsOnGarbage(t *testing.T) {
	s := mustNew(t, secretA, "p")
	valid := s.Seal([]byte("v"), nil)
	for n := 0; n <= len(valid)+8; n++ {
		in := make([]byte, n)
		copy(in, valid)
		if _, err := s.Open(in, nil); err == nil && n != len(valid) {
			t.Fatalf("Open accepted %d bytes", n)
		}
	}
}

func TestDeriveSeparatesPurposesAndSecrets(t *testing.T) {
	a := Derive(secretA, "token-hmac", 32)
	if len(a) != 32 {
		t.Fatalf("len = %d", len(a))
	}
	if !bytes.Equal(a, Derive(secretA, "token-hmac", 32)) {
		t.Fatal("Derive is not deterministic")
	}
	for name, other := range map[string][]byte{
		"other purpose": Derive(secretA, "cookie", 32),
		"other secret":  Derive(secretB, "token-hmac", 32),
	} {
		if bytes.Equal(a, other) {
			t.Errorf("%s: same key material", name)
		}
	}
	if got := Derive(secretA, "token-hmac", 64); !bytes.Equal(got[:32], a) || len(got) != 64 {
		t.Errorf("64-byte derivation does not extend the 32-byte one")
	}
}

func TestDeriveDiffersFromSealKey(t *testing.T) {
	sealKey, err := hkdf.Key(sha256.New, secretA, nil, sealInfo+"cache", keyLen)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(Derive(secretA, "cache", keyLen), sealKey) {
		t.Fatal("Derive returned the purpose's sealing key")
	}
}

func TestDerivePanicsOnBadLength(t *testing.T) {
	for _, n := range []int{0, -1, maxDeriveLen + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Derive(n=%d) did not panic", n)
				}
			}()
			Derive(secretA, "p", n)
		}()
	}
}
