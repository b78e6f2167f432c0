package broker

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/broker/seal"
	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

// The identity service's rules against an in-memory store that keeps the
// storage contract's refusals (storage/storagetest checks the real stores
// keep them too); the broker's end-to-end tests run the same rules on
// SQLite.

type fakeIdentityStore struct {
	users   map[string]bool
	ids     []storage.Identity // in binding order
	names   map[string]string  // the name a user set
	picture map[string]bool    // whether a user set a picture
	audit   []storage.AuditEvent
	revoked []string
}

func newFakeIdentityStore() *fakeIdentityStore {
	return &fakeIdentityStore{users: map[string]bool{}, names: map[string]string{}, picture: map[string]bool{}}
}

// withOwn is id as the stores return it: with what its user set.
func (f *fakeIdentityStore) withOwn(id storage.Identity) storage.Identity {
	id.OwnName, id.OwnPicture = f.names[id.UserID], f.picture[id.UserID]
	return id
}

func (f *fakeIdentityStore) find(connectorID, subject string) int {
	for i, id := range f.ids {
		if id.ConnectorID == connectorID && id.Subject == subject {
			return i
		}
	}
	return -1
}

func (f *fakeIdentityStore) GetIdentity(_ context.Context, connectorID, subject string) (storage.Identity, error) {
	if i := f.find(connectorID, subject); i >= 0 {
		return f.withOwn(f.ids[i]), nil
	}
	return storage.Identity{}, storage.ErrNotFound
}

func (f *fakeIdentityStore) FindIdentitiesByUnionID(_ context.Context, union string) ([]storage.Identity, error) {
	var out []storage.Identity
	for _, id := range f.ids {
		if id.UnionID == union {
			out = append(out, f.withOwn(id))
		}
	}
	return out, nil
}

func (f *fakeIdentityStore) ListIdentities(_ context.Context, userID string) ([]storage.Identity, error) {
	var out []storage.Identity
	for _, id := range f.ids {
		if id.UserID == userID {
			out = append(out, f.withOwn(id))
		}
	}
	return out, nil
}

func (f *fakeIdentityStore) CreateUser(_ context.Context, u storage.User, first storage.Identity) error {
	if f.users[u.ID] || f.find(first.ConnectorID, first.Subject) >= 0 {
		return storage.ErrAlreadyExists
	}
	f.users[u.ID] = true
	f.ids = append(f.ids, first)
	return nil
}

func (f *fakeIdentityStore) BindIdentity(_ context.Context, id storage.Identity) error {
	if !f.users[id.UserID] {
		return storage.ErrNotFound
	}
	if f.find(id.ConnectorID, id.Subject) >= 0 {
		return storage.ErrAlreadyExists
	}
	for _, other := range f.ids {
		if other.UserID == id.UserID && other.ConnectorID == id.ConnectorID {
			return storage.ErrConnectorTaken
		}
	}
	f.ids = append(f.ids, id)
	return nil
}

func (f *fakeIdentityStore) UnbindIdentity(_ context.Context, userID, connectorID string) error {
	n, at := 0, -1
	for i, id := range f.ids {
		if id.UserID == userID {
			n++
			if id.ConnectorID == connectorID {
				at = i
			}
		}
	}
	switch {
	case at < 0:
		return storage.ErrNotFound
	case n == 1:
		return storage.ErrLastIdentity
	}
	f.ids = append(f.ids[:at], f.ids[at+1:]...)
	return nil
}

func (f *fakeIdentityStore) MergeUsers(_ context.Context, m storage.Merge) ([]storage.Identity, error) {
	if !f.users[m.From] || !f.users[m.Into] {
		return nil, storage.ErrNotFound
	}
	theirs, _ := f.ListIdentities(context.Background(), m.From)
	if m.Only != nil && (len(theirs) != 1 || theirs[0].ConnectorID != m.Only.ConnectorID || theirs[0].Subject != m.Only.Subject) {
		return nil, storage.ErrConflict
	}
	var moved []storage.Identity
	for i := range f.ids {
		if f.ids[i].UserID == m.From {
			f.ids[i].UserID = m.Into
			moved = append(moved, f.ids[i])
		}
	}
	delete(f.users, m.From)
	return moved, nil
}

func (f *fakeIdentityStore) RevokeUserGrants(_ context.Context, userID string) error {
	f.revoked = append(f.revoked, userID)
	return nil
}

func (f *fakeIdentityStore) SetProfileName(_ context.Context, userID, name string, _ time.Time) error {
	f.names[userID] = name
	return nil
}

func (f *fakeIdentityStore) SetProfilePicture(_ context.Context, userID string, picture []byte, _ string, _ time.Time) error {
	f.picture[userID] = picture != nil
	return nil
}

func (f *fakeIdentityStore) AppendAudit(_ context.Context, e storage.AuditEvent) error {
	f.audit = append(f.audit, e)
	return nil
}

// audited reports whether an audit entry of action with result was written.
func (f *fakeIdentityStore) audited(action auditAction, result outcome) bool {
	for _, e := range f.audit {
		if e.Action == string(action) && e.Result == string(result) {
			return true
		}
	}
	return false
}

// unionConn is a connector implementation whose identities link by a
// union id of namespace ns, by default when link is set.
type unionConn struct {
	ns   string
	link bool
}

func (u unionConn) UnionNamespace() (string, bool) { return u.ns, u.link }

func newTestIdentityService(t *testing.T, f *fakeIdentityStore, linking map[string]bool) *identityService {
	t.Helper()
	secrets, err := seal.New([]byte(strings.Repeat("k", 32)), "identity-secrets")
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	return &identityService{
		store: f, secrets: secrets, linking: linking, issuer: "https://id.example.com", now: now,
		events: &recorder{store: f, log: slog.New(slog.NewTextHandler(io.Discard, nil)), metrics: NewMetrics(), now: now},
	}
}

func resolve(t *testing.T, s *identityService, conn *Connector, ident connectors.Identity) string {
	t.Helper()
	userID, _, _, err := s.resolveIdentity(context.Background(), conn, ident)
	if err != nil {
		t.Fatalf("resolving %s/%s: %v", conn.ID, ident.Subject, err)
	}
	return userID
}

func TestIdentityServiceLinksByUnionNamespace(t *testing.T) {
	no, yes := false, true
	tests := []struct {
		name       string
		first      any // the first connector's Impl
		second     any
		linking    map[string]bool
		override   *bool // the second connector's link_by_unionid
		wantLinked bool
	}{
		{"same namespace, linked by default", unionConn{"wechat", true}, unionConn{"wechat", true}, nil, nil, true},
		{"same namespace, not linked by default", unionConn{"qq", false}, unionConn{"qq", false}, nil, nil, false},
		{"the deprecated linking key turns it on", unionConn{"qq", false}, unionConn{"qq", false}, map[string]bool{"qq": true}, nil, true},
		{"the deprecated linking key turns it off", unionConn{"wechat", true}, unionConn{"wechat", true}, map[string]bool{"wechat": false}, nil, false},
		{"link_by_unionid wins over the deprecated key", unionConn{"wechat", true}, unionConn{"wechat", true}, map[string]bool{"wechat": true}, &no, false},
		{"link_by_unionid turns it on", unionConn{"qq", false}, unionConn{"qq", false}, nil, &yes, true},
		{"another namespace never links", unionConn{"wechat", true}, unionConn{"qq", true}, nil, nil, false},
		{"a connector without union ids never links", struct{}{}, struct{}{}, nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeIdentityStore()
			s := newTestIdentityService(t, f, tt.linking)
			a := &Connector{ID: "a", Type: "wechat", Impl: tt.first}
			b := &Connector{ID: "b", Type: "wechat", Impl: tt.second, LinkByUnionID: tt.override}
			first := resolve(t, s, a, connectors.Identity{Subject: "sa", UnionID: "U1"})
			second := resolve(t, s, b, connectors.Identity{Subject: "sb", UnionID: "U1"})
			if linked := first == second; linked != tt.wantLinked {
				t.Fatalf("linked = %v, want %v", linked, tt.wantLinked)
			}
			if got := f.audited(actionLinkUnionid, outcomeSuccess); got != tt.wantLinked {
				t.Errorf("link_unionid audited = %v, want %v", got, tt.wantLinked)
			}
		})
	}
}

// A union id does not join a user who already has an identity of the
// connector: the identity becomes a user of its own.
func TestIdentityServiceUnionLinkSkipsAUserWhoHasTheConnector(t *testing.T) {
	f := newFakeIdentityStore()
	s := newTestIdentityService(t, f, nil)
	web := &Connector{ID: "web", Type: "wechat", Impl: unionConn{"wechat", true}}
	mp := &Connector{ID: "mp", Type: "wechat_miniprogram", Impl: unionConn{"wechat", true}}
	owner := resolve(t, s, web, connectors.Identity{Subject: "w1", UnionID: "U1"})
	if _, outcome, err := s.bind(context.Background(), mp, connectors.Identity{Subject: "m-other", UnionID: "U2"}, owner, ""); err != nil || outcome != bindCreated {
		t.Fatalf("bind = %v, %v", outcome, err)
	}
	got := resolve(t, s, mp, connectors.Identity{Subject: "m1", UnionID: "U1"})
	if got == owner {
		t.Fatal("the identity joined a user who already has an identity of its connector")
	}
	if f.audited(actionLinkUnionid, outcomeSuccess) {
		t.Error("link_unionid audited for a link that did not happen")
	}
}

// A known identity is not written by resolve: its new row comes back for
// the sign-in's one write, keeping when it was bound, its sealed secret
// and a real profile over a placeholder.
func TestIdentityServiceResolvesAKnownIdentityWithoutWriting(t *testing.T) {
	f := newFakeIdentityStore()
	s := newTestIdentityService(t, f, nil)
	conn := &Connector{ID: "mp", Type: "wechat_miniprogram"}
	first := resolve(t, s, conn, connectors.Identity{Subject: "s1", DisplayName: "Ann", Picture: "https://img.example/a.png", RealProfile: true, Secret: []byte("session-key")})
	stored := f.ids[0]
	if len(stored.Secret) == 0 || strings.Contains(string(stored.Secret), "session-key") {
		t.Fatalf("the secret is not stored sealed: %q", stored.Secret)
	}
	s.now = func() time.Time { return time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC) }
	userID, known, update, err := s.resolveIdentity(context.Background(), conn, connectors.Identity{Subject: "s1", DisplayName: "微信用户"})
	if err != nil || userID != first {
		t.Fatalf("resolve = %q, %v; want %q", userID, err, first)
	}
	if len(f.ids) != 1 || f.ids[0].LastUsedAt != stored.LastUsedAt {
		t.Fatal("resolve wrote a known identity")
	}
	if update == nil {
		t.Fatal("no row to write with the sign-in")
	}
	if !update.BoundAt.Equal(stored.BoundAt) || !update.LastUsedAt.After(stored.LastUsedAt) {
		t.Errorf("update bound %v used %v; want bound %v, used later", update.BoundAt, update.LastUsedAt, stored.BoundAt)
	}
	if update.DisplayName != "Ann" || !update.RealProfile || string(update.Secret) != string(stored.Secret) {
		t.Errorf("update = %+v; want the real profile and the secret kept", update)
	}
	if known == nil || known.Name != "Ann" {
		t.Errorf("known = %+v, want Ann's profile", known)
	}
}

func TestIdentityServiceBindOutcomes(t *testing.T) {
	conn := &Connector{ID: "qq", Type: "qq"}
	other := &Connector{ID: "weibo", Type: "weibo"}
	tests := []struct {
		name    string
		setup   func(t *testing.T, s *identityService) (me string)
		ident   connectors.Identity
		want    bindOutcome
		audit   auditAction
		result  outcome
		changed bool // whether a new identity row exists afterwards
	}{
		{"a new identity is bound", func(t *testing.T, s *identityService) string {
			return resolve(t, s, other, connectors.Identity{Subject: "w"})
		}, connectors.Identity{Subject: "q"}, bindCreated, actionBind, outcomeSuccess, true},
		{"my own identity again", func(t *testing.T, s *identityService) string {
			me := resolve(t, s, other, connectors.Identity{Subject: "w"})
			if _, _, err := s.bind(context.Background(), conn, connectors.Identity{Subject: "q"}, me, ""); err != nil {
				t.Fatal(err)
			}
			return me
		}, connectors.Identity{Subject: "q"}, bindAlreadyMine, actionBind, outcomeSuccess, false},
		{"another person's identity is refused", func(t *testing.T, s *identityService) string {
			resolve(t, s, conn, connectors.Identity{Subject: "q"})
			return resolve(t, s, other, connectors.Identity{Subject: "w"})
		}, connectors.Identity{Subject: "q"}, bindConflict, actionBindConflict, outcomeRefused, false},
		{"a second identity of one connector is refused", func(t *testing.T, s *identityService) string {
			return resolve(t, s, conn, connectors.Identity{Subject: "q-mine"})
		}, connectors.Identity{Subject: "q"}, bindConnectorTaken, actionBindConflict, outcomeRefused, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeIdentityStore()
			s := newTestIdentityService(t, f, nil)
			me := tt.setup(t, s)
			before := len(f.ids)
			row, got, err := s.bind(context.Background(), conn, tt.ident, me, "app")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("outcome = %v, want %v", got, tt.want)
			}
			if (len(f.ids) > before) != tt.changed {
				t.Errorf("identities %d -> %d, want a new one: %v", before, len(f.ids), tt.changed)
			}
			if (got == bindCreated || got == bindAlreadyMine) && (row.UserID != me || row.Subject != tt.ident.Subject) {
				t.Errorf("row = %+v, want %s's identity %s", row, me, tt.ident.Subject)
			}
			if got != bindAlreadyMine && !f.audited(tt.audit, tt.result) {
				t.Errorf("no %s/%s audit entry in %+v", tt.audit, tt.result, f.audit)
			}
			if i := f.find(conn.ID, tt.ident.Subject); i >= 0 && got == bindConflict && f.ids[i].UserID == me {
				t.Error("a refused bind moved the identity")
			}
		})
	}
}

func TestIdentityServiceRefusesToUnbindTheLastIdentity(t *testing.T) {
	f := newFakeIdentityStore()
	s := newTestIdentityService(t, f, nil)
	ctx := context.Background()
	qq, weibo := &Connector{ID: "qq", Type: "qq"}, &Connector{ID: "weibo", Type: "weibo"}
	me := resolve(t, s, qq, connectors.Identity{Subject: "q"})

	if err := s.unbind(ctx, me, "qq", ""); !errors.Is(err, storage.ErrLastIdentity) {
		t.Fatalf("unbinding the last identity: %v, want ErrLastIdentity", err)
	}
	if !f.audited(actionUnbind, outcomeRefusedLastIdentity) || len(f.ids) != 1 {
		t.Fatalf("the refusal is not audited, or the identity went: %+v", f.audit)
	}
	if err := s.unbind(ctx, me, "weibo", ""); !errors.Is(err, storage.ErrNotFound) || !f.audited(actionUnbind, outcomeNotFound) {
		t.Fatalf("unbinding an identity the user lacks: %v", err)
	}
	if _, _, err := s.bind(ctx, weibo, connectors.Identity{Subject: "w"}, me, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.unbind(ctx, me, "qq", "app"); err != nil || !f.audited(actionUnbind, outcomeSuccess) {
		t.Fatalf("unbinding one of two identities: %v", err)
	}
	if ids, _ := f.ListIdentities(ctx, me); len(ids) != 1 || ids[0].ConnectorID != "weibo" {
		t.Fatalf("identities left: %+v", ids)
	}
}

func TestIdentityServiceMergeNeedsTheOneIdentity(t *testing.T) {
	f := newFakeIdentityStore()
	s := newTestIdentityService(t, f, nil)
	ctx := context.Background()
	qq, weibo, wx := &Connector{ID: "qq", Type: "qq"}, &Connector{ID: "weibo", Type: "weibo"}, &Connector{ID: "wx", Type: "wechat"}
	into := resolve(t, s, qq, connectors.Identity{Subject: "q"})
	from := resolve(t, s, weibo, connectors.Identity{Subject: "w"})
	if _, _, err := s.bind(ctx, wx, connectors.Identity{Subject: "x"}, from, ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.merge(ctx, from, into, "weibo", "w"); got != outcomeRefusedChanged {
		t.Fatalf("merging a user with two identities = %v, want %v", got, outcomeRefusedChanged)
	}
	if err := s.unbind(ctx, from, "wx", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := s.merge(ctx, from, into, "weibo", "w"); got != outcomeSuccess || err != nil {
		t.Fatalf("merge = %v, %v", got, err)
	}
	if id, _ := f.GetIdentity(ctx, "weibo", "w"); id.UserID != into {
		t.Fatalf("the identity is %s's, want %s's", id.UserID, into)
	}
	if got, _ := s.merge(ctx, from, into, "weibo", "w"); got != outcomeNotFound {
		t.Fatalf("merging a merged user again = %v, want %v", got, outcomeNotFound)
	}
}

// The profile a user shows: the most recently used real provider
// profile, under what the person set themselves.
func TestIdentityServiceProfilePrecedence(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2026, 1, d, 0, 0, 0, 0, time.UTC) }
	ids := []storage.Identity{
		{UserID: "u1", ConnectorID: "qq", DisplayName: "QQ Ann", Picture: "https://qq/a.png", RealProfile: true, LastUsedAt: day(1)},
		{UserID: "u1", ConnectorID: "weibo", DisplayName: "Weibo Ann", Picture: "https://weibo/a.png", RealProfile: true, LastUsedAt: day(2)},
		{UserID: "u1", ConnectorID: "mp", DisplayName: "微信用户", RealProfile: false, LastUsedAt: day(3)},
	}
	own := func(name string, picture bool) []storage.Identity {
		out := append([]storage.Identity(nil), ids...)
		for i := range out {
			out[i].OwnName, out[i].OwnPicture = name, picture
		}
		return out
	}
	s := newTestIdentityService(t, newFakeIdentityStore(), nil)
	tests := []struct {
		name string
		ids  []storage.Identity
		want profile
	}{
		{"the most recent real profile; a placeholder never wins", ids, profile{"Weibo Ann", "https://weibo/a.png"}},
		{"the person's own name wins", own("Ann", false), profile{"Ann", "https://weibo/a.png"}},
		{"the person's own picture wins", own("", true), profile{"Weibo Ann", "https://id.example.com/pictures/u1"}},
		{"both", own("Ann", true), profile{"Ann", "https://id.example.com/pictures/u1"}},
		{"no real profile at all", ids[2:], profile{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.profileFrom(tt.ids); got != tt.want {
				t.Errorf("profile = %+v, want %+v", got, tt.want)
			}
		})
	}

	// A login's known profile: kept when the person set nothing, laid
	// under both when they set both, looked up (nil) when they set one.
	known := &profile{"Provider", "https://p/x.png"}
	if got := s.ownOver(known, storage.Identity{UserID: "u1"}); got != known {
		t.Errorf("ownOver with nothing set = %+v, want the known profile", got)
	}
	if got := s.ownOver(nil, storage.Identity{UserID: "u1", OwnName: "Ann"}); got != nil {
		t.Errorf("ownOver with only a name and no known profile = %+v, want nil (look it up)", got)
	}
	if got := s.ownOver(nil, storage.Identity{UserID: "u1", OwnName: "Ann", OwnPicture: true}); got == nil || *got != (profile{"Ann", "https://id.example.com/pictures/u1"}) {
		t.Errorf("ownOver with both set = %+v", got)
	}
}

// What the person sets reaches the profile and the audit log; sign out
// everywhere revokes the user's grants.
func TestIdentityServiceOwnProfileAndSignOut(t *testing.T) {
	f := newFakeIdentityStore()
	s := newTestIdentityService(t, f, nil)
	ctx := context.Background()
	me := resolve(t, s, &Connector{ID: "mp", Type: "wechat_miniprogram"}, connectors.Identity{Subject: "m", DisplayName: "微信用户"})
	if err := s.setName(ctx, me, "app", "  Ann\u200b  Lee "); err != nil {
		t.Fatal(err)
	}
	if err := s.setPicture(ctx, me, "", []byte("\x89PNG\r\n\x1a\n"), "image/png"); err != nil {
		t.Fatal(err)
	}
	p, err := s.profile(ctx, me)
	if err != nil {
		t.Fatal(err)
	}
	if want := (profile{"Ann Lee", s.pictureURL(me)}); p != want {
		t.Errorf("profile = %+v, want %+v", p, want)
	}
	if !f.audited(actionProfileName, outcomeSuccess) || !f.audited(actionProfilePicture, outcomeSuccess) {
		t.Errorf("profile changes not audited: %+v", f.audit)
	}
	if err := s.signOutEverywhere(ctx, me, "app"); err != nil || len(f.revoked) != 1 || f.revoked[0] != me {
		t.Fatalf("sign out everywhere: %v, revoked %v", err, f.revoked)
	}
	if !f.audited(actionSignOutEverywhere, outcomeSuccess) {
		t.Error("sign out everywhere not audited")
	}
}
