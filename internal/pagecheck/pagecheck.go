// Package pagecheck finds, for tests, what in a page would reach beyond
// the machine: every http(s) URL (and protocol-relative //host one) in
// an HTML page whose host is not loopback. The demo promises that nothing
// leaves the machine; its pages are held to that.
package pagecheck

import (
	"html"
	"net"
	"net/url"
	"regexp"
	"strings"
)

// urlRE finds absolute and protocol-relative URLs anywhere in a page:
// attributes, inline CSS (url(), @import), scripts and text alike.
var urlRE = regexp.MustCompile(`(?i)(?:https?:)?//[^\s"'<>()\\,;]+`)

// ExternalURLs returns the URLs in page that name a host other than
// 127.0.0.0/8, ::1 or localhost, in order, each once.
func ExternalURLs(page string) []string {
	// Entities first: "&#34;http://x&#34;" is the text "http://x".
	page = html.UnescapeString(page)
	var out []string
	seen := map[string]bool{}
	for _, loc := range urlRE.FindAllStringIndex(page, -1) {
		raw := page[loc[0]:loc[1]]
		if strings.HasPrefix(raw, "//") && loc[0] > 0 && isURLChar(page[loc[0]-1]) {
			continue // a path's "//", such as in "a//b", not a URL
		}
		if Loopback(raw) || seen[raw] {
			continue
		}
		seen[raw] = true
		out = append(out, raw)
	}
	return out
}

func isURLChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~:/?#[]@!$&*+=%", c) >= 0
}

// Loopback reports whether the absolute or protocol-relative URL raw
// names a loopback host.
func Loopback(raw string) bool {
	if strings.HasPrefix(raw, "//") {
		raw = "http:" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return false
	}
	h := u.Hostname()
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
