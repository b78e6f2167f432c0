package broker

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

// auditAction is what an audit entry records; the storage keeps it as a
// plain string.
type auditAction string

const (
	actionLogin             auditAction = "login"
	actionBind              auditAction = "bind"
	actionBindConflict      auditAction = "bind_conflict"
	actionLinkUnionid       auditAction = "link_unionid"
	actionLogout            auditAction = "logout"
	actionMerge             auditAction = "merge"
	actionProfileName       auditAction = "profile_name"
	actionProfilePicture    auditAction = "profile_picture"
	actionReauth            auditAction = "reauth"
	actionScanConfirm       auditAction = "scan_confirm"
	actionSignOutEverywhere auditAction = "sign_out_everywhere"
	actionUnbind            auditAction = "unbind"
)

// outcome is how an operation ended: the result of its audit entry and the
// result label of the metric that counts it (qiao_logins_total,
// qiao_bind_operations_total).
type outcome string

const (
	outcomeSuccess             outcome = "success"
	outcomeDenied              outcome = "denied"
	outcomeRefused             outcome = "refused"
	outcomeInvalidCode         outcome = "invalid_code"
	outcomeUnavailable         outcome = "unavailable"
	outcomeError               outcome = "error"
	outcomeNotFound            outcome = "not_found"
	outcomeConflict            outcome = "conflict"
	outcomeAlreadyBound        outcome = "already_bound"
	outcomeRefusedOtherPerson  outcome = "refused_other_person"
	outcomeRefusedLastIdentity outcome = "refused_last_identity"
	outcomeRefusedChanged      outcome = "refused_changed"
	outcomeConnectorTaken      outcome = "connector_taken"
)

// auditStore is where audit events go.
type auditStore interface {
	AppendAudit(ctx context.Context, e storage.AuditEvent) error
}

// recorder is what every handler reports to: the audit log, the metrics
// and the logger.
type recorder struct {
	store   auditStore
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
}

// audit records an event; failures are logged, never fatal.
func (rec *recorder) audit(ctx context.Context, r *http.Request, e storage.AuditEvent) {
	if r != nil {
		ctx = r.Context()
	}
	e = rec.auditEvent(ctx, e)
	if err := rec.store.AppendAudit(ctx, e); err != nil {
		rec.log.Warn("audit log write failed", "action", e.Action, "err", err)
	}
}

// auditEvent fills in e's time and client address, for an event written
// with other changes (storage.LoginCompletion).
func (rec *recorder) auditEvent(ctx context.Context, e storage.AuditEvent) storage.AuditEvent {
	if e.Time.IsZero() {
		e.Time = rec.now().UTC()
	}
	if e.IP == "" {
		e.IP, _ = ctx.Value(ipKey{}).(string)
	}
	return e
}

// codeLoginFailed counts, audits and logs a failed mini-program code
// exchange and returns how to answer it.
func (rec *recorder) codeLoginFailed(ctx context.Context, conn *Connector, clientID string, err error) failure {
	f := classifyCode(err)
	result := string(f.Result)
	attrs := []any{"connector", conn.ID, "type", conn.Type, "result", result, "err", err.Error()}
	var pe *connectors.ProviderError
	if errors.As(err, &pe) {
		attrs = append(attrs, "provider", pe.Provider, "endpoint", pe.Endpoint, "code", pe.Code)
	}
	rec.log.Warn("mini-program login failed", attrs...)
	rec.metrics.logins.WithLabelValues(conn.ID, result).Inc()
	rec.audit(ctx, nil, storage.AuditEvent{Action: string(actionLogin), ConnectorID: conn.ID, ClientID: clientID, Result: result})
	return f
}

// audit records an event; failures are logged, never fatal.
func (s *site) audit(ctx context.Context, r *http.Request, e storage.AuditEvent) {
	s.rec.audit(ctx, r, e)
}

// auditEvent fills in e's time and client address (recorder.auditEvent).
func (s *site) auditEvent(ctx context.Context, e storage.AuditEvent) storage.AuditEvent {
	return s.rec.auditEvent(ctx, e)
}

// loginFailed counts, audits and logs a failed mini-program code exchange
// (recorder.codeLoginFailed).
func (s *site) loginFailed(ctx context.Context, conn *Connector, clientID string, err error) failure {
	return s.rec.codeLoginFailed(ctx, conn, clientID, err)
}

// ipKey is the context key of the client's address, set by the middleware.
type ipKey struct{}

// clientIP is the address of the client: the connecting address, or, when
// that is a trusted reverse proxy, the nearest address in X-Forwarded-For
// that is not one.
func clientIP(r *http.Request, trusted []netip.Prefix) string {
	host := r.RemoteAddr
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	addr, err := netip.ParseAddr(host)
	if err != nil || !isTrusted(addr, trusted) {
		return host
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a malformed entry: trust nothing beyond it
		}
		addr = hop.Unmap()
		if !isTrusted(addr, trusted) {
			break
		}
	}
	return addr.String()
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	a = a.Unmap()
	for _, p := range trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
