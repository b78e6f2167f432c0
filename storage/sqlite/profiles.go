package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/qiaoidp/qiao/storage"
)

// GetProfile returns what the user set themselves.
func (s *Store) GetProfile(ctx context.Context, userID string) (storage.UserProfile, error) {
	var (
		p       storage.UserProfile
		updated sql.NullInt64
	)
	err := s.r.QueryRowContext(ctx, `SELECT profile_name, profile_picture, profile_picture_type, profile_updated_at FROM users WHERE id = ?`, userID).
		Scan(&p.Name, &p.Picture, &p.PictureType, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return storage.UserProfile{}, fmt.Errorf("sqlite: user %q: %w", userID, storage.ErrNotFound)
	}
	if err != nil {
		return storage.UserProfile{}, fmt.Errorf("sqlite: get profile: %w", err)
	}
	if len(p.Picture) == 0 {
		p.Picture = nil
	}
	p.UpdatedAt = fromMS(updated)
	return p, nil
}

// SetProfileName sets the user's own name.
func (s *Store) SetProfileName(ctx context.Context, userID, name string, at time.Time) error {
	return s.setProfile(ctx, `UPDATE users SET profile_name = ?, profile_updated_at = ? WHERE id = ?`, name, ms(at), userID)
}

// SetProfilePicture sets the user's own picture.
func (s *Store) SetProfilePicture(ctx context.Context, userID string, picture []byte, contentType string, at time.Time) error {
	var pic any // NULL clears
	if picture != nil {
		pic = picture
	} else {
		contentType = ""
	}
	return s.setProfile(ctx, `UPDATE users SET profile_picture = ?, profile_picture_type = ?, profile_updated_at = ? WHERE id = ?`, pic, contentType, ms(at), userID)
}

func (s *Store) setProfile(ctx context.Context, q string, args ...any) error {
	r, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("sqlite: set profile: %w", err)
	}
	if n, err := r.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: set profile: %w", err)
	} else if n == 0 {
		return fmt.Errorf("sqlite: user: %w", storage.ErrNotFound)
	}
	return nil
}
