package browsertest

import (
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/device"
)

func TestMain(m *testing.M) { os.Exit(Main(m)) }

// page serves a tiny page and records the headers of the requests for it.
type page struct {
	mu      sync.Mutex
	headers []http.Header
}

func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	p.mu.Lock()
	p.headers = append(p.headers, r.Header.Clone())
	p.mu.Unlock()
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(`<!DOCTYPE html><html lang="en"><head><meta name="viewport" content="width=device-width, initial-scale=1"><title>t</title></head><body><h1>hello</h1></body></html>`))
}

func (p *page) last(t *testing.T) http.Header {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.headers) == 0 {
		t.Fatal("the page was never requested")
	}
	return p.headers[len(p.headers)-1]
}

func TestEmulatedDevicesReachTheServerAndThePage(t *testing.T) {
	pg := &page{}
	srv := httptest.NewServer(pg)
	defer srv.Close()
	ctx := New(t)
	for _, tc := range []struct {
		dev       device.Info
		lang      string
		wantWidth int
		wantUA    []string
	}{
		{Phone, "en", 390, []string{"iPhone", "Mobile"}},
		{WeChat, "zh-CN,zh;q=0.9", 390, []string{"MicroMessenger", "Mobile"}},
		{Desktop, "en-US,en", 1280, nil},
	} {
		t.Run(tc.dev.Name, func(t *testing.T) {
			if err := chromedp.Do(ctx, Emulate(tc.dev, tc.lang), chromedp.Navigate(srv.URL+"/")); err != nil {
				t.Fatal(err)
			}
			width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`window.innerWidth`))
			if err != nil {
				t.Fatal(err)
			}
			if width != tc.wantWidth {
				t.Errorf("window.innerWidth = %d, want %d", width, tc.wantWidth)
			}
			h := pg.last(t)
			if got := h.Get("User-Agent"); got != tc.dev.UserAgent {
				t.Errorf("User-Agent = %q, want %q", got, tc.dev.UserAgent)
			}
			for _, w := range tc.wantUA {
				if !strings.Contains(h.Get("User-Agent"), w) {
					t.Errorf("User-Agent %q lacks %q", h.Get("User-Agent"), w)
				}
			}
			if got := h.Get("Accept-Language"); !strings.HasPrefix(got, strings.SplitN(tc.lang, ",", 2)[0]) {
				t.Errorf("Accept-Language = %q, want it to start with %q", got, tc.lang)
			}
		})
	}
}

func TestScreenshotIsAPNGUnderTheArtifactDir(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("QIAO_ARTIFACTS", dir)
	srv := httptest.NewServer(&page{})
	defer srv.Close()
	ctx := New(t)
	if err := chromedp.Do(ctx, Emulate(Phone, ""), chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	p := Screenshot(t, ctx, "hello page/phone")
	if want := filepath.Join(dir, safeName(t.Name()), "hello_page_phone.png"); p != want {
		t.Errorf("path = %q, want %q", p, want)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "\x89PNG\r\n\x1a\n") {
		t.Errorf("%s is not a PNG", p)
	}
}

func TestScreenshotWithoutArtifactDirGoesToTheTestsTempDir(t *testing.T) {
	t.Setenv("QIAO_ARTIFACTS", "")
	srv := httptest.NewServer(&page{})
	defer srv.Close()
	ctx := New(t)
	if err := chromedp.Do(ctx, Emulate(Desktop, ""), chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	p := Screenshot(t, ctx, "hello")
	src, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(filepath.Dir(src)) // the module
	if strings.HasPrefix(p, root+string(filepath.Separator)) {
		t.Errorf("the screenshot %s is in the source tree %s", p, root)
	}
	if tmp := os.TempDir(); !strings.HasPrefix(p, tmp+string(filepath.Separator)) {
		t.Errorf("the screenshot %s is not under the temporary directory %s", p, tmp)
	}
	if _, err := os.Stat(p); err != nil {
		t.Error(err)
	}
}

// TestHelperFails runs only as the subprocess of
// TestFailedTestKeepsItsScreenshotOutsideTheSourceTree.
func TestHelperFails(t *testing.T) {
	if os.Getenv("BROWSERTEST_HELPER") != "fail" {
		t.Skip("helper of TestFailedTestKeepsItsScreenshotOutsideTheSourceTree")
	}
	srv := httptest.NewServer(&page{})
	defer srv.Close()
	ctx := New(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	t.Error("failing on purpose")
}

func TestFailedTestKeepsItsScreenshotOutsideTheSourceTree(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperFails$", "-test.v")
	cmd.Env = append(os.Environ(), "BROWSERTEST_HELPER=fail", "QIAO_ARTIFACTS=")
	out, _ := cmd.CombinedOutput()
	m := regexp.MustCompile(`screenshot: (\S+failure\.png)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("the failed test logged no screenshot:\n%s", out)
	}
	p := string(m[1])
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(p)) })
	if !strings.HasPrefix(p, os.TempDir()+string(filepath.Separator)) {
		t.Errorf("the failure screenshot %s is not under the temporary directory", p)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("the failure screenshot is gone after the test: %v", err)
	}
	if !strings.HasPrefix(string(b), "\x89PNG\r\n\x1a\n") {
		t.Errorf("%s is not a PNG", p)
	}
}

// cookieServer serves a page at /set that sets the cookie who=first, and
// answers 404 at every other path (a page of the same origin without it).
func cookieServer(t *testing.T) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "who", Value: "first", Path: "/"})
		_, _ = w.Write([]byte("<p>set</p>"))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestTestsShareOneBrowserEachInItsOwnContext(t *testing.T) {
	srv := cookieServer(t)
	var browsers []*chromedp.Browser
	var contexts []string
	for _, tc := range []struct{ name, path, wantCookie string }{
		{"first sets a cookie", "/set", "who=first"},
		{"second does not see it", "/other", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := New(t)
			c := chromedp.FromContext(ctx)
			browsers = append(browsers, c.Browser)
			contexts = append(contexts, string(c.BrowserContextID))
			if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+tc.path)); err != nil {
				t.Fatal(err)
			}
			got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.wantCookie {
				t.Errorf("document.cookie = %q, want %q", got, tc.wantCookie)
			}
		})
	}
	if len(browsers) != 2 || browsers[0] == nil || browsers[0] != browsers[1] {
		t.Errorf("the tests ran in browsers %p, want one shared browser", browsers)
	}
	if len(contexts) != 2 || contexts[0] == "" || contexts[0] == contexts[1] {
		t.Errorf("browser contexts %q, want two different ones", contexts)
	}
}

func TestProfilesHaveTheirOwnCookies(t *testing.T) {
	srv := cookieServer(t)
	ctx := New(t)
	other := NewProfile(t, ctx)
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/set")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(other, chromedp.Navigate(srv.URL+"/other")); err != nil {
		t.Fatal(err)
	}
	first, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.cookie`))
	if err != nil {
		t.Fatal(err)
	}
	second, err := chromedp.Run(other, chromedp.Evaluate[string](`document.cookie`))
	if err != nil {
		t.Fatal(err)
	}
	if first != "who=first" || second != "" {
		t.Errorf("cookies: first profile %q, second %q; want %q and none", first, second, "who=first")
	}
}

func TestSafeNameIsOnePathElement(t *testing.T) {
	for in, want := range map[string]string{
		"TestA/sub case": "TestA_sub_case",
		"..":             "_",
		"":               "_",
		"a.b-c_d":        "a.b-c_d",
		"登录/phone":       "_phone",
	} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestHelperNeedsABrowser runs only as the subprocess of
// TestMissingChromiumSkipsOrFailsInCI.
func TestHelperNeedsABrowser(t *testing.T) {
	if os.Getenv("BROWSERTEST_HELPER") != "1" {
		t.Skip("helper of TestMissingChromiumSkipsOrFailsInCI")
	}
	New(t)
	t.Log("the browser started")
}

func TestMissingChromiumSkipsOrFailsInCI(t *testing.T) {
	for _, tc := range []struct {
		name, ci string
		want     string
	}{
		{"a developer's machine skips", "", "--- SKIP: TestHelperNeedsABrowser"},
		{"CI fails", "true", "--- FAIL: TestHelperNeedsABrowser"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestHelperNeedsABrowser$", "-test.v")
			cmd.Env = append(os.Environ(), "BROWSERTEST_HELPER=1", "QIAO_CHROMIUM="+filepath.Join(t.TempDir(), "no-chromium"), "CI="+tc.ci)
			out, _ := cmd.CombinedOutput()
			if !strings.Contains(string(out), tc.want) || !strings.Contains(string(out), "apt-get install -y chromium") {
				t.Errorf("without Chromium and CI=%q the test printed:\n%s\nwant %q and the install hint", tc.ci, out, tc.want)
			}
		})
	}
}
