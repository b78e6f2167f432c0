// Package qiaotest is the one test world of Qiao's harnesses: the
// provider simulators (connectors/sandbox), a broker (in process or the
// built `qiao serve`, on SQLite or PostgreSQL), relying parties and
// browsers, each on a loopback server, torn down when the test ends.
// Like internal/pgtest it serves tests (and bench/login) only: it is the
// one package outside cmd that imports connectors/sandbox.
//
// # API
//
//	w := qiaotest.Start(t)                       // base world, broker in process on SQLite
//	w := qiaotest.Start(t,
//		qiaotest.WithClient(qiaotest.Client{ID: "spa", Public: true, RedirectURIs: []string{"https://spa.example/cb"}}),
//		qiaotest.WithConnector(qiaotest.QQ("qq2", "Second QQ")),  // app registered at the QQ simulator
//		qiaotest.WithoutConnector("weibo"),
//		qiaotest.WithConfig(func(c *qiaotest.Config) { c.Extra = map[string]any{"tokens": ...} }),
//		qiaotest.WithStore(qiaotest.Postgres),   // internal/pgtest: skips without PostgreSQL unless CI is set
//		qiaotest.WithBinary(),                   // `qiao serve` built once per test binary (use qiaotest.Main)
//		qiaotest.WithIssuerPath("/sso"),
//		qiaotest.WithIssuer("https://sso.example.test/qiao"), // another origin, reached at the broker
//		qiaotest.WithNow(clock),                 // the in-process broker's clock
//		qiaotest.WithPersons(qiaotest.Persons(45)),
//		qiaotest.WithSimulators(func(s *qiaotest.Simulators) { ... }), // sandbox options
//		qiaotest.WithListener(ln),               // serve on an address known beforehand
//		qiaotest.WithFake("weibo", impl),        // the in-process broker uses impl as connector weibo
//		qiaotest.WithReplicas(2),                // two brokers (or `qiao serve`s) on one store, started together
//	)
//
//	tk, err := w.Browser().Login("qq", "alice")          // /auth → picker → callback → code → verified tokens (client "web")
//	q, err := w.Browser().Deny("weibo")                  // refuse at the picker: q.Get("error") == "access_denied"
//	r := w.RP("web")                                     // x/oauth2 + go-oidc relying party of a configured client
//	a := r.AuthRequest("wechat")                         // state, nonce, PKCE S256, connector_id
//	p, err := w.Browser(qiaotest.WeChatUA).LoginAt(a.URL, "bob") // picks bob on the simulator's page
//	tk, err = r.Finish(p, a)                             // code → tokens, ID token and nonce verified
//	tk, err = r.FinishQuery(q, a)                        // the same for an RP that got the redirect itself (Chromium)
//	q = r.LoginError(t, br, "qq", "alice", inject)       // a login that must come back with an error
//	p, err = br.Through(authURL, "carol")                // follow within the world, pick at a picker (RefusePick refuses)
//	cb := br.CallbackOf(t, authURL, "carol")             // the provider's redirect to the broker's callback, not loaded
//	br.AtPicker(p); w.IsWorld(host)                      // a simulator's picker page; the broker's or a simulator's host
//	p = br.StepGet(t, u); p = br.StepForm(t, "POST", u, form) // one request, no redirect followed
//	code := w.LoginCode("wechat_miniprogram", "alice")   // wx.login()
//	w.PostToken(t, qiaotest.ExchangeForm(...)); w.UserInfo(t, at); w.VerifyIDToken(t, raw, client)
//	p = w.Post(t, "/revoke", form, client, secret); p.JSON() // HTTP Basic, no redirect followed
//	p = w.Bearer(t, "GET", "/userinfo", at, nil)         // access token, JSON body (a string is sent as it is)
//	p = w.Do(t, req); p.MustJSON(t)                      // any request on the back channel; a body that must be JSON
//	qiaotest.Do(t, nil, qiaotest.FormRequest(t, u, form, user, pass)) // a server outside the world (qiao demo)
//	qiaotest.NewRequest(t, method, u); qiaotest.BearerRequest(t, method, u, at, body)
//	a := qiaotest.NewRawAuth("web", redirect, "qq")      // an /auth request parameter by parameter: state, nonce, PKCE S256
//	a.Set("prompt", "none"); a.Del("code_challenge"); u := a.URL(w.Issuer); a.State()
//	code := a.Code(t, p); w.Post(t, "/token", a.CodeForm(code), "web", secret) // the redirect back checked: state, no error
//	header, claims := qiaotest.JWT(t, raw)               // decoded, not verified
//	ok := qiaotest.Eventually(10*time.Second, cond)      // poll a condition; qiaotest.Healthy(root) is /healthz 200
//	qiaotest.Between(page, `value="`, `"`); qiaotest.RandString(); qiaotest.Person(t, "alice")
//	w.Metric(t, "qiao_logins_total", labels); w.LogLines("msg"); w.Config.Secrets()
//	for _, s := range qiaotest.Samples(body) { s.Name; s.Labels; s.Value } // a /metrics body read elsewhere
//	w.WeChat, w.QQ, w.Weibo                              // the simulators: faults, snapshot users, openids
//	w.Broker, w.Store (in process); w.Process, w.ConfigPath, w.StopServe, w.StartServe (binary)
//	w.Restart()                                          // the broker again, same address and store
//	w.Replicas[1].URL("/token"); w.Replicas[1].Process    // WithReplicas: each its own address, log, process
//	w.SimulatorCalls("weibo")                            // requests a simulator has had
//	qiaotest.Binary(t); qiaotest.StartProcess(t, env, out, args...) // other qiao commands
//	func TestMain(m *testing.M) { os.Exit(qiaotest.Main(m)) }       // removes the built binary
//
// A configuration is Go values ([Config], each field with its key in the
// file); [Base] is the starting point: connectors wechat, wechat_mp,
// wechat_miniprogram, qq and weibo (each named after its type, with an
// app id and a distinctive secret derived from its id), the confidential
// client "web" ([WebClient], redirecting to [RPRedirect] where the
// browser stops) and the public client "mini". Start fills in the
// issuer, the store and the simulators' URLs, parses the marshalled YAML
// with config.Parse and the registry (so a world cannot run a
// configuration `qiao serve` would refuse), registers every simulated
// connector's app at its simulator, and builds the broker in one
// function (newBroker, through cmd/qiao/wire as `qiao serve` does). In
// binary mode the same marshalled YAML is the file `qiao serve` reads;
// nothing is ever built by replacing text in YAML. With WithReplicas the
// brokers share the configuration (each `qiao serve` its own file, which
// differs only in http.listen), the store and the simulators; a
// configured issuer is then the test's load balancer in front, which the
// world's clients reach as it is (WithIssuer alone reaches the issuer's
// host at the broker), and discovery is read from the first broker
// itself. In every world a store the
// configuration names (a PostgreSQL DSN of a test's private cluster, or
// with pool settings; an SQLite path) is kept.
//
// A browser follows redirects within the world (the broker and the
// simulators) and stops at a redirect that leaves it: the relying
// party's redirect URI. A person is picked on a simulator in one way: the
// picker page's `<a data-person=ID>` link (data-deny refuses), as a
// person would click it. Browser.Step sends one request without
// following redirects.
//
// A test that needs a request no relying party would send (a missing or
// plain PKCE challenge, a foreign redirect URI, prompt or max_age
// values) starts from NewRawAuth and changes its parameters; a test that
// talks to an endpoint directly uses Post, Bearer or Do and reads the
// Page. A harness keeps only adapters over these (its own defaults and
// names), never a second copy.
//
// # Where each property is tested
//
// Each property is tested at one layer, the most faithful one that can
// observe it:
//
//   - connectors/*: each provider's wire behaviour and error mapping,
//     against its simulator (connectors/sandbox tests the simulators'
//     fidelity to the real APIs).
//   - broker: the broker's own logic with connectors played by fakes
//     (sessions, consent, account binding rules, fosite wiring, key
//     rotation, limits), in process: a world whose every connector is a
//     test's own (WithFake).
//   - internal/e2e: whole flows through the simulators with the broker
//     in process: each connector's login, provider faults becoming OAuth
//     errors, unionid linking, the mini-program exchange, scan login,
//     metrics, the example app, an oidc connector upstream.
//   - internal/spectest: the built binary as a black box against the
//     contract in docs/endpoints.md (one test per SPEC sentence),
//     including the token lifecycle: refresh rotation and reuse
//     revoking the family is tested here only (it was also in broker
//     and securitytest), as are revocation and introspection answers,
//     prompt=none, SSO for a second client and max_age, loopback
//     redirect ports, PKCE required of public clients, the token
//     endpoints' error JSON, what survives a restart, the health and
//     readiness answers, the chooser's connectors per client, logout
//     with a hint or client_id, and connector_id errors (each was also
//     in broker, whose assertions moved here or to securitytest; the
//     login and token counters are e2e's metrics tests); the QQ unionid
//     permission message is e2e's.
//   - internal/securitytest: attacks and leaks (redirect and PKCE
//     abuse: plain for confidential clients, wrong verifiers spending
//     the code; cross-client token use, secrets in logs and pages, headers,
//     fuzzing) on the in-process world, the real connectors against the
//     simulators: hostile provider profiles come from simulator persons
//     (the broker's own cleaning of raw connector output is tested in
//     broker). Secrets kept out of the log are tested here only (broker
//     had a narrower copy).
//   - internal/uitest: what a person sees in Chromium (pages,
//     accessibility, screenshots).
//   - internal/replicas: several replicas on one PostgreSQL (cross-replica
//     refresh: rotated on one replica, reused on another; races, key
//     rotation, outages), the token endpoint benchmarks, and the
//     deployment files and static build.
//
// Still at two layers: provider refusals and outages as OAuth errors
// (e2e, spectest).
package qiaotest
