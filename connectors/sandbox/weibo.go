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
// strings and the numeric id in profiles can exceed 2^53. Faults come
// through InjectFault (Fault).
type Weibo struct {
	oauthSim[WeiboApp]
}

// NewWeibo returns a Weibo simulator for opts.Apps and the persons.
func NewWeibo(opts WeiboOptions) *Weibo {
	if opts.CodeTTL == 0 {
		opts.CodeTTL = weiboDefaultCodeTTL
	}
	if opts.TokenTTL == 0 {
		opts.TokenTTL = weiboDefaultTokenTTL
	}
	wb := &Weibo{}
	wb.init(opts.Apps, opts.Persons, opts.Clock, oauthSpec{
		authorizePath: WeiboPathAuthorize,
		routes: map[string]http.HandlerFunc{
			WeiboPathAuthorize: wb.authorize,
			WeiboPathToken:     wb.token,
			WeiboPathTokenInfo: wb.tokenInfo,
			WeiboPathRevoke:    wb.revoke,
			WeiboPathUsersShow: wb.usersShow,
			WeiboPathEmail:     wb.email,
		},
		notFound:    func(w http.ResponseWriter, r *http.Request) { wb.apiError(w, r, 10020, "") },
		badForm:     10008,
		apiError:    func(w http.ResponseWriter, r *http.Request, code int) { wb.apiError(w, r, code, "") },
		errorPage:   wb.errorPage,
		badRedirect: 21322,
		faults: faultWire{contentType: weiboContentType, emptyType: weiboContentType, busy: func(w http.ResponseWriter, r *http.Request) {
			wb.apiError(w, r, 10002, "") // HTTP 503, error JSON even on the authorize path
		}},
		codeTTL:        opts.CodeTTL,
		tokenTTL:       opts.TokenTTL,
		newCode:        func() string { return randomHex(16) },
		newToken:       func() string { return "2.00" + randomHex(13) },
		pickerPage:     "weibo-picker",
		defaultDisplay: "default",
		avatar:         func(u string) string { return u },
		denied: func(w http.ResponseWriter, r *http.Request, redirectURI string) {
			wb.redirect(w, r, redirectURI, url.Values{
				"error": {"access_denied"}, "error_code": {"21330"},
				"error_description": {"user denied your request."},
			})
		},
		unknownPerson: func(w http.ResponseWriter) { wb.errorPage(w, 21323) },
	})
	return wb
}

// UID is the person's Weibo uid (the same in every app), or "" for an
// unknown person. The first persons get real-looking 10-digit uids, and
// the second one above 2^53 (9007199254740993 = 2^53+1), which a client
// that reads the numeric id as a float corrupts.
func (wb *Weibo) UID(personID string) string {
	fixed := [...]string{"1404376560", "9007199254740993", "2583117564"}
	for i, p := range wb.persons {
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
	for _, p := range wb.persons {
		if wb.UID(p.ID) == uid {
			return p, true
		}
	}
	return Person{}, false
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

// weiboContentType is the Content-Type of Weibo's JSON.
const weiboContentType = "text/plain;charset=UTF-8"

// weiboWrite sends JSON the way Weibo does: as text/plain.
func weiboWrite(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", weiboContentType)
	w.Header().Set("Server", "weibo")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (wb *Weibo) apiError(w http.ResponseWriter, r *http.Request, code int, description string) {
	_, status := weiboErrorInfo(code)
	weiboWrite(w, status, weiboErrorBody(r.URL.Path, code, description))
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
	wb.answer(w, r, app, redirectURI)
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
	app, problem := wb.client(f.Get("client_id"), f.Get("client_secret"))
	switch problem {
	case clientOK:
	case secretWrong:
		wb.apiError(w, r, 21324, "client_secret error.")
		return
	default:
		wb.apiError(w, r, 21324, "client_id error.")
		return
	}
	if f.Get("grant_type") != "authorization_code" {
		wb.apiError(w, r, 21328, "unsupported grant type")
		return
	}
	code := f.Get("code")
	c, used := wb.redeem(code, app, f.Get("redirect_uri"))
	switch used {
	case grantOK:
	case grantMissing:
		wb.apiError(w, r, 21323, "miss required parameter code")
		return
	case grantRedirect:
		wb.apiError(w, r, 21322, "redirect_uri_mismatch")
		return
	default:
		// Weibo echoes the code in the description.
		wb.apiError(w, r, 21325, "invalid authorization code:"+code)
		return
	}
	token, _ := wb.issueTokens(app, c.person, c.scope, false)

	ttl := int(wb.spec.tokenTTL / time.Second)
	var b bytes.Buffer
	b.WriteString(`{"access_token":"` + token + `","remind_in":"` + strconv.Itoa(ttl) + `","expires_in":` + strconv.Itoa(ttl))
	b.WriteString(`,"uid":"` + wb.UID(c.person.ID) + `","isRealName":"true"}`)
	weiboWrite(w, http.StatusOK, b.Bytes())
}

// Weibo's codes for the problems of an access token.
var weiboTokenErrors = map[tokenProblem]int{tokenMissing: 10006, tokenUnknown: 21332, tokenExpired: 21327}

// grantFor finds the live token of a request: the access_token parameter
// or an "Authorization: OAuth2 <token>" header.
func (wb *Weibo) grantFor(r *http.Request) (oauthGrant[WeiboApp], string, int) {
	token := r.Form.Get("access_token")
	if token == "" {
		token, _ = strings.CutPrefix(r.Header.Get("Authorization"), "OAuth2 ")
	}
	g, problem := wb.lookup(token)
	return g, token, weiboTokenErrors[problem]
}

// postGrant finds the live token of a call that must be a POST, or
// answers Weibo's error.
func (wb *Weibo) postGrant(w http.ResponseWriter, r *http.Request) (oauthGrant[WeiboApp], string, bool) {
	if r.Method != http.MethodPost {
		wb.apiError(w, r, 10021, "")
		return oauthGrant[WeiboApp]{}, "", false
	}
	g, token, code := wb.grantFor(r)
	if code != 0 {
		wb.apiError(w, r, code, "")
		return g, token, false
	}
	return g, token, true
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
	g, _, ok := wb.postGrant(w, r)
	if !ok {
		return
	}
	now := wb.clock.now()
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
	_, token, ok := wb.postGrant(w, r)
	if !ok {
		return
	}
	wb.revokeToken(token)
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
		for _, p := range wb.persons {
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
