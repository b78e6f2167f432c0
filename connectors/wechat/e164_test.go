package wechat

import "testing"

func TestE164FromPhoneInfo(t *testing.T) {
	cases := []struct {
		cc, pure, full, want string
	}{
		{"86", "13800138000", "13800138000", "+8613800138000"},
		{"+86", "13800138000", "", "+8613800138000"},
		{"1", "", "12025550123", "+12025550123"},
		{"852", "", "+85291234567", "+85291234567"},
		{"86", "", "13800138000", "+8613800138000"},
	}
	for _, c := range cases {
		got, err := e164(c.cc, c.pure, c.full)
		if err != nil || got != c.want {
			t.Errorf("e164(%q, %q, %q) = %q, %v, want %q", c.cc, c.pure, c.full, got, err, c.want)
		}
	}
	for _, bad := range [][3]string{{"", "13800138000", ""}, {"86", "138 0013", ""}, {"86", "", ""}, {"x", "1", "1"}, {"86", "123", ""}} {
		if got, err := e164(bad[0], bad[1], bad[2]); err == nil {
			t.Errorf("e164(%q) = %q, want an error", bad, got)
		}
	}
}
