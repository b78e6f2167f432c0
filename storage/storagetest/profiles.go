package storagetest

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

func profileTests() []suiteTest {
	return []suiteTest{
		{"NewUserHasNoProfile", func(t *testing.T, s storage.Storage) {
			ctx := context.Background()
			u, _ := createUser(t, s)
			p, err := s.GetProfile(ctx, u.ID)
			must(t, "get profile", err)
			if p.Name != "" || p.Picture != nil || p.PictureType != "" || !p.UpdatedAt.IsZero() {
				t.Errorf("a new user's profile = %+v, want the zero value", p)
			}
			_, err = s.GetProfile(ctx, uniq("nobody"))
			wantErr(t, "profile of no user", err, storage.ErrNotFound)
		}},
		{"SetNameAndPictureRoundTrip", func(t *testing.T, s storage.Storage) {
			ctx := context.Background()
			u, _ := createUser(t, s)
			at := now().Add(-time.Minute)
			must(t, "set name", s.SetProfileName(ctx, u.ID, "小明 ✓", at))
			pic := append([]byte("\x89PNG\r\n\x1a\n"), bytes.Repeat([]byte{0, 0xff}, 200<<10/2)...)
			at2 := now()
			must(t, "set picture", s.SetProfilePicture(ctx, u.ID, pic, "image/png", at2))
			p, err := s.GetProfile(ctx, u.ID)
			must(t, "get profile", err)
			if p.Name != "小明 ✓" || !bytes.Equal(p.Picture, pic) || p.PictureType != "image/png" || !ms(p.UpdatedAt).Equal(ms(at2)) {
				t.Errorf("profile = name %q, %d bytes %q, at %v; want what was set (at %v)", p.Name, len(p.Picture), p.PictureType, p.UpdatedAt, at2)
			}
			checkUTC(t, "profile", p.UpdatedAt)
			// Clearing.
			must(t, "clear picture", s.SetProfilePicture(ctx, u.ID, nil, "image/png", at2))
			must(t, "clear name", s.SetProfileName(ctx, u.ID, "", at2))
			p, err = s.GetProfile(ctx, u.ID)
			must(t, "get profile", err)
			if p.Name != "" || p.Picture != nil || p.PictureType != "" {
				t.Errorf("cleared profile = %+v", p)
			}
		}},
		{"IdentitiesCarryTheOwnProfile", func(t *testing.T, s storage.Storage) {
			ctx := context.Background()
			u := storage.User{ID: uniq("user"), CreatedAt: now()}
			first := newIdentity(u.ID, "wechat", u.CreatedAt)
			first.UnionID = uniq("wechat:union")
			must(t, "create user", s.CreateUser(ctx, u, first))
			must(t, "set name", s.SetProfileName(ctx, u.ID, "Own", now()))
			must(t, "set picture", s.SetProfilePicture(ctx, u.ID, []byte("\x89PNG\r\n\x1a\n"), "image/png", now()))
			got, err := s.GetIdentity(ctx, first.ConnectorID, first.Subject)
			must(t, "get identity", err)
			list, err := s.ListIdentities(ctx, u.ID)
			must(t, "list identities", err)
			byUnion, err := s.FindIdentitiesByUnionID(ctx, first.UnionID)
			must(t, "find by union id", err)
			if len(list) != 1 || len(byUnion) != 1 {
				t.Fatalf("%d listed, %d by union id", len(list), len(byUnion))
			}
			for what, id := range map[string]storage.Identity{"get": got, "list": list[0], "union": byUnion[0]} {
				if id.OwnName != "Own" || !id.OwnPicture {
					t.Errorf("%s: OwnName %q OwnPicture %v, want what the user set", what, id.OwnName, id.OwnPicture)
				}
			}
			must(t, "clear picture", s.SetProfilePicture(ctx, u.ID, nil, "", now()))
			got, err = s.GetIdentity(ctx, first.ConnectorID, first.Subject)
			must(t, "get identity", err)
			if got.OwnPicture {
				t.Errorf("a cleared picture is still set")
			}
		}},
		{"SetOnMissingUserIsNotFound", func(t *testing.T, s storage.Storage) {
			ctx := context.Background()
			wantErr(t, "name of no user", s.SetProfileName(ctx, uniq("nobody"), "x", now()), storage.ErrNotFound)
			wantErr(t, "picture of no user", s.SetProfilePicture(ctx, uniq("nobody"), []byte("x"), "image/png", now()), storage.ErrNotFound)
		}},
		{"DeleteUserRemovesProfile", func(t *testing.T, s storage.Storage) {
			ctx := context.Background()
			u, _ := createUser(t, s)
			must(t, "set name", s.SetProfileName(ctx, u.ID, "Gone", now()))
			must(t, "delete user", s.DeleteUser(ctx, u.ID))
			_, err := s.GetProfile(ctx, u.ID)
			wantErr(t, "profile of a deleted user", err, storage.ErrNotFound)
		}},
	}
}
