// Package sandbox holds in-process simulators of the upstream providers
// (WeChat, QQ, Weibo) for the demo and the tests. Each simulator is an
// http.Handler that follows the provider's real wire behaviour, quirks
// included, so that a connector tested against it meets no surprise in
// production. Nothing outside cmd and tests imports this package.
package sandbox

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Person is a simulated end user, shared by every simulator: the same
// person can log in at WeChat, QQ and Weibo.
type Person struct {
	ID   string // stable, [a-z0-9]+, used in data-person attributes
	Name string // nickname as the provider shows it
	// Avatar is the avatar URL the provider hands out; "": the
	// simulator's own generated picture (/sandbox/avatar/ID.svg on the
	// host the request came to), so that nothing is loaded from
	// elsewhere.
	Avatar string
}

// DefaultPersons returns the three test persons every simulator knows
// by default: alice, bob and carol, with the simulator's own avatars.
func DefaultPersons() []Person {
	return []Person{
		{ID: "alice", Name: "爱丽丝"},
		{ID: "bob", Name: "小波"},
		{ID: "carol", Name: "卡罗尔"},
	}
}

// DefaultPerson is the default person id (alice, bob or carol).
func DefaultPerson(id string) (Person, bool) { return findPerson(DefaultPersons(), id) }

// Clock tells the time; simulators take one so that tests can move time
// forward to expire codes and tokens.
type Clock func() time.Time

// now returns c(), or the real time for a nil Clock.
func (c Clock) now() time.Time {
	if c == nil {
		return time.Now()
	}
	return c()
}

// randomHex returns n random bytes as lowercase hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// findPerson returns the person with the given id.
func findPerson(persons []Person, id string) (Person, bool) {
	for _, p := range persons {
		if p.ID == id {
			return p, true
		}
	}
	return Person{}, false
}

// plainJSON encodes v as QQ and Weibo do: no HTML escaping of & < >, no
// newline at the end. v is one of our own maps, strings or numbers, which
// always encode.
func plainJSON(v any) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return bytes.TrimRight(b.Bytes(), "\n")
}
