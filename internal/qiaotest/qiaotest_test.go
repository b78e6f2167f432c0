package qiaotest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/qiaoidp/qiao/cmd/qiao/registry"
	"github.com/qiaoidp/qiao/config"
	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/internal/qiaotest"
)

func TestMain(m *testing.M) { os.Exit(qiaotest.Main(m)) }

// TestConfigRoundTripsThroughYAMLAndLoads: the Go-values configuration,
// marshalled, reads back as the same values and loads with config.Load
// and the registry of connector types as `qiao serve` loads it, every
// value where the file put it.
func TestConfigRoundTripsThroughYAMLAndLoads(t *testing.T) {
	c := qiaotest.Base()
	c.Issuer = "http://127.0.0.1:5556/sso"
	c.Storage = qiaotest.Storage{Type: "sqlite", SQLite: &qiaotest.SQLiteConfig{Path: filepath.Join(t.TempDir(), "q.db")}}
	c.Linking = map[string]bool{"wechat_unionid": true}
	c.Extra = map[string]any{"tokens": map[string]any{"access_token_ttl": "5m"}}
	for i := range c.Connectors {
		c.Connectors[i].Config["auth_base_url"] = "http://127.0.0.1:1"
		c.Connectors[i].Config["api_base_url"] = "http://127.0.0.1:1"
	}
	c.Connector("qq").Config["unionid"] = true
	data, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}

	var back qiaotest.Config
	if err := yaml.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	// App is not part of the file.
	want := c
	want.Connectors = append([]qiaotest.Connector(nil), c.Connectors...)
	for i := range want.Connectors {
		want.Connectors[i].App = qiaotest.App{}
	}
	if !reflect.DeepEqual(back.Issuer, want.Issuer) || !reflect.DeepEqual(back.Clients, want.Clients) || len(back.Connectors) != len(want.Connectors) {
		t.Errorf("round trip:\n got %+v\nwant %+v", back, want)
	}
	for i := range back.Connectors {
		if back.Connectors[i].ID != want.Connectors[i].ID || back.Connectors[i].Type != want.Connectors[i].Type ||
			back.Connectors[i].Config["client_secret"] != want.Connectors[i].Config["client_secret"] {
			t.Errorf("connector %d round trip: got %+v, want %+v", i, back.Connectors[i], want.Connectors[i])
		}
	}

	path := filepath.Join(t.TempDir(), "qiao.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path, registry.Types())
	if err != nil {
		t.Fatalf("config.Load: %v\n%s", err, data)
	}
	if cfg.Issuer != c.Issuer || cfg.Secret != qiaotest.BrokerSecret || cfg.Storage.SQLite.Path != c.Storage.SQLite.Path {
		t.Errorf("issuer %q secret %q store %q, want the values written", cfg.Issuer, cfg.Secret, cfg.Storage.SQLite.Path)
	}
	if cfg.Tokens.AccessTokenTTL != 5*time.Minute {
		t.Errorf("tokens.access_token_ttl from Extra = %v, want 5m", cfg.Tokens.AccessTokenTTL)
	}
	if !cfg.Linking["wechat"] {
		t.Errorf("linking = %v, want wechat on", cfg.Linking)
	}
	var ids []string
	for _, k := range cfg.Connectors {
		ids = append(ids, k.ID+":"+k.Type)
		if k.Config == nil {
			t.Errorf("connector %s: config not decoded by its type", k.ID)
		}
	}
	if want := []string{"wechat:wechat", "wechat_mp:wechat_mp", "wechat_miniprogram:wechat_miniprogram", "qq:qq", "weibo:weibo"}; !reflect.DeepEqual(ids, want) {
		t.Errorf("connectors %v, want %v", ids, want)
	}
	web := cfg.Clients[0]
	if web.ID != qiaotest.WebClient || web.Secret != qiaotest.WebSecret || !reflect.DeepEqual(web.Connectors, []string{"wechat", "wechat_mp", "qq", "weibo"}) {
		t.Errorf("web client %+v", web)
	}
	if mini := cfg.Clients[1]; !mini.Public() || !reflect.DeepEqual(mini.Connectors, []string{"wechat_miniprogram"}) {
		t.Errorf("mini client %+v, want public with the mini-program", mini)
	}
}

// TestOptionsChangeTheBase: WithClient and WithConnector replace by id
// or add, WithoutConnector also takes the connector off every client.
func TestOptionsChangeTheBase(t *testing.T) {
	w := qiaotest.Start(t,
		qiaotest.WithClient(qiaotest.Client{ID: qiaotest.WebClient, Secret: qiaotest.WebSecret, RedirectURIs: []string{qiaotest.RPRedirect}, Connectors: []string{"qq", "weibo"}}),
		qiaotest.WithClient(qiaotest.Client{ID: "spa", Public: true, RedirectURIs: []string{"https://spa.example/cb"}}),
		qiaotest.WithConnector(qiaotest.QQ("qq2", "Second QQ")),
		qiaotest.WithoutConnector("weibo"),
	)
	if got := w.Parsed.Clients; len(got) != 3 || got[0].ID != "web" || !reflect.DeepEqual(got[0].Connectors, []string{"qq"}) || got[2].ID != "spa" {
		t.Errorf("clients %+v", got)
	}
	if w.Config.Connector("weibo") != nil || w.Config.Connector("qq2") == nil {
		t.Errorf("connectors %+v: want qq2 and no weibo", w.Config.Connectors)
	}
	// The added connector's app is registered at the simulator.
	tk, err := w.RP("spa").Login(w.Browser(), "qq2", "bob")
	if err != nil {
		t.Fatal(err)
	}
	if tk.Claims["idp"] != "qq2" {
		t.Errorf("idp = %v, want qq2", tk.Claims["idp"])
	}
}

// TestLoginWorksThroughEachSimulatedConnector: Browser.Login drives /auth,
// the simulator's picker and the callback to verified tokens for every
// web connector type, and LoginCode + the token exchange signs in at the
// mini-program.
func TestLoginWorksThroughEachSimulatedConnector(t *testing.T) {
	w := qiaotest.Start(t)
	for _, tc := range []struct{ connector, ua string }{
		{"wechat", ""}, {"wechat_mp", qiaotest.WeChatUA}, {"qq", ""}, {"weibo", ""},
	} {
		t.Run(tc.connector, func(t *testing.T) {
			tk, err := w.Browser(tc.ua).Login(tc.connector, "carol")
			if err != nil {
				t.Fatal(err)
			}
			if tk.Claims["idp"] != tc.connector || tk.Claims["name"] != qiaotest.Person(t, "carol").Name || tk.Claims["iss"] != w.Issuer {
				t.Errorf("claims %v, want idp %s, carol's name, iss %s", tk.Claims, tc.connector, w.Issuer)
			}
			if tk.Token.RefreshToken == "" {
				t.Error("no refresh token")
			}
		})
	}
	t.Run("wechat_miniprogram", func(t *testing.T) {
		status, m, body := w.PostToken(t, qiaotest.ExchangeForm("wechat_miniprogram", qiaotest.MiniClient, w.LoginCode("wechat_miniprogram", "carol"), "openid"))
		if status != http.StatusOK {
			t.Fatalf("token exchange: HTTP %d %s", status, body)
		}
		if c := w.VerifyIDToken(t, m["id_token"].(string), qiaotest.MiniClient); c["idp"] != "wechat_miniprogram" {
			t.Errorf("idp = %v", c["idp"])
		}
	})
}

// TestDenyYieldsAccessDenied: refusing at the provider's picker brings
// the browser back to the RP with access_denied and no code.
func TestDenyYieldsAccessDenied(t *testing.T) {
	w := qiaotest.Start(t)
	for _, connector := range []string{"wechat", "weibo"} {
		q, err := w.Browser().Deny(connector)
		if err != nil {
			t.Fatalf("%s: %v", connector, err)
		}
		if q.Get("error") != "access_denied" || q.Get("code") != "" {
			t.Errorf("%s: redirect query %v, want access_denied and no code", connector, q)
		}
	}
}

// TestFinishQueryRedeemsWhatTheRPReceived: a relying party that got
// the redirect itself redeems its query; a query with another state or an
// error is refused before any exchange.
func TestFinishQueryRedeemsWhatTheRPReceived(t *testing.T) {
	w := qiaotest.Start(t)
	rp := w.RP(qiaotest.WebClient)
	b := w.Browser()
	a := rp.AuthRequest("qq")
	p, err := b.LoginAt(a.URL, "alice")
	if err != nil {
		t.Fatal(err)
	}
	q, err := p.RedirectQuery()
	if err != nil {
		t.Fatal(err)
	}
	forged := url.Values{"code": {q.Get("code")}, "state": {"another"}}
	if _, err := rp.FinishQuery(forged, a); err == nil {
		t.Error("FinishQuery accepted another state")
	}
	if _, err := rp.FinishQuery(url.Values{"error": {"access_denied"}, "state": {a.State}}, a); err == nil {
		t.Error("FinishQuery accepted an error")
	}
	tk, err := rp.FinishQuery(q, a)
	if err != nil {
		t.Fatal(err)
	}
	if tk.Claims["idp"] != "qq" || tk.Claims["nonce"] != a.Nonce {
		t.Errorf("claims %v, want idp qq and the request's nonce", tk.Claims)
	}
}

// TestBinaryWorldServesUnderAPrefix: the built binary reads the
// marshalled configuration, serves under the issuer's path, logs to
// World.Logs, and a login through a simulator works against it.
func TestBinaryWorldServesUnderAPrefix(t *testing.T) {
	if testing.Short() {
		t.Skip("builds cmd/qiao")
	}
	w := qiaotest.Start(t, qiaotest.WithBinary(), qiaotest.WithIssuerPath("/sso"))
	if w.Broker != nil || w.Process == nil || w.ConfigPath == "" {
		t.Fatal("WithBinary did not run the binary")
	}
	tk, err := w.Browser().Login("weibo", "alice")
	if err != nil {
		t.Fatal(err)
	}
	if tk.Claims["iss"] != w.Issuer || w.Issuer != w.Root()+"/sso" {
		t.Errorf("iss %v, issuer %s, root %s", tk.Claims["iss"], w.Issuer, w.Root())
	}
	if len(w.LogLines("qiao started")) != 1 {
		t.Errorf("the process's log did not reach World.Logs:\n%s", w.Logs.String())
	}
	if code := w.StopServe(); code != 0 {
		t.Errorf("qiao serve exited %d after SIGTERM", code)
	}
}

// TestPostgresWorld: WithStore(qiaotest.Postgres) runs the broker on a
// fresh database of the throwaway cluster.
func TestPostgresWorld(t *testing.T) {
	w := qiaotest.Start(t, qiaotest.WithStore(qiaotest.Postgres))
	if w.Parsed.Storage.Type != "postgres" {
		t.Fatalf("storage %q, want postgres", w.Parsed.Storage.Type)
	}
	tk, err := w.Browser().Login("qq", "bob")
	if err != nil {
		t.Fatal(err)
	}
	sub, _ := tk.Claims["sub"].(string)
	if _, err := w.Store.GetUser(t.Context(), sub); err != nil {
		t.Errorf("the user %s is not in the PostgreSQL store: %v", sub, err)
	}
}

// TestReplicasShareOneStore: WithReplicas(2) starts two brokers on one
// PostgreSQL database, each on its own address: a login through the
// first (the issuer's) is refreshed at the second, which publishes the
// same signing key.
func TestReplicasShareOneStore(t *testing.T) {
	w := qiaotest.Start(t, qiaotest.WithStore(qiaotest.Postgres), qiaotest.WithReplicas(2))
	if len(w.Replicas) != 2 || w.Replicas[0].Addr == w.Replicas[1].Addr {
		t.Fatalf("replicas %+v, want two on their own addresses", w.Replicas)
	}
	if w.Broker != w.Replicas[0].Broker || w.Root() != "http://"+w.Replicas[0].Addr {
		t.Error("the world's broker is not the first replica")
	}
	tk, err := w.Browser().Login("qq", "alice")
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tk.Token.RefreshToken}, "client_id": {qiaotest.WebClient}, "client_secret": {qiaotest.WebSecret}}
	resp, err := http.PostForm(w.Replicas[1].URL("/token"), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("refresh at %s: HTTP %d, want 200", w.Replicas[1].Name, resp.StatusCode)
	}
	keys := func(r *qiaotest.Replica) string {
		resp, err := http.Get(r.URL("/keys"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var set struct {
			Keys []struct {
				Kid string `json:"kid"`
			} `json:"keys"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) == 0 {
			t.Fatalf("%s JWKS: %v %+v", r.Name, err, set)
		}
		return set.Keys[0].Kid
	}
	if a, b := keys(w.Replicas[0]), keys(w.Replicas[1]); a != b {
		t.Errorf("signing keys: %s on A, %s on B; want one key", a, b)
	}
}

// fakeWeb is a test's own web connector: its "provider" sends the
// browser straight back with code=<person>.
type fakeWeb struct{ person string }

func (f *fakeWeb) LoginURL(_ context.Context, req connectors.LoginRequest) (string, []byte, error) {
	return req.CallbackURL + "?" + url.Values{"state": {req.State}, "code": {f.person}}.Encode(), nil, nil
}

func (f *fakeWeb) HandleCallback(_ context.Context, _ connectors.LoginRequest, q url.Values) (connectors.Identity, error) {
	return connectors.Identity{Subject: "uid-" + q.Get("code"), DisplayName: "Nick " + q.Get("code"), RealProfile: true}, nil
}

// TestFakeConnectorAndRestart: WithFake plays a configured connector with
// the test's own implementation, and Restart brings the in-process
// broker back on the same address and store (the user and the signing
// key survive).
func TestFakeConnectorAndRestart(t *testing.T) {
	w := qiaotest.Start(t, qiaotest.WithFake("weibo", &fakeWeb{person: "zed"}))
	r := w.RP(qiaotest.WebClient)
	first := r.MustLogin(t, w.Browser(), "weibo", "ignored")
	if first.Claims["name"] != "Nick zed" {
		t.Fatalf("claims %v, want the fake's profile", first.Claims)
	}
	w.Restart()
	again := r.MustLogin(t, w.Browser(), "weibo", "ignored")
	if again.Claims["sub"] != first.Claims["sub"] {
		t.Errorf("after a restart: sub %v, want %v", again.Claims["sub"], first.Claims["sub"])
	}
	if _, err := r.Verifier.Verify(r.Context(), first.IDToken); err != nil {
		t.Errorf("an ID token from before the restart: %v", err)
	}
}

// TestIssuerOnAnotherOrigin: with an https issuer on a name of its own,
// the world's browsers and clients reach the broker at that origin: a
// login works, the session cookie is the https one, and Post
// authenticates a client with HTTP Basic.
func TestIssuerOnAnotherOrigin(t *testing.T) {
	const issuer = "https://sso.example.test/qiao"
	w := qiaotest.Start(t, qiaotest.WithIssuer(issuer))
	if w.Issuer != issuer || w.Provider.Endpoint().TokenURL != issuer+"/token" {
		t.Fatalf("issuer %s, token endpoint %s", w.Issuer, w.Provider.Endpoint().TokenURL)
	}
	br := w.Browser()
	tk, err := br.Login("weibo", "alice")
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(issuer + "/")
	var secure bool
	for _, c := range br.Jar().Cookies(u) {
		secure = secure || c.Name == "__Host-qiao_session"
	}
	if !secure {
		t.Errorf("no __Host-qiao_session cookie for %s: %v", issuer, br.Jar().Cookies(u))
	}
	p := w.Post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tk.Token.RefreshToken}}, qiaotest.WebClient, qiaotest.WebSecret)
	if p.Status != http.StatusOK || p.JSON()["access_token"] == nil {
		t.Fatalf("refresh with HTTP Basic: %d %s", p.Status, p.Body)
	}
	if p := w.Post(t, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tk.Token.RefreshToken}}, qiaotest.WebClient, "wrong"); p.Status != http.StatusUnauthorized {
		t.Errorf("wrong secret: %d %s", p.Status, p.Body)
	}
	if p := br.StepGet(t, issuer+"/keys"); p.Status != http.StatusOK || p.URL.String() != issuer+"/keys" {
		t.Errorf("a page of the issuer: HTTP %d at %s, want 200 at %s/keys", p.Status, p.URL, issuer)
	}
}

func TestModuleRootHoldsTheQiaoGoMod(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(qiaotest.ModuleRoot(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "module github.com/qiaoidp/qiao\n"; !strings.HasPrefix(string(raw), want) {
		t.Errorf("go.mod at the module root starts %.40q, want %q", raw, want)
	}
}
