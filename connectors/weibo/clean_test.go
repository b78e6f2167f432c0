package weibo_test

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/connectors/weibo"
)

func TestLoginCleansTheProvidersProfileStrings(t *testing.T) {
	e := newEnv(t)
	e.sim = sandbox.NewWeibo(sandbox.WeiboOptions{
		Apps:    []sandbox.WeiboApp{{ClientID: appKey, Secret: secret, RedirectURI: e.callback}},
		Clock:   e.clock.Now,
		Persons: []sandbox.Person{{ID: "eve", Name: "Eve\x1b[2J\u202e" + strings.Repeat("e", 80), Avatar: "javascript:alert(1)"}},
	})
	e.srv = httptest.NewServer(e.sim)
	t.Cleanup(e.srv.Close)
	c := e.connector(t, weibo.Config{})
	id, err := c.HandleCallback(context.Background(), e.request(), e.browse(t, c, `data-person="eve"`))
	if err != nil {
		t.Fatalf("HandleCallback: %v", err)
	}
	if want := "Eve[2J" + strings.Repeat("e", connectors.MaxNickname-6); id.DisplayName != want || len([]rune(id.DisplayName)) != connectors.MaxNickname {
		t.Errorf("nickname %q, want %q", id.DisplayName, want)
	}
	if id.Picture != "" {
		t.Errorf("avatar %q, want it dropped", id.Picture)
	}
}
