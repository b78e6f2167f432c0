package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Paths the QQ simulator serves (graph.qq.com's real paths).
const (
	QQPathAuthorize = "/oauth2.0/authorize"
	QQPathToken     = "/oauth2.0/token"
	QQPathMe        = "/oauth2.0/me"
	QQPathUserInfo  = "/user/get_user_info"
)

// Lifetimes from upstream-apis §6: codes live 10 minutes, access tokens
// 7776000 s (90 days).
const (
	qqCodeTTL  = 10 * time.Minute
	qqTokenTTL = 7776000 * time.Second
)

// QQApp is an app registered at the simulated QQ Connect.
type QQApp struct {
	ClientID string // the APP ID, digits like "101364207"
	Secret   string // the APP Key
	// RedirectURI is the registered callback: an authorize redirect_uri
	// must have its scheme and host and lie under its path.
	RedirectURI string
	// UnionID: the app was granted the unionid permission; without it
	// /oauth2.0/me?unionid=1 answers 100048.
	UnionID bool
}

// QQOptions configure a QQ simulator.
type QQOptions struct {
	Apps    []QQApp
	Persons []Person // nil: DefaultPersons()
	Clock   Clock    // nil: real time
	// OmitFigureQQ2 leaves figureurl_qq_2 out of get_user_info, as QQ
	// sometimes does.
	OmitFigureQQ2 bool
}

// QQ simulates graph.qq.com: the authorize page (a person picker), the
// token, /oauth2.0/me and get_user_info calls, with QQ's quirks: every
// answer is HTTP 200, the token comes form-encoded unless fmt=json, errors
// and /me come as JSONP `callback( {...} );` unless fmt=json, openids are
// per (app, person), and unionids go only to apps with the permission.
// Faults come through InjectFault (Fault).
type QQ struct {
	oauthSim[QQApp]
	opts QQOptions
}

// NewQQ returns a QQ simulator for opts.Apps and the persons.
func NewQQ(opts QQOptions) *QQ {
	q := &QQ{opts: opts}
	newToken := func() string { return strings.ToUpper(randomHex(16)) }
	q.init(opts.Apps, opts.Persons, opts.Clock, oauthSpec{
		authorizePath: QQPathAuthorize,
		routes: map[string]http.HandlerFunc{
			QQPathAuthorize: q.authorize,
			QQPathToken:     q.token,
			QQPathMe:        q.me,
			QQPathUserInfo:  q.userInfo,
		},
		notFound:       http.NotFound,
		badForm:        100029,
		apiError:       q.apiError,
		errorPage:      func(w http.ResponseWriter, code int) { q.errorPage(w, code, qqMessage(code)) },
		badRedirect:    100010,
		faults:         faultWire{contentType: "text/html", emptyType: "text/html", busy: qqBusy},
		codeTTL:        qqCodeTTL,
		tokenTTL:       qqTokenTTL,
		newCode:        newToken,
		newToken:       newToken,
		pickerPage:     "qq-picker",
		defaultDisplay: "pc",
		avatar:         qqHTTP,
		denied:         q.closed,
		unknownPerson:  func(w http.ResponseWriter) { q.errorPage(w, 100029, "unknown sandbox person") },
	})
	return q
}

// OpenID is the person's openid in the app: 32 uppercase hex characters,
// different in every app.
func (q *QQ) OpenID(clientID, personID string) string {
	return qqHash("openid", clientID, personID)
}

// UnionID is the person's unionid, the same in every app that has the
// unionid permission (the simulator has one developer account).
func (q *QQ) UnionID(personID string) string {
	return "UID_" + qqHash("unionid", personID)
}

func qqHash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return strings.ToUpper(hex.EncodeToString(sum[:16]))
}

// qqBusy is the gateway's answer when QQ is overloaded.
func qqBusy(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte("<html><body><h1>503 Service Unavailable</h1><hr>tws</body></html>\n"))
}

// qqMessage is QQ's description of a code (public return codes, §6.6).
func qqMessage(code int) string {
	switch code {
	case 100000:
		return "response_type is empty or invalid"
	case 100001:
		return "client_id is empty"
	case 100002:
		return "client_secret is empty"
	case 100004:
		return "grant_type is empty or invalid"
	case 100005:
		return "code is empty"
	case 100006:
		return "refresh token is empty"
	case 100007:
		return "access token is empty"
	case 100008:
		return "client id is illegal"
	case 100009:
		return "client secret is illegal"
	case 100010:
		return "redirect uri is illegal"
	case 100014:
		return "access token expired"
	case 100016:
		return "access token check failed"
	case 100019:
		return "code to access token error"
	case 100020:
		return "code is reused error"
	case 100029:
		return "bad http request"
	case 100030:
		return "user has not authorized this api"
	case 100048:
		return "companyid not set"
	}
	return "system error"
}

// qqRedirectAllowed: same scheme and host as the registered callback,
// and a path at or under its path.
func qqRedirectAllowed(registered, got string) bool {
	reg, err1 := url.Parse(registered)
	u, err2 := url.Parse(got)
	if err1 != nil || err2 != nil || u.Scheme != reg.Scheme || u.Host != reg.Host || u.Fragment != "" {
		return false
	}
	base := strings.TrimSuffix(reg.Path, "/")
	return u.Path == reg.Path || u.Path == base || strings.HasPrefix(u.Path, base+"/")
}

// writeObject writes a JSON object: JSONP `callback( {...} );` by
// default, plain JSON with fmt=json. QQ sends text/html either way.
func (q *QQ) writeObject(w http.ResponseWriter, r *http.Request, body []byte) {
	w.Header().Set("Content-Type", "text/html")
	w.Header().Set("Cache-Control", "no-cache")
	if r.Form.Get("fmt") != "json" {
		body = append(append([]byte("callback( "), body...), " );\n"...)
	}
	_, _ = w.Write(body)
}

// apiError answers an API error with HTTP 200 in the endpoint's shape:
// ret/msg JSON for get_user_info, else error/error_description, JSONP
// unless fmt=json.
func (q *QQ) apiError(w http.ResponseWriter, r *http.Request, code int) {
	msg := qqMessage(code)
	if r.URL.Path == QQPathUserInfo {
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write(plainJSON(map[string]any{"ret": code, "msg": msg}))
		return
	}
	q.writeObject(w, r, []byte(`{"error":`+strconv.Itoa(code)+`,"error_description":`+string(plainJSON(msg))+`}`))
}

// errorPage is QQ's error page on the authorize path: no redirect.
func (q *QQ) errorPage(w http.ResponseWriter, code int, msg string) {
	writePage(w, http.StatusOK, pageTmpl, "qq-error", map[string]any{"Code": code, "Message": msg})
}

// authorize checks the request as QQ does and shows the person picker;
// a picked person is redirected with a code, a cancel gets nothing back
// (QQ just closes the window).
func (q *QQ) authorize(w http.ResponseWriter, r *http.Request) {
	f := r.Form
	if f.Get("response_type") != "code" {
		q.errorPage(w, 100000, qqMessage(100000))
		return
	}
	clientID := f.Get("client_id")
	if clientID == "" {
		q.errorPage(w, 100001, qqMessage(100001))
		return
	}
	app, ok := q.app(clientID)
	if !ok {
		q.errorPage(w, 100008, qqMessage(100008))
		return
	}
	redirectURI := f.Get("redirect_uri")
	if !qqRedirectAllowed(app.RedirectURI, redirectURI) {
		q.errorPage(w, 100010, qqMessage(100010))
		return
	}
	if f.Get("state") == "" {
		q.errorPage(w, 100029, "state is empty")
		return
	}
	q.answer(w, r, app, redirectURI)
}

// closed is what stays of QQ's window after a cancel on a computer: the
// real QQ closes it and tells the app nothing. The sandbox's page says
// so, and offers the picker again and the way back to the site.
func (q *QQ) closed(w http.ResponseWriter, r *http.Request, redirectURI string) {
	data := map[string]any{"RetryHref": formLink(r.Form)("", "")}
	if u, err := url.Parse(redirectURI); err == nil && u.Host != "" {
		data["BackHref"] = u.Scheme + "://" + u.Host + "/"
		data["BackHost"] = u.Host
	}
	writePage(w, http.StatusOK, pageTmpl, "qq-closed", data)
}

// QQ's codes for the problems the shared core finds.
var (
	qqClientErrors  = map[clientProblem]int{clientMissing: 100001, clientUnknown: 100008, secretMissing: 100002, secretWrong: 100009}
	qqCodeErrors    = map[grantProblem]int{grantMissing: 100005, grantInvalid: 100019, grantUsed: 100020, grantRedirect: 100010}
	qqRefreshErrors = map[grantProblem]int{grantMissing: 100006, grantInvalid: 100019}
	qqTokenErrors   = map[tokenProblem]int{tokenMissing: 100007, tokenUnknown: 100016, tokenExpired: 100014}
)

// token serves GET|POST /oauth2.0/token for authorization_code and
// refresh_token grants.
func (q *QQ) token(w http.ResponseWriter, r *http.Request) {
	f := r.Form
	grantType := f.Get("grant_type")
	if grantType != "authorization_code" && grantType != "refresh_token" {
		q.apiError(w, r, 100004)
		return
	}
	app, problem := q.client(f.Get("client_id"), f.Get("client_secret"))
	if problem != clientOK {
		q.apiError(w, r, qqClientErrors[problem])
		return
	}
	var person Person
	if grantType == "authorization_code" {
		c, problem := q.redeem(f.Get("code"), app, f.Get("redirect_uri"))
		if problem != grantOK {
			q.apiError(w, r, qqCodeErrors[problem])
			return
		}
		person = c.person
	} else {
		g, problem := q.redeemRefresh(f.Get("refresh_token"), app)
		if problem != grantOK {
			q.apiError(w, r, qqRefreshErrors[problem])
			return
		}
		person = g.person
	}
	access, refresh := q.issueTokens(app, person, "", true)

	expiresIn := strconv.Itoa(int(qqTokenTTL / time.Second))
	openID := q.OpenID(app.ClientID, person.ID)
	if f.Get("fmt") == "json" {
		body := map[string]string{"access_token": access, "expires_in": expiresIn, "refresh_token": refresh}
		if f.Get("need_openid") == "1" {
			body["openid"] = openID
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write(plainJSON(body))
		return
	}
	// The historical form-encoded text, in QQ's field order.
	body := "access_token=" + access + "&expires_in=" + expiresIn + "&refresh_token=" + refresh
	if f.Get("need_openid") == "1" {
		body += "&openid=" + openID
	}
	w.Header().Set("Content-Type", "text/html")
	_, _ = w.Write([]byte(body))
}

// grantFor finds the live access token of a request, or answers QQ's
// error for it.
func (q *QQ) grantFor(w http.ResponseWriter, r *http.Request) (oauthGrant[QQApp], bool) {
	g, problem := q.lookup(r.Form.Get("access_token"))
	if problem != tokenOK {
		q.apiError(w, r, qqTokenErrors[problem])
		return g, false
	}
	return g, true
}

// me serves /oauth2.0/me: JSONP by default, unionid on request for apps
// that have the permission.
func (q *QQ) me(w http.ResponseWriter, r *http.Request) {
	g, ok := q.grantFor(w, r)
	if !ok {
		return
	}
	body := `{"client_id":` + string(plainJSON(g.app.ClientID)) + `,"openid":"` + q.OpenID(g.app.ClientID, g.person.ID) + `"`
	if r.Form.Get("unionid") == "1" {
		if !g.app.UnionID {
			q.apiError(w, r, 100048)
			return
		}
		body += `,"unionid":"` + q.UnionID(g.person.ID) + `"`
	}
	q.writeObject(w, r, []byte(body+"}"))
}

// userInfo serves get_user_info: ret/msg JSON, "男" as the default
// gender, string flags, http:// avatars (the Qzone ones with escaped
// slashes, as QQ sends them).
func (q *QQ) userInfo(w http.ResponseWriter, r *http.Request) {
	f := r.Form
	g, ok := q.grantFor(w, r)
	if !ok {
		return
	}
	key := f.Get("oauth_consumer_key")
	if key == "" {
		key = f.Get("appid")
	}
	switch {
	case key == "":
		q.apiError(w, r, 100001)
		return
	case key != g.app.ClientID || f.Get("openid") != q.OpenID(g.app.ClientID, g.person.ID):
		q.apiError(w, r, 100016)
		return
	}
	openID := q.OpenID(g.app.ClientID, g.person.ID)
	qzone := "http://qzapp.qlogo.cn/qzapp/" + g.app.ClientID + "/" + openID + "/"
	avatar := qqHTTP(avatarURL(r, g.person))
	sep := "?"
	if strings.Contains(avatar, "?") {
		sep = "&"
	}
	fields := []struct {
		k string
		v any
	}{
		{"ret", 0}, {"msg", ""}, {"is_lost", 0}, {"nickname", g.person.Name},
		{"gender", "男"}, {"gender_type", 2}, {"province", ""}, {"city", ""}, {"year", "0"}, {"constellation", ""},
		{"figureurl", qzone + "30"}, {"figureurl_1", qzone + "50"}, {"figureurl_2", qzone + "100"},
		{"figureurl_qq_1", avatar + sep + "s=40"}, {"figureurl_qq_2", avatar + sep + "s=100"},
		{"figureurl_qq", avatar + sep + "s=640"}, {"figureurl_type", "1"},
		{"is_yellow_vip", "0"}, {"vip", "0"}, {"yellow_vip_level", "0"}, {"level", "0"}, {"is_yellow_year_vip", "0"},
	}
	var b bytes.Buffer
	b.WriteByte('{')
	for _, kv := range fields {
		if kv.k == "figureurl_qq_2" && q.opts.OmitFigureQQ2 {
			continue
		}
		if b.Len() > 1 {
			b.WriteByte(',')
		}
		v := plainJSON(kv.v)
		if strings.HasPrefix(kv.k, "figureurl") && !strings.HasPrefix(kv.k, "figureurl_qq") && kv.k != "figureurl_type" {
			v = bytes.ReplaceAll(v, []byte("/"), []byte(`\/`))
		}
		b.WriteString(`"` + kv.k + `":`)
		b.Write(v)
	}
	b.WriteByte('}')
	w.Header().Set("Content-Type", "text/html")
	_, _ = w.Write(b.Bytes())
}

// qqHTTP gives an avatar URL QQ's way: http://, not https.
func qqHTTP(avatar string) string {
	if rest, ok := strings.CutPrefix(avatar, "https://"); ok {
		return "http://" + rest
	}
	return avatar
}
