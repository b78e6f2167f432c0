package connectors_test

import (
	"encoding/json"
	"testing"

	"github.com/qiaoidp/qiao/connectors"
)

func TestIDKeepsTheDigitsOfStringsAndIntegers(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{`{"id":"2583117564"}`, "2583117564", true},
		{`{"id":9007199254740993}`, "9007199254740993", true}, // 2^53+1: a float would make it ...992
		{`{"id":"o6_bmjrPTlm6_2sgVt7hMZOPfL2M"}`, "o6_bmjrPTlm6_2sgVt7hMZOPfL2M", true},
		{`{"id":null}`, "", true},
		{`{}`, "", true},
		{`{"id":9.007199254740992e15}`, "", false},
		{`{"id":-1}`, "", false},
		{`{"id":true}`, "", false},
	}
	for _, tt := range tests {
		var v struct {
			ID connectors.ID `json:"id"`
		}
		err := json.Unmarshal([]byte(tt.in), &v)
		if (err == nil) != tt.ok || (tt.ok && string(v.ID) != tt.want) {
			t.Errorf("%s: %q, %v; want %q (ok %v)", tt.in, v.ID, err, tt.want, tt.ok)
		}
	}
}
