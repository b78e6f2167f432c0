package broker

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"

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
)

// audit records an event; failures are logged, never fatal.
func (b *Broker) audit(ctx context.Context, r *http.Request, e storage.AuditEvent) {
	if r != nil {
		ctx = r.Context()
	}
	e = b.auditEvent(ctx, e)
	if err := b.store.AppendAudit(ctx, e); err != nil {
		b.log.Warn("audit log write failed", "action", e.Action, "err", err)
	}
}

// auditEvent fills in e's time and client address, for an event written
// with other changes (storage.LoginCompletion).
func (b *Broker) auditEvent(ctx context.Context, e storage.AuditEvent) storage.AuditEvent {
	if e.Time.IsZero() {
		e.Time = b.now().UTC()
	}
	if e.IP == "" {
		e.IP, _ = ctx.Value(ipKey{}).(string)
	}
	return e
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
