package sandbox

import (
	"crypto/sha256"
	"fmt"
	"html/template"
	"strings"
)

// The simulators' pages. Each looks enough like its provider's real page
// (colours, layout, wording) that a person recognises where they are,
// and says plainly that it is a SANDBOX. They load nothing from anywhere
// else: styles are inline, logos and the QR code are inline SVG, and the
// avatars come from the simulator itself (avatar.go).

// fakeQR draws a QR-code look-alike for seed: the three finder squares
// and modules that follow from the seed. It encodes nothing: in the
// sandbox the person picker stands in for the phone that scans.
func fakeQR(seed string) template.HTML {
	const n = 25
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="qr" viewBox="-2 -2 %d %d" role="img" aria-label="二维码 (sandbox: nothing to scan)"><rect x="-2" y="-2" width="%d" height="%d" fill="#fff"/><path fill="#111" d="`, n+4, n+4, n+4, n+4)
	finder := func(x, y int) bool {
		for _, f := range [][2]int{{0, 0}, {n - 7, 0}, {0, n - 7}} {
			if x >= f[0] && x < f[0]+7 && y >= f[1] && y < f[1]+7 {
				dx, dy := x-f[0], y-f[1]
				ring := dx == 0 || dx == 6 || dy == 0 || dy == 6
				core := dx >= 2 && dx <= 4 && dy >= 2 && dy <= 4
				return ring || core
			}
		}
		return false
	}
	inFinderZone := func(x, y int) bool {
		for _, f := range [][2]int{{0, 0}, {n - 8, 0}, {0, n - 8}} {
			if x >= f[0] && x < f[0]+8 && y >= f[1] && y < f[1]+8 {
				return true
			}
		}
		return false
	}
	bits := sha256.Sum256([]byte(seed))
	for y := 0; y < n; y++ {
		for x := 0; x < n; x++ {
			on := finder(x, y)
			if !inFinderZone(x, y) {
				i := (y*n + x) * 7
				h := bits[(i/8)%len(bits)] ^ byte(x*31+y*17)
				on = h&0x9 == 0x9 || (x+y)%5 == 0 && h&1 == 1
			}
			if on {
				fmt.Fprintf(&b, "M%d %dh1v1h-1z", x, y)
			}
		}
	}
	b.WriteString(`"/></svg>`)
	return template.HTML(b.String())
}

// pageTmpl holds every simulator page; writePage renders one by name.
var pageTmpl = template.Must(template.New("pages").Funcs(template.FuncMap{"qr": fakeQR}).Parse(`
{{define "head"}}<meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<style>
*{box-sizing:border-box}body{margin:0;font:15px/1.5 -apple-system,BlinkMacSystemFont,"PingFang SC","Noto Sans CJK SC","Microsoft YaHei",system-ui,sans-serif}
a{color:inherit}
.sandbox{display:flex;gap:.6em;align-items:center;justify-content:center;flex-wrap:wrap;margin:0;padding:.35em .8em;background:#ffd43b;color:#222;font-size:13px;text-align:center}
.sandbox strong{letter-spacing:.12em;border:1.5px solid #222;border-radius:3px;padding:0 .35em}
.avatar{width:44px;height:44px;border-radius:6px;flex:none;background:#ccc}
.hint{font-size:13px}
a:focus-visible,button:focus-visible{outline:3px solid #ffbf47;outline-offset:2px}
</style>{{end}}

{{define "banner"}}<p class="sandbox" role="note" data-sandbox><strong>SANDBOX</strong><span>{{.}} · simulated, not the real service: nothing here leaves your machine</span></p>{{end}}

{{define "wechat-logo"}}<svg width="{{.}}" height="{{.}}" viewBox="0 0 48 48" aria-hidden="true"><ellipse cx="19" cy="20" rx="15" ry="12.5" fill="#07c160"/><path d="M10 29l-2 6 7-4z" fill="#07c160"/><ellipse cx="31" cy="29" rx="12.5" ry="10.5" fill="#fff" stroke="#07c160" stroke-width="2"/><circle cx="14" cy="17" r="2" fill="#fff"/><circle cx="24" cy="17" r="2" fill="#fff"/><circle cx="27" cy="27" r="1.6" fill="#07c160"/><circle cx="35" cy="27" r="1.6" fill="#07c160"/></svg>{{end}}

{{define "qq-logo"}}<svg width="{{.}}" height="{{.}}" viewBox="0 0 48 48" aria-hidden="true"><ellipse cx="24" cy="22" rx="13" ry="17" fill="#111"/><ellipse cx="24" cy="27" rx="9.5" ry="11" fill="#fff"/><circle cx="19.5" cy="14" r="2.6" fill="#fff"/><circle cx="28.5" cy="14" r="2.6" fill="#fff"/><circle cx="20" cy="14.5" r="1.2" fill="#111"/><circle cx="28" cy="14.5" r="1.2" fill="#111"/><path d="M19 18.5h10l-5 3.5z" fill="#f5b301"/><path d="M12 24c6 3 18 3 24 0v3c-6 3-18 3-24 0z" fill="#e6162d"/><ellipse cx="17" cy="40" rx="6" ry="2.6" fill="#f5b301"/><ellipse cx="31" cy="40" rx="6" ry="2.6" fill="#f5b301"/></svg>{{end}}

{{define "weibo-logo"}}<svg width="{{.}}" height="{{.}}" viewBox="0 0 48 48" aria-hidden="true"><ellipse cx="21" cy="29" rx="17" ry="11" fill="#e6162d"/><ellipse cx="20" cy="30" rx="10" ry="6.5" fill="#fff"/><circle cx="19" cy="30.5" r="3.6" fill="#111"/><circle cx="20.2" cy="29.4" r="1" fill="#fff"/><path d="M33 8a9 9 0 0 1 8 11" stroke="#ff8200" stroke-width="3" fill="none" stroke-linecap="round"/><path d="M32 13a4 4 0 0 1 4 5" stroke="#ff8200" stroke-width="3" fill="none" stroke-linecap="round"/></svg>{{end}}

{{/* ------------------------------------------------------------ WeChat */}}

{{define "wechat-qr"}}<!DOCTYPE html>
<html lang="zh-CN"><head>{{template "head"}}<title>微信登录</title>
<style>
body{background:#333;color:#fff}
main{max-width:30em;margin:0 auto;padding:1.5em 1em 2.5em;text-align:center}
h1{font-size:20px;font-weight:400;margin:.6em 0 1em;display:flex;gap:.4em;align-items:center;justify-content:center}
.qr{width:220px;height:220px;display:block;margin:0 auto;border-radius:2px}
.scan{margin:1em 0 .2em;color:#fff}.app{color:#c8c8c8;margin:0 0 1.6em}
h2{font-size:15px;font-weight:400;color:#e0e0e0;margin:1.4em 0 .6em}
.person{display:flex;align-items:center;gap:.9em;padding:.6em .9em;margin:.5em auto;max-width:20em;background:#444;border:1px solid #555;border-radius:6px;color:#fff;text-decoration:none;text-align:left}
.person:hover{background:#4d4d4d;border-color:#07c160}
.person .go{margin-left:auto;color:#9fe6bf;font-size:13px}
.deny{display:inline-block;margin-top:1.2em;color:#c8c8c8}
</style></head>
<body data-provider="wechat" data-page="qrconnect">
{{template "banner" "微信 WeChat"}}
<main>
<h1>{{template "wechat-logo" 28}}<span>微信登录</span></h1>
{{qr .AppID}}
<p class="scan">请使用微信扫一扫登录</p>
<p class="app">“{{.AppID}}”</p>
<h2>Sandbox：选择扫码的人 · choose who scans the code</h2>
{{range .Persons}}<a class="person" data-person="{{.ID}}" href="{{.Href}}"><img class="avatar" src="{{.Avatar}}" alt=""><span>{{.Name}}</span><span class="go">扫码并确认登录 ›</span></a>
{{end}}<a class="deny" data-deny href="{{.DenyHref}}">在手机上拒绝 · deny on the phone</a>
</main></body></html>
{{end}}

{{define "wechat-oauth"}}<!DOCTYPE html>
<html lang="zh-CN"><head>{{template "head"}}<title>微信网页授权</title>
<style>
body{background:#ededed;color:#111}
header{background:#ededed;text-align:center;padding:.7em;font-size:17px;font-weight:500}
main{max-width:26em;margin:0 auto;padding:0 1em 2em}
.card{background:#fff;border-radius:8px;padding:1.4em 1.2em;text-align:center}
.app{display:flex;align-items:center;justify-content:center;gap:.5em;font-size:17px;margin:0 0 .3em}
.ask{color:#4d4d4d;margin:0 0 1.2em}
.scope{border-top:1px solid #e5e5e5;padding-top:1em;text-align:left;color:#333;margin:0}
h2{font-size:14px;font-weight:400;color:#4d4d4d;margin:1.4em 0 .5em}
.person{display:flex;align-items:center;gap:.9em;padding:.7em .9em;margin:.5em 0;background:#fff;border-radius:8px;color:#111;text-decoration:none}
.person .allow{margin-left:auto;background:#058f47;color:#fff;font-weight:700;font-size:19px;border-radius:6px;padding:.2em 1.1em}
.person:hover .allow{background:#067d3e}
.deny{display:block;text-align:center;margin:1em 0;padding:.6em;background:#f2f2f2;border-radius:6px;color:#1d6a38;font-weight:700;font-size:19px;text-decoration:none}
</style></head>
<body data-provider="wechat" data-page="oauth2">
{{template "banner" "微信 WeChat"}}
<header>微信网页授权</header>
<main>
<div class="card">
<p class="app">{{template "wechat-logo" 24}}<span>{{.AppID}}</span></p>
<p class="ask">申请获取以下权限</p>
<p class="scope">{{if eq .Scope "snsapi_base"}}· 获取你的身份标识 (openid)<br><span class="hint">snsapi_base: WeChat asks nothing and goes straight on; the sandbox still lets you choose who you are.</span>{{else}}· 获得你的公开信息（昵称、头像等）{{end}}</p>
</div>
<h2>Sandbox：选择使用微信的人 · choose who is using WeChat</h2>
{{range .Persons}}<a class="person" data-person="{{.ID}}" href="{{.Href}}"><img class="avatar" src="{{.Avatar}}" alt=""><span>{{.Name}}</span><span class="allow">允许</span></a>
{{end}}<a class="deny" data-deny href="{{.DenyHref}}">拒绝</a>
</main></body></html>
{{end}}

{{define "wechat-error"}}<!DOCTYPE html>
<html lang="zh-CN"><head>{{template "head"}}<title>{{.Title}}</title>
<style>
body{background:#fff;color:#111}
main{max-width:26em;margin:0 auto;padding:3em 1.2em;text-align:center}
.icon{width:64px;height:64px;border-radius:50%;background:#fa5151;color:#fff;font-size:40px;line-height:64px;margin:0 auto 1em;font-weight:700}
h1{font-size:20px;font-weight:500;margin:0 0 .6em}
p{color:#4d4d4d;margin:.3em 0}
</style></head>
<body data-provider="wechat" data-page="error">
{{template "banner" "微信 WeChat"}}
<main>
<div class="icon" aria-hidden="true">!</div>
<h1 class="error" data-wechat-error="{{.Code}}">{{.Title}}</h1>
<p>{{.Error}}</p>
{{if .Code}}<p>错误码 {{.Code}}</p>{{end}}
<p class="hint">Sandbox: WeChat shows this page and does not go back to the app, as the real WeChat does.</p>
</main></body></html>
{{end}}

{{/* ---------------------------------------------------------------- QQ */}}

{{define "qq-picker"}}<!DOCTYPE html>
<html lang="zh-CN"><head>{{template "head"}}<title>QQ帐号安全登录</title>
<style>
body{background:#ebf2f9;color:#222}
header{background:#fff;border-bottom:3px solid #12b7f5}
header div{max-width:58em;margin:0 auto;padding:.5em 1em;display:flex;align-items:center;gap:.5em;font-size:18px}
main{max-width:58em;margin:1.5em auto;padding:0 1em;display:flex;gap:1.2em;flex-wrap:wrap}
section{background:#fff;border:1px solid #d5e3f0;border-radius:4px;padding:1.2em 1.4em;flex:1 1 20em}
h1{font-size:17px;font-weight:500;margin:0 0 .2em}h2{font-size:15px;font-weight:500;margin:0 0 1em;color:#333}
.tiles{display:flex;gap:1.1em;flex-wrap:wrap;justify-content:center;margin:1em 0}
.person{display:flex;flex-direction:column;align-items:center;gap:.3em;width:6.5em;padding:.6em .3em;border:1px solid transparent;border-radius:4px;color:#222;text-decoration:none;text-align:center}
.person .avatar{width:72px;height:72px;border-radius:4px;border:2px solid #d5e3f0}
.person:hover{border-color:#12b7f5;background:#f3faff}
.login{display:block;width:100%;text-align:center;background:#0a6fbd;color:#fff;border-radius:4px;padding:.45em;margin-top:.2em;font-size:14px}
.perm{list-style:none;padding:0;margin:.6em 0}.perm li::before{content:"☑ ";color:#0a6fbd}
.deny{color:#0a5da0}
.mobile main{display:block;margin:0;padding:0}.mobile section{border:0;border-radius:0;margin-bottom:.6em}
.mobile header{background:#12b7f5;border:0;color:#fff}.mobile header div{justify-content:center;color:#111}
</style></head>
<body data-provider="qq" data-display="{{.Display}}"{{if .Mobile}} class="mobile"{{end}}>
{{template "banner" "QQ互联 QQ Connect"}}
<header><div>{{template "qq-logo" 30}}<span>QQ登录</span></div></header>
<main>
<section>
<h1>快捷登录</h1>
<p class="hint">Sandbox: these QQ accounts are “signed in on this {{if .Mobile}}phone{{else}}computer{{end}}”; pick one to log in as them.</p>
<div class="tiles">
{{range .Persons}}<a class="person" data-person="{{.ID}}" href="{{.Href}}"><img class="avatar" src="{{.Avatar}}" alt=""><span>{{.Name}}</span><span class="login">授权并登录</span></a>
{{end}}</div>
<p><a class="deny" data-deny href="{{.DenyHref}}">取消登录</a>{{if not .Mobile}} <span class="hint">(on a computer QQ then just closes its window)</span>{{end}}</p>
</section>
<section>
<h2>应用 {{.AppID}} 将获得以下权限：</h2>
<ul class="perm"><li>获得您的昵称、头像、性别</li></ul>
<p class="hint">授权后表明你已同意 QQ登录服务协议</p>
</section>
</main></body></html>
{{end}}

{{/* qq-card-style: the QQ pages with one white card (error, closed). */}}
{{define "qq-card-style"}}body{background:#ebf2f9;color:#222}
header{background:#fff;border-bottom:3px solid #12b7f5}
header div{max-width:40em;margin:0 auto;padding:.5em 1em;display:flex;align-items:center;gap:.5em;font-size:18px}
main{max-width:40em;margin:1.5em auto;padding:1.5em;background:#fff;border:1px solid #d5e3f0;border-radius:4px}
h1{font-size:20px;font-weight:500;margin:0 0 .6em}{{end}}

{{define "qq-error"}}<!DOCTYPE html>
<html lang="zh-CN"><head>{{template "head"}}<title>QQ互联</title>
<style>
{{template "qq-card-style"}}
</style></head>
<body data-provider="qq">
{{template "banner" "QQ互联 QQ Connect"}}
<header><div>{{template "qq-logo" 30}}<span>QQ互联</span></div></header>
<main>
<h1>很抱歉，出错了</h1>
<p data-error-code="{{.Code}}">错误码：{{.Code}}</p><p>描述：{{.Message}}</p>
<p class="hint">Sandbox: QQ shows this page and does not go back to the app, as the real QQ does.</p>
</main></body></html>
{{end}}

{{define "qq-closed"}}<!DOCTYPE html>
<html lang="zh-CN"><head>{{template "head"}}<title>QQ登录 · 已取消</title>
<style>
{{template "qq-card-style"}}
.actions{display:flex;gap:.8em;flex-wrap:wrap;margin-top:1.2em}
.actions a{display:inline-block;padding:.5em 1.1em;border-radius:4px;text-decoration:none}
.primary{background:#0a6fbd;color:#fff}.secondary{border:1px solid #0a6fbd;color:#0a5da0}
</style></head>
<body data-provider="qq" data-cancelled>
{{template "banner" "QQ互联 QQ Connect"}}
<header><div>{{template "qq-logo" 30}}<span>QQ登录</span></div></header>
<main>
<h1>登录已取消，窗口已关闭</h1>
<p>You cancelled the QQ login. On a computer the real QQ now <strong>closes its login window and sends nothing back</strong>: the site that sent you here is not told, and keeps waiting until its sign-in expires.</p>
<p lang="zh-CN">在电脑上取消 QQ 登录时，QQ 直接关闭登录窗口，不通知应用。</p>
<p class="hint">The sandbox keeps this page open so that you can read this and go on.</p>
<div class="actions">
<a class="primary" data-retry href="{{.RetryHref}}">重新登录 · choose an account again</a>
{{if .BackHref}}<a class="secondary" data-back href="{{.BackHref}}">返回 {{.BackHost}} · back to the site</a>{{end}}
</div>
</main></body></html>
{{end}}

{{/* ------------------------------------------------------------- Weibo */}}

{{define "weibo-picker"}}<!DOCTYPE html>
<html lang="zh-CN"><head>{{template "head"}}<title>微博-应用授权</title>
<style>
body{background:#f2f2f5;color:#333}
header{background:#fff;border-top:3px solid #ff8200;box-shadow:0 1px 2px rgba(0,0,0,.08)}
header div{max-width:44em;margin:0 auto;padding:.5em 1em;display:flex;align-items:center;gap:.5em;font-size:18px;font-weight:700}
main{max-width:44em;margin:1.5em auto;padding:0 1em}
.card{background:#fff;border-radius:4px;padding:1.2em 1.4em;margin-bottom:1em}
h1{font-size:17px;font-weight:500;margin:0 0 .6em}
.perm{color:#555;margin:0}
h2{font-size:15px;font-weight:500;margin:0 0 .6em}
.person{display:flex;align-items:center;gap:.9em;padding:.6em .8em;margin:.5em 0;border:1px solid #eee;border-radius:4px;color:#333;text-decoration:none}
.person:hover{border-color:#ff8200;background:#fff8f0}
.person .ok{margin-left:auto;background:#c45c00;color:#fff;font-weight:700;font-size:19px;border-radius:3px;padding:.15em 1.2em}
.deny{display:inline-block;margin-top:.6em;padding:.3em 1.6em;border:1px solid #ccc;border-radius:3px;background:#f7f7f7;color:#333;text-decoration:none}
</style></head>
<body data-provider="weibo" data-display="{{.Display}}">
{{template "banner" "新浪微博 Weibo"}}
<header><div>{{template "weibo-logo" 30}}<span>微博</span><span class="hint" style="font-weight:400">应用授权</span></div></header>
<main>
<div class="card">
<h1>授权 {{.AppID}} 访问你的微博帐号</h1>
<p class="perm">将获得：获得你的个人信息（昵称、头像）</p>
</div>
<div class="card">
<h2>Sandbox：选择登录的微博帐号 · choose the Weibo account</h2>
{{range .Persons}}<a class="person" data-person="{{.ID}}" href="{{.Href}}"><img class="avatar" src="{{.Avatar}}" alt=""><span>{{.Name}}</span><span class="ok">授权</span></a>
{{end}}<a class="deny" data-deny href="{{.DenyHref}}">取消</a>
</div>
</main></body></html>
{{end}}

{{define "weibo-error"}}<!DOCTYPE html>
<html lang="zh-CN"><head>{{template "head"}}<title>微博-出错了</title>
<style>
body{background:#f2f2f5;color:#333}
header{background:#fff;border-top:3px solid #ff8200}
header div{max-width:40em;margin:0 auto;padding:.5em 1em;display:flex;align-items:center;gap:.5em;font-size:18px;font-weight:700}
main{max-width:40em;margin:1.5em auto;padding:1.5em;background:#fff;border-radius:4px}
h1{font-size:20px;font-weight:500;margin:0 0 .6em}
</style></head>
<body data-provider="weibo">
{{template "banner" "新浪微博 Weibo"}}
<header><div>{{template "weibo-logo" 30}}<span>微博</span></div></header>
<main>
<h1>出错了</h1>
<p data-error-code="{{.Code}}">错误码：{{.Code}}</p><p>{{.Error}}</p>
<p class="hint">Sandbox: Weibo shows this page and does not go back to the app, as the real Weibo does.</p>
</main></body></html>
{{end}}
`))
