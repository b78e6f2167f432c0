package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Paths the Weibo simulator serves (api.weibo.com's real paths).
const (
	WeiboPathAuthorize = "/oauth2/authorize"
	WeiboPathToken     = "/oauth2/access_token"
	WeiboPathTokenInfo = "/oauth2/get_token_info"
	WeiboPathRevoke    = "/oauth2/revokeoauth2"
	WeiboPathUsersShow = "/2/users/show.json"
	WeiboPathEmail     = "/2/account/profile/email.json"
)

// Weibo documents neither lifetime: codes live 10 minutes here, tokens a
// day (86400 s, a value seen in real replies).
const (
	weiboDefaultCodeTTL  = 10 * time.Minute
	weiboDefaultTokenTTL = 86400 * time.Second
)

// WeiboApp is an app registered at the simulated Weibo.
type WeiboApp struct {
	ClientID    string // the App Key, digits like "1352222456"
	Secret      string // the App Secret
	RedirectURI string // the registered callback; redirect_uri must equal it
	// Email: the app was granted the email API; without it
	// /2/account/profile/email.json answers 10014.
	Email bool
}

// WeiboOptions configure a Weibo simulator.
type WeiboOptions struct {
	Apps     []WeiboApp
	Persons  []Person      // nil: DefaultPersons()
	Clock    Clock         // nil: real time
	CodeTTL  time.Duration // 0: 10 minutes
	TokenTTL time.Duration // 0: 86400 s
}

// Weibo simulates api.weibo.com: the authorize page (a person picker),
// the form-POST token call, get_token_info, revokeoauth2, users/show and
// the email API, with Weibo's quirks: errors are real 4xx replies with a
// JSON body, JSON is sent as text/plain;charset=UTF-8, uids are global
// strings and the numeric id in profiles can exceed 2^53.
type Weibo struct {
	apiFaults // FailNext, BusyNext, StallNext, RawNext, SetDown
	opts      WeiboOptions

	mu     sync.Mutex
	codes  map[string]*weiboCode
	tokens map[string]*weiboGrant
}

type weiboCode struct {
	app         *WeiboApp
	person      Person
	redirectURI string
	scope       string
	expires     time.Time
	used        bool
}

type weiboGrant struct {
	app     *WeiboApp
	person  Person
	scope   string
	created time.Time
	expires time.Time
}

// NewWeibo returns a Weibo simulator for opts.Apps and the persons.
func NewWeibo(opts WeiboOptions) *Weibo {
	if opts.Persons == nil {
		opts.Persons = DefaultPersons()
	}
	if opts.CodeTTL == 0 {
		opts.CodeTTL = weiboDefaultCodeTTL
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = weiboDefaultTokenTTL
	}
	return &Weibo{
		opts:   opts,
		codes:  map[string]*weiboCode{},
		tokens: map[string]*weiboGrant{},
	}
}

// UID is the person's Weibo uid (the same in every app), or "" for an
// unknown person. The first persons get real-looking 10-digit uids, and
// the second one above 2^53 (9007199254740993 = 2^53+1), which a client
// that reads the numeric id as a float corrupts.
func (wb *Weibo) UID(personID string) string {
	fixed := [...]string{"1404376560", "9007199254740993", "2583117564"}
	for i, p := range wb.opts.Persons {
		if p.ID != personID {
			continue
		}
		if i < len(fixed) {
			return fixed[i]
		}
		sum := sha256.Sum256([]byte("weibo-uid\x00" + p.ID))
		return strconv.FormatUint(1000000000+binary.BigEndian.Uint64(sum[:8])%8999999999, 10)
	}
	return ""
}

func (wb *Weibo) personByUID(uid string) (Person, bool) {
	for _, p := range wb.opts.Persons {
		if wb.UID(p.ID) == uid {
			return p, true
		}
	}
	return Person{}, false
}

// RateLimitNext makes the next n calls of path answer 403 with 10023
// "User requests out of rate limit!".
func (wb *Weibo) RateLimitNext(path string, n int) { wb.FailNext(path, n, 10023) }

func (wb *Weibo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if wb.faults.isDown() {
		if !hangUp(w) {
			w.WriteHeader(http.StatusBadGateway)
		}
		return
	}
	if serveAvatar(w, r, wb.opts.Persons) {
		return
	}
	if err := r.ParseForm(); err != nil {
		wb.apiError(w, r, 10008, "")
		return
	}
	if f, ok := wb.faults.next(r.URL.Path); ok {
		f.serve(w, r, func(w http.ResponseWriter) {
			weiboWrite(w, http.StatusServiceUnavailable, weiboErrorBody(r.URL.Path, 10002, ""))
		}, wb.fail)
		return
	}
	switch r.URL.Path {
	case WeiboPathAuthorize:
		wb.authorize(w, r)
	case WeiboPathToken:
		wb.token(w, r)
	case WeiboPathTokenInfo:
		wb.tokenInfo(w, r)
	case WeiboPathRevoke:
		wb.revoke(w, r)
	case WeiboPathUsersShow:
		wb.usersShow(w, r)
	case WeiboPathEmail:
		wb.email(w, r)
	default:
		wb.apiError(w, r, 10020, "")
	}
}

// weiboErrorInfo gives the error string and HTTP status Weibo sends
// with a code (upstream-apis §7.2, §7.6).
func weiboErrorInfo(code int) (string, int) {
	switch code {
	case 10001:
		return "system error!", 400
	case 10002:
		return "service unavailable!", 503
	case 10006:
		return "source paramter(appkey) is missing", 400
	case 10008:
		return "param error, see doc for more info.", 400
	case 10009:
		return "too many pending tasks, system is busy!", 400
	case 10014:
		return "Insufficient app permissions!", 403
	case 10016:
		return "miss required parameter, see doc for more info.", 400
	case 10020:
		return "request api not found!", 404
	case 10021:
		return "HTTP METHOD is not suported for this request!", 405
	case 10022:
		return "IP requests out of rate limit!", 403
	case 10023:
		return "User requests out of rate limit!", 403
	case 10024:
		return "User requests for (%s) out of rate limit!", 403
	case 20003:
		return "User does not exists!", 400
	case 21322:
		return "redirect_uri_mismatch", 400
	case 21323:
		return "invalid_request", 400
	case 21324:
		return "invalid_client", 401
	case 21325:
		return "invalid_grant", 400
	case 21327:
		return "expired_token", 401
	case 21328:
		return "unsupported_grant_type", 400
	case 21329:
		return "unsupported_response_type", 400
	case 21330:
		return "access_denied", 403
	case 21331:
		return "temporarily_unavailable", 400
	case 21332:
		return "invalid_access_token", 401
	}
	return "system error!", 400
}

// weiboErrorBody is Weibo's error JSON. OAuth2 endpoints add error_uri
// and error_description.
func weiboErrorBody(path string, code int, description string) []byte {
	msg, _ := weiboErrorInfo(code)
	body := map[string]any{"error": msg, "error_code": code, "request": path}
	if strings.HasPrefix(path, "/oauth2/") {
		body["error_uri"] = path
		if description == "" {
			description = msg
		}
		body["error_description"] = description
	}
	return plainJSON(body)
}

// weiboWrite sends JSON the way Weibo does: as text/plain.
func weiboWrite(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
	w.Header().Set("Server", "weibo")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// fail answers Weibo error code: the error page on the authorize path,
// the error JSON elsewhere.
func (wb *Weibo) fail(w http.ResponseWriter, r *http.Request, code int) {
	if r.URL.Path == WeiboPathAuthorize {
		wb.errorPage(w, code)
	} else {
		wb.apiError(w, r, code, "")
	}
}

func (wb *Weibo) apiError(w http.ResponseWriter, r *http.Request, code int, description string) {
	_, status := weiboErrorInfo(code)
	weiboWrite(w, status, weiboErrorBody(r.URL.Path, code, description))
}

func (wb *Weibo) app(clientID string) (*WeiboApp, bool) {
	for i := range wb.opts.Apps {
		if wb.opts.Apps[i].ClientID == clientID {
			return &wb.opts.Apps[i], true
		}
	}
	return nil, false
}

// errorPage is Weibo's own error page, for errors it cannot redirect.
func (wb *Weibo) errorPage(w http.ResponseWriter, code int) {
	msg, _ := weiboErrorInfo(code)
	writePage(w, http.StatusBadRequest, pageTmpl, "weibo-error", map[string]any{"Code": code, "Error": msg})
}

// authorize (GET or POST) checks the app and the redirect_uri, then shows
// the picker. A picked person is redirected with a code; a refusal is
// redirected with error=access_denied&error_code=21330.
func (wb *Weibo) authorize(w http.ResponseWriter, r *http.Request) {
	f := r.Form
	app, ok := wb.app(f.Get("client_id"))
	if !ok {
		wb.errorPage(w, 21324)
		return
	}
	redirectURI := f.Get("redirect_uri")
	if redirectURI == "" || redirectURI != app.RedirectURI {
		wb.errorPage(w, 21322)
		return
	}
	if rt := f.Get("response_type"); rt != "" && rt != "code" {
		wb.redirect(w, r, redirectURI, url.Values{
			"error": {"unsupported_response_type"}, "error_code": {"21329"},
			"error_description": {"unsupported response type"},
		})
		return
	}
	if f.Get(denyParam) != "" {
		wb.redirect(w, r, redirectURI, url.Values{
			"error": {"access_denied"}, "error_code": {"21330"},
			"error_description": {"user denied your request."},
		})
		return
	}
	if id := f.Get(personParam); id != "" {
		person, ok := findPerson(wb.opts.Persons, id)
		if !ok {
			wb.errorPage(w, 21323)
			return
		}
		now := wb.opts.Clock.now()
		code := randomHex(16)
		wb.mu.Lock()
		for k, c := range wb.codes {
			if now.After(c.expires) {
				delete(wb.codes, k)
			}
		}
		wb.codes[code] = &weiboCode{app: app, person: person, redirectURI: redirectURI, scope: f.Get("scope"), expires: now.Add(wb.opts.CodeTTL)}
		wb.mu.Unlock()
		wb.redirect(w, r, redirectURI, url.Values{"code": {code}})
		return
	}
	persons, deny := pickerLinks(wb.opts.Persons, func(p Person) string { return avatarURL(r, p) }, formLink(f))
	display := f.Get("display")
	if display == "" {
		display = "default"
	}
	writePage(w, http.StatusOK, pageTmpl, "weibo-picker", map[string]any{
		"AppKey": app.ClientID, "Display": display, "Mobile": display == "mobile",
		"Persons": persons, "DenyHref": deny,
	})
}

// redirect sends the browser to redirectURI with params and the state,
// keeping any query redirectURI already has.
func (wb *Weibo) redirect(w http.ResponseWriter, r *http.Request, redirectURI string, params url.Values) {
	u, err := url.Parse(redirectURI)
	if err != nil {
		wb.errorPage(w, 21322)
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if s := r.Form.Get("state"); s != "" {
		q.Set("state", s)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// token serves POST /oauth2/access_token.
func (wb *Weibo) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		wb.apiError(w, r, 10021, "")
		return
	}
	f := r.Form
	if f.Get("client_id") == "" || f.Get("client_secret") == "" {
		wb.apiError(w, r, 21323, "miss client id or secret")
		return
	}
	app, ok := wb.app(f.Get("client_id"))
	if !ok {
		wb.apiError(w, r, 21324, "client_id error.")
		return
	}
	if f.Get("client_secret") != app.Secret {
		wb.apiError(w, r, 21324, "client_secret error.")
		return
	}
	if f.Get("grant_type") != "authorization_code" {
		wb.apiError(w, r, 21328, "unsupported grant type")
		return
	}
	code := f.Get("code")
	if code == "" {
		wb.apiError(w, r, 21323, "miss required parameter code")
		return
	}
	now := wb.opts.Clock.now()
	wb.mu.Lock()
	c, found := wb.codes[code]
	switch {
	case !found || c.used || c.app != app || now.After(c.expires):
		wb.mu.Unlock()
		// Weibo echoes the code in the description.
		wb.apiError(w, r, 21325, "invalid authorization code:"+code)
		return
	case f.Get("redirect_uri") != c.redirectURI:
		wb.mu.Unlock()
		wb.apiError(w, r, 21322, "redirect_uri_mismatch")
		return
	}
	c.used = true
	token := "2.00" + randomHex(13)
	wb.tokens[token] = &weiboGrant{app: app, person: c.person, scope: c.scope, created: now, expires: now.Add(wb.opts.TokenTTL)}
	wb.mu.Unlock()

	ttl := int(wb.opts.TokenTTL / time.Second)
	var b bytes.Buffer
	b.WriteString(`{"access_token":"` + token + `","remind_in":"` + strconv.Itoa(ttl) + `","expires_in":` + strconv.Itoa(ttl))
	b.WriteString(`,"uid":"` + wb.UID(c.person.ID) + `","isRealName":"true"}`)
	weiboWrite(w, http.StatusOK, b.Bytes())
}

// grantFor finds the live token of a request: the access_token parameter
// or an "Authorization: OAuth2 <token>" header.
func (wb *Weibo) grantFor(r *http.Request) (weiboGrant, string, int) {
	token := r.Form.Get("access_token")
	if token == "" {
		token, _ = strings.CutPrefix(r.Header.Get("Authorization"), "OAuth2 ")
	}
	if token == "" {
		return weiboGrant{}, "", 10006
	}
	wb.mu.Lock()
	defer wb.mu.Unlock()
	g, ok := wb.tokens[token]
	switch {
	case !ok:
		return weiboGrant{}, token, 21332
	case wb.opts.Clock.now().After(g.expires):
		return weiboGrant{}, token, 21327
	}
	return *g, token, 0
}

// weiboNumber is a JSON number written from its exact digits, or a
// string when the text is not all digits.
func weiboNumber(s string) json.RawMessage {
	if _, err := strconv.ParseUint(s, 10, 64); err == nil {
		return json.RawMessage(s)
	}
	return plainJSON(s)
}

// tokenInfo serves POST /oauth2/get_token_info: numbers, not strings,
// and expire_in (not expires_in).
func (wb *Weibo) tokenInfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		wb.apiError(w, r, 10021, "")
		return
	}
	g, _, code := wb.grantFor(r)
	if code != 0 {
		wb.apiError(w, r, code, "")
		return
	}
	now := wb.opts.Clock.now()
	var scope any
	if g.scope != "" {
		scope = g.scope
	}
	weiboWrite(w, http.StatusOK, plainJSON(map[string]any{
		"uid":       weiboNumber(wb.UID(g.person.ID)),
		"appkey":    weiboNumber(g.app.ClientID),
		"scope":     scope,
		"create_at": g.created.Unix(),
		"expire_in": int(g.expires.Sub(now) / time.Second),
	}))
}

// revoke serves POST /oauth2/revokeoauth2.
func (wb *Weibo) revoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		wb.apiError(w, r, 10021, "")
		return
	}
	_, token, code := wb.grantFor(r)
	if code != 0 {
		wb.apiError(w, r, code, "")
		return
	}
	wb.mu.Lock()
	delete(wb.tokens, token)
	wb.mu.Unlock()
	weiboWrite(w, http.StatusOK, []byte(`{"result":"true"}`))
}

// usersShow serves GET /2/users/show.json?uid= (or screen_name=): id as
// an exact int64 number, idstr, gender "n", avatars.
func (wb *Weibo) usersShow(w http.ResponseWriter, r *http.Request) {
	if _, _, code := wb.grantFor(r); code != 0 {
		wb.apiError(w, r, code, "")
		return
	}
	var person Person
	var ok bool
	switch {
	case r.Form.Get("uid") != "":
		person, ok = wb.personByUID(r.Form.Get("uid"))
	case r.Form.Get("screen_name") != "":
		for _, p := range wb.opts.Persons {
			if p.Name == r.Form.Get("screen_name") {
				person, ok = p, true
			}
		}
	default:
		wb.apiError(w, r, 10016, "")
		return
	}
	if !ok {
		wb.apiError(w, r, 20003, "")
		return
	}
	uid := wb.UID(person.ID)
	avatar := avatarURL(r, person)
	fields := []struct {
		k string
		v any
	}{
		{"id", json.RawMessage(uid)}, {"idstr", uid}, {"class", 1},
		{"screen_name", person.Name}, {"name", person.Name}, {"province", "11"}, {"city", "5"},
		{"location", "北京 朝阳区"}, {"description", ""}, {"url", ""},
		{"profile_image_url", avatar}, {"profile_url", "u/" + uid}, {"domain", ""}, {"weihao", ""},
		{"gender", "n"}, {"followers_count", 0}, {"friends_count", 0}, {"statuses_count", 0},
		{"favourites_count", 0}, {"created_at", "Wed Jan 04 18:36:27 +0800 2012"}, {"following", false},
		{"allow_all_act_msg", false}, {"geo_enabled", true}, {"verified", false}, {"verified_type", -1},
		{"remark", ""}, {"ptype", 0}, {"allow_all_comment", true},
		{"avatar_large", avatar}, {"avatar_hd", avatar},
		{"verified_reason", ""}, {"follow_me", false}, {"online_status", 0}, {"bi_followers_count", 0},
		{"lang", "zh-cn"}, {"star", 0}, {"mbtype", 0}, {"mbrank", 0}, {"block_word", 0}, {"block_app", 0},
		{"credit_score", 80},
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for i, kv := range fields {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + kv.k + `":`)
		b.Write(plainJSON(kv.v))
	}
	b.WriteByte('}')
	weiboWrite(w, http.StatusOK, b.Bytes())
}

// email serves /2/account/profile/email.json: 10014 when the app lacks
// the API, 403 21330 when the user did not grant scope email.
func (wb *Weibo) email(w http.ResponseWriter, r *http.Request) {
	g, _, code := wb.grantFor(r)
	switch {
	case code != 0:
		wb.apiError(w, r, code, "")
	case !g.app.Email:
		wb.apiError(w, r, 10014, "")
	case !weiboHasScope(g.scope, "email"):
		wb.apiError(w, r, 21330, "")
	default:
		weiboWrite(w, http.StatusOK, plainJSON(map[string]string{"email": g.person.ID + "@sandbox.weibo.example"}))
	}
}

func weiboHasScope(scopes, want string) bool {
	for _, s := range strings.Split(scopes, ",") {
		if s = strings.TrimSpace(s); s == want || s == "all" {
			return true
		}
	}
	return false
}
