package broker

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

// Scan login (小程序扫码登录): a computer's browser shows a mini-program
// code; the person scans it with WeChat, the mini-program sends its
// wx.login code and confirms or refuses; the browser, which waits on a
// self-updating page, then gets a broker session.
//
// The state of one scan lives in three single-use pending-login records,
// each taken atomically when it moves on (so a scene is scanned, and
// confirmed or refused, at most once):
//
//	scan.new.{scene}   made with the code; taken by the scan
//	scan.seen.{scene}  made by the scan (who scanned, the ticket's MAC); taken by confirm or refuse
//	scan.done.{scene}  made by confirm (the user); taken by the browser that started it
//
// Beside them a small status entry in the shared cache (waiting,
// scanned, confirmed, refused) is what the page and its long poll read,
// and the code image waits in the cache until the scan expires. Every
// record carries the MAC of the browser's own scan cookie: only that
// browser sees the page and gets the session. No user or identity is
// written before a person confirms.

const (
	scanCookie = "qiao_scan"
	// scanTTL is how long a code may be scanned and the scan confirmed.
	scanTTL = 3 * time.Minute
	// scanKeep is how long the status outlives the scan, so that a
	// reload of an expired page still offers a new code.
	scanKeep = 30 * time.Minute
	// scanPollWait is the longest one long poll is held.
	scanPollWait = 20 * time.Second
	// scanMaxBody caps a mini-program request.
	scanMaxBody = 4 << 10
)

// Scan states, as the status endpoint and the mini-program API name them.
const (
	scanWaiting   = "waiting"
	scanScanned   = "scanned"
	scanConfirmed = "confirmed"
	scanRefused   = "refused"
	scanExpired   = "expired"
)

// scanCoder is a connector that can sign in a computer by a code scanned
// in its app (the mini-program with scan_login).
type scanCoder interface {
	ScanEnabled() bool
	ScanCode(ctx context.Context, scene string) (image []byte, contentType string, err error)
}

// scanner returns the connector as a scanCoder when scan login is on.
func (c *Connector) scanner() (scanCoder, bool) {
	if c == nil {
		return nil, false
	}
	s, ok := c.Impl.(scanCoder)
	if !ok || !s.ScanEnabled() {
		return nil, false
	}
	_, code := c.code()
	return s, code
}

// browserLogin reports whether the connector signs a browser in: a web
// connector, or a mini-program with scan login.
func (c *Connector) browserLogin() bool {
	if _, ok := c.web(); ok {
		return true
	}
	_, ok := c.scanner()
	return ok
}

// scanStatus is the status entry of a scene, in the cache.
type scanStatus struct {
	Status    string    `json:"status"`
	Connector string    `json:"connector"`
	Client    string    `json:"client"`
	AuthQuery string    `json:"auth"`
	Binding   string    `json:"binding"` // MAC of the browser's scan cookie
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// current is the status as of now: waiting or scanned turn expired.
func (s scanStatus) current(now time.Time) string {
	if (s.Status == scanWaiting || s.Status == scanScanned) && !now.Before(s.ExpiresAt) {
		return scanExpired
	}
	return s.Status
}

// scanRecord is the data of the scan.* pending logins.
type scanRecord struct {
	AuthQuery   string    `json:"auth"`
	RequestedAt time.Time `json:"requested_at"`
	Subject     string    `json:"subject,omitempty"` // who scanned (openid)
	Ticket      string    `json:"ticket,omitempty"`  // MAC of the ticket the scanner got
	UserID      string    `json:"user,omitempty"`    // who confirmed
}

func scanKey(phase, scene string) string { return "scan." + phase + "." + scene }

func statusKey(scene string) string    { return "scan-status:" + scene }
func scanImageKey(scene string) string { return "scan-code:" + scene }

// validScene reports whether s looks like a scene the broker made.
func validScene(s string) bool { return len(s) == 24 && validStateChars(s) }

func validStateChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

func (h *loginHandler) scanRoutes(s *mux.Router) {
	page := func(next http.HandlerFunc) http.HandlerFunc { return h.scanLimit(false, next) }
	api := func(next http.HandlerFunc) http.HandlerFunc { return h.scanLimit(true, next) }
	s.HandleFunc("/scan/{scene}", page(h.handleScanPage)).Methods(http.MethodGet)
	s.HandleFunc("/scan/{scene}/code", page(h.handleScanImage)).Methods(http.MethodGet)
	s.HandleFunc("/scan/{scene}/status", api(h.handleScanStatus)).Methods(http.MethodGet)
	s.HandleFunc("/scan/{scene}/finish", page(h.handleScanFinish)).Methods(http.MethodGet)
	s.HandleFunc("/scan/{scene}/back", page(h.handleScanBack)).Methods(http.MethodGet)
	s.HandleFunc("/api/v1/scan/{scene}", api(h.handleScanAPI("scan"))).Methods(http.MethodPost)
	s.HandleFunc("/api/v1/scan/{scene}/confirm", api(h.handleScanAPI("confirm"))).Methods(http.MethodPost)
	s.HandleFunc("/api/v1/scan/{scene}/refuse", api(h.handleScanAPI("refuse"))).Methods(http.MethodPost)
}

// scanLimit gives the scan endpoints the login endpoints' rate limit:
// per address, as the provider callbacks (the scan is where a provider
// sends the person back, in its way); JSON answers for the API and the
// long poll.
func (h *loginHandler) scanLimit(asJSON bool, next http.HandlerFunc) http.HandlerFunc {
	return h.limited(limitCallback, asJSON, nil, next)
}

// ------------------------------------------------------------ browser

// startScan asks WeChat for a code and shows it. A WeChat failure shows
// the other connectors instead, never WeChat's words; the admin gets a
// log line with WeChat's code.
func (h *loginHandler) startScan(w http.ResponseWriter, r *http.Request, conn *Connector, sc scanCoder, data pendingData) {
	ctx := r.Context()
	scene := randomString(24)
	img, ct, err := sc.ScanCode(ctx, scene)
	if err != nil {
		h.scanCodeFailed(w, r, conn, data, err)
		return
	}
	binding := ""
	if c, err := h.cookie(r, scanCookie); err == nil && len(c.Value) >= 32 && len(c.Value) <= 64 && validStateChars(c.Value) {
		binding = c.Value
	} else {
		binding = randomString(32)
		h.setCookie(w, scanCookie, binding, 0)
	}
	now := h.now().UTC()
	exp := now.Add(scanTTL)
	rec, _ := json.Marshal(scanRecord{AuthQuery: data.AuthQuery, RequestedAt: data.RequestedAt})
	st := scanStatus{Status: scanWaiting, Connector: conn.ID, Client: clientOf(data.AuthQuery), AuthQuery: data.AuthQuery,
		Binding: h.mac("scan", binding), CreatedAt: now, ExpiresAt: exp}
	err = h.store.PutCache(ctx, scanImageKey(scene), append([]byte(ct+"\n"), img...), exp)
	if err == nil {
		err = h.putScanStatus(ctx, scene, st)
	}
	if err == nil {
		err = h.store.CreateLogin(ctx, storage.PendingLogin{State: scanKey("new", scene), ConnectorID: conn.ID,
			Binding: st.Binding, Data: rec, CreatedAt: now, ExpiresAt: exp})
	}
	if err != nil {
		h.log.Error("storing a pending scan", "err", err)
		h.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	http.Redirect(w, r, h.url("/scan/"+scene), http.StatusSeeOther)
}

// scanCodeFailed shows the chooser without the scan connector and tells
// the admin what WeChat said.
func (h *loginHandler) scanCodeFailed(w http.ResponseWriter, r *http.Request, conn *Connector, data pendingData, err error) {
	attrs := []any{"connector", conn.ID, "type", conn.Type, "err", err.Error()}
	var pe *connectors.ProviderError
	if errors.As(err, &pe) {
		attrs = append(attrs, "provider", pe.Provider, "endpoint", pe.Endpoint, "code", pe.Code)
	}
	// Making the code is the application's own call: anything but WeChat
	// being busy is its configuration (an error), whatever kind WeChat's
	// errcode maps to.
	result := outcomeUnavailable
	if classify(err).Result == outcomeUnavailable {
		h.log.Warn("mini-program code unavailable: scan login not offered", attrs...)
	} else {
		result = outcomeError
		h.log.Error("mini-program code refused: check the connector's scan_login configuration", attrs...)
	}
	h.metrics.logins.WithLabelValues(conn.ID, string(result)).Inc()
	h.audit(r.Context(), r, storage.AuditEvent{Action: string(actionLogin), ConnectorID: conn.ID, ClientID: clientOf(data.AuthQuery), Result: string(result), Detail: "mini-program code not made"})
	ar, perr := h.resumeAuthorize(r, data.AuthQuery)
	var c *client
	if perr == nil {
		c, _ = ar.GetClient().(*client)
	}
	if c == nil {
		h.errorPage(w, r, http.StatusServiceUnavailable, msgScanUnavailable)
		return
	}
	choices, note := h.chooserConnectors(r, c)
	d := pageData{Title: msgChooseTitle, Client: c.Name, Note: note, Message: msgScanUnavailable}
	form := ar.GetRequestForm()
	for _, k := range choices {
		if k.ID == conn.ID {
			continue
		}
		d.Choices = append(d.Choices, h.newChoice(r, k, h.authURLWith(form, k)))
	}
	h.render(w, r, http.StatusServiceUnavailable, "chooser.html", d)
}

func (h *loginHandler) putScanStatus(ctx context.Context, scene string, st scanStatus) error {
	raw, _ := json.Marshal(st)
	return h.store.PutCache(ctx, statusKey(scene), raw, st.ExpiresAt.Add(scanKeep))
}

// scanStatusOf reads the status of scene; ErrNotFound if unknown.
func (h *loginHandler) scanStatusOf(ctx context.Context, scene string) (scanStatus, error) {
	var st scanStatus
	if !validScene(scene) {
		return st, storage.ErrNotFound
	}
	raw, _, err := h.store.GetCache(ctx, statusKey(scene))
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return st, storage.ErrNotFound
	}
	return st, nil
}

// ownScan returns the status of the request's scene when this browser
// started it; otherwise it has answered (error page or JSON error).
func (h *loginHandler) ownScan(w http.ResponseWriter, r *http.Request, asJSON bool) (string, scanStatus, bool) {
	scene := mux.Vars(r)["scene"]
	st, err := h.scanStatusOf(r.Context(), scene)
	fail := func(status int, msg msgID, code string) {
		if asJSON {
			writeJSON(w, status, oauthError{Error: code, Description: catalog["en"][msg]})
		} else {
			h.errorPage(w, r, status, msg)
		}
	}
	if errors.Is(err, storage.ErrNotFound) {
		fail(http.StatusNotFound, msgScanUnknown, "unknown_scene")
		return "", st, false
	} else if err != nil {
		h.log.Error("reading a scan", "err", err)
		fail(http.StatusServiceUnavailable, msgUnavailable, "temporarily_unavailable")
		return "", st, false
	}
	c, err := h.cookie(r, scanCookie)
	if err != nil || !hmac.Equal([]byte(h.mac("scan", c.Value)), []byte(st.Binding)) {
		fail(http.StatusForbidden, msgScanOtherBrowser, "other_browser")
		return "", st, false
	}
	return scene, st, true
}

// scanView is what the scan page shows.
type scanView struct {
	Scene, Status, Connector string
	ImageURL, StatusURL      string
	FinishURL, NewURL        string
	BackURL                  string
	Created, Expires         string
	ExpiresUnix              int64
}

func (h *loginHandler) handleScanPage(w http.ResponseWriter, r *http.Request) {
	scene, st, ok := h.ownScan(w, r, false)
	if !ok {
		return
	}
	lang := pickLang(r)
	cur := st.current(h.now())
	q, _ := url.ParseQuery(st.AuthQuery)
	q.Set("connector_id", st.Connector)
	v := &scanView{
		Scene: scene, Status: cur,
		ImageURL:    h.url("/scan/" + scene + "/code"),
		StatusURL:   h.url("/scan/" + scene + "/status"),
		FinishURL:   h.url("/scan/" + scene + "/finish"),
		BackURL:     h.url("/scan/" + scene + "/back"),
		NewURL:      h.url("/auth") + "?" + q.Encode(),
		Created:     localTime(st.CreatedAt, lang),
		Expires:     localTime(st.ExpiresAt, lang),
		ExpiresUnix: st.ExpiresAt.Unix(),
	}
	if k, ok := h.connectors[st.Connector]; ok {
		v.Connector = connectorName(k, lang)
	}
	clientName := st.Client
	if c, ok := h.clients.get(st.Client); ok {
		clientName = c.Name
	}
	h.render(w, r, http.StatusOK, "scan.html", pageData{Title: msgScanTitle, Client: clientName, Scan: v, Script: "scan.js"})
}

func (h *loginHandler) handleScanImage(w http.ResponseWriter, r *http.Request) {
	scene, _, ok := h.ownScan(w, r, false)
	if !ok {
		return
	}
	raw, exp, err := h.store.GetCache(r.Context(), scanImageKey(scene))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	ct, img := "image/png", raw
	for i, c := range raw {
		if c == '\n' {
			ct, img = string(raw[:i]), raw[i+1:]
			break
		}
	}
	if ct != "image/png" && ct != "image/jpeg" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Security-Policy", "default-src 'none'")
	w.Header().Set("Cache-Control", "private, max-age="+strconv.Itoa(max(0, int(time.Until(exp)/time.Second))))
	_, _ = w.Write(img)
}

// handleScanStatus is the page's long poll: it answers when the status
// differs from ?since= (or at once without it), or after scanPollWait.
func (h *loginHandler) handleScanStatus(w http.ResponseWriter, r *http.Request) {
	scene, st, ok := h.ownScan(w, r, true)
	if !ok {
		return
	}
	since := r.URL.Query().Get("since")
	deadline := time.NewTimer(scanPollWait)
	defer deadline.Stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for since != "" && st.current(h.now()) == since {
		select {
		case <-r.Context().Done():
			return
		case <-deadline.C:
			since = ""
			continue
		case <-tick.C:
		}
		next, err := h.scanStatusOf(r.Context(), scene)
		if err == nil {
			st = next
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": st.current(h.now()), "expires_at": st.ExpiresAt.Unix()})
}

// handleScanFinish gives the browser that started a confirmed scan its
// session, and resumes the authorization request.
func (h *loginHandler) handleScanFinish(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	scene, st, ok := h.ownScan(w, r, false)
	if !ok {
		return
	}
	pl, err := h.store.TakeLogin(ctx, scanKey("done", scene))
	if errors.Is(err, storage.ErrNotFound) {
		// Not confirmed (yet), or already used: the page says which.
		http.Redirect(w, r, h.url("/scan/"+scene), http.StatusSeeOther)
		return
	} else if err != nil {
		h.log.Error("loading a confirmed scan", "err", err)
		h.errorPage(w, r, http.StatusServiceUnavailable, msgUnavailable)
		return
	}
	var rec scanRecord
	conn, known := h.connectors[pl.ConnectorID]
	if json.Unmarshal(pl.Data, &rec) != nil || !known || !hmac.Equal([]byte(pl.Binding), []byte(st.Binding)) {
		h.errorPage(w, r, http.StatusBadRequest, msgLoginExpired)
		return
	}
	now := h.now().UTC()
	old, _ := h.currentSession(r)
	sess, cookie := h.newBrowserSession(old, rec.UserID, conn.ID, rec.Subject, now)
	done := &signIn{flow: h, sess: sess, cookie: cookie, conn: conn.ID, c: storage.LoginCompletion{
		Session: &sess.Session,
		Audit: []storage.AuditEvent{h.auditEvent(ctx, storage.AuditEvent{Action: string(actionLogin), UserID: rec.UserID, ConnectorID: conn.ID,
			ClientID: clientOf(rec.AuthQuery), Result: string(outcomeSuccess), Detail: "scan"})},
	}}
	if old != nil {
		done.c.DeleteSession = old.ID
	}
	ar, err := h.resumeAuthorize(r, rec.AuthQuery)
	if err != nil {
		// The sign-in stands even if the stored request no longer passes.
		if done.write(w, r) {
			h.writeAuthorizeError(w, r, ar, err)
		}
		return
	}
	h.consentOrFinish(w, r, ar, sess, rec.UserID, conn.ID, rec.Subject, now, rec.RequestedAt, nil, done)
}

// handleScanBack sends the browser of a refused (or expired) scan back
// to the app with access_denied.
func (h *loginHandler) handleScanBack(w http.ResponseWriter, r *http.Request) {
	_, st, ok := h.ownScan(w, r, false)
	if !ok {
		return
	}
	ar, err := h.resumeAuthorize(r, st.AuthQuery)
	if err != nil {
		h.writeAuthorizeError(w, r, ar, err)
		return
	}
	hint := "The sign-in was not completed."
	if st.current(h.now()) == scanRefused {
		hint = "The user refused the sign-in in the mini-program."
	}
	h.provider.WriteAuthorizeError(r.Context(), w, ar, fosite.ErrAccessDenied.WithHint(hint))
}

// ------------------------------------------------------- mini-program

// scanRequest is what the mini-program sends (JSON or a form).
type scanRequest struct {
	Code   string `json:"code"`
	Ticket string `json:"ticket"`
}

// scanAPIError is a JSON error of the mini-program API.
func scanAPIError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, oauthError{Error: code, Description: desc})
}

// handleScanAPI serves the mini-program's scan, confirm and refuse.
func (h *loginHandler) handleScanAPI(step string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		var req scanRequest
		if len(r.PostForm) > 0 {
			req.Code, req.Ticket = r.PostForm.Get("code"), r.PostForm.Get("ticket")
		} else if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, scanMaxBody)).Decode(&req); err != nil {
			scanAPIError(w, http.StatusBadRequest, "invalid_request", "The body must be JSON: {\"code\": ..., \"ticket\": ...}.")
			return
		}
		scene := mux.Vars(r)["scene"]
		st, err := h.scanStatusOf(ctx, scene)
		if errors.Is(err, storage.ErrNotFound) {
			scanAPIError(w, http.StatusNotFound, "unknown_scene", "This code is unknown: show a new code on the computer.")
			return
		} else if err != nil {
			h.log.Error("reading a scan", "err", err)
			scanAPIError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Please try again.")
			return
		}
		now := h.now().UTC()
		cur := st.current(now)
		want := scanScanned
		if step == "scan" {
			want = scanWaiting
		}
		if cur != want {
			scanStateError(w, step, cur)
			return
		}
		conn := h.connectors[st.Connector]
		exchanger, ok := conn.code()
		if !ok {
			scanAPIError(w, http.StatusNotFound, "unknown_scene", "This code's connector is no longer configured.")
			return
		}
		if step == "refuse" && (req.Ticket == "" || len(req.Ticket) > 128) || step == "confirm" && (req.Ticket == "" || len(req.Ticket) > 128 || req.Code == "") {
			scanAPIError(w, http.StatusBadRequest, "invalid_request", "ticket (and, to confirm, a fresh wx.login code) is required.")
			return
		}
		var ident connectors.Identity
		if step != "refuse" {
			if req.Code == "" || len(req.Code) > 512 {
				scanAPIError(w, http.StatusBadRequest, "invalid_request", "code (the wx.login code) is missing or malformed.")
				return
			}
			if ident, err = exchanger.ExchangeCode(ctx, req.Code); err != nil {
				h.loginFailed(ctx, conn, st.Client, err).write(w)
				return
			}
		}
		switch step {
		case "scan":
			h.scanScan(w, r, scene, st, conn, ident)
		case "confirm":
			h.scanConfirm(w, r, scene, st, conn, ident, req.Ticket)
		default:
			h.scanRefuse(w, r, scene, st, conn, req.Ticket)
		}
	}
}

// scanStateError answers a step the scene's status does not allow.
func scanStateError(w http.ResponseWriter, step, cur string) {
	switch cur {
	case scanExpired:
		scanAPIError(w, http.StatusGone, "expired_scene", "This code has expired: show a new code on the computer.")
	case scanWaiting:
		scanAPIError(w, http.StatusConflict, "not_scanned", "Scan the code first.")
	case scanScanned:
		scanAPIError(w, http.StatusConflict, "already_scanned", "This code has already been scanned.")
	default:
		scanAPIError(w, http.StatusConflict, "already_"+cur, fmt.Sprintf("This sign-in was already %s.", cur))
	}
}

func (h *loginHandler) scanScan(w http.ResponseWriter, r *http.Request, scene string, st scanStatus, conn *Connector, ident connectors.Identity) {
	ctx := r.Context()
	pl, err := h.store.TakeLogin(ctx, scanKey("new", scene))
	if errors.Is(err, storage.ErrNotFound) {
		scanAPIError(w, http.StatusConflict, "already_scanned", "This code has already been scanned.")
		return
	} else if err != nil {
		h.log.Error("taking a pending scan", "err", err)
		scanAPIError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Please try again.")
		return
	}
	var rec scanRecord
	_ = json.Unmarshal(pl.Data, &rec)
	ticket := randomString(32)
	rec.Subject, rec.Ticket = ident.Subject, h.mac("scan-ticket", ticket)
	raw, _ := json.Marshal(rec)
	pl.State, pl.Data = scanKey("seen", scene), raw
	st.Status = scanScanned
	if err := h.store.CreateLogin(ctx, pl); err != nil {
		h.log.Error("recording a scan", "err", err)
		scanAPIError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Please try again.")
		return
	}
	if err := h.putScanStatus(ctx, scene, st); err != nil {
		h.log.Warn("updating a scan's status", "err", err)
	}
	clientName := st.Client
	if c, ok := h.clients.get(st.Client); ok {
		clientName = c.Name
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"status":      scanScanned,
		"ticket":      ticket,
		"client_id":   st.Client,
		"client_name": clientName,
		"connector":   conn.ID,
		"created_at":  st.CreatedAt.Unix(),
		"expires_at":  st.ExpiresAt.Unix(),
	})
}

// takeScanned takes the scanned record when ticket (and, to confirm,
// subject) match; otherwise it puts it back and has answered.
func (h *loginHandler) takeScanned(w http.ResponseWriter, r *http.Request, scene, ticket, subject string, needSubject bool) (storage.PendingLogin, scanRecord, bool) {
	ctx := r.Context()
	var rec scanRecord
	pl, err := h.store.TakeLogin(ctx, scanKey("seen", scene))
	if errors.Is(err, storage.ErrNotFound) {
		scanAPIError(w, http.StatusConflict, "not_scanned", "This code has not been scanned, or its sign-in is over.")
		return pl, rec, false
	} else if err != nil {
		h.log.Error("taking a scanned scan", "err", err)
		scanAPIError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Please try again.")
		return pl, rec, false
	}
	_ = json.Unmarshal(pl.Data, &rec)
	bad := ""
	switch {
	case !hmac.Equal([]byte(rec.Ticket), []byte(h.mac("scan-ticket", ticket))):
		bad = "The ticket is not the one this scan was given."
	case needSubject && rec.Subject != subject:
		bad = "The wx.login code is not from the person who scanned."
	}
	if bad != "" {
		if err := h.store.CreateLogin(ctx, pl); err != nil {
			h.log.Warn("restoring a scanned scan", "err", err)
		}
		scanAPIError(w, http.StatusForbidden, "access_denied", bad)
		return pl, rec, false
	}
	return pl, rec, true
}

func (h *loginHandler) scanConfirm(w http.ResponseWriter, r *http.Request, scene string, st scanStatus, conn *Connector, ident connectors.Identity, ticket string) {
	ctx := r.Context()
	pl, rec, ok := h.takeScanned(w, r, scene, ticket, ident.Subject, true)
	if !ok {
		return
	}
	// The same user and sub the token exchange gives this person.
	userID, _, update, err := h.identity.resolveIdentity(ctx, conn, ident)
	if err == nil && update != nil {
		// What the token exchange writes with its tokens (last use, the
		// new session_key) is written here, at the confirm.
		err = h.store.UpdateIdentity(ctx, *update)
	}
	if err != nil {
		h.log.Error("resolving the user of a scan login", "connector", conn.ID, "err", err)
		if err := h.store.CreateLogin(ctx, pl); err != nil {
			h.log.Warn("restoring a scanned scan", "err", err)
		}
		scanAPIError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Please try again.")
		return
	}
	rec.UserID = userID
	raw, _ := json.Marshal(rec)
	pl.State, pl.Data = scanKey("done", scene), raw
	if min := h.now().UTC().Add(time.Minute); pl.ExpiresAt.Before(min) {
		pl.ExpiresAt = min // time for the browser to notice
	}
	if err := h.store.CreateLogin(ctx, pl); err != nil {
		h.log.Error("recording a confirmed scan", "err", err)
		scanAPIError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "Please try again.")
		return
	}
	st.Status = scanConfirmed
	if err := h.putScanStatus(ctx, scene, st); err != nil {
		h.log.Warn("updating a scan's status", "err", err)
	}
	h.audit(ctx, r, storage.AuditEvent{Action: string(actionScanConfirm), UserID: userID, ConnectorID: conn.ID, ClientID: st.Client, Result: string(outcomeSuccess)})
	writeJSON(w, http.StatusOK, map[string]any{"status": scanConfirmed})
}

func (h *loginHandler) scanRefuse(w http.ResponseWriter, r *http.Request, scene string, st scanStatus, conn *Connector, ticket string) {
	ctx := r.Context()
	if _, _, ok := h.takeScanned(w, r, scene, ticket, "", false); !ok {
		return
	}
	st.Status = scanRefused
	if err := h.putScanStatus(ctx, scene, st); err != nil {
		h.log.Warn("updating a scan's status", "err", err)
	}
	h.metrics.logins.WithLabelValues(conn.ID, string(outcomeDenied)).Inc()
	h.audit(ctx, r, storage.AuditEvent{Action: string(actionLogin), ConnectorID: conn.ID, ClientID: st.Client, Result: string(outcomeDenied), Detail: "refused in the mini-program"})
	writeJSON(w, http.StatusOK, map[string]any{"status": scanRefused})
}
