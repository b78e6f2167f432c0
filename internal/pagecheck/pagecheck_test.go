package pagecheck

import (
	"reflect"
	"testing"
)

func TestExternalURLsFindsEveryOutsideReferenceAndOnlyThose(t *testing.T) {
	tests := []struct {
		name, page string
		want       []string
	}{
		{"loopback only", `<a href="http://127.0.0.1:5556/x">x</a><img src="http://localhost/a.svg"><a href="http://[::1]:80/">v6</a>`, nil},
		{"relative links", `<a href="/account">a</a><a href="authorize?x=1">b</a><a href="a//b">c</a>`, nil},
		{"an outside image", `<img src="https://sandbox.example/avatars/alice.png">`, []string{"https://sandbox.example/avatars/alice.png"}},
		{"protocol-relative", `<script src="//cdn.example/x.js"></script>`, []string{"//cdn.example/x.js"}},
		{"css url and import", `<style>@import "https://fonts.example/f.css";b{background:url(http://img.example/b.png)}</style>`, []string{"https://fonts.example/f.css", "http://img.example/b.png"}},
		{"an svg namespace", `<svg xmlns="http://www.w3.org/2000/svg"></svg>`, []string{"http://www.w3.org/2000/svg"}},
		{"in text, once", `see https://qq.example/ and https://qq.example/`, []string{"https://qq.example/"}},
		{"entity-escaped text", `<pre>&#34;iss&#34;: &#34;http://127.0.0.1:5556&#34;, &#34;pic&#34;: &#34;https://img.example/a&#34;</pre>`, []string{"https://img.example/a"}},
		{"upper case scheme", `<a href="HTTP://Example.COM/">x</a>`, []string{"HTTP://Example.COM/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ExternalURLs(tt.page); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ExternalURLs = %q, want %q", got, tt.want)
			}
		})
	}
}
