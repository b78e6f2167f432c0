package keys

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/ory/fosite/token/jwt"
)

func TestEveryKeptAlgorithmSignsAndIsPublished(t *testing.T) {
	m := newManager(t, newStore(t), Options{Algorithm: EdDSA, Algorithms: []string{RS256, ES256}})
	jwks := m.JWKS()
	published := map[string]string{} // alg -> kid
	for _, k := range jwks.Keys {
		published[k.Algorithm] = k.KeyID
	}
	if len(jwks.Keys) != 3 || len(published) != 3 {
		t.Fatalf("JWKS %v, want one key of each of EdDSA, RS256, ES256", kids(jwks))
	}
	for _, tc := range []struct{ hint, alg string }{{"", EdDSA}, {AlgHint(EdDSA), EdDSA}, {AlgHint(RS256), RS256}, {AlgHint(ES256), ES256}} {
		h := &jwt.Headers{Extra: map[string]any{}}
		if tc.hint != "" {
			h.Add("alg", tc.hint)
		}
		tok, _, err := m.Signer().Generate(context.Background(), idTokenClaims("alice", time.Now().Add(time.Hour)), h)
		if err != nil {
			t.Fatal(err)
		}
		hd := header(t, tok)
		if hd["alg"] != tc.alg || hd["kid"] != published[tc.alg] {
			t.Errorf("hint %q: header %v, want alg %s kid %s", tc.hint, hd, tc.alg, published[tc.alg])
		}
		// A relying party that knows only the JWKS verifies it.
		ks := &oidc.StaticKeySet{}
		for _, k := range jwks.Keys {
			ks.PublicKeys = append(ks.PublicKeys, k.Key)
		}
		if _, err := ks.VerifySignature(context.Background(), tok); err != nil {
			t.Errorf("hint %q: the token does not verify against the JWKS: %v", tc.hint, err)
		}
	}
}

func TestAlgorithmNoLongerKeptIsRetiredButStaysPublished(t *testing.T) {
	clock := newFakeClock()
	store := newStore(t)
	const maxTTL = time.Hour
	before := newManager(t, store, Options{Algorithm: ES256, Algorithms: []string{RS256}, MaxTokenTTL: maxTTL, Now: clock.Now})
	es := before.state.Load().signing[ES256].id
	after := newManager(t, store, Options{Algorithm: RS256, MaxTokenTTL: maxTTL, Now: clock.Now})
	if _, ok := after.state.Load().signing[ES256]; ok {
		t.Fatal("an ES256 key still signs after ES256 left the configuration")
	}
	if got := kids(after.JWKS()); len(got) != 2 || !contains(got, es) {
		t.Fatalf("JWKS %v, want the RS256 key and the retired ES256 key %s", got, es)
	}
	clock.Advance(maxTTL + ClockSkew + time.Second)
	if err := after.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := kids(after.JWKS()); len(got) != 1 || contains(got, es) {
		t.Fatalf("JWKS %v after the retired key's tokens expired, want the RS256 key only", got)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestEachAlgorithmRotatesOnceAcrossReplicas(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clock := newFakeClock()
	path := filepath.Join(t.TempDir(), "qiao.db")
	barrier := &listBarrier{}
	storeA := &rotationCounter{Store: gatedStore{Store: openStore(t, path), b: barrier}}
	storeB := &rotationCounter{Store: gatedStore{Store: openStore(t, path), b: barrier}}
	opts := Options{Algorithm: EdDSA, Algorithms: []string{RS256}, Now: clock.Now}
	a := newManager(t, storeA, opts)
	b := newManager(t, storeB, opts)
	firstA, firstB := a.state.Load().signing, b.state.Load().signing
	for _, alg := range []string{EdDSA, RS256} {
		if firstA[alg] == nil || firstB[alg] == nil || firstA[alg].id != firstB[alg].id {
			t.Fatalf("%s: the replicas made their own first keys", alg)
		}
	}
	storeA.rotations, storeA.conflicts, storeB.rotations, storeB.conflicts = 0, 0, 0, 0
	clock.Advance(DefaultRotateEvery)
	barrier.arm(2)
	refreshTogether(t, ctx, a, b)
	// One rotation per algorithm; every losing attempt was a conflict.
	if r := storeA.rotations + storeB.rotations; r != 2 {
		t.Fatalf("%d rotations, want 2 (one per algorithm)", r)
	}
	stored, err := storeA.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stored) != 4 {
		t.Fatalf("%d keys stored, want two first keys and one new key per algorithm", len(stored))
	}
	for _, alg := range []string{EdDSA, RS256} {
		ka, kb := a.state.Load().signing[alg], b.state.Load().signing[alg]
		if ka == nil || kb == nil || ka.id != kb.id || ka.id == firstA[alg].id {
			t.Errorf("%s: replicas sign with different or old keys", alg)
		}
	}
}
