package sandbox

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"html/template"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Mini-program codes (upstream-apis §4.8): POST
// /wxa/getwxacodeunlimit?access_token=... with a JSON body answers the
// image bytes (JPEG; PNG with is_hyaline), or WeChat's JSON error. The
// image looks like a mini-program code made of the scene's hash; it
// cannot be scanned, but any <img> shows it.

// wxaCodePerMinute is WeChat's limit on this call, per app.
const wxaCodePerMinute = 5000

// wxaSceneChars is WeChat's scene alphabet.
const wxaSceneChars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$&'()*+,/:;=?@-._~"

var wxaErrmsg = map[int]string{
	40097: "invalid args",
	40129: "invalid scene",
	41030: "invalid page",
	45011: "api minute-quota reach limit mustslower retry next minute",
}

// WeChatCode is a mini-program code the simulator made, for the sandbox
// phone page and the tests.
type WeChatCode struct {
	AppID      string
	Scene      string
	Page       string
	EnvVersion string
	Made       time.Time
}

// Codes returns the mini-program codes made so far, newest first (at
// most the last 50).
func (w *WeChat) Codes() []WeChatCode {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]WeChatCode, 0, len(w.wxaCodes))
	for i := len(w.wxaCodes) - 1; i >= 0; i-- {
		out = append(out, w.wxaCodes[i])
	}
	return out
}

type wxaCodeRequest struct {
	Scene      *string `json:"scene"`
	Page       string  `json:"page"`
	CheckPath  *bool   `json:"check_path"`
	EnvVersion string  `json:"env_version"`
	Width      int     `json:"width"`
	IsHyaline  bool    `json:"is_hyaline"`
}

func (w *WeChat) wxaCode(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.fail(rw, 43002)
		return
	}
	var req wxaCodeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	if err := dec.Decode(&req); err != nil {
		w.fail(rw, 47001) // form posts and other non-JSON bodies
		return
	}
	w.mu.Lock()
	appID, code := w.appToken(r.URL.Query().Get("access_token"))
	if code == 0 && w.apps[appID].Type != WeChatMiniProgram {
		code = 48001
	}
	if code == 0 {
		code = w.checkWxaCode(appID, req)
	}
	if code == 0 {
		now := w.clock.now()
		m := w.wxaMinute[appID]
		if m == nil || now.Sub(m.start) >= time.Minute {
			m = &wxaMinute{start: now}
			w.wxaMinute[appID] = m
		}
		if m.n >= wxaCodePerMinute {
			code = 45011
		} else {
			m.n++
			w.wxaCodes = append(w.wxaCodes, WeChatCode{AppID: appID, Scene: *req.Scene, Page: req.Page, EnvVersion: envOr(req.EnvVersion), Made: now})
			if len(w.wxaCodes) > 50 {
				w.wxaCodes = w.wxaCodes[len(w.wxaCodes)-50:]
			}
		}
	}
	w.mu.Unlock()
	if code != 0 {
		w.failWxa(rw, code)
		return
	}
	width := min(max(req.Width, 280), 1280)
	if req.Width == 0 {
		width = 430
	}
	img := wxaImage(*req.Scene, width, req.IsHyaline)
	var buf bytes.Buffer
	ct := "image/jpeg"
	if req.IsHyaline {
		ct = "image/png"
		_ = png.Encode(&buf, img)
	} else {
		_ = jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90})
	}
	rw.Header().Set("Content-Type", ct)
	rw.Header().Set("Content-Length", fmt.Sprint(buf.Len()))
	rw.WriteHeader(http.StatusOK)
	_, _ = rw.Write(buf.Bytes())
}

func envOr(v string) string {
	if v == "" {
		return "release"
	}
	return v
}

type wxaMinute struct {
	start time.Time
	n     int
}

// checkWxaCode checks the body as WeChat does; 0 or an errcode. Callers
// hold w.mu.
func (w *WeChat) checkWxaCode(appID string, req wxaCodeRequest) int {
	if req.Scene == nil || *req.Scene == "" || len(*req.Scene) > 32 {
		return 40129
	}
	for _, c := range *req.Scene {
		if !strings.ContainsRune(wxaSceneChars, c) {
			return 40129
		}
	}
	env := envOr(req.EnvVersion)
	if env != "release" && env != "trial" && env != "develop" {
		return 40097
	}
	if strings.HasPrefix(req.Page, "/") || strings.ContainsAny(req.Page, "?#") {
		return 41030
	}
	check := req.CheckPath == nil || *req.CheckPath
	if check && req.Page != "" && !w.released(appID, req.Page) {
		return 41030
	}
	return 0
}

// released reports whether page is in the app's released version. An
// app with no Pages listed has every page released. Callers hold w.mu.
func (w *WeChat) released(appID, page string) bool {
	pages := w.apps[appID].Pages
	if pages == nil {
		return true
	}
	for _, p := range pages {
		if p == page {
			return true
		}
	}
	return false
}

func (w *WeChat) failWxa(rw http.ResponseWriter, code int) {
	if msg, ok := wxaErrmsg[code]; ok && wechatErrmsg[code] == "" {
		w.reply(rw, wechatError{Errcode: code, Errmsg: msg + ", rid: " + randomHex(4) + "-" + randomHex(4) + "-" + randomHex(4)})
		return
	}
	w.fail(rw, code)
}

// wxaImage draws a code-like picture: three finder squares and modules
// from the scene's hash, on white (or transparent with hyaline).
func wxaImage(scene string, width int, hyaline bool) image.Image {
	const n = 25 // modules per side
	img := image.NewNRGBA(image.Rect(0, 0, width, width))
	bg := color.NRGBA{255, 255, 255, 255}
	if hyaline {
		bg = color.NRGBA{}
	}
	fg := color.NRGBA{0x07, 0xc1, 0x60, 255} // WeChat green
	dark := color.NRGBA{0, 0, 0, 255}
	for y := 0; y < width; y++ {
		for x := 0; x < width; x++ {
			img.SetNRGBA(x, y, bg)
		}
	}
	seed := sha256.Sum256([]byte(scene))
	bit := func(i int) bool {
		h := seed
		if i/256 > 0 {
			h = sha256.Sum256(append(seed[:], byte(i/256)))
		}
		return h[(i%256)/8]>>(i%8)&1 == 1
	}
	finder := func(mx, my int) (bool, bool) {
		for _, o := range [][2]int{{0, 0}, {n - 7, 0}, {0, n - 7}} {
			dx, dy := mx-o[0], my-o[1]
			if dx >= 0 && dx < 7 && dy >= 0 && dy < 7 {
				ring := dx == 0 || dy == 0 || dx == 6 || dy == 6
				core := dx >= 2 && dx <= 4 && dy >= 2 && dy <= 4
				return true, ring || core
			}
		}
		return false, false
	}
	margin := width / 12
	cell := (width - 2*margin) / n
	for my := 0; my < n; my++ {
		for mx := 0; mx < n; mx++ {
			in, on := finder(mx, my)
			c := fg
			if in {
				c = dark
			} else {
				on = bit(my*n + mx)
			}
			if !on {
				continue
			}
			for y := margin + my*cell; y < margin+(my+1)*cell; y++ {
				for x := margin + mx*cell; x < margin+(mx+1)*cell; x++ {
					img.SetNRGBA(x, y, c)
				}
			}
		}
	}
	return img
}

// ------------------------------------------------------- phone page

// The sandbox phone plays the person's phone: it lists the codes made,
// "scans" one as a chosen person (a wx.login code sent to the broker,
// as the mini-program's scanLogin does) and confirms or refuses. The
// broker's mini-program API lives at WeChatOptions.ScanLoginAPI.

var phonePageTmpl = template.Must(template.New("phone").Parse(`<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sandbox phone · 微信</title>
<style>body{font-family:sans-serif;max-width:26rem;margin:1rem auto;padding:0 1rem}button{margin:.2rem}li{margin:.5rem 0}.err{color:#b00}</style>
</head><body>
<h1>Sandbox phone</h1>
<p>Plays WeChat on a phone: pick a code shown on the computer and the person who scans it.</p>
{{if .Error}}<p class="err" role="alert" data-phone-error>{{.Error}}</p>{{end}}
{{if .Approve}}
<section data-phone-approve>
<h2>确认登录</h2>
<p>Sign in to <strong data-client-name>{{.Approve.ClientName}}</strong> on the computer as <strong>{{.Approve.Person}}</strong>?</p>
<p>Code made at {{.Approve.Made}}.</p>
<p>Only confirm if you opened this code yourself.</p>
<form method="post" action="phone">
<input type="hidden" name="scene" value="{{.Approve.Scene}}"><input type="hidden" name="appid" value="{{.Approve.AppID}}">
<input type="hidden" name="person" value="{{.Approve.PersonID}}"><input type="hidden" name="ticket" value="{{.Approve.Ticket}}">
<button name="action" value="confirm" data-phone-confirm>确认登录 Confirm</button>
<button name="action" value="refuse" data-phone-refuse>拒绝 Refuse</button>
</form>
</section>
{{end}}
{{if .Done}}<p role="status" data-phone-done="{{.Done}}">Done: {{.Done}}.</p>{{end}}
<h2>Codes</h2>
{{if not .Codes}}<p>No code yet: choose the mini-program on the computer's sign-in page, then reload.</p>{{end}}
<ul>
{{range .Codes}}{{$c := .}}
<li data-scene="{{.Scene}}">{{.Made.Format "15:04:05"}} · {{.Page}}
<form method="post" action="phone">
<input type="hidden" name="scene" value="{{.Scene}}"><input type="hidden" name="appid" value="{{.AppID}}">
{{range $.Persons}}<button name="person" value="{{.ID}}" data-person="{{.ID}}">Scan as {{.Name}}</button>{{end}}
<input type="hidden" name="action" value="scan">
</form></li>
{{end}}
</ul>
</body></html>
`))

type phoneApprove struct {
	Scene, AppID, PersonID, Person, Ticket, ClientName, Made string
}

// phone serves GET and POST /sandbox/phone.
func (w *WeChat) phone(rw http.ResponseWriter, r *http.Request) {
	data := struct {
		Error, Done string
		Approve     *phoneApprove
		Codes       []WeChatCode
		Persons     []Person
	}{Codes: w.Codes(), Persons: w.persons}
	if len(data.Codes) > 10 {
		data.Codes = data.Codes[:10]
	}
	status := http.StatusOK
	if r.Method == http.MethodPost {
		var err error
		data.Approve, data.Done, err = w.phoneAction(r)
		if err != nil {
			status, data.Error = http.StatusBadRequest, err.Error()
		}
	}
	writePage(rw, status, phonePageTmpl, "phone", data)
}

func (w *WeChat) phoneAction(r *http.Request) (*phoneApprove, string, error) {
	if w.opts.ScanLoginAPI == "" {
		return nil, "", fmt.Errorf("the sandbox knows no broker (WeChatOptions.ScanLoginAPI)")
	}
	scene, appID, person := r.FormValue("scene"), r.FormValue("appid"), r.FormValue("person")
	p, ok := findPerson(w.persons, person)
	if !ok {
		return nil, "", fmt.Errorf("unknown person %q", person)
	}
	call := func(step string, body map[string]string) (map[string]any, error) {
		u := strings.TrimSuffix(w.opts.ScanLoginAPI, "/") + "/" + url.PathEscape(scene) + step
		raw, _ := json.Marshal(body)
		resp, err := http.Post(u, "application/json", bytes.NewReader(raw))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&out); err != nil {
			return nil, fmt.Errorf("the broker answered HTTP %d without JSON", resp.StatusCode)
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("the broker refused: %v: %v", out["error"], out["error_description"])
		}
		return out, nil
	}
	switch r.FormValue("action") {
	case "scan":
		code, err := w.LoginCode(appID, person)
		if err != nil {
			return nil, "", err
		}
		out, err := call("", map[string]string{"code": code})
		if err != nil {
			return nil, "", err
		}
		made := ""
		if t, ok := out["created_at"].(float64); ok {
			made = time.Unix(int64(t), 0).Format("15:04:05")
		}
		name, _ := out["client_name"].(string)
		ticket, _ := out["ticket"].(string)
		return &phoneApprove{Scene: scene, AppID: appID, PersonID: person, Person: p.Name, Ticket: ticket, ClientName: name, Made: made}, "", nil
	case "confirm":
		code, err := w.LoginCode(appID, person)
		if err != nil {
			return nil, "", err
		}
		if _, err := call("/confirm", map[string]string{"ticket": r.FormValue("ticket"), "code": code}); err != nil {
			return nil, "", err
		}
		return nil, "confirmed", nil
	case "refuse":
		if _, err := call("/refuse", map[string]string{"ticket": r.FormValue("ticket")}); err != nil {
			return nil, "", err
		}
		return nil, "refused", nil
	}
	return nil, "", fmt.Errorf("unknown action")
}
