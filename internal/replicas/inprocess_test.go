package replicas

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/broker"
	"github.com/qiaoidp/qiao/cmd/qiao/registry"
	"github.com/qiaoidp/qiao/cmd/qiao/wire"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/connectors/sandbox"
	"github.com/qiaoidp/qiao/storage"
)

const (
	miniAppID     = "wx5555555555555555"
	miniAppSecret = "mini-program-app-secret-for-tests"
	miniClientID  = "mini"
	miniConnector = "miniprogram"
)

const inProcessConfig = `
issuer: @ISSUER@
secret: "` + testSecret + `"
storage: { type: sqlite }
tokens: { id_token_ttl: 10m, access_token_ttl: 10m, refresh_token_ttl: 1h }
connectors:
  - id: weibo
    type: weibo
    config: { client_id: "` + weiboAppKey + `", client_secret: "` + weiboAppSecret + `", auth_base_url: @WEIBO@, api_base_url: @WEIBO@ }
  - id: ` + miniConnector + `
    type: wechat_miniprogram
    config: { client_id: ` + miniAppID + `, client_secret: "` + miniAppSecret + `", auth_base_url: @WECHAT@, api_base_url: @WECHAT@ }
clients:
  - id: ` + clientID + `
    secret: "` + clientSecret + `"
    redirect_uris: [` + redirectURI + `]
    connectors: [weibo]
  - id: ` + miniClientID + `
    public: true
    redirect_uris: [https://mini.example/cb]
    connectors: [` + miniConnector + `]
`

// inProcess is a broker built with wire.New on store, served by an
// httptest server, with Weibo and WeChat simulators. It reuses cluster
// for the browser and token helpers (there is no balancer: the routing
// header is ignored).
type inProcess struct {
	*cluster
	wechat *sandbox.WeChat
	broker *broker.Broker
}

func newInProcess(tb testing.TB, store storage.Storage, log io.Writer) *inProcess {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	c := &cluster{t: tb, issuer: "http://" + ln.Addr().String() + issuerPath}
	c.weibo = sandbox.NewWeibo(sandbox.WeiboOptions{Apps: []sandbox.WeiboApp{{
		ClientID: weiboAppKey, Secret: weiboAppSecret, RedirectURI: c.issuer + "/callback/weibo",
	}}})
	wbSrv := httptest.NewServer(c.weibo)
	tb.Cleanup(wbSrv.Close)
	c.weiboURL = wbSrv.URL
	wx, err := sandbox.NewWeChat(sandbox.WeChatOptions{Apps: []sandbox.WeChatApp{{
		AppID: miniAppID, Secret: miniAppSecret, Type: sandbox.WeChatMiniProgram,
	}}})
	if err != nil {
		tb.Fatal(err)
	}
	wxSrv := httptest.NewServer(wx)
	tb.Cleanup(wxSrv.Close)

	y := strings.NewReplacer("@ISSUER@", c.issuer, "@WEIBO@", c.weiboURL, "@WECHAT@", wxSrv.URL).Replace(inProcessConfig)
	cfg, err := config.Parse([]byte(y), "inprocess.yaml", func(string) (string, bool) { return "", false }, registry.Types())
	if err != nil {
		tb.Fatalf("config: %v", err)
	}
	logger := slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b, err := wire.New(context.Background(), cfg, store, wire.Deps{Logger: logger})
	if err != nil {
		tb.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(b.Handler())
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	tb.Cleanup(srv.Close)
	c.http = &http.Client{
		Timeout:       30 * time.Second,
		Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return &inProcess{cluster: c, wechat: wx, broker: b}
}
