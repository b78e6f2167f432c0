package connectors

import (
	"encoding/json"
	"errors"
	"strconv"
)

// ID is a provider id in a JSON reply (an openid, a uid, a client id or
// app key) that the provider sends as a string or as a bare integer. The
// integer's digits are kept exactly: ids can exceed 2^53, so they never
// pass through a float. null leaves the ID as it was.
type ID string

// UnmarshalJSON accepts a JSON string or a non-negative integer.
func (t *ID) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		return json.Unmarshal(b, (*string)(t))
	}
	if _, err := strconv.ParseUint(string(b), 10, 64); err != nil {
		return errors.New("an id that is neither a string nor an integer")
	}
	*t = ID(b)
	return nil
}
