package broker

import "testing"

// TestClientIDTokenAlgDefaults: a client's empty IDTokenAlg is
// Keys.Algorithm, and an empty Keys.Algorithm is RS256.
func TestClientIDTokenAlgDefaults(t *testing.T) {
	tests := []struct {
		keys, client, want string
	}{
		{"", "", "RS256"},
		{"EdDSA", "", "EdDSA"},
		{"EdDSA", "ES256", "ES256"},
		{"", "ES256", "ES256"},
	}
	for _, tc := range tests {
		o := Options{Keys: SigningKeys{Algorithm: tc.keys}}
		if got := o.idTokenAlg(Client{IDTokenAlg: tc.client}); got != tc.want {
			t.Errorf("keys %q, client %q: idTokenAlg = %q, want %q", tc.keys, tc.client, got, tc.want)
		}
	}
}
