package connectors_test

import (
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/connectors"
)

func TestProviderProfileStringsAreCleanedWhereTheyEnter(t *testing.T) {
	long := strings.Repeat("长", 70)
	tests := []struct {
		name, nick, wantNick, pic, wantPic string
	}{
		{"plain", "Alice", "Alice", "https://img.example/a.png", "https://img.example/a.png"},
		{"control characters", "Al\x1b[31mice\r\n\x00\u0085", "Al[31mice", "http://img.example/a.png", "http://img.example/a.png"},
		{"bidi override", "evil\u202egnp.exe", "evilgnp.exe", "javascript:alert(1)", ""},
		{"64 characters at most", long, strings.Repeat("长", 64), "data:image/png;base64,AAAA", ""},
		{"invalid UTF-8 and spaces", "  \xff\xfeBob  ", "Bob", "https://user:pw@img.example/a.png", ""},
		{"emoji kept", "👩‍💻 Dev", "👩‍💻 Dev", "//img.example/a.png", ""},
		{"avatar too long", "x", "x", "https://img.example/" + strings.Repeat("a", 2100), ""},
		{"avatar with a control character", "x", "x", "https://img.example/a\n.png", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := connectors.Identity{Subject: "s", DisplayName: tt.nick, Picture: tt.pic}.Clean()
			if got.DisplayName != tt.wantNick || got.Picture != tt.wantPic || got.Subject != "s" {
				t.Errorf("Clean = %q %q, want %q %q", got.DisplayName, got.Picture, tt.wantNick, tt.wantPic)
			}
			if again := got.Clean(); again.DisplayName != got.DisplayName || again.Picture != got.Picture {
				t.Errorf("Clean is not idempotent: %+v then %+v", got, again)
			}
		})
	}
}
