package broker

import (
	"io"
	"net/http"
)

// A request body is capped before routing at maxRequestBody (the
// middleware, broker.go); a route that takes more declares its own limit
// where it is mounted (withBodyLimit), which replaces the cap as long as
// nothing has been read yet. A form body (application/x-www-form-urlencoded
// POST) is read before routing, so it is always held to maxRequestBody:
// a larger limit only reaches a body the handler reads itself, such as a
// picture.

// cappedBody is a request body behind a size cap that a route may change
// before the first read.
type cappedBody struct {
	w      http.ResponseWriter
	raw    io.ReadCloser // the body as the server gave it
	capped io.ReadCloser // raw behind http.MaxBytesReader
	read   bool
}

// capBody caps r's body at limit bytes.
func capBody(w http.ResponseWriter, r *http.Request, limit int64) {
	r.Body = &cappedBody{w: w, raw: r.Body, capped: http.MaxBytesReader(w, r.Body, limit)}
}

func (b *cappedBody) Read(p []byte) (int, error) {
	b.read = true
	return b.capped.Read(p)
}

func (b *cappedBody) Close() error { return b.capped.Close() }

// withBodyLimit lets next's requests carry bodies of up to limit bytes
// instead of maxRequestBody.
func withBodyLimit(limit int64, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if b, ok := r.Body.(*cappedBody); ok && !b.read {
			b.capped = http.MaxBytesReader(b.w, b.raw, limit)
		}
		next(w, r)
	}
}
