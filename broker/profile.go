package broker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/gorilla/mux"

	"github.com/qiaoidp/qiao/storage"
)

// A profile people set themselves: a name (PATCH /api/v1/me) and a
// picture (PUT /api/v1/me/picture) that win over the providers' in ID
// tokens, userinfo and the account API. Since 2022 WeChat gives
// mini-programs "微信用户" and a grey avatar, so for mini-program users
// this is the only profile there is.

const (
	// maxNameRunes caps a name a person sets.
	maxNameRunes = 64
	// maxPicture is the largest picture a person may upload.
	maxPicture = 256 << 10
	// maxPictureBody is the request body a picture upload may have: the
	// picture and a multipart envelope around it (the picture routes'
	// withBodyLimit).
	maxPictureBody = maxPicture + 16<<10
)

// cleanName makes a name fit to show: control and format characters
// (bidi overrides, zero-width characters) go, runs of white space become
// one space, and it is cut to maxNameRunes characters.
func cleanName(s string) string {
	var b strings.Builder
	space := false
	n := 0
	for _, r := range strings.TrimSpace(s) {
		switch {
		case unicode.IsSpace(r):
			space = true
			continue
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), r == unicode.ReplacementChar:
			continue
		}
		if space && n > 0 {
			n++ // the space before this character
		}
		if n >= maxNameRunes {
			break
		}
		if space && n > 1 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(r)
		n++
	}
	return strings.TrimSpace(b.String())
}

// pictureType sniffs a picture's format from its bytes: PNG, JPEG or
// WebP; "" for anything else.
func pictureType(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")):
		return "image/png"
	case bytes.HasPrefix(b, []byte("\xff\xd8\xff")):
		return "image/jpeg"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "image/webp"
	}
	return ""
}

// handleSetName is PATCH /api/v1/me: {"name": "..."} ("" clears).
func (h *accountHandler) handleSetName(w http.ResponseWriter, r *http.Request) {
	g, ok := h.apiUser(w, r)
	if !ok {
		return
	}
	var req struct {
		Name *string `json:"name"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.Name == nil {
		writeJSON(w, http.StatusBadRequest, oauthError{Error: "invalid_request", Description: `The body must be {"name": "..."} (name may be "" to clear it).`})
		return
	}
	if err := h.identity.setName(r.Context(), g.userID, g.clientID, *req.Name); err != nil {
		h.log.Error("setting a name", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
		return
	}
	h.handleMe(w, r)
}

// readPicture reads an uploaded picture: the whole body, or the first
// file of a multipart/form-data body (wx.uploadFile), which its route
// caps at maxPictureBody. It answers the errors itself.
func readPicture(w http.ResponseWriter, r *http.Request) ([]byte, string, bool) {
	var src io.Reader = r.Body
	if mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && mt == "multipart/form-data" {
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			part, err := mr.NextPart()
			if err != nil {
				writeJSON(w, http.StatusBadRequest, oauthError{Error: "invalid_request", Description: "The multipart body has no file."})
				return nil, "", false
			}
			if part.FileName() != "" {
				src = part
				break
			}
		}
	}
	data, err := io.ReadAll(io.LimitReader(src, maxPicture+1))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe) || len(data) > maxPicture:
		writeJSON(w, http.StatusRequestEntityTooLarge, oauthError{Error: "invalid_request", Description: fmt.Sprintf("The picture is larger than %d KB.", maxPicture>>10)})
		return nil, "", false
	case err != nil:
		writeJSON(w, http.StatusBadRequest, oauthError{Error: "invalid_request", Description: "The picture could not be read."})
		return nil, "", false
	}
	ct := pictureType(data)
	if ct == "" {
		writeJSON(w, http.StatusUnsupportedMediaType, oauthError{Error: "invalid_request", Description: "The picture must be a PNG, JPEG or WebP image."})
		return nil, "", false
	}
	return data, ct, true
}

// handleSetPicture is PUT or POST /api/v1/me/picture (the image as the
// body, or a multipart file: wx.uploadFile) and DELETE.
func (h *accountHandler) handleSetPicture(w http.ResponseWriter, r *http.Request) {
	g, ok := h.apiUser(w, r)
	if !ok {
		return
	}
	var data []byte
	ct := ""
	if r.Method != http.MethodDelete {
		if data, ct, ok = readPicture(w, r); !ok {
			return
		}
	}
	if err := h.identity.setPicture(r.Context(), g.userID, g.clientID, data, ct); err != nil {
		h.log.Error("setting a picture", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, oauthError{Error: "temporarily_unavailable"})
		return
	}
	h.handleMe(w, r)
}

// servePicture serves the picture a user set, with headers that keep it
// an image: its sniffed type, nosniff, a CSP that runs nothing, and a
// short public cache revalidated by ETag.
func (h *accountHandler) servePicture(w http.ResponseWriter, r *http.Request) {
	p, err := h.store.GetProfile(r.Context(), mux.Vars(r)["user"])
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		h.log.Error("loading a picture", "err", err)
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	}
	ct := pictureType(p.Picture)
	if ct == "" {
		http.NotFound(w, r)
		return
	}
	etag := `"` + strconv.FormatInt(p.UpdatedAt.UnixMilli(), 36) + "-" + strconv.Itoa(len(p.Picture)) + `"`
	hdr := w.Header()
	hdr.Set("Content-Type", ct)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	hdr.Set("Cache-Control", "public, max-age=300, must-revalidate")
	hdr.Set("ETag", etag)
	hdr.Set("Last-Modified", p.UpdatedAt.UTC().Format(http.TimeFormat))
	hdr.Set("Cross-Origin-Resource-Policy", "cross-origin")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Length", strconv.Itoa(len(p.Picture)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(p.Picture)
	}
}

// The account page's profile sentences, merged into the catalog and the
// page's known statuses once at start-up.
const (
	msgProfileTitle   msgID = "profile_title"
	msgProfileName    msgID = "profile_name"
	msgProfileSave    msgID = "profile_save"
	msgProfilePicture msgID = "profile_picture"
	msgProfileUpload  msgID = "profile_upload"
	msgProfileRemove  msgID = "profile_remove"
	msgProfileSaved   msgID = "profile_saved"
	msgPictureBad     msgID = "picture_bad"
)

var profileCatalog = map[string]map[msgID]string{
	"en": {
		msgProfileTitle:   "Your name and picture",
		msgProfileName:    "Name",
		msgProfileSave:    "Save name",
		msgProfilePicture: "Picture (PNG, JPEG or WebP, up to 256 KB)",
		msgProfileUpload:  "Upload picture",
		msgProfileRemove:  "Remove picture",
		msgProfileSaved:   "Saved. Apps see it the next time you sign in.",
		msgPictureBad:     "The picture must be a PNG, JPEG or WebP image of at most 256 KB.",
	},
	"zh-CN": {
		msgProfileTitle:   "您的名字和头像",
		msgProfileName:    "名字",
		msgProfileSave:    "保存名字",
		msgProfilePicture: "头像（PNG、JPEG 或 WebP，最大 256 KB）",
		msgProfileUpload:  "上传头像",
		msgProfileRemove:  "移除头像",
		msgProfileSaved:   "已保存。应用在您下次登录时看到它。",
		msgPictureBad:     "头像必须是不超过 256 KB 的 PNG、JPEG 或 WebP 图片。",
	},
}

func init() {
	for lang, m := range profileCatalog {
		for k, v := range m {
			catalog[lang][k] = v
		}
	}
	statusMessages[msgProfileSaved] = msgProfileSaved
	errorMessages[msgPictureBad] = msgPictureBad
}

// handleAccountProfile is the account page's name form.
func (h *accountHandler) handleAccountProfile(w http.ResponseWriter, r *http.Request) {
	sess := h.accountSession(w, r)
	if sess == nil {
		return
	}
	if err := h.identity.setName(r.Context(), sess.UserID, "", r.PostForm.Get("name")); err != nil {
		h.log.Error("setting a name", "err", err)
		h.redirectAccount(w, r, "error", msgUnavailable)
		return
	}
	h.redirectAccount(w, r, "status", msgProfileSaved)
}

// handleAccountPicture is the account page's picture form (multipart:
// csrf, picture; or remove=1).
func (h *accountHandler) handleAccountPicture(w http.ResponseWriter, r *http.Request) {
	// The remove button may come as a plain form; an upload is multipart.
	if err := r.ParseMultipartForm(maxPictureBody); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		h.errorPage(w, r, http.StatusRequestEntityTooLarge, msgTooLarge)
		return
	}
	sess := h.accountSession(w, r)
	if sess == nil {
		return
	}
	var data []byte
	ct := ""
	if r.PostForm.Get("remove") == "" {
		f, _, err := r.FormFile("picture")
		if err == nil {
			data, err = io.ReadAll(io.LimitReader(f, maxPicture+1))
			f.Close()
		}
		if ct = pictureType(data); err != nil || ct == "" || len(data) > maxPicture {
			h.redirectAccount(w, r, "error", msgPictureBad)
			return
		}
	}
	if err := h.identity.setPicture(r.Context(), sess.UserID, "", data, ct); err != nil {
		h.log.Error("setting a picture", "err", err)
		h.redirectAccount(w, r, "error", msgUnavailable)
		return
	}
	h.redirectAccount(w, r, "status", msgProfileSaved)
}
