package sandbox

import (
	"net/http"
	"sync"
)

// faults holds the misbehaviours injected into a simulator, tried in the
// order added, and its down switch. F is the simulator's own description
// of a misbehaviour.
type faults[F any] struct {
	mu   sync.Mutex
	list []*queuedFault[F]
	down bool
}

type queuedFault[F any] struct {
	path  string // "": every path
	times int    // calls left; 0: every call until clear
	fault F
}

// add queues f for path ("": every path) and for times calls (0: until
// clear).
func (q *faults[F]) add(path string, times int, f F) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.list = append(q.list, &queuedFault[F]{path: path, times: times, fault: f})
}

// addNext queues f for the next n calls of path; n <= 0 or no path adds
// nothing.
func (q *faults[F]) addNext(path string, n int, f F) {
	if n > 0 && path != "" {
		q.add(path, n, f)
	}
}

// next takes one use of the first fault queued for path.
func (q *faults[F]) next(path string) (F, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, cand := range q.list {
		if cand.path != "" && cand.path != path {
			continue
		}
		if cand.times > 0 {
			cand.times--
			if cand.times == 0 {
				q.list = append(q.list[:i:i], q.list[i+1:]...)
			}
		}
		return cand.fault, true
	}
	var none F
	return none, false
}

// clear removes every fault.
func (q *faults[F]) clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.list = nil
}

func (q *faults[F]) setDown(down bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.down = down
}

func (q *faults[F]) isDown() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.down
}

// apiFault is one injected misbehaviour of a QQ or Weibo endpoint.
type apiFault struct {
	code        int    // a provider error code, in the endpoint's own shape
	busy        bool   // the gateway's HTTP 503
	stall       bool   // no answer until the client gives up
	status      int    // a raw answer: status, content type, body
	contentType string // (raw)
	body        string // (raw)
}

// serve answers r as f says; busy and fail write the provider's own busy
// answer and error.
func (f apiFault) serve(w http.ResponseWriter, r *http.Request, busy func(http.ResponseWriter), fail func(http.ResponseWriter, *http.Request, int)) {
	switch {
	case f.stall:
		<-r.Context().Done()
	case f.busy:
		busy(w)
	case f.status != 0:
		w.Header().Set("Content-Type", f.contentType)
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(f.body))
	default:
		fail(w, r, f.code)
	}
}

// apiFaults is the fault injection of the QQ and Weibo simulators.
type apiFaults struct {
	faults faults[apiFault]
}

// FailNext makes the next n calls of path answer the provider's error
// code in the endpoint's own shape: QQ's JSONP/JSON error, ret/msg or
// error page; Weibo's error JSON with the HTTP status Weibo uses for the
// code, or its error page on the authorize path.
func (a *apiFaults) FailNext(path string, n, code int) {
	a.faults.addNext(path, n, apiFault{code: code})
}

// BusyNext makes the next n calls of path answer HTTP 503 from the gateway.
func (a *apiFaults) BusyNext(path string, n int) { a.faults.addNext(path, n, apiFault{busy: true}) }

// StallNext makes the next n calls of path hang until the client gives up.
func (a *apiFaults) StallNext(path string, n int) { a.faults.addNext(path, n, apiFault{stall: true}) }

// RawNext makes the next n calls of path answer exactly this.
func (a *apiFaults) RawNext(path string, n, status int, contentType, body string) {
	a.faults.addNext(path, n, apiFault{status: status, contentType: contentType, body: body})
}

// SetDown drops every connection without an answer while down is true.
func (a *apiFaults) SetDown(down bool) { a.faults.setDown(down) }

// hangUp closes the connection without an answer, as a host that is
// down, and reports whether it could (not over HTTP/2).
func hangUp(w http.ResponseWriter) bool {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return true
		}
	}
	return false
}
