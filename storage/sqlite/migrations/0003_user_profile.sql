-- What a person set themselves (PATCH /api/v1/me, PUT /api/v1/me/picture):
-- it wins over the providers' profile. '' / NULL: nothing set.
ALTER TABLE users ADD COLUMN profile_name TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN profile_picture BLOB;
ALTER TABLE users ADD COLUMN profile_picture_type TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN profile_updated_at INTEGER;
