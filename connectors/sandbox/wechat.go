package sandbox

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// WeChatAppType is the kind of a simulated WeChat app.
type WeChatAppType string

// The app kinds: an Open Platform website app (QR-code login), an
// Official Account (web authorization in the WeChat browser) and a
// mini-program.
const (
	WeChatWebsite     WeChatAppType = "website"
	WeChatMP          WeChatAppType = "mp"
	WeChatMiniProgram WeChatAppType = "miniprogram"
)

// WeChatApp is an app registered at the simulated WeChat.
type WeChatApp struct {
	AppID  string
	Secret string
	Type   WeChatAppType
	// CallbackDomain is the registered callback domain (website: 授权回调域,
	// Official Account: 网页授权域名). redirect_uri's host must equal it;
	// without a port here, any port matches. "" accepts any host.
	CallbackDomain string
	// NoUnionID: the app is not bound to the Open Platform account, so
	// WeChat gives no unionid for it anywhere.
	NoUnionID bool
	// UnionIDWithBase: an Official Account also returns the unionid with
	// snsapi_base tokens (seen in the wild; the doc says userinfo only).
	UnionIDWithBase bool
	// Pages are the pages of a mini-program's released version, which
	// getwxacodeunlimit checks with check_path; nil: every page.
	Pages []string
}

// WeChatOptions configure the simulator.
type WeChatOptions struct {
	Apps []WeChatApp
	// Persons who can log in; nil: DefaultPersons().
	Persons []Person
	// Phones maps a person id to a mainland number (11 digits, no +86);
	// a person without one gets 138001380NN, NN their 1-based position.
	Phones map[string]string
	// Account names the Open Platform account; it seeds the unionids.
	// "": "sandbox".
	Account string
	// Clock for every expiry; nil: the real time.
	Clock Clock
	// StrictParamOrder makes /connect/oauth2/authorize refuse a URL whose
	// parameters are not in WeChat's order (appid, redirect_uri,
	// response_type, scope, state), as the real page does.
	StrictParamOrder bool
	// ContentType of API replies; "": "text/plain" (WeChat's usual). Set
	// "application/json; encoding=utf-8" for the older replies.
	ContentType string
	// ExpiredCodeErrcode answers an expired code; 0: 42003 (some
	// endpoints answer 40029).
	ExpiredCodeErrcode int
	// CountryCodeAsNumber sends phone_info.countryCode as 86 rather than
	// "86" (the doc's example against what real replies carry).
	CountryCodeAsNumber bool
	// ScanLoginAPI is the broker's mini-program scan API
	// ({issuer}/api/v1/scan), which the sandbox phone page calls as the
	// mini-program would; "": the phone page cannot scan.
	ScanLoginAPI string
}

// Code lifetimes (upstream-apis §2.1, §3.1, §4.1, §4.4) and token lifetimes.
const (
	wxQRCodeTTL      = 10 * time.Minute
	wxOAuthCodeTTL   = 5 * time.Minute
	wxJSCodeTTL      = 5 * time.Minute
	wxPhoneCodeTTL   = 5 * time.Minute
	wxTokenTTL       = 7200 * time.Second
	wxRefreshTTL     = 30 * 24 * time.Hour
	wxTokenOverlap   = 5 * time.Minute // old token life after a new cgi-bin/token
	wxStableRenew    = 5 * time.Minute // stable token renewed this long before expiry
	wxForceGap       = 30 * time.Second
	wxForcePerDay    = 20
	wxPlainPerDay    = 2000
	wxPlaceholderNic = "微信用户"
	// wxPlaceholderAvatar is the grey default avatar.
	wxPlaceholderAvatar = "https://thirdwx.qlogo.cn/mmopen/vi_32/POgEwh4mIHO4nibH0KlMECNjjGxQUq24ZEaGT4poC6icRiccVGKSyXwibcPq4BWmiaIGuG1icwxaQX6grC9VemZoJ8rg/132"
)

var wechatErrmsg = map[int]string{
	-1:    "system error",
	40001: "invalid credential, access_token is invalid or not latest",
	40002: "invalid grant_type",
	40003: "invalid openid",
	40013: "invalid appid",
	40014: "invalid access_token",
	40029: "invalid code",
	40030: "invalid refresh_token",
	40125: "invalid appsecret, view more at http://t.cn/RAEkdVq",
	40163: "code been used",
	40226: "code blocked",
	41001: "access_token missing",
	41002: "appid missing",
	41003: "refresh_token missing",
	41004: "appsecret missing",
	41008: "missing code",
	41009: "missing openid",
	42001: "access_token expired",
	42002: "refresh_token expired",
	42003: "code expired",
	43002: "require POST method",
	45009: "reach max api daily quota limit",
	45011: "api minute-quota reach limit mustslower retry next minute",
	47001: "data format error",
	48001: "api unauthorized",
	50002: "user limited",
	87009: "invalid signature",
}

type wechatCodeKind int

const (
	wechatOAuthCode wechatCodeKind = iota
	wechatJSCode
	wechatPhoneCode
)

type wechatCode struct {
	kind     wechatCodeKind
	appID    string
	person   string
	scope    string
	snapshot bool
	expires  time.Time
	used     bool
}

type wechatUserToken struct {
	appID, person, scope string
	snapshot             bool
	expires              time.Time
	refresh              string
}

type wechatRefresh struct {
	appID, person, scope string
	snapshot             bool
	expires              time.Time
	access               string
}

type wechatAppToken struct {
	appID   string
	expires time.Time
}

type wechatStable struct {
	token     string
	expires   time.Time
	lastForce time.Time
	forceDay  string
	forces    int
}

type wechatDaily struct {
	day string
	n   int
}

// WeChat simulates open.weixin.qq.com and api.weixin.qq.com on one
// handler. Its API answers as WeChat does: always HTTP 200, JSON in a
// text/plain reply, errcode/errmsg with a ", rid: ..." suffix, "\/" in
// strings, sex 0 and an empty region. Faults come through InjectFault
// (Fault).
type WeChat struct {
	faultBox // InjectFault, ClearFaults, Calls
	opts     WeChatOptions
	apps     map[string]WeChatApp
	persons  []Person
	clock    Clock
	account  string

	mu          sync.Mutex
	noUnion     map[string]bool // appid → unionid switched off
	snapshot    map[string]bool // person → snapshot-mode user
	placeholder map[string]bool // person → placeholder profile
	codes       map[string]*wechatCode
	userTokens  map[string]*wechatUserToken
	refreshes   map[string]*wechatRefresh
	appTokens   map[string]*wechatAppToken
	stable      map[string]*wechatStable // appid → stable token state
	lastPlain   map[string]string        // appid → newest cgi-bin/token
	plainDaily  map[string]*wechatDaily
	sessionKeys map[string]string // appid "\x00" person → session_key
	wxaCodes    []WeChatCode
	wxaMinute   map[string]*wxaMinute
}

// NewWeChat returns a simulator for the given apps.
func NewWeChat(opts WeChatOptions) (*WeChat, error) {
	w := &WeChat{
		opts:        opts,
		apps:        map[string]WeChatApp{},
		persons:     opts.Persons,
		clock:       opts.Clock,
		account:     opts.Account,
		noUnion:     map[string]bool{},
		snapshot:    map[string]bool{},
		placeholder: map[string]bool{},
		codes:       map[string]*wechatCode{},
		userTokens:  map[string]*wechatUserToken{},
		refreshes:   map[string]*wechatRefresh{},
		appTokens:   map[string]*wechatAppToken{},
		stable:      map[string]*wechatStable{},
		lastPlain:   map[string]string{},
		plainDaily:  map[string]*wechatDaily{},
		sessionKeys: map[string]string{},
		wxaMinute:   map[string]*wxaMinute{},
	}
	if w.persons == nil {
		w.persons = DefaultPersons()
	}
	if w.account == "" {
		w.account = "sandbox"
	}
	if w.opts.ContentType == "" {
		w.opts.ContentType = "text/plain"
	}
	if w.opts.ExpiredCodeErrcode == 0 {
		w.opts.ExpiredCodeErrcode = 42003
	}
	for i, a := range opts.Apps {
		switch {
		case a.AppID == "" || a.Secret == "":
			return nil, fmt.Errorf("sandbox: wechat app %d: appid and secret are required", i)
		case a.Type != WeChatWebsite && a.Type != WeChatMP && a.Type != WeChatMiniProgram:
			return nil, fmt.Errorf("sandbox: wechat app %s: unknown type %q", a.AppID, a.Type)
		}
		if _, dup := w.apps[a.AppID]; dup {
			return nil, fmt.Errorf("sandbox: wechat app %s: duplicate appid", a.AppID)
		}
		w.apps[a.AppID] = a
		w.noUnion[a.AppID] = a.NoUnionID
	}
	seen := map[string]bool{}
	for _, p := range w.persons {
		if p.ID == "" || seen[p.ID] {
			return nil, fmt.Errorf("sandbox: wechat: person ids must be unique and not empty (%q)", p.ID)
		}
		seen[p.ID] = true
	}
	return w, nil
}

// Persons returns the persons who can log in.
func (w *WeChat) Persons() []Person { return append([]Person(nil), w.persons...) }

// SetSnapshotUser puts a person in snapshot mode (or out of it): their
// Official Account snsapi_userinfo logins get is_snapshotuser=1 and
// virtual ids, and /sns/userinfo refuses their tokens with 48001.
func (w *WeChat) SetSnapshotUser(personID string, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.snapshot[personID] = on
}

// SetPlaceholderProfile makes /sns/userinfo return "微信用户" and the grey
// default avatar for a person (or their real profile again).
func (w *WeChat) SetPlaceholderProfile(personID string, on bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.placeholder[personID] = on
}

// SetUnionID switches an app's unionid on or off (bound to the Open
// Platform account or not).
func (w *WeChat) SetUnionID(appID string, on bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.apps[appID]; !ok {
		return fmt.Errorf("sandbox: wechat: unknown app %q", appID)
	}
	w.noUnion[appID] = !on
	return nil
}

// RevokeAccessTokens makes every app access token of an app unknown
// (40001), as a force refresh elsewhere or a secret reset would.
func (w *WeChat) RevokeAccessTokens(appID string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for t, at := range w.appTokens {
		if at.appID == appID {
			delete(w.appTokens, t)
		}
	}
	delete(w.stable, appID)
}

// OpenID returns a person's openid in an app.
func (w *WeChat) OpenID(appID, personID string) string {
	return wechatID("openid", appID, personID)
}

// UnionID returns a person's unionid in the Open Platform account.
func (w *WeChat) UnionID(personID string) string {
	return wechatID("unionid", w.account, personID)
}

// SessionKey returns the current session_key of a person in a
// mini-program ("" before their first wx.login).
func (w *WeChat) SessionKey(appID, personID string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sessionKeys[appID+"\x00"+personID]
}

// PhoneNumber returns a person's phone number without +86.
func (w *WeChat) PhoneNumber(personID string) string {
	if n, ok := w.opts.Phones[personID]; ok {
		return n
	}
	for i, p := range w.persons {
		if p.ID == personID {
			return fmt.Sprintf("138001380%02d", i+1)
		}
	}
	return ""
}

// LoginCode is what wx.login() returns to the person in the mini-program:
// a code valid 5 minutes, once. It rotates the person's session_key.
func (w *WeChat) LoginCode(appID, personID string) (string, error) {
	return w.clientCode(appID, personID, wechatJSCode)
}

// PhoneCode is what the getPhoneNumber button returns to the person in
// the mini-program: a code valid 5 minutes, once.
func (w *WeChat) PhoneCode(appID, personID string) (string, error) {
	return w.clientCode(appID, personID, wechatPhoneCode)
}

func (w *WeChat) clientCode(appID, personID string, kind wechatCodeKind) (string, error) {
	app, ok := w.apps[appID]
	if !ok || app.Type != WeChatMiniProgram {
		return "", fmt.Errorf("sandbox: wechat: %q is not a mini-program", appID)
	}
	if _, ok := findPerson(w.persons, personID); !ok {
		return "", fmt.Errorf("sandbox: wechat: unknown person %q", personID)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.clock.now()
	if kind == wechatJSCode {
		code := randomHex(16)
		w.codes[code] = &wechatCode{kind: kind, appID: appID, person: personID, expires: now.Add(wxJSCodeTTL)}
		key := make([]byte, 16)
		_, _ = rand.Read(key)
		w.sessionKeys[appID+"\x00"+personID] = base64.StdEncoding.EncodeToString(key)
		return code, nil
	}
	code := randomHex(32)
	w.codes[code] = &wechatCode{kind: kind, appID: appID, person: personID, expires: now.Add(wxPhoneCodeTTL)}
	return code, nil
}

// wechatID derives a stable 28-character id, openid-like.
func wechatID(kind, scope, person string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + scope + "\x00" + person))
	return "o" + base64.RawURLEncoding.EncodeToString(sum[:])[:27]
}

func (w *WeChat) openID(appID, person string, snapshot bool) string {
	if snapshot {
		return wechatID("openid-snapshot", appID, person)
	}
	return w.OpenID(appID, person)
}

func (w *WeChat) unionID(appID, person, scope string, snapshot bool) string {
	app := w.apps[appID]
	if w.noUnion[appID] {
		return ""
	}
	if app.Type == WeChatMP && scope == "snsapi_base" && !app.UnionIDWithBase {
		return ""
	}
	if snapshot {
		return wechatID("unionid-snapshot", w.account, person)
	}
	return w.UnionID(person)
}

// wechatAPI maps each api.weixin.qq.com path to its handler.
func (w *WeChat) wechatAPI(path string) (func(http.ResponseWriter, *http.Request), bool) {
	h, ok := map[string]func(http.ResponseWriter, *http.Request){
		"/sns/oauth2/access_token":         w.oauthToken,
		"/sns/oauth2/refresh_token":        w.refreshToken,
		"/sns/auth":                        w.snsAuth,
		"/sns/userinfo":                    w.userInfo,
		"/sns/jscode2session":              w.jscode2session,
		"/cgi-bin/token":                   w.plainToken,
		"/cgi-bin/stable_token":            w.stableToken,
		"/wxa/business/getuserphonenumber": w.phoneNumber,
		"/wxa/checksession":                w.checkSession,
		"/wxa/getwxacodeunlimit":           w.wxaCode,
	}[path]
	return h, ok
}

// ServeHTTP routes the open.weixin.qq.com pages, the api.weixin.qq.com
// API and the /sandbox/ helpers.
func (w *WeChat) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	w.count(r.URL.Path)
	if serveAvatar(rw, r, w.persons) {
		return
	}
	switch r.URL.Path {
	case "/sandbox/wx.login":
		w.sandboxCode(rw, r, w.LoginCode)
		return
	case "/sandbox/getPhoneNumber":
		w.sandboxCode(rw, r, w.PhoneCode)
		return
	case faultPath:
		w.sandboxFault(rw, r)
		return
	case "/sandbox/phone":
		w.phone(rw, r)
		return
	}
	if w.fault(rw, r, faultWire{contentType: w.opts.ContentType, emptyType: "text/html; charset=gbk", busy: w.busy, fail: w.faultError}) {
		return
	}
	switch r.URL.Path {
	case wechatQRPath:
		w.authorize(rw, r, false)
		return
	case wechatOAuthPath:
		w.authorize(rw, r, true)
		return
	}
	h, ok := w.wechatAPI(r.URL.Path)
	if !ok {
		http.NotFound(rw, r)
		return
	}
	h(rw, r)
}

// The authorize pages: the website app's QR code, the Official Account's
// web authorization.
const (
	wechatQRPath    = "/connect/qrconnect"
	wechatOAuthPath = "/connect/oauth2/authorize"
)

// busy is WeChat's "system busy": errcode -1.
func (w *WeChat) busy(rw http.ResponseWriter, r *http.Request) { w.faultError(rw, r, -1) }

// faultError answers an injected errcode in the endpoint's shape: the
// error page on the authorize pages, the errcode JSON elsewhere (with
// the mini-program code call's own messages there).
func (w *WeChat) faultError(rw http.ResponseWriter, r *http.Request, code int) {
	switch r.URL.Path {
	case wechatQRPath, wechatOAuthPath:
		msg, ok := wechatErrmsg[code]
		if !ok {
			msg = "unknown error"
		}
		w.errorPage(rw, r.URL.Path == wechatOAuthPath, strconv.Itoa(code), msg)
	case "/wxa/getwxacodeunlimit":
		w.failWxa(rw, code)
	default:
		w.fail(rw, code)
	}
}

// reply writes v as WeChat does: HTTP 200, text/plain, "\/" in strings.
func (w *WeChat) reply(rw http.ResponseWriter, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(rw, "sandbox: encoding reply: "+err.Error(), http.StatusInternalServerError)
		return
	}
	// A '/' can only occur inside a JSON string, so this escapes exactly
	// the slashes WeChat escapes.
	body := bytes.ReplaceAll(bytes.TrimRight(buf.Bytes(), "\n"), []byte("/"), []byte(`\/`))
	rw.Header().Set("Content-Type", w.opts.ContentType)
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(body)
}

type wechatError struct {
	Errcode int    `json:"errcode"`
	Errmsg  string `json:"errmsg"`
}

// fail writes a WeChat error: HTTP 200 and errcode/errmsg, the message
// with the server's ", rid: ..." suffix.
func (w *WeChat) fail(rw http.ResponseWriter, code int) {
	msg, ok := wechatErrmsg[code]
	if !ok {
		msg = "unknown error"
	}
	w.reply(rw, wechatError{Errcode: code, Errmsg: msg + ", rid: " + randomHex(4) + "-" + randomHex(4) + "-" + randomHex(4)})
}

// checkApp checks appid and secret as the token calls do; want lists the
// app types the endpoint serves. It returns 0 or a WeChat errcode.
func (w *WeChat) checkApp(appID, secret string, want ...WeChatAppType) int {
	if appID == "" {
		return 41002
	}
	app, ok := w.apps[appID]
	if !ok {
		return 40013
	}
	typeOK := false
	for _, t := range want {
		typeOK = typeOK || app.Type == t
	}
	if !typeOK {
		return 40013
	}
	if secret == "" {
		return 41004
	}
	if !hmac.Equal([]byte(secret), []byte(app.Secret)) {
		return 40125
	}
	return 0
}

// consume redeems a code once. Callers hold w.mu.
func (w *WeChat) consume(code string, kind wechatCodeKind, appID string) (*wechatCode, int) {
	if code == "" {
		return nil, 41008
	}
	c, ok := w.codes[code]
	if !ok || c.kind != kind || c.appID != appID {
		return nil, 40029
	}
	if c.used {
		return nil, 40163
	}
	if !w.clock.now().Before(c.expires) {
		return nil, w.opts.ExpiredCodeErrcode
	}
	c.used = true
	return c, 0
}

type wechatOAuthTokenReply struct {
	AccessToken    string `json:"access_token"`
	ExpiresIn      int    `json:"expires_in"`
	RefreshToken   string `json:"refresh_token"`
	OpenID         string `json:"openid"`
	Scope          string `json:"scope"`
	IsSnapshotUser int    `json:"is_snapshotuser,omitempty"`
	UnionID        string `json:"unionid,omitempty"`
}

func (w *WeChat) oauthToken(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	w.mu.Lock()
	defer w.mu.Unlock()
	appID := q.Get("appid")
	if code := w.checkApp(appID, q.Get("secret"), WeChatWebsite, WeChatMP); code != 0 {
		w.fail(rw, code)
		return
	}
	if q.Get("grant_type") != "authorization_code" {
		w.fail(rw, 40002)
		return
	}
	c, errcode := w.consume(q.Get("code"), wechatOAuthCode, appID)
	if errcode != 0 {
		w.fail(rw, errcode)
		return
	}
	now := w.clock.now()
	at, rt := randomHex(32), randomHex(32)
	w.userTokens[at] = &wechatUserToken{appID: appID, person: c.person, scope: c.scope, snapshot: c.snapshot, expires: now.Add(wxTokenTTL), refresh: rt}
	w.refreshes[rt] = &wechatRefresh{appID: appID, person: c.person, scope: c.scope, snapshot: c.snapshot, expires: now.Add(wxRefreshTTL), access: at}
	rep := wechatOAuthTokenReply{
		AccessToken:  at,
		ExpiresIn:    int(wxTokenTTL / time.Second),
		RefreshToken: rt,
		OpenID:       w.openID(appID, c.person, c.snapshot),
		Scope:        c.scope,
		UnionID:      w.unionID(appID, c.person, c.scope, c.snapshot),
	}
	if c.snapshot {
		rep.IsSnapshotUser = 1
	}
	w.reply(rw, rep)
}

func (w *WeChat) refreshToken(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	w.mu.Lock()
	defer w.mu.Unlock()
	appID := q.Get("appid")
	if appID == "" {
		w.fail(rw, 41002)
		return
	}
	if app, ok := w.apps[appID]; !ok || app.Type == WeChatMiniProgram {
		w.fail(rw, 40013)
		return
	}
	if q.Get("grant_type") != "refresh_token" {
		w.fail(rw, 40002)
		return
	}
	rt := q.Get("refresh_token")
	if rt == "" {
		w.fail(rw, 41003)
		return
	}
	ref, ok := w.refreshes[rt]
	if !ok || ref.appID != appID {
		w.fail(rw, 40030)
		return
	}
	now := w.clock.now()
	if !now.Before(ref.expires) {
		w.fail(rw, 42002)
		return
	}
	// Not expired: the same access token, its life renewed in place.
	// Expired: a new one. The refresh token keeps its 30 days.
	if tok, ok := w.userTokens[ref.access]; ok && now.Before(tok.expires) {
		tok.expires = now.Add(wxTokenTTL)
	} else {
		delete(w.userTokens, ref.access)
		ref.access = randomHex(32)
		w.userTokens[ref.access] = &wechatUserToken{appID: appID, person: ref.person, scope: ref.scope, snapshot: ref.snapshot, expires: now.Add(wxTokenTTL), refresh: rt}
	}
	w.reply(rw, wechatOAuthTokenReply{
		AccessToken:  ref.access,
		ExpiresIn:    int(wxTokenTTL / time.Second),
		RefreshToken: rt,
		OpenID:       w.openID(appID, ref.person, ref.snapshot),
		Scope:        ref.scope,
	})
}

// userToken looks up a user access token for openid. Callers hold w.mu.
func (w *WeChat) userToken(q url.Values) (*wechatUserToken, int) {
	at, openID := q.Get("access_token"), q.Get("openid")
	if at == "" {
		return nil, 41001
	}
	if openID == "" {
		return nil, 41009
	}
	tok, ok := w.userTokens[at]
	if !ok {
		return nil, 40001
	}
	if !w.clock.now().Before(tok.expires) {
		return nil, 42001
	}
	if w.openID(tok.appID, tok.person, tok.snapshot) != openID {
		return nil, 40003
	}
	return tok, 0
}

func (w *WeChat) snsAuth(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, code := w.userToken(r.URL.Query()); code != 0 {
		w.fail(rw, code)
		return
	}
	w.reply(rw, wechatError{Errcode: 0, Errmsg: "ok"})
}

type wechatUserInfoReply struct {
	OpenID     string   `json:"openid"`
	Nickname   string   `json:"nickname"`
	Sex        int      `json:"sex"`
	Language   string   `json:"language"`
	City       string   `json:"city"`
	Province   string   `json:"province"`
	Country    string   `json:"country"`
	HeadImgURL string   `json:"headimgurl"`
	Privilege  []string `json:"privilege"`
	UnionID    string   `json:"unionid,omitempty"`
}

func (w *WeChat) userInfo(rw http.ResponseWriter, r *http.Request) {
	w.mu.Lock()
	defer w.mu.Unlock()
	tok, code := w.userToken(r.URL.Query())
	if code != 0 {
		w.fail(rw, code)
		return
	}
	if tok.snapshot || (tok.scope != "snsapi_userinfo" && tok.scope != "snsapi_login") {
		w.fail(rw, 48001)
		return
	}
	p, _ := findPerson(w.persons, tok.person)
	rep := wechatUserInfoReply{
		OpenID:     w.openID(tok.appID, tok.person, false),
		Nickname:   p.Name,
		HeadImgURL: avatarURL(r, p),
		Privilege:  []string{},
		UnionID:    w.unionID(tok.appID, tok.person, "snsapi_userinfo", false),
	}
	if w.placeholder[tok.person] {
		rep.Nickname, rep.HeadImgURL = wxPlaceholderNic, wxPlaceholderAvatar
	}
	w.reply(rw, rep)
}

type wechatSessionReply struct {
	SessionKey string `json:"session_key"`
	OpenID     string `json:"openid"`
	UnionID    string `json:"unionid,omitempty"`
}

func (w *WeChat) jscode2session(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	w.mu.Lock()
	defer w.mu.Unlock()
	appID := q.Get("appid")
	if code := w.checkApp(appID, q.Get("secret"), WeChatMiniProgram); code != 0 {
		w.fail(rw, code)
		return
	}
	if q.Get("grant_type") != "authorization_code" {
		w.fail(rw, 40002)
		return
	}
	c, errcode := w.consume(q.Get("js_code"), wechatJSCode, appID)
	if errcode != 0 {
		w.fail(rw, errcode)
		return
	}
	w.reply(rw, wechatSessionReply{
		SessionKey: w.sessionKeys[appID+"\x00"+c.person],
		OpenID:     w.OpenID(appID, c.person),
		UnionID:    w.unionID(appID, c.person, "", false),
	})
}

type wechatAppTokenReply struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// plainToken is GET /cgi-bin/token: a new token on every call, the
// previous one still working for 5 minutes, 2000 calls a day.
func (w *WeChat) plainToken(rw http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	w.mu.Lock()
	defer w.mu.Unlock()
	if q.Get("grant_type") != "client_credential" {
		w.fail(rw, 40002)
		return
	}
	appID := q.Get("appid")
	if code := w.checkApp(appID, q.Get("secret"), WeChatWebsite, WeChatMP, WeChatMiniProgram); code != 0 {
		w.fail(rw, code)
		return
	}
	now := w.clock.now()
	day := now.Format("2006-01-02")
	d := w.plainDaily[appID]
	if d == nil || d.day != day {
		d = &wechatDaily{day: day}
		w.plainDaily[appID] = d
	}
	if d.n >= wxPlainPerDay {
		w.fail(rw, 45009)
		return
	}
	d.n++
	if old, ok := w.appTokens[w.lastPlain[appID]]; ok && old.expires.After(now.Add(wxTokenOverlap)) {
		old.expires = now.Add(wxTokenOverlap)
	}
	t := randomHex(64)
	w.appTokens[t] = &wechatAppToken{appID: appID, expires: now.Add(wxTokenTTL)}
	w.lastPlain[appID] = t
	w.reply(rw, wechatAppTokenReply{AccessToken: t, ExpiresIn: int(wxTokenTTL / time.Second)})
}

// stableToken is POST /cgi-bin/stable_token (JSON only): the same token
// while it is valid, a new one in its last 5 minutes (the old one still
// works until it expires); force_refresh replaces it at once, at most 20
// times a day and not twice within 30 s.
func (w *WeChat) stableToken(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.fail(rw, 43002)
		return
	}
	var req struct {
		GrantType    string `json:"grant_type"`
		AppID        string `json:"appid"`
		Secret       string `json:"secret"`
		ForceRefresh bool   `json:"force_refresh"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		w.fail(rw, 47001)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if req.GrantType != "client_credential" {
		w.fail(rw, 40002)
		return
	}
	if code := w.checkApp(req.AppID, req.Secret, WeChatWebsite, WeChatMP, WeChatMiniProgram); code != 0 {
		w.fail(rw, code)
		return
	}
	now := w.clock.now()
	st := w.stable[req.AppID]
	if st == nil {
		st = &wechatStable{}
		w.stable[req.AppID] = st
	}
	if req.ForceRefresh && (st.lastForce.IsZero() || now.Sub(st.lastForce) >= wxForceGap) {
		day := now.Format("2006-01-02")
		if st.forceDay != day {
			st.forceDay, st.forces = day, 0
		}
		if st.forces >= wxForcePerDay {
			w.fail(rw, 45009)
			return
		}
		st.forces++
		st.lastForce = now
		delete(w.appTokens, st.token)
		st.token = ""
	}
	if _, live := w.appTokens[st.token]; !live || !now.Before(st.expires.Add(-wxStableRenew)) {
		st.token = randomHex(64)
		st.expires = now.Add(wxTokenTTL)
		w.appTokens[st.token] = &wechatAppToken{appID: req.AppID, expires: st.expires}
	}
	w.reply(rw, wechatAppTokenReply{AccessToken: st.token, ExpiresIn: int(st.expires.Sub(now) / time.Second)})
}

// appToken checks an app access token. Callers hold w.mu.
func (w *WeChat) appToken(t string) (string, int) {
	if t == "" {
		return "", 41001
	}
	at, ok := w.appTokens[t]
	if !ok {
		return "", 40001
	}
	if !w.clock.now().Before(at.expires) {
		return "", 42001
	}
	return at.appID, 0
}

type wechatPhoneInfo struct {
	PhoneNumber     string `json:"phoneNumber"`
	PurePhoneNumber string `json:"purePhoneNumber"`
	CountryCode     any    `json:"countryCode"`
	Watermark       struct {
		Timestamp int64  `json:"timestamp"`
		AppID     string `json:"appid"`
	} `json:"watermark"`
}

type wechatPhoneReply struct {
	Errcode   int             `json:"errcode"`
	Errmsg    string          `json:"errmsg"`
	PhoneInfo wechatPhoneInfo `json:"phone_info"`
}

func (w *WeChat) phoneNumber(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.fail(rw, 43002)
		return
	}
	var req struct {
		Code   string `json:"code"`
		OpenID string `json:"openid"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		w.fail(rw, 47001)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	appID, code := w.appToken(r.URL.Query().Get("access_token"))
	if code != 0 {
		w.fail(rw, code)
		return
	}
	if w.apps[appID].Type != WeChatMiniProgram {
		w.fail(rw, 48001)
		return
	}
	c, code := w.consume(req.Code, wechatPhoneCode, appID)
	if code != 0 {
		w.fail(rw, code)
		return
	}
	if req.OpenID != "" && req.OpenID != w.OpenID(appID, c.person) {
		w.fail(rw, 40029)
		return
	}
	n := w.PhoneNumber(c.person)
	rep := wechatPhoneReply{Errmsg: "ok", PhoneInfo: wechatPhoneInfo{PhoneNumber: n, PurePhoneNumber: n, CountryCode: "86"}}
	if w.opts.CountryCodeAsNumber {
		rep.PhoneInfo.CountryCode = 86
	}
	rep.PhoneInfo.Watermark.Timestamp = w.clock.now().Unix()
	rep.PhoneInfo.Watermark.AppID = appID
	w.reply(rw, rep)
}

// checkSession is GET /wxa/checksession: signature =
// hex(HMAC-SHA256(key = session_key as text, message = "")). The
// parameters may be in the query or in a form or JSON body.
func (w *WeChat) checkSession(rw http.ResponseWriter, r *http.Request) {
	params := r.URL.Query()
	if r.Body != nil {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		var j map[string]string
		if json.Unmarshal(body, &j) == nil {
			for k, v := range j {
				params.Set(k, v)
			}
		} else if form, err := url.ParseQuery(string(body)); err == nil {
			for k, v := range form {
				params[k] = v
			}
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	appID, code := w.appToken(params.Get("access_token"))
	if code != 0 {
		w.fail(rw, code)
		return
	}
	openID := params.Get("openid")
	if openID == "" {
		w.fail(rw, 41009)
		return
	}
	key := ""
	for _, p := range w.persons {
		if w.OpenID(appID, p.ID) == openID {
			key = w.sessionKeys[appID+"\x00"+p.ID]
		}
	}
	if key == "" {
		w.fail(rw, 40003)
		return
	}
	mac := hmac.New(sha256.New, []byte(key))
	want := hex.EncodeToString(mac.Sum(nil))
	if params.Get("sig_method") != "hmac_sha256" || !hmac.Equal([]byte(params.Get("signature")), []byte(want)) {
		w.fail(rw, 87009)
		return
	}
	w.reply(rw, wechatError{Errcode: 0, Errmsg: "ok"})
}

// sandboxCode serves POST /sandbox/wx.login and /sandbox/getPhoneNumber
// (?appid=..&person=..) → {"code": "..."}: what the mini-program would
// get on the phone, for the demo's curl.
func (w *WeChat) sandboxCode(rw http.ResponseWriter, r *http.Request, issue func(appID, personID string) (string, error)) {
	rw.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost {
		rw.Header().Set("Allow", http.MethodPost)
		rw.WriteHeader(http.StatusMethodNotAllowed)
		_ = json.NewEncoder(rw).Encode(map[string]string{"error": "use POST"})
		return
	}
	code, err := issue(r.FormValue("appid"), r.FormValue("person"))
	if err != nil {
		rw.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(rw).Encode(map[string]string{"error": err.Error()})
		return
	}
	_ = json.NewEncoder(rw).Encode(map[string]string{"code": code})
}

// wechatOAStateRE is the Official Account's rule for state.
var wechatOAStateRE = regexp.MustCompile(`^[A-Za-z0-9]{0,128}$`)

// wechatParamOrder is the order the Official Account page insists on.
var wechatParamOrder = []string{"appid", "redirect_uri", "response_type", "scope", "state"}

// authorize serves /connect/qrconnect (mp false) and
// /connect/oauth2/authorize (mp true): checks the request, then shows
// the person picker; the picker's links come back here with
// sandbox_person=ID (approve) or sandbox_deny=1.
func (w *WeChat) authorize(rw http.ResponseWriter, r *http.Request, mp bool) {
	q := r.URL.Query()
	pageErr := func(code, msg string) {
		w.errorPage(rw, mp, code, msg)
	}
	if mp && w.opts.StrictParamOrder {
		var keys []string
		for _, kv := range strings.Split(r.URL.RawQuery, "&") {
			k, _, _ := strings.Cut(kv, "=")
			keys = append(keys, k)
		}
		if len(keys) < len(wechatParamOrder) || strings.Join(keys[:len(wechatParamOrder)], ",") != strings.Join(wechatParamOrder, ",") {
			pageErr("param-order", "链接参数顺序不对 (the parameters must come in the order appid, redirect_uri, response_type, scope, state)")
			return
		}
	}
	appID := q.Get("appid")
	if appID == "" {
		pageErr("10012", "appid 参数为空")
		return
	}
	app, ok := w.apps[appID]
	switch {
	case !ok:
		pageErr("40013", "appid 无效")
		return
	case mp && app.Type != WeChatMP:
		pageErr("10016", "不支持开放平台或小程序的 appid")
		return
	case !mp && app.Type != WeChatWebsite:
		pageErr("40013", "appid 不是网站应用")
		return
	}
	redirect := q.Get("redirect_uri")
	if redirect == "" {
		pageErr("10011", "redirect_uri 参数为空")
		return
	}
	ru, err := url.Parse(redirect)
	if err != nil || (ru.Scheme != "http" && ru.Scheme != "https") || ru.Host == "" {
		pageErr("10003", "redirect_uri 参数错误")
		return
	}
	if !wechatDomainOK(app.CallbackDomain, ru) {
		pageErr("10003", "redirect_uri 域名与后台配置不一致")
		return
	}
	if q.Get("response_type") != "code" {
		pageErr("10010", "response_type 参数错误")
		return
	}
	scope := q.Get("scope")
	if mp {
		switch scope {
		case "":
			pageErr("10010", "scope 参数为空")
			return
		case "snsapi_base", "snsapi_userinfo":
		default:
			pageErr("10005", "此公众号没有 scope 的权限")
			return
		}
	} else {
		ok := false
		for _, s := range strings.Split(scope, ",") {
			ok = ok || s == "snsapi_login"
		}
		if !ok {
			pageErr("scope", "scope 参数错误或没有 scope 权限")
			return
		}
		scope = "snsapi_login"
	}
	state := q.Get("state")
	if mp && !wechatOAStateRE.MatchString(state) {
		pageErr("10013", "state 参数错误")
		return
	}
	if q.Get(denyParam) != "" {
		http.Redirect(rw, r, wechatRedirect(ru, url.Values{"state": {state}}), http.StatusFound)
		return
	}
	if person := q.Get(personParam); person != "" {
		if _, ok := findPerson(w.persons, person); !ok {
			pageErr("person", "unknown sandbox person")
			return
		}
		ttl := wxQRCodeTTL
		if mp {
			ttl = wxOAuthCodeTTL
		}
		code := randomHex(16)
		w.mu.Lock()
		snapshot := mp && scope == "snsapi_userinfo" && w.snapshot[person]
		w.codes[code] = &wechatCode{kind: wechatOAuthCode, appID: appID, person: person, scope: scope, snapshot: snapshot, expires: w.clock.now().Add(ttl)}
		w.mu.Unlock()
		http.Redirect(rw, r, wechatRedirect(ru, url.Values{"code": {code}, "state": {state}}), http.StatusFound)
		return
	}
	w.picker(rw, r, mp)
}

// wechatDomainOK reports whether redirect_uri's host is the registered
// domain; a domain without a port matches any port.
func wechatDomainOK(domain string, u *url.URL) bool {
	if domain == "" {
		return true
	}
	if strings.Contains(domain, ":") && !strings.HasSuffix(domain, "]") {
		return strings.EqualFold(u.Host, domain)
	}
	return strings.EqualFold(u.Hostname(), strings.Trim(domain, "[]"))
}

// wechatRedirect appends params to redirect_uri, keeping its own query.
func wechatRedirect(u *url.URL, params url.Values) string {
	v := *u
	v.Fragment = ""
	var b strings.Builder
	b.WriteString(v.RawQuery)
	for _, k := range []string{"code", "state"} {
		if vals, ok := params[k]; ok {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(k + "=" + url.QueryEscape(vals[0]))
		}
	}
	v.RawQuery = b.String()
	return v.String()
}

func (w *WeChat) picker(rw http.ResponseWriter, r *http.Request, mp bool) {
	// Appended to the query as it came: the Official Account page checks
	// the order of its parameters.
	base := r.URL.Path + "?" + r.URL.RawQuery
	persons, deny := pickerLinks(w.persons, func(p Person) string { return avatarURL(r, p) }, func(param, value string) string {
		return base + "&" + param + "=" + url.QueryEscape(value)
	})
	q := r.URL.Query()
	data := struct {
		AppID, Scope, DenyHref string
		Persons                []pickerPerson
	}{AppID: q.Get("appid"), Scope: q.Get("scope"), DenyHref: deny, Persons: persons}
	name := "wechat-qr"
	if mp {
		name = "wechat-oauth"
	}
	writePage(rw, http.StatusOK, pageTmpl, name, data)
}

// errorPage is what WeChat shows instead of redirecting: HTTP 200 and a
// page; data-wechat-error carries the code for tests.
func (w *WeChat) errorPage(rw http.ResponseWriter, mp bool, code, msg string) {
	title := "该链接无法访问"
	if mp {
		title = "Oops! Something went wrong:("
	}
	writePage(rw, http.StatusOK, pageTmpl, "wechat-error", struct{ Title, Error, Code string }{title, msg, code})
}
