-- Which identity signed in: every browser session (its connector is
-- connector_id) and every token record carries the provider subject, so
-- that unbinding an identity revokes what came through it. Rows from
-- before this migration have '' (unknown) and are revoked with any
-- identity of their connector (sessions) or of their user (tokens).
ALTER TABLE sessions ADD COLUMN identity_subject TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN identity_connector TEXT NOT NULL DEFAULT '';
ALTER TABLE tokens ADD COLUMN identity_subject TEXT NOT NULL DEFAULT '';
