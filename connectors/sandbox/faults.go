package sandbox

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// FaultKind is how an injected fault misbehaves.
type FaultKind int

// The fault kinds. Error and Busy answer in the provider's own shape;
// the others are the same on every simulator.
const (
	// FaultError answers the provider's error Code in the shape the
	// endpoint uses: WeChat's errcode JSON (HTTP 200); QQ's
	// error/error_description (JSONP unless fmt=json) or get_user_info's
	// ret/msg (HTTP 200); Weibo's error JSON with the HTTP status Weibo
	// sends with the code. On an authorize page it is the provider's
	// error page instead.
	FaultError FaultKind = iota
	// FaultBusy answers what the provider says when it is overloaded:
	// WeChat errcode -1, QQ's gateway page with HTTP 503, Weibo's
	// error_code 10002 with HTTP 503.
	FaultBusy
	// FaultTimeout holds the request until the client gives up.
	FaultTimeout
	// FaultDown closes the connection without an answer, as a dead host
	// or a reset would (where the connection cannot be taken over, as
	// over HTTP/2: HTTP 502). Go's client retries an idempotent request
	// once on a reused connection, so give Times 0 (or 2) to be sure the
	// caller sees it.
	FaultDown
	// FaultEmpty answers HTTP 200 with no body: WeChat's with
	// Content-Type "text/html; charset=gbk" (seen on cgi-bin/token), QQ's
	// and Weibo's with the Content-Type of their API replies.
	FaultEmpty
	// FaultHTML answers HTTP 200 with an HTML page from something in
	// between (a captive portal, a proxy).
	FaultHTML
	// FaultRaw answers exactly Status (0: 200), ContentType ("": the
	// provider's API Content-Type) and Body.
	FaultRaw
)

var faultKindNames = map[FaultKind]string{
	FaultError: "error", FaultBusy: "busy", FaultTimeout: "timeout", FaultDown: "down",
	FaultEmpty: "empty", FaultHTML: "html", FaultRaw: "raw",
}

// String is the kind's name in POST /sandbox/fault.
func (k FaultKind) String() string {
	if s, ok := faultKindNames[k]; ok {
		return s
	}
	return "FaultKind(" + strconv.Itoa(int(k)) + ")"
}

// Fault is a misbehaviour injected into a simulator: every simulator
// (WeChat, QQ, Weibo) takes the same Fault through InjectFault.
type Fault struct {
	// Path is the endpoint's path (sandbox.QQPathToken,
	// "/sns/jscode2session"); "" means every path of the simulator but
	// its /sandbox/ helpers (avatars, wx.login, the fault form).
	Path string
	Kind FaultKind
	// Code is the provider's error code, for FaultError: a WeChat
	// errcode (-1, 45011, 40029...), a QQ code (100016), a Weibo
	// error_code (10023).
	Code int
	// Status, ContentType and Body are the answer of FaultRaw.
	Status      int
	ContentType string
	Body        string
	// Times is how many calls the fault answers; 0: every call until
	// ClearFaults.
	Times int
}

// faultHTMLPage is the page of FaultHTML.
const faultHTMLPage = "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>\n"

// faultPath is the simulators' fault form (sandboxFault).
const faultPath = "/sandbox/fault"

// faultWire is what a simulator's faults say in its own shape.
type faultWire struct {
	contentType string // of API replies: FaultRaw's default
	emptyType   string // FaultEmpty's Content-Type
	busy        func(http.ResponseWriter, *http.Request)
	fail        func(http.ResponseWriter, *http.Request, int) // FaultError
}

// serve answers r as f says.
func (f Fault) serve(w http.ResponseWriter, r *http.Request, wire faultWire) {
	switch f.Kind {
	case FaultTimeout:
		<-r.Context().Done()
	case FaultDown:
		if !hangUp(w) {
			w.WriteHeader(http.StatusBadGateway)
		}
	case FaultBusy:
		wire.busy(w, r)
	case FaultEmpty:
		w.Header().Set("Content-Type", wire.emptyType)
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	case FaultHTML:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(faultHTMLPage))
	case FaultRaw:
		ct, status := f.ContentType, f.Status
		if ct == "" {
			ct = wire.contentType
		}
		if status == 0 {
			status = http.StatusOK
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(f.Body))
	default:
		wire.fail(w, r, f.Code)
	}
}

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

// faultBox is what every simulator embeds: the faults injected into it,
// tried in the order added, and the count of calls of each path.
type faultBox struct {
	mu     sync.Mutex
	faults []*Fault // copies, Times counting down
	calls  map[string]int
}

// InjectFault adds a fault; faults are tried in the order added, and a
// call gets the first whose Path matches.
func (b *faultBox) InjectFault(f Fault) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = append(b.faults, &f)
}

// ClearFaults removes every fault.
func (b *faultBox) ClearFaults() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.faults = nil
}

// Calls returns how many requests a path has received (faulted ones and
// the /sandbox/ helpers included).
func (b *faultBox) Calls(path string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls[path]
}

// count notes a call of path.
func (b *faultBox) count(path string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.calls == nil {
		b.calls = map[string]int{}
	}
	b.calls[path]++
}

// next takes one use of the first fault for path.
func (b *faultBox) next(path string) (Fault, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, f := range b.faults {
		if f.Path != "" && f.Path != path {
			continue
		}
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				b.faults = append(b.faults[:i:i], b.faults[i+1:]...)
			}
		}
		return *f, true
	}
	return Fault{}, false
}

// fault answers r with the first fault for its path, unless r is for a
// /sandbox/ helper, and reports whether it did.
func (b *faultBox) fault(w http.ResponseWriter, r *http.Request, wire faultWire) bool {
	if strings.HasPrefix(r.URL.Path, "/sandbox/") {
		return false
	}
	f, ok := b.next(r.URL.Path)
	if ok {
		f.serve(w, r, wire)
	}
	return ok
}

// sandboxFault serves POST /sandbox/fault, InjectFault over HTTP for
// tests in other processes (the mini-program SDK's) and for people
// rehearsing a provider's bad days in the demo:
// path=/sns/jscode2session&code=-1&times=2 makes the next two calls of
// that path answer error -1; kind= picks another kind (busy, timeout,
// down, empty, html, raw with status, content_type and body); errcode=
// is the same as code=; clear=1 removes every fault.
func (b *faultBox) sandboxFault(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	answer := func(status int, v any) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(v)
	}
	bad := func(msg string) { answer(http.StatusBadRequest, map[string]string{"error": msg}) }
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		answer(http.StatusMethodNotAllowed, map[string]string{"error": "use POST"})
		return
	}
	if r.FormValue("clear") != "" {
		b.ClearFaults()
		answer(http.StatusOK, map[string]string{"faults": "cleared"})
		return
	}
	f := Fault{Path: r.FormValue("path"), ContentType: r.FormValue("content_type"), Body: r.FormValue("body")}
	kind, kindOK := FaultError, false
	for k, name := range faultKindNames {
		if name == r.FormValue("kind") {
			kind, kindOK = k, true
		}
	}
	f.Kind = kind
	code := r.FormValue("code")
	if code == "" {
		code = r.FormValue("errcode")
	}
	var err1, err2, err3 error
	f.Code, err1 = strconv.Atoi(code)
	f.Times, err2 = strconv.Atoi(r.FormValue("times"))
	if s := r.FormValue("status"); s != "" {
		f.Status, err3 = strconv.Atoi(s)
	}
	switch {
	case f.Path == "" || !strings.HasPrefix(f.Path, "/") || strings.HasPrefix(f.Path, "/sandbox/"):
		bad("path must be a path of the provider such as /sns/jscode2session")
	case !kindOK && r.FormValue("kind") != "":
		bad("kind must be one of error, busy, timeout, down, empty, html, raw")
	case kind == FaultError && (err1 != nil || f.Code == 0):
		bad("code (or errcode) must be a non-zero provider error code such as -1")
	case err2 != nil || f.Times < 1 || f.Times > 1000:
		bad("times must be a number of calls from 1 to 1000")
	case err3 != nil || f.Status != 0 && (f.Status < 100 || f.Status > 999):
		bad("status must be an HTTP status such as 404")
	default:
		if kind != FaultError {
			f.Code = 0
		}
		b.InjectFault(f)
		answer(http.StatusOK, map[string]any{"path": f.Path, "kind": kind.String(), "code": f.Code, "times": f.Times})
	}
}
