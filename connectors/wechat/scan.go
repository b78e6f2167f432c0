package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/qiaoidp/qiao/connectors"
)

// endpointScanCode is the mini-program code call (upstream §4.8).
const endpointScanCode = "wxa/getwxacodeunlimit"

// ScanLogin configures "scan the mini-program code to sign in on the
// computer" (小程序扫码登录) on a wechat_miniprogram connector.
type ScanLogin struct {
	// Page is the mini-program page the code opens ("pages/scan/index":
	// no leading slash, no query). It receives the scene in
	// onLoad(query) and calls the SDK's scanLogin(query).
	Page string `yaml:"page"`
	// EnvVersion is the version the code opens: release (default),
	// trial or develop. Outside release the page need not be released
	// yet (check_path false).
	EnvVersion string `yaml:"env_version"`
	// Width of the code in pixels, 280–1280; 0: 430 (WeChat's default).
	Width int `yaml:"width"`
}

// Environment versions getwxacodeunlimit knows.
const (
	EnvRelease = "release"
	EnvTrial   = "trial"
	EnvDevelop = "develop"
)

// on reports whether the block turns scan login on (sets any key).
func (s ScanLogin) on() bool { return s != ScanLogin{} }

// validate adds the problems of a scan_login block to p.
func (s *ScanLogin) validate(typ string, p *connectors.Problems) {
	if typ != TypeMiniProgram {
		p.Add("scan_login", "only allowed for type %s", TypeMiniProgram)
		return
	}
	switch {
	case strings.TrimSpace(s.Page) == "":
		p.Add("scan_login.page", "required field is missing (the mini-program page that confirms the sign-in, like pages/scan/index)")
	case strings.HasPrefix(s.Page, "/") || strings.ContainsAny(s.Page, "?#& \t") || len(s.Page) > 256:
		p.Add("scan_login.page", "%q must be a page path like pages/scan/index: no leading slash, no query", s.Page)
	}
	switch s.EnvVersion {
	case "", EnvRelease, EnvTrial, EnvDevelop:
	default:
		p.Add("scan_login.env_version", "%q is not one of %s, %s, %s", s.EnvVersion, EnvRelease, EnvTrial, EnvDevelop)
	}
	if s.Width != 0 && (s.Width < 280 || s.Width > 1280) {
		p.Add("scan_login.width", "%d is outside 280–1280 pixels", s.Width)
	}
}

// ScanEnabled reports whether the connector signs in computers by a
// scanned mini-program code.
func (m *MiniProgram) ScanEnabled() bool { return m.scan != nil }

// OfferedIn: with scan_login, the mini-program code is offered on a
// computer outside WeChat (a phone cannot scan its own screen; inside
// WeChat the person is already where the mini-program runs). Without
// it the mini-program signs in at the token endpoint only.
func (m *MiniProgram) OfferedIn(b connectors.Browser) bool {
	return m.scan != nil && !b.WeChat && !b.Mobile
}

// scanCodeImage is a getwxacodeunlimit reply that is an image.
type scanCodeImage struct {
	data        []byte
	contentType string
}

// ScanCode asks WeChat for a mini-program code that opens the
// configured page with scene (at most 32 characters of WeChat's scene
// alphabet). It returns the image and its Content-Type (image/jpeg or
// image/png). A stale app access token is replaced and the call tried
// again once; WeChat's errors come back as *connectors.ProviderError.
func (m *MiniProgram) ScanCode(ctx context.Context, scene string) ([]byte, string, error) {
	if m.scan == nil {
		return nil, "", fmt.Errorf("wechat: scan_login is not configured: %w", connectors.ErrConfig)
	}
	if !validScene(scene) {
		return nil, "", fmt.Errorf("wechat: scene %q is not 1–32 characters of WeChat's scene alphabet: %w", scene, connectors.ErrConfig)
	}
	env := m.scan.EnvVersion
	if env == "" {
		env = EnvRelease
	}
	width := m.scan.Width
	if width == 0 {
		width = 430
	}
	body, _ := json.Marshal(map[string]any{
		"scene":       scene,
		"page":        m.scan.Page,
		"check_path":  env == EnvRelease,
		"env_version": env,
		"width":       width,
	})
	token, err := m.tokens.get(ctx, "")
	if err != nil {
		return nil, "", err
	}
	for attempt := 0; ; attempt++ {
		var img scanCodeImage
		err = m.c.callRaw(ctx, endpointScanCode, []string{token}, func() (*http.Request, error) {
			u := m.c.apiURL + "/wxa/getwxacodeunlimit?" + url.Values{"access_token": {token}}.Encode()
			req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
			}
			return req, err
		}, func(rep connectors.Reply) error {
			ct, ok := imageType(rep.Body)
			if !ok {
				// Not an image: WeChat's JSON error, or garbage.
				return decode(endpointScanCode, rep, nil, &noReply{})
			}
			img = scanCodeImage{data: rep.Body, contentType: ct}
			return nil
		})
		var pe *connectors.ProviderError
		if attempt == 0 && errors.As(err, &pe) && (pe.Code == 40001 || pe.Code == 42001 || pe.Code == 40014) {
			if token, err = m.tokens.get(ctx, token); err != nil {
				return nil, "", err
			}
			continue
		}
		if err != nil {
			return nil, "", err
		}
		return img.data, img.contentType, nil
	}
}

// noReply is a JSON reply that must be an error: a JSON object without
// an errcode where an image was expected is not understood.
type noReply struct{}

func (*noReply) missing() string { return "image (a JSON object without an errcode came back)" }

// imageType recognises the image formats getwxacodeunlimit returns.
func imageType(b []byte) (string, bool) {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png", true
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return "image/jpeg", true
	}
	return "", false
}

// sceneChars is WeChat's scene alphabet (upstream §4.8).
const sceneChars = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz!#$&'()*+,/:;=?@-._~"

func validScene(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !strings.ContainsRune(sceneChars, rune(s[i])) {
			return false
		}
	}
	return true
}
