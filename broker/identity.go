package broker

import (
	"context"
	"errors"
	"time"

	"github.com/qiaoidp/qiao/broker/seal"
	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

// identityStore is the storage the identity service uses.
type identityStore interface {
	GetIdentity(ctx context.Context, connectorID, subject string) (storage.Identity, error)
	FindIdentitiesByUnionID(ctx context.Context, unionID string) ([]storage.Identity, error)
	ListIdentities(ctx context.Context, userID string) ([]storage.Identity, error)
	CreateUser(ctx context.Context, u storage.User, first storage.Identity) error
	BindIdentity(ctx context.Context, id storage.Identity) error
	UnbindIdentity(ctx context.Context, userID, connectorID string) error
	MergeUsers(ctx context.Context, m storage.Merge) ([]storage.Identity, error)
	RevokeUserGrants(ctx context.Context, userID string) error
	SetProfileName(ctx context.Context, userID, name string, at time.Time) error
	SetProfilePicture(ctx context.Context, userID string, picture []byte, contentType string, at time.Time) error
}

// identityService holds the rules of people and their provider
// identities, with no HTTP in it: which user an identity signs in
// (resolveIdentity, union-id linking), binding, unbinding and merging,
// signing out everywhere, and the profile a user shows (profile: the
// person's own name and picture win over the providers'). It audits and
// counts what it changes.
type identityService struct {
	store identityStore
	// secrets seals the provider secrets (session keys) kept with an
	// identity.
	secrets *seal.Sealer
	// linking is the deprecated per-namespace linking keys (linking.wechat_unionid).
	linking map[string]bool
	// issuer is the issuer URL without a trailing slash: a picture a
	// person set is served under it.
	issuer string
	now    func() time.Time
	events *recorder
}

// unionLinker is a connector whose identities carry a union id shared by
// several apps of one provider account (WeChat's and QQ's unionid):
// namespace names that id space, link says whether identities sharing one
// join a user unless the configuration says otherwise.
type unionLinker interface {
	UnionNamespace() (namespace string, link bool)
}

// unionKey is the namespaced union id of an identity, and whether the
// configuration links identities by it: the connector's link_by_unionid,
// else the deprecated linking key of its namespace, else its default.
func (s *identityService) unionKey(conn *Connector, ident connectors.Identity) (string, bool) {
	if ident.UnionID == "" {
		return "", false
	}
	u, ok := conn.Impl.(unionLinker)
	if !ok {
		return conn.Type + ":" + ident.UnionID, false
	}
	ns, link := u.UnionNamespace()
	if legacy, set := s.linking[ns]; set {
		link = legacy
	}
	if conn.LinkByUnionID != nil {
		link = *conn.LinkByUnionID
	}
	return ns + ":" + ident.UnionID, link
}

func (s *identityService) identityRow(conn *Connector, ident connectors.Identity, userID string, now time.Time) storage.Identity {
	union, _ := s.unionKey(conn, ident)
	row := storage.Identity{
		ConnectorID:   conn.ID,
		Subject:       ident.Subject,
		UserID:        userID,
		ConnectorType: conn.Type,
		UnionID:       union,
		DisplayName:   connectors.Nickname(ident.DisplayName),
		Picture:       connectors.AvatarURL(ident.Picture),
		RealProfile:   ident.RealProfile,
		BoundAt:       now,
		LastUsedAt:    now,
	}
	if len(ident.Secret) > 0 {
		row.Secret = s.secrets.Seal(ident.Secret, []byte(conn.ID+"\x00"+ident.Subject))
	}
	return row
}

// resolveIdentity returns the user of a provider identity, creating the
// user (or joining the user of the same WeChat unionid) on first sight.
// When the identity has a real profile it is now the user's most recently
// used one, so that profile is the user's: it is returned to save a query.
//
// An identity seen before is not written here: update is its new row,
// which the caller writes with the rest of the sign-in
// (storage.LoginCompletion.UpdateIdentity); nil when there is nothing
// left to write.
func (s *identityService) resolveIdentity(ctx context.Context, conn *Connector, ident connectors.Identity) (userID string, known *profile, update *storage.Identity, err error) {
	if ident.Subject == "" {
		return "", nil, nil, errors.New("the provider returned no subject")
	}
	now := s.now().UTC()
	for attempt := 0; attempt < 3; attempt++ {
		existing, err := s.store.GetIdentity(ctx, conn.ID, ident.Subject)
		if err == nil {
			row := s.identityRow(conn, ident, existing.UserID, now)
			row.BoundAt = existing.BoundAt
			if !ident.RealProfile && existing.RealProfile {
				// Keep the real profile we had over a placeholder.
				row.DisplayName, row.Picture, row.RealProfile = existing.DisplayName, existing.Picture, true
			}
			if row.Secret == nil {
				row.Secret = existing.Secret
			}
			return existing.UserID, s.ownOver(profileOfRow(row), existing), &row, nil
		} else if !errors.Is(err, storage.ErrNotFound) {
			return "", nil, nil, err
		}
		if union, link := s.unionKey(conn, ident); link {
			others, err := s.store.FindIdentitiesByUnionID(ctx, union)
			if err != nil {
				return "", nil, nil, err
			}
			if len(others) > 0 {
				row := s.identityRow(conn, ident, others[0].UserID, now)
				err := s.store.BindIdentity(ctx, row)
				switch {
				case errors.Is(err, storage.ErrConnectorTaken):
					// That user already has another identity of this
					// connector: not linked, the identity becomes a user
					// of its own below.
					s.events.log.Warn("union id not linked: the user already has an identity of this connector", "connector", conn.ID)
				case errors.Is(err, storage.ErrAlreadyExists):
					continue // created by a concurrent login: read it again
				case err != nil:
					return "", nil, nil, err
				default:
					s.events.audit(ctx, nil, storage.AuditEvent{Action: string(actionLinkUnionid), UserID: others[0].UserID, ConnectorID: conn.ID, Result: string(outcomeSuccess)})
					return others[0].UserID, s.ownOver(profileOfRow(row), others[0]), nil, nil
				}
			}
		}
		userID := newUserID()
		row := s.identityRow(conn, ident, userID, now)
		err = s.store.CreateUser(ctx, storage.User{ID: userID, CreatedAt: now}, row)
		if errors.Is(err, storage.ErrAlreadyExists) {
			continue
		}
		if err != nil {
			return "", nil, nil, err
		}
		// A new user's only identity is their whole profile, real or not.
		if known := profileOfRow(row); known != nil {
			return userID, known, nil, nil
		}
		return userID, &profile{}, nil, nil
	}
	return "", nil, nil, errors.New("identity kept changing under concurrent logins")
}

// bindOutcome is the result of attaching an identity to a user.
type bindOutcome int

const (
	bindCreated bindOutcome = iota
	bindAlreadyMine
	bindConflict
	// bindConnectorTaken: the user already has another identity of the
	// connector (a user has at most one per connector).
	bindConnectorTaken
)

// bind attaches ident to userID atomically: an identity of another user
// is refused and nothing changes. clientID is the application asking
// (the account API), "" for the account page.
func (s *identityService) bind(ctx context.Context, conn *Connector, ident connectors.Identity, userID, clientID string) (storage.Identity, bindOutcome, error) {
	now := s.now().UTC()
	existing, err := s.store.GetIdentity(ctx, conn.ID, ident.Subject)
	if err == nil {
		if existing.UserID == userID {
			s.events.metrics.bindOperations.WithLabelValues(string(actionBind), string(outcomeAlreadyBound)).Inc()
			return existing, bindAlreadyMine, nil
		}
		s.bindRefused(ctx, conn, userID, clientID)
		return storage.Identity{}, bindConflict, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return storage.Identity{}, 0, err
	}
	row := s.identityRow(conn, ident, userID, now)
	err = s.store.BindIdentity(ctx, row)
	if errors.Is(err, storage.ErrAlreadyExists) {
		// Bound by someone else in the meantime (or by ourselves).
		if got, gerr := s.store.GetIdentity(ctx, conn.ID, ident.Subject); gerr == nil && got.UserID == userID {
			return got, bindAlreadyMine, nil
		}
		if errors.Is(err, storage.ErrConnectorTaken) {
			s.events.metrics.bindOperations.WithLabelValues(string(actionBind), string(outcomeConnectorTaken)).Inc()
			s.events.audit(ctx, nil, storage.AuditEvent{Action: string(actionBindConflict), UserID: userID, ConnectorID: conn.ID, ClientID: clientID, Result: string(outcomeRefused), Detail: "the user already has an identity of this connector"})
			return storage.Identity{}, bindConnectorTaken, nil
		}
		s.bindRefused(ctx, conn, userID, clientID)
		return storage.Identity{}, bindConflict, nil
	}
	if err != nil {
		return storage.Identity{}, 0, err
	}
	s.events.metrics.bindOperations.WithLabelValues(string(actionBind), string(outcomeSuccess)).Inc()
	s.events.audit(ctx, nil, storage.AuditEvent{Action: string(actionBind), UserID: userID, ConnectorID: conn.ID, ClientID: clientID, Result: string(outcomeSuccess)})
	return row, bindCreated, nil
}

func (s *identityService) bindRefused(ctx context.Context, conn *Connector, userID, clientID string) {
	s.events.metrics.bindOperations.WithLabelValues(string(actionBind), string(outcomeConflict)).Inc()
	s.events.audit(ctx, nil, storage.AuditEvent{Action: string(actionBindConflict), UserID: userID, ConnectorID: conn.ID, ClientID: clientID, Result: string(outcomeRefused), Detail: "identity bound to another user"})
}

// unbind detaches the user's identity of connectorID; the store ends the
// sessions and revokes the grants that came through it. A user's last
// identity is refused (storage.ErrLastIdentity), an identity the user
// does not have is storage.ErrNotFound.
func (s *identityService) unbind(ctx context.Context, userID, connectorID, clientID string) error {
	err := s.store.UnbindIdentity(ctx, userID, connectorID)
	result := outcomeSuccess
	switch {
	case errors.Is(err, storage.ErrLastIdentity):
		result = outcomeRefusedLastIdentity
	case errors.Is(err, storage.ErrNotFound):
		result = outcomeNotFound
	case err != nil:
		result = outcomeError
	}
	s.events.metrics.bindOperations.WithLabelValues(string(actionUnbind), string(result)).Inc()
	s.events.audit(ctx, nil, storage.AuditEvent{Action: string(actionUnbind), UserID: userID, ConnectorID: connectorID, ClientID: clientID, Result: string(result)})
	return err
}

// merge moves identity (connectorID, subject), which must be the only
// identity of user from, to user into and deletes from. The outcome is
// success, not_found (from or the identity is gone), refused_changed
// (from has other identities now) or error.
func (s *identityService) merge(ctx context.Context, from, into, connectorID, subject string) (outcome, error) {
	_, err := s.store.MergeUsers(ctx, storage.Merge{
		From: from, Into: into,
		Only: &storage.IdentityKey{ConnectorID: connectorID, Subject: subject},
	})
	result := outcomeSuccess
	switch {
	case err == nil:
	case errors.Is(err, storage.ErrNotFound):
		result = outcomeNotFound
	case errors.Is(err, storage.ErrConflict):
		result = outcomeRefusedChanged
	default:
		result = outcomeError
	}
	s.events.metrics.bindOperations.WithLabelValues(string(actionMerge), string(result)).Inc()
	s.events.audit(ctx, nil, storage.AuditEvent{Action: string(actionMerge), UserID: into, ConnectorID: connectorID, Result: string(result), Detail: "absorbed user " + from})
	s.events.audit(ctx, nil, storage.AuditEvent{Action: string(actionMerge), UserID: from, ConnectorID: connectorID, Result: string(result), Detail: "merged into user " + into})
	return result, err
}

// signOutEverywhere ends every browser session and revokes every token
// of the user.
func (s *identityService) signOutEverywhere(ctx context.Context, userID, clientID string) error {
	err := s.store.RevokeUserGrants(ctx, userID)
	result := outcomeSuccess
	if err != nil {
		result = outcomeError
		s.events.log.Error("sign out everywhere failed", "err", err)
	}
	s.events.audit(ctx, nil, storage.AuditEvent{Action: string(actionSignOutEverywhere), UserID: userID, ClientID: clientID, Result: string(result)})
	return err
}

// setName sets the name the person chose (cleaned; "" clears it).
func (s *identityService) setName(ctx context.Context, userID, clientID, name string) error {
	if err := s.store.SetProfileName(ctx, userID, cleanName(name), s.now().UTC()); err != nil {
		return err
	}
	s.events.audit(ctx, nil, storage.AuditEvent{Action: string(actionProfileName), UserID: userID, ClientID: clientID, Result: string(outcomeSuccess)})
	return nil
}

// setPicture sets the picture the person chose (nil clears it).
func (s *identityService) setPicture(ctx context.Context, userID, clientID string, data []byte, contentType string) error {
	if err := s.store.SetProfilePicture(ctx, userID, data, contentType, s.now().UTC()); err != nil {
		return err
	}
	s.events.audit(ctx, nil, storage.AuditEvent{Action: string(actionProfilePicture), UserID: userID, ClientID: clientID, Result: string(outcomeSuccess)})
	return nil
}

// profileOfRow is the profile an identity that was just used gives its
// user, or nil when the user's profile must be looked up (a placeholder
// profile leaves the user's earlier real one in force).
func profileOfRow(row storage.Identity) *profile {
	if !row.RealProfile {
		return nil
	}
	return &profile{Name: row.DisplayName, Picture: row.Picture}
}

// profile is a user's display name and picture: those of the most recently
// used identity with a real profile.
type profile struct {
	Name, Picture string
}

func (p profile) addTo(claims map[string]any) {
	if p.Name != "" {
		claims["name"] = p.Name
	}
	if p.Picture != "" {
		claims["picture"] = p.Picture
	}
}

// profile is the profile the user shows.
func (s *identityService) profile(ctx context.Context, userID string) (profile, error) {
	ids, err := s.store.ListIdentities(ctx, userID)
	if err != nil {
		return profile{}, err
	}
	return s.profileFrom(ids), nil
}

// profileFrom is the profile of the user whose identities are ids: the
// providers' (profileOf) under what the person set themselves.
func (s *identityService) profileFrom(ids []storage.Identity) profile {
	return s.ownProfile(profileOf(ids), ids)
}

func profileOf(ids []storage.Identity) profile {
	var best *storage.Identity
	for i := range ids {
		id := &ids[i]
		if !id.RealProfile {
			continue
		}
		if best == nil || id.LastUsedAt.After(best.LastUsedAt) {
			best = id
		}
	}
	if best == nil {
		return profile{}
	}
	return profile{Name: best.DisplayName, Picture: best.Picture}
}

// pictureURL is where the broker serves the picture a user set: stable
// for the user, so apps may keep it.
func (s *identityService) pictureURL(userID string) string { return s.issuer + "/pictures/" + userID }

// ownProfile lays what the user of ids set themselves over p (the
// providers' profile of those identities). Every identity carries it
// (storage.Identity.OwnName, OwnPicture), so this costs no query.
func (s *identityService) ownProfile(p profile, ids []storage.Identity) profile {
	if len(ids) == 0 {
		return p
	}
	id := ids[0]
	if id.OwnName != "" {
		p.Name = id.OwnName
	}
	if id.OwnPicture {
		p.Picture = s.pictureURL(id.UserID)
	}
	return p
}

// ownOver is ownProfile for a login's known profile (nil: look it up),
// read with the identity id: it stays nil when the person set only part
// of the profile, so that the lookup finds the providers' other part.
func (s *identityService) ownOver(known *profile, id storage.Identity) *profile {
	switch {
	case id.OwnName == "" && !id.OwnPicture:
		return known
	case known == nil && (id.OwnName == "" || !id.OwnPicture):
		return nil
	case known == nil:
		known = &profile{}
	}
	p := s.ownProfile(*known, []storage.Identity{id})
	return &p
}
