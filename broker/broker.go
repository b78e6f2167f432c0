// Package broker is Qiao's OpenID Connect provider: the fosite
// composition, the HTTP endpoints, upstream logins through the connectors,
// browser sessions, account binding and the pages people see.
package broker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/openid"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/qiaoidp/qiao/broker/keys"
	"github.com/qiaoidp/qiao/broker/seal"
	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

// WebConnector is a connector that logs a browser in at its provider.
// LoginURL may return per-login data (at most connectors.MaxLoginData
// bytes: a nonce, a PKCE verifier) that the broker keeps with the pending
// login and hands back to HandleCallback in req.Data.
type WebConnector interface {
	LoginURL(ctx context.Context, req connectors.LoginRequest) (url string, data []byte, err error)
	HandleCallback(ctx context.Context, req connectors.LoginRequest, query url.Values) (connectors.Identity, error)
}

// CodeConnector turns a code obtained by an app (WeChat's wx.login) into
// an identity, with no browser involved.
type CodeConnector interface {
	ExchangeCode(ctx context.Context, code string) (connectors.Identity, error)
}

// PhoneConnector fetches a verified phone number for a phone code.
type PhoneConnector interface {
	PhoneNumber(ctx context.Context, phoneCode string) (string, error)
}

// Connector is one configured upstream connector. Impl implements
// WebConnector or CodeConnector (and optionally PhoneConnector); the
// broker asks it the rest with small interfaces where it needs to know:
// where it is offered (OfferedIn), how it is called (DisplayName, Icon),
// which union ids link its identities (UnionNamespace), which token type
// the token exchange takes (SubjectTokenType).
type Connector struct {
	ID   string
	Type string
	// Name overrides the connector's display names in every language,
	// Names in one ("en", "zh-CN"); both may be empty.
	Name  string
	Names map[string]string
	// LinkByUnionID overrides whether identities sharing a union id join
	// one user; nil: the deprecated linking keys, then the connector's
	// default.
	LinkByUnionID *bool
	Impl          any
}

// web returns the connector as a WebConnector; false for nil or a
// connector without a browser flow.
func (c *Connector) web() (WebConnector, bool) {
	if c == nil {
		return nil, false
	}
	w, ok := c.Impl.(WebConnector)
	return w, ok
}

// code returns the connector as a CodeConnector; false for nil or a
// connector that exchanges no codes.
func (c *Connector) code() (CodeConnector, bool) {
	if c == nil {
		return nil, false
	}
	x, ok := c.Impl.(CodeConnector)
	return x, ok
}

// Options is what New needs: plain values (cmd/qiao/wire translates a
// configuration file into them; the configuration applies the defaults).
// A zero value means what its field says.
type Options struct {
	// Issuer is the provider's absolute http(s) URL, without a trailing
	// slash; required.
	Issuer string
	// Secret derives every key the broker seals or signs with besides the
	// signing keys (cookies, sealed identities and logins, token HMACs,
	// client secret hashes); at least 32 bytes.
	Secret []byte
	// Tokens are the token lifetimes; each one is required (positive).
	Tokens TokenLifetimes
	// Keys is how ID tokens are signed.
	Keys SigningKeys
	// SessionTTL is how long a browser session lasts; required (positive).
	SessionTTL time.Duration
	// ReauthWithin is how recent a sign-in must be to bind or unbind an
	// identity; 0: 15 minutes.
	ReauthWithin time.Duration
	// Linking is the deprecated per-namespace union-id linking ("wechat",
	// "qq" to on or off); nil: each connector's own setting or default.
	Linking map[string]bool
	// Limits are the abuse limits; the zero value switches every limit off.
	Limits Limits
	// AuditRetain is how long audit rows are kept; 0: forever.
	AuditRetain time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed for the client's address; empty: none.
	TrustedProxies []netip.Prefix
	// Clients are the relying parties.
	Clients []Client

	Store      storage.Storage
	Connectors []Connector
	Metrics    *Metrics     // nil: NewMetrics()
	Logger     *slog.Logger // nil: slog.Default()
	Now        func() time.Time
	// Holder names this replica for leases; empty: a random id.
	Holder string
}

// Broker is the OpenID Connect provider: New composes the identity
// service, fosite and the handlers; Handler mounts them; Run does the
// background work.
type Broker struct {
	*site
	cfg     Options // as given to New
	store   storage.Storage
	holder  string
	keys    *keys.Manager
	login   *loginHandler
	account *accountHandler
	oauth   *oauthHandler
}

// New builds the broker: it loads (or creates) the signing keys and
// composes fosite over the store.
func New(ctx context.Context, opts Options) (*Broker, error) {
	cfg := opts
	if err := opts.validate(); err != nil {
		return nil, err
	}
	iss, err := url.Parse(cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("broker: issuer: %w", err)
	}
	prefix, secure := strings.TrimSuffix(iss.Path, "/"), iss.Scheme == "https"
	b := &Broker{
		site: &site{
			issuer:     strings.TrimSuffix(cfg.Issuer, "/"),
			prefix:     prefix,
			secure:     secure,
			sessionTTL: cfg.SessionTTL,
			sessions:   opts.Store,
			connectors: map[string]*Connector{},
			log:        opts.Logger,
			metrics:    opts.Metrics,
			now:        opts.Now,
		},
		cfg:    cfg,
		store:  opts.Store,
		holder: opts.Holder,
	}
	if b.log == nil {
		b.log = slog.Default()
	}
	if b.metrics == nil {
		b.metrics = NewMetrics()
	}
	if c, ok := opts.Store.(storeCounter); ok {
		b.metrics.observeStore(c)
	}
	if b.now == nil {
		b.now = time.Now
	}
	if b.holder == "" {
		b.holder = randomString(16)
	}
	b.rec = &recorder{store: opts.Store, log: b.log, metrics: b.metrics, now: b.now}
	for i := range opts.Connectors {
		c := &opts.Connectors[i]
		b.connectors[c.ID] = c
		b.order = append(b.order, c)
		b.metrics.initConnector(c.ID)
	}
	secret := cfg.Secret
	idSealer, err := seal.New(secret, "identity-secrets")
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	identity := &identityService{store: opts.Store, secrets: idSealer, linking: cfg.Linking, issuer: b.issuer, now: b.now, events: b.rec}
	loginSealer, err := seal.New(secret, "login-cookie")
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	keySealer, err := seal.New(secret, "signing-keys")
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.cookieKey = seal.Derive(secret, "cookies", 32)
	b.clients = newClientRegistry(cfg, &secretHasher{key: seal.Derive(secret, "client-secrets", 32)})
	b.limits = newLimits(cfg.Limits, func(id string) bool { _, ok := b.clients.get(id); return ok })
	b.metrics.initRateLimited(cfg.Limits)

	maxTTL := max(cfg.Tokens.IDTokenTTL, cfg.Tokens.AccessTokenTTL)
	b.keys, err = keys.NewManager(ctx, opts.Store, keySealer, keys.Options{
		Algorithm:   cfg.Keys.Algorithm,
		Algorithms:  cfg.signingAlgorithms(),
		RotateEvery: cfg.Keys.RotateEvery,
		MaxTokenTTL: maxTTL,
		Now:         b.now,
		Logger:      b.log,
	})
	if err != nil {
		return nil, fmt.Errorf("broker: signing keys: %w", err)
	}

	fconf := &fosite.Config{
		AccessTokenLifespan:         cfg.Tokens.AccessTokenTTL,
		RefreshTokenLifespan:        cfg.Tokens.RefreshTokenTTL,
		IDTokenLifespan:             cfg.Tokens.IDTokenTTL,
		AuthorizeCodeLifespan:       10 * time.Minute,
		IDTokenIssuer:               b.issuer,
		AccessTokenIssuer:           b.issuer,
		TokenURL:                    b.url("/token"),
		ScopeStrategy:               fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:    fosite.DefaultAudienceMatchingStrategy,
		EnforcePKCEForPublicClients: true,
		RefreshTokenScopes:          []string{"offline_access"},
		AllowedPromptValues:         []string{"none", "login", "consent"},
		// state is required but may be short (fosite's default minimum
		// is 8 characters): like Dex and Keycloak, the broker echoes what
		// the client sends; PKCE, not the state's length, protects the code.
		MinParameterEntropy: 1,
		GlobalSecret:        seal.Derive(secret, "token-hmac", 32),
		ClientSecretsHasher: b.clients.hasher,
		// Every redirect URI is registered by the admin and matched
		// exactly, so plain http (an intranet app) is the admin's choice.
		RedirectSecureChecker: func(context.Context, *url.URL) bool { return true },
	}
	core := newTokenStrategy(fconf)
	fstore := &fositeStore{tokens: opts.Store, clients: b.clients, now: b.now, codeSignature: core.AuthorizeCodeSignature}
	oidc := &openid.DefaultStrategy{Signer: b.keys.Signer(), Config: fconf}
	grants := &grantSessions{issuer: b.issuer, hashAlg: b.keys.HashAlgHint, profiles: identity}
	strategy := &compose.CommonStrategy{
		CoreStrategy:               core,
		OpenIDConnectTokenStrategy: oidc,
		Signer:                     b.keys.Signer(),
	}
	provider := compose.Compose(fconf, fstore, strategy,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2TokenIntrospectionFactory,
		compose.OAuth2TokenRevocationFactory,
		compose.OpenIDConnectExplicitFactory,
		compose.OpenIDConnectRefreshFactory,
		compose.OAuth2PKCEFactory,
		(&tokenExchangeHandler{
			Connectors:      b.connectors,
			TokenTypes:      subjectTokenTypes(b.order),
			Identities:      identity,
			Sessions:        grants,
			Logins:          opts.Store,
			Tokens:          fstore,
			AccessTokens:    core,
			RefreshTokens:   core,
			IDTokens:        &openid.IDTokenHandleHelper{IDTokenStrategy: oidc},
			ScopeStrategy:   fconf.ScopeStrategy,
			AccessTokenTTL:  fconf.AccessTokenLifespan,
			RefreshTokenTTL: fconf.RefreshTokenLifespan,
			IDTokenTTL:      fconf.IDTokenLifespan,
			Now:             b.now,
			Events:          b.rec,
		}).factory(),
	)
	if b.pages, err = newPages(); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	merges, err := seal.New(secret, "merge-offer")
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.oauth = &oauthHandler{
		site: b.site, provider: provider, fstore: fstore, store: opts.Store, keys: b.keys, profiles: identity,
		algs: cfg.signingAlgorithms(), tokenTypes: subjectTokenTypes(b.order),
	}
	resumes, err := seal.New(secret, "resume-request")
	if err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	b.login = &loginHandler{
		site: b.site, provider: provider, fstore: fstore, store: opts.Store,
		identity: identity, grants: grants, loginSealer: loginSealer, resumes: resumes,
	}
	b.account = &accountHandler{
		site: b.site, identity: identity, store: opts.Store, flow: b.login, tokens: b.oauth,
		reauth: cfg.ReauthWithin, merges: merges,
	}
	b.login.account = b.account
	return b, nil
}

// Run does the broker's background work until ctx ends: key rotation and,
// on one replica at a time, garbage collection.
func (b *Broker) Run(ctx context.Context) {
	go b.keys.Run(ctx, keyRefreshInterval(cmp.Or(b.cfg.Keys.RotateEvery, keys.DefaultRotateEvery)))
	t := time.NewTicker(5 * time.Minute)
	defer t.Stop()
	for {
		b.collectGarbage(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// keyRefreshInterval is how often a replica reloads the signing keys and
// rotates when due: a minute, or a quarter of the rotation period when that
// is shorter, so that a short rotate_every is honoured and every replica
// soon publishes a key another replica rotated in.
func keyRefreshInterval(rotateEvery time.Duration) time.Duration {
	return min(time.Minute, max(rotateEvery/4, 100*time.Millisecond))
}

func (b *Broker) collectGarbage(ctx context.Context) {
	ok, err := b.store.AcquireLease(ctx, "gc", b.holder, 4*time.Minute)
	if err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			b.log.Warn("gc lease", "err", err)
		}
		return
	}
	now := b.now()
	var auditBefore time.Time // zero: keep the audit log forever
	if b.cfg.AuditRetain > 0 {
		auditBefore = now.Add(-b.cfg.AuditRetain)
	}
	res, err := b.store.GarbageCollect(ctx, now, auditBefore)
	if err != nil {
		b.log.Warn("garbage collection failed", "err", err)
		return
	}
	b.log.Debug("garbage collected", "tokens", res.Tokens, "sessions", res.Sessions, "logins", res.Logins, "keys", res.Keys, "audit", res.Audit)
}

// Handler serves everything: the OIDC endpoints under the issuer's path,
// and /healthz, /readyz and /metrics at the root.
func (b *Broker) Handler() http.Handler {
	r := mux.NewRouter()
	r.HandleFunc("/healthz", b.handleHealthz).Methods(http.MethodGet, http.MethodHead)
	r.HandleFunc("/readyz", b.handleReadyz).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/metrics", promhttp.HandlerFor(b.metrics.Registry, promhttp.HandlerOpts{})).Methods(http.MethodGet)

	s := r.PathPrefix(b.prefix + "/").Subrouter()
	if b.prefix == "" {
		s = r
	} else {
		// The issuer as written, without the slash: its home page.
		r.Handle(b.prefix, http.RedirectHandler(b.prefix+"/", http.StatusMovedPermanently)).Methods(http.MethodGet, http.MethodHead)
	}
	b.oauth.Mount(s)
	b.login.Mount(s)
	(&pagesHandler{site: b.site}).Mount(s)
	b.account.Mount(s)
	// The OAuth endpoints answer any other method with a JSON error too.
	for _, p := range oauthJSONPaths {
		s.HandleFunc(p, func(w http.ResponseWriter, req *http.Request) {
			b.requestError(w, req, http.StatusMethodNotAllowed, msgMethodNotAllowed)
		})
	}
	s.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b.requestError(w, req, http.StatusMethodNotAllowed, msgMethodNotAllowed)
	})
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b.errorPage(w, req, http.StatusNotFound, msgNotFound)
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b.errorPage(w, req, http.StatusMethodNotAllowed, msgMethodNotAllowed)
	})
	return b.middleware(r)
}

// maxRequestBody caps a request body unless its route declares another
// limit (withBodyLimit): OAuth requests are small.
const maxRequestBody = 64 << 10

func (b *Broker) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				b.log.Error("panic while serving", "path", r.URL.Path, "panic", fmt.Sprint(v))
				b.requestError(w, r, http.StatusInternalServerError, msgInternal)
			}
		}()
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		if b.secure {
			// Browsers then never try the issuer over plain http again.
			w.Header().Set("Strict-Transport-Security", hstsValue)
		}
		if len(r.URL.RawQuery) > maxRequestBody {
			b.requestError(w, r, http.StatusRequestURITooLong, msgTooLarge)
			return
		}
		capBody(w, r, maxRequestBody) // a route may declare more (withBodyLimit)
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil {
				var mbe *http.MaxBytesError
				if errors.As(err, &mbe) {
					b.requestError(w, r, http.StatusRequestEntityTooLarge, msgTooLarge)
					return
				}
				// Leave non-form bodies (JSON APIs) to their handlers.
				if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
					b.requestError(w, r, http.StatusBadRequest, msgBadRequest)
					return
				}
			}
		}
		r = r.WithContext(context.WithValue(r.Context(), ipKey{}, clientIP(r, b.cfg.TrustedProxies)))
		next.ServeHTTP(w, r)
	})
}

// hstsValue is the Strict-Transport-Security header of an https issuer:
// one year, the minimum browsers' preload lists accept. Sibling hosts are
// not included: they are not the broker's to decide.
const hstsValue = "max-age=31536000"

// oauthJSONPaths are the endpoints that speak RFC 6749 JSON errors to
// programs rather than pages to people.
var oauthJSONPaths = []string{"/token", "/revoke", "/introspect"}

// requestError refuses a request that never reached its handler (bad
// form body, too large, wrong method, a panic): an RFC 6749 JSON error on
// the OAuth endpoints, a page elsewhere.
func (b *Broker) requestError(w http.ResponseWriter, r *http.Request, status int, msg msgID) {
	for _, p := range oauthJSONPaths {
		if r.URL.Path == b.prefix+p {
			code := "invalid_request"
			if status >= 500 {
				code = "server_error"
			}
			if status == http.StatusMethodNotAllowed {
				w.Header().Set("Allow", http.MethodPost)
			}
			b.metrics.httpErrors.WithLabelValues(strings.TrimPrefix(p, "/"), code).Inc()
			writeJSON(w, status, oauthError{Error: code, Description: catalog["en"][msg]})
			return
		}
	}
	b.errorPage(w, r, status, msg)
}

func (b *Broker) handleHealthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = w.Write([]byte("ok\n"))
}

func (b *Broker) handleReadyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := b.store.Ping(ctx); err != nil {
		b.log.Warn("readiness check failed", "err", err)
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte("store unreachable\n"))
		return
	}
	_, _ = w.Write([]byte("ok\n"))
}
