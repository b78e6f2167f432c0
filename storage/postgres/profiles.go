package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/qiaoidp/qiao/storage"
)

// GetProfile returns what the user set themselves.
func (s *Store) GetProfile(ctx context.Context, userID string) (storage.UserProfile, error) {
	var (
		p       storage.UserProfile
		updated pgtype.Timestamptz
	)
	err := s.read(ctx, func() error {
		return s.pool.QueryRow(ctx, `SELECT profile_name, profile_picture, profile_picture_type, profile_updated_at FROM users WHERE id = $1`, userID).
			Scan(&p.Name, &p.Picture, &p.PictureType, &updated)
	})
	if errors.Is(err, pgx.ErrNoRows) {
		return storage.UserProfile{}, fmt.Errorf("postgres: user %q: %w", userID, storage.ErrNotFound)
	}
	if err != nil {
		return storage.UserProfile{}, fmt.Errorf("postgres: get profile: %w", err)
	}
	if len(p.Picture) == 0 {
		p.Picture = nil
	}
	p.UpdatedAt = fromTS(updated)
	return p, nil
}

// SetProfileName sets the user's own name.
func (s *Store) SetProfileName(ctx context.Context, userID, name string, at time.Time) error {
	return s.setProfile(ctx, `UPDATE users SET profile_name = $1, profile_updated_at = $2 WHERE id = $3`, name, ts(at), userID)
}

// SetProfilePicture sets the user's own picture.
func (s *Store) SetProfilePicture(ctx context.Context, userID string, picture []byte, contentType string, at time.Time) error {
	if picture == nil {
		contentType = ""
	}
	return s.setProfile(ctx, `UPDATE users SET profile_picture = $1, profile_picture_type = $2, profile_updated_at = $3 WHERE id = $4`, picture, contentType, ts(at), userID)
}

func (s *Store) setProfile(ctx context.Context, q string, args ...any) error {
	var n int64
	err := s.retry(ctx, func() error {
		tag, err := s.pool.Exec(ctx, q, args...)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return fmt.Errorf("postgres: set profile: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("postgres: user: %w", storage.ErrNotFound)
	}
	return nil
}
