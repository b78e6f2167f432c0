package broker_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/qiaoidp/qiao/connectors"
)

// fakeScan is a mini-program with scan login: codes as fakeCode, and a
// one-pixel PNG as its mini-program code.
type fakeScan struct {
	*fakeCode
	scenes []string
}

func (f *fakeScan) ScanEnabled() bool { return true }

func (f *fakeScan) OfferedIn(b connectors.Browser) bool { return !b.Mobile && !b.WeChat }

func (f *fakeScan) ScanCode(_ context.Context, scene string) ([]byte, string, error) {
	f.mu.Lock()
	f.scenes = append(f.scenes, scene)
	f.mu.Unlock()
	return []byte("\x89PNG\r\n\x1a\nfake"), "image/png", nil
}

func scanEnv(t *testing.T, now func() time.Time) (*env, *fakeScan) {
	f := &fakeScan{fakeCode: &fakeCode{used: map[string]bool{}}}
	o := mini(f)
	o.now = now
	return newEnv(t, o), f
}

// startScan opens the scan login in br and returns its scene.
func startScan(t *testing.T, e *env, br *browser) string {
	t.Helper()
	r := e.webRP()
	resp := br.get(r.authURL(oauth2.SetAuthURLParam("connector_id", "mini")).url)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Request.URL.Path, "/scan/") {
		t.Fatalf("scan login: HTTP %d at %s", resp.StatusCode, resp.Request.URL)
	}
	return resp.Request.URL.Path[strings.LastIndex(resp.Request.URL.Path, "/")+1:]
}

func scanCall(t *testing.T, e *env, scene, step, body string) (int, map[string]any) {
	t.Helper()
	p := e.Bearer(t, http.MethodPost, "/api/v1/scan/"+scene+step, "", body)
	return p.Status, p.MustJSON(t)
}

// TestScanLoginExpires: after a few minutes a code can no longer be
// scanned or a scan confirmed (410 expired_scene), the page says it
// expired and offers a new code, and the long poll reports it.
func TestScanLoginExpires(t *testing.T) {
	clk := &clock{}
	e, _ := scanEnv(t, clk.Now)
	br := e.newBrowser()
	waiting := startScan(t, e, br)
	scanned := startScan(t, e, br)
	st, m := scanCall(t, e, scanned, "", `{"code":"alice:1"}`)
	if st != http.StatusOK {
		t.Fatalf("scan: %d %v", st, m)
	}
	ticket, _ := m["ticket"].(string)

	clk.Advance(3*time.Minute + time.Second)
	st, m = scanCall(t, e, waiting, "", `{"code":"alice:2"}`)
	if st != http.StatusGone || m["error"] != "expired_scene" {
		t.Errorf("scan of an expired code: %d %v, want 410 expired_scene", st, m)
	}
	st, m = scanCall(t, e, scanned, "/confirm", `{"code":"alice:3","ticket":"`+ticket+`"}`)
	if st != http.StatusGone || m["error"] != "expired_scene" {
		t.Errorf("confirm of an expired scan: %d %v, want 410 expired_scene", st, m)
	}
	resp := br.get(e.issuer + "/scan/" + waiting)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `data-status="expired"`) || !strings.Contains(string(body), "data-scan-new") || strings.Contains(string(body), "scan-code") {
		t.Errorf("the expired page: %.600s", body)
	}
	resp = br.get(e.issuer + "/scan/" + waiting + "/status?since=waiting")
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), `"status":"expired"`) {
		t.Errorf("long poll of an expired scan: %s", raw)
	}
}

// TestScanLoginNotOfferedOnPhones: the chooser lists the scan login on
// a computer, not on a phone; connector_id still refuses it for a
// client that may not use it.
func TestScanLoginNotOfferedOnPhones(t *testing.T) {
	e, f := scanEnv(t, nil)
	r := e.webRP()
	for _, tc := range []struct {
		ua   string
		want bool
	}{{"Mozilla/5.0 (X11; Linux x86_64)", true}, {"Mozilla/5.0 (iPhone) Mobile", false}} {
		br := e.newBrowser()
		br.UserAgent = tc.ua
		resp := br.get(r.authURL().url)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := strings.Contains(string(body), `data-connector-id="mini"`); got != tc.want {
			t.Errorf("%s: mini offered %v, want %v", tc.ua, got, tc.want)
		}
	}
	only := e.rp("onlybeta", "onlybeta-secret", "https://beta.example/cb")
	q := only.authorize(e.newBrowser(), only.authURL(oauth2.SetAuthURLParam("connector_id", "mini")))
	if q.Get("error") != "invalid_request" || len(f.scenes) != 0 {
		t.Errorf("connector_id=mini for a client without it: %v, %d codes made", q, len(f.scenes))
	}
}
