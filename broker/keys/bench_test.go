package keys

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"testing"
	"time"

	"github.com/ory/fosite/handler/openid"
	"github.com/ory/fosite/token/jwt"
)

// benchClaims are the claims of a typical ID token.
func benchClaims() jwt.MapClaims {
	now := time.Now()
	c := &jwt.IDTokenClaims{
		Issuer: "https://qiao.example", Subject: "u_01HZX3K9Q4W7", Audience: []string{"app"},
		IssuedAt: now, ExpiresAt: now.Add(time.Hour), AuthTime: now, RequestedAt: now,
		Nonce: "n-0S6_WzA2Mj", AccessTokenHash: "77QmUPtjPfzWtF2AnpK9RQ",
		Extra: map[string]any{"idp": "wechat", "name": "张三", "picture": "https://example.com/a.png"},
	}
	return c.ToMapClaims()
}

// BenchmarkSignIDToken measures Signer().Generate of an ID token with
// fosite's session headers, against the bare signature of the same
// number of bytes ("raw"): the difference is the JWT's own cost.
func BenchmarkSignIDToken(b *testing.B) {
	for _, alg := range testAlgs {
		m := newManager(b, newStore(b), Options{Algorithm: alg})
		signer := m.Signer()
		claims := benchClaims()
		headers := openid.NewDefaultSession().IDTokenHeaders()
		ctx := context.Background()
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := signer.Generate(ctx, claims, headers); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(alg+"/raw", func(b *testing.B) {
			priv := m.state.Load().current.private
			msg := make([]byte, 700)
			b.ReportAllocs()
			for b.Loop() {
				var err error
				if alg == EdDSA {
					_, err = priv.Sign(rand.Reader, msg, crypto.Hash(0))
				} else {
					d := sha256.Sum256(msg)
					_, err = priv.Sign(rand.Reader, d[:], crypto.SHA256)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode measures Signer().Decode (fosite's parser behind our
// key lookup) of a valid ID token.
func BenchmarkDecode(b *testing.B) {
	for _, alg := range testAlgs {
		m := newManager(b, newStore(b), Options{Algorithm: alg})
		tok, _, err := m.Signer().Generate(context.Background(), benchClaims(), &jwt.Headers{})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Signer().Decode(context.Background(), tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
