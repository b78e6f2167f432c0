package broker

import (
	"context"
	"errors"
	"time"

	"github.com/qiaoidp/qiao/connectors"
	"github.com/qiaoidp/qiao/storage"
)

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
func (b *Broker) unionKey(conn *Connector, ident connectors.Identity) (string, bool) {
	if ident.UnionID == "" {
		return "", false
	}
	u, ok := conn.Impl.(unionLinker)
	if !ok {
		return conn.Type + ":" + ident.UnionID, false
	}
	ns, link := u.UnionNamespace()
	if legacy, set := b.cfg.Linking[ns]; set {
		link = legacy
	}
	if conn.LinkByUnionID != nil {
		link = *conn.LinkByUnionID
	}
	return ns + ":" + ident.UnionID, link
}

func (b *Broker) identityRow(conn *Connector, ident connectors.Identity, userID string, now time.Time) storage.Identity {
	union, _ := b.unionKey(conn, ident)
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
		row.Secret = b.idSealer.Seal(ident.Secret, []byte(conn.ID+"\x00"+ident.Subject))
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
func (b *Broker) resolveIdentity(ctx context.Context, conn *Connector, ident connectors.Identity) (userID string, known *profile, update *storage.Identity, err error) {
	if ident.Subject == "" {
		return "", nil, nil, errors.New("the provider returned no subject")
	}
	now := b.now().UTC()
	for attempt := 0; attempt < 3; attempt++ {
		existing, err := b.store.GetIdentity(ctx, conn.ID, ident.Subject)
		if err == nil {
			row := b.identityRow(conn, ident, existing.UserID, now)
			row.BoundAt = existing.BoundAt
			if !ident.RealProfile && existing.RealProfile {
				// Keep the real profile we had over a placeholder.
				row.DisplayName, row.Picture, row.RealProfile = existing.DisplayName, existing.Picture, true
			}
			if row.Secret == nil {
				row.Secret = existing.Secret
			}
			return existing.UserID, b.ownOver(profileOfRow(row), existing), &row, nil
		} else if !errors.Is(err, storage.ErrNotFound) {
			return "", nil, nil, err
		}
		if union, link := b.unionKey(conn, ident); link {
			others, err := b.store.FindIdentitiesByUnionID(ctx, union)
			if err != nil {
				return "", nil, nil, err
			}
			if len(others) > 0 {
				row := b.identityRow(conn, ident, others[0].UserID, now)
				err := b.store.BindIdentity(ctx, row)
				switch {
				case errors.Is(err, storage.ErrConnectorTaken):
					// That user already has another identity of this
					// connector: not linked, the identity becomes a user
					// of its own below.
					b.log.Warn("union id not linked: the user already has an identity of this connector", "connector", conn.ID)
				case errors.Is(err, storage.ErrAlreadyExists):
					continue // created by a concurrent login: read it again
				case err != nil:
					return "", nil, nil, err
				default:
					b.audit(ctx, nil, storage.AuditEvent{Action: string(actionLinkUnionid), UserID: others[0].UserID, ConnectorID: conn.ID, Result: string(outcomeSuccess)})
					return others[0].UserID, b.ownOver(profileOfRow(row), others[0]), nil, nil
				}
			}
		}
		userID := newUserID()
		row := b.identityRow(conn, ident, userID, now)
		err = b.store.CreateUser(ctx, storage.User{ID: userID, CreatedAt: now}, row)
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

func (b *Broker) profile(ctx context.Context, userID string) (profile, error) {
	ids, err := b.store.ListIdentities(ctx, userID)
	if err != nil {
		return profile{}, err
	}
	return b.ownProfile(profileOf(ids), ids), nil
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
