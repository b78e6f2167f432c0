package sandbox

import (
	"crypto/sha256"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// avatarPrefix is where every simulator serves the generated avatars of
// its persons: /sandbox/avatar/ID.svg.
const avatarPrefix = "/sandbox/avatar/"

// avatarColors are the backgrounds of the generated avatars; a person's
// is picked by their id. Each carries white text at 4.5:1 or more.
var avatarColors = []string{"#1a7f5a", "#2b5fb4", "#a33b7a", "#b3541e", "#5b4bb7", "#0f6e8c", "#8a5a00", "#b02a37"}

// avatarSVG draws a person's avatar: their initial on a colour of their
// own, 132 px square, as WeChat's head images are.
func avatarSVG(p Person) []byte {
	initial := "?"
	if r, _ := utf8.DecodeRuneInString(p.Name); r != utf8.RuneError {
		initial = string(r)
	} else if r, _ := utf8.DecodeRuneInString(p.ID); r != utf8.RuneError {
		initial = strings.ToUpper(string(r))
	}
	sum := sha256.Sum256([]byte(p.ID))
	bg := avatarColors[int(sum[0])%len(avatarColors)]
	return []byte(fmt.Sprintf(`<svg xmlns="http://www.w3.org/2000/svg" width="132" height="132" viewBox="0 0 132 132" role="img" aria-label="%s">`+
		`<rect width="132" height="132" fill="%s"/>`+
		`<circle cx="110" cy="22" r="40" fill="#fff" fill-opacity=".12"/>`+
		`<text x="66" y="66" dy=".35em" text-anchor="middle" font-family="system-ui,'Noto Sans CJK SC','PingFang SC','Microsoft YaHei',sans-serif" font-size="64" fill="#fff">%s</text>`+
		`</svg>`, html.EscapeString(p.Name), bg, html.EscapeString(initial)))
}

// serveAvatar answers GET /sandbox/avatar/ID.svg (any query, such as
// QQ's ?s=100, is ignored) and reports whether the path was an avatar's.
func serveAvatar(w http.ResponseWriter, r *http.Request, persons []Person) bool {
	rest, ok := strings.CutPrefix(r.URL.Path, avatarPrefix)
	if !ok {
		return false
	}
	id, ok := strings.CutSuffix(rest, ".svg")
	p, found := findPerson(persons, id)
	if !ok || !found || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
		http.NotFound(w, r)
		return true
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "public, max-age=86400")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// An SVG opened on its own is a document: it may run nothing.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
	_, _ = w.Write(avatarSVG(p))
	return true
}

// selfBase is the simulator's own base URL as the request reached it:
// scheme, host, and the prefix a mux stripped (http.StripPrefix leaves
// RequestURI as it came).
func selfBase(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	prefix := ""
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil && u.Path != r.URL.Path {
		prefix = strings.TrimSuffix(u.Path, r.URL.Path)
	}
	return scheme + "://" + r.Host + prefix
}

// avatarURL is p's avatar as the simulator hands it out: p.Avatar when
// set, else the simulator's own generated one, on the host the request
// came to.
func avatarURL(r *http.Request, p Person) string {
	if p.Avatar != "" {
		return p.Avatar
	}
	return AvatarURL(selfBase(r), p.ID)
}

// AvatarURL is the generated avatar of the person with id personID at the
// simulator served at base (its URL without a trailing slash): what the
// simulator hands out for a person without an Avatar of their own.
func AvatarURL(base, personID string) string {
	return base + avatarPrefix + url.PathEscape(personID) + ".svg"
}
