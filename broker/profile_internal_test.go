package broker

import (
	"strings"
	"testing"
)

func TestCleanNameLikeANickname(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Alice", "Alice"},
		{"  小明  ", "小明"},
		{"a\t\n b", "a b"},
		{"evil\u202etxt.exe", "eviltxt.exe"},
		{"zero\u200bwidth", "zerowidth"},
		{"nul\x00bell\a", "nulbell"},
		{strings.Repeat("长", 100), strings.Repeat("长", 64)},
		{strings.Repeat("a ", 40), strings.TrimSpace(strings.Repeat("a ", 32))},
		{"\u3000\u3000", ""},
	} {
		if got := cleanName(tc.in); got != tc.want {
			t.Errorf("cleanName(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestPictureTypeSniffsTheBytes(t *testing.T) {
	for in, want := range map[string]string{
		"\x89PNG\r\n\x1a\nrest":        "image/png",
		"\xff\xd8\xff\xe0JFIF":         "image/jpeg",
		"RIFF\x00\x00\x00\x00WEBPVP8 ": "image/webp",
		"GIF89a":                       "",
		"<svg>":                        "",
		"RIFF\x00\x00\x00\x00WAVE":     "",
	} {
		if got := pictureType([]byte(in)); got != want {
			t.Errorf("pictureType(%q) = %q, want %q", in, got, want)
		}
	}
}
