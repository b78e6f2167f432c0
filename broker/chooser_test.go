package broker_test

import (
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

const (
	desktopUA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
	phoneUA   = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"
	weChatUA  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 MicroMessenger/8.0.47"
)

// pluginFake is a web connector with the capabilities a provider package
// may give its connectors: where it is offered, its names, its icon, its
// union namespace.
type pluginFake struct {
	*fakeWeb
	offered func(connectors.Browser) bool // nil: everywhere
	names   map[string]string             // nil: none of its own
	icon    []byte
	ns      string
}

func (p pluginFake) OfferedIn(b connectors.Browser) bool { return p.offered == nil || p.offered(b) }
func (p pluginFake) DisplayName(lang string) string      { return p.names[lang] }
func (p pluginFake) Icon() []byte                        { return p.icon }
func (p pluginFake) UnionNamespace() (string, bool) {
	if p.ns == "" {
		return "fake:" + p.fakeWeb.person, false
	}
	return p.ns, true
}

// The capabilities of WeChat's QR-code and Official Account connectors.
var (
	qrCode          = func(b connectors.Browser) bool { return !b.WeChat && !b.Mobile }
	officialAccount = func(b connectors.Browser) bool { return b.WeChat }
)

// browserConfig: three connectors without names (qr, mp, other) and
// clients allowed all of them, qr and other, or mp alone.
func browserConfig(c *qiaotest.Config) {
	c.Connectors = []qiaotest.Connector{fakeConnector("qr", ""), fakeConnector("mp", ""), fakeConnector("other", "")}
	c.Clients = []qiaotest.Client{
		{ID: "web", Secret: "web-secret-0123456789abcdef0123456789", RedirectURIs: []string{"http://127.0.0.1:9/callback"}},
		{ID: "qronly", Secret: "qronly-secret-0123456789abcdef0123456789", RedirectURIs: []string{"http://127.0.0.1:9/qr"}, Connectors: []string{"qr", "other"}},
		{ID: "mponly", Secret: "mponly-secret-0123456789abcdef0123456789", RedirectURIs: []string{"http://127.0.0.1:9/mp"}, Connectors: []string{"mp"}},
	}
}

func newBrowserEnv(t *testing.T) *env {
	return newEnv(t, envOptions{config: browserConfig, wrap: func(id string, f *fakeWeb) any {
		switch id {
		case "qr":
			return pluginFake{fakeWeb: f, offered: qrCode, ns: "wechat"}
		case "mp":
			return pluginFake{fakeWeb: f, offered: officialAccount, ns: "wechat"}
		}
		return f
	}})
}

var connectorIDRE = regexp.MustCompile(`data-connector-id="([^"]+)"`)

// page fetches u with the user agent and language, and returns the
// offered connector ids (sorted), the note and the body.
func page(t *testing.T, e *env, u, ua, lang string) (ids []string, note, body string) {
	t.Helper()
	br := e.newBrowser()
	br.UserAgent = ua
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("User-Agent", ua)
	req.Header.Set("Accept-Language", lang)
	resp, err := br.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d, want a page", u, resp.StatusCode)
	}
	for _, m := range connectorIDRE.FindAllStringSubmatch(string(b), -1) {
		ids = append(ids, m[1])
	}
	sort.Strings(ids)
	if m := regexp.MustCompile(`data-note="([^"]+)"`).FindStringSubmatch(string(b)); m != nil {
		note = m[1]
	}
	return ids, note, string(b)
}

// TestChooserOnAPhoneOutsideWeChatHidesTheQRCodeAndSaysOpenInWeChat: a
// phone cannot scan its own screen, so the QR-code login is not offered
// there; as no other WeChat login works there either, the page says to
// open it in WeChat, in the reader's language.
func TestChooserOnAPhoneOutsideWeChatHidesTheQRCodeAndSaysOpenInWeChat(t *testing.T) {
	e := newBrowserEnv(t)
	tests := []struct {
		name, client, redirect, ua string
		want                       []string
		note                       string
	}{
		{"computer: the QR code", "web", "http://127.0.0.1:9/callback", desktopUA, []string{"other", "qr"}, ""},
		{"phone outside WeChat: no QR code, open in WeChat", "web", "http://127.0.0.1:9/callback", phoneUA, []string{"other"}, "open_in_wechat"},
		{"WeChat: the Official Account", "web", "http://127.0.0.1:9/callback", weChatUA, []string{"mp", "other"}, ""},
		{"phone, QR code the only WeChat login: open on a computer", "qronly", "http://127.0.0.1:9/qr", phoneUA, []string{"other"}, "open_on_computer"},
		{"computer, Official Account the only one: open in WeChat", "mponly", "http://127.0.0.1:9/mp", desktopUA, nil, "open_in_wechat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.rp(tc.client, "x", tc.redirect)
			ids, note, body := page(t, e, r.authURL().url, tc.ua, "en")
			if strings.Join(ids, ",") != strings.Join(tc.want, ",") || note != tc.note {
				t.Fatalf("chooser offers %v with note %q, want %v with note %q", ids, note, tc.want, tc.note)
			}
			if tc.note == "" {
				return
			}
			if strings.Contains(body, "No sign-in method is available") {
				t.Errorf("the chooser says nothing works although the note says where it does")
			}
			_, _, zh := page(t, e, r.authURL().url, tc.ua, "zh-CN")
			for _, want := range map[string][2]string{
				"open_in_wechat":   {"open this page in WeChat", "请在微信中打开此页面"},
				"open_on_computer": {"open this page on a computer", "请在电脑上打开此页面"},
			}[tc.note] {
				if !strings.Contains(body, want) && !strings.Contains(zh, want) {
					t.Errorf("neither page says %q", want)
				}
			}
		})
	}
}

func TestAccountPageOnAPhoneOutsideWeChatHidesTheQRCode(t *testing.T) {
	e := newBrowserEnv(t)
	ids, note, _ := page(t, e, e.issuer+"/account", phoneUA, "en")
	if strings.Join(ids, ",") != "other" || note != "open_in_wechat" {
		t.Fatalf("account sign-in offers %v with note %q, want [other] with open_in_wechat", ids, note)
	}
	ids, note, _ = page(t, e, e.issuer+"/account", desktopUA, "en")
	if strings.Join(ids, ",") != "other,qr" || note != "" {
		t.Fatalf("account sign-in on a computer offers %v with note %q, want [other qr] and no note", ids, note)
	}
}

// TestPagesNameConnectorsInTheReadersLanguage: a connector's own names
// ("WeChat", "微信") unless the configuration names it (name: in every
// language, names: per language), and its own icon.
func TestPagesNameConnectorsInTheReadersLanguage(t *testing.T) {
	// alpha without a name, gamma named in every language, beta per
	// language.
	config := func(c *qiaotest.Config) {
		beta := fakeConnector("beta", "")
		beta.Names = map[string]string{"en": "Beta Login", "zh-CN": "贝塔"}
		c.Connectors = []qiaotest.Connector{fakeConnector("alpha", ""), fakeConnector("gamma", "Gamma"), beta}
	}
	icon := []byte(`<svg xmlns="http://www.w3.org/2000/svg" data-test-icon="wx"/>`)
	own := map[string]string{"en": "WeChat", "zh-CN": "微信"}
	e := newEnv(t, envOptions{config: config, wrap: func(_ string, f *fakeWeb) any {
		return pluginFake{fakeWeb: f, names: own, icon: icon, ns: "wechat"}
	}})
	r := e.webRP()
	_, _, en := page(t, e, r.authURL().url, desktopUA, "en")
	_, _, zh := page(t, e, r.authURL().url, desktopUA, "zh-CN")
	for _, c := range []struct {
		page, want string
	}{
		{en, "Continue with WeChat"}, {en, "Continue with Beta Login"}, {en, "Continue with Gamma"},
		{zh, "使用微信登录"}, {zh, "使用贝塔登录"}, {zh, "使用Gamma登录"},
	} {
		if !strings.Contains(c.page, c.want) {
			t.Errorf("page lacks %q", c.want)
		}
	}
	if strings.Contains(en, "微信") {
		t.Errorf("the English chooser says 微信")
	}

	resp := e.newBrowser().get(e.issuer + "/icons/alpha.svg")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != string(icon) || resp.Header.Get("Content-Type") != "image/svg+xml" {
		t.Errorf("alpha's icon: %d %q %q, want the connector's own SVG", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if !strings.Contains(en, `src="/qiao/icons/alpha.svg"`) {
		t.Errorf("the chooser does not show alpha's own icon")
	}
	resp = e.newBrowser().get(e.issuer + "/icons/gone.svg")
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "<svg") || string(body) == string(icon) {
		t.Errorf("icon of an unknown connector: %d %q, want the generic SVG", resp.StatusCode, body)
	}
}

// TestAccountPageNoteOnlyForWhatThePersonLacks: signed in with the QR-code
// WeChat login, a person on a phone is not told to open the page in
// WeChat: they have WeChat already.
func TestAccountPageNoteOnlyForWhatThePersonLacks(t *testing.T) {
	e := newBrowserEnv(t)
	br := e.newBrowser()
	r := e.webRP()
	r.login(br, oauth2.SetAuthURLParam("connector_id", "qr"))
	get := func(ua string) (ids []string, note string) {
		br.UserAgent = ua
		resp := br.get(e.issuer + "/account")
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, m := range regexp.MustCompile(`data-bind="([^"]+)"`).FindAllStringSubmatch(string(body), -1) {
			ids = append(ids, m[1])
		}
		if m := regexp.MustCompile(`data-note="([^"]+)"`).FindStringSubmatch(string(body)); m != nil {
			note = m[1]
		}
		return ids, note
	}
	if ids, note := get(phoneUA); strings.Join(ids, ",") != "other" || note != "" {
		t.Errorf("phone, WeChat bound: bind offers %v with note %q, want [other] and no note", ids, note)
	}
	if ids, note := get(weChatUA); strings.Join(ids, ",") != "mp,other" || note != "" {
		t.Errorf("in WeChat: bind offers %v with note %q, want [mp other] and no note", ids, note)
	}
}
