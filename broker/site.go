package broker

import (
	"context"
	"log/slog"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

// sessionStore keeps browser sessions.
type sessionStore interface {
	GetSession(ctx context.Context, id string) (storage.Session, error)
	UpdateSession(ctx context.Context, s storage.Session) error
}

// site is what the handlers that answer people share: the issuer's
// URLs, cookies and browser sessions, the configured connectors and
// clients, the pages, the abuse limits and the recorder. The Broker and
// each handler type embed the one New builds.
type site struct {
	issuer     string // the issuer URL, without a trailing slash
	prefix     string // the issuer's path, without a trailing slash
	secure     bool   // an https issuer: __Host- and Secure cookies
	cookieKey  []byte
	sessionTTL time.Duration
	sessions   sessionStore // browser sessions
	connectors map[string]*Connector
	order      []*Connector // as configured
	clients    *clientRegistry
	pages      *pages
	limits     *limits
	log        *slog.Logger
	metrics    *Metrics
	now        func() time.Time
	rec        *recorder
}

// url is an absolute URL under the issuer.
func (s *site) url(path string) string {
	return s.issuer + path
}
