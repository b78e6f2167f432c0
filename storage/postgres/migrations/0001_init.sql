-- Qiao schema, version 1. Times are timestamptz (UTC); NULL stands for the
-- zero time (for expiries: never expires).

-- User ids sort bytewise (ListUsers pages by id), whatever the database's
-- default collation.
CREATE TABLE users (
	id         text COLLATE "C" PRIMARY KEY,
	created_at timestamptz
);

CREATE TABLE identities (
	connector_id   text NOT NULL,
	subject        text NOT NULL,
	user_id        text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	connector_type text NOT NULL DEFAULT '',
	union_id       text NOT NULL DEFAULT '',
	display_name   text NOT NULL DEFAULT '',
	picture        text NOT NULL DEFAULT '',
	real_profile   boolean NOT NULL DEFAULT false,
	secret         bytea NOT NULL DEFAULT '\x',
	bound_at       timestamptz,
	last_used_at   timestamptz,
	seq            bigint GENERATED ALWAYS AS IDENTITY,
	PRIMARY KEY (connector_id, subject)
);
CREATE INDEX identities_user ON identities (user_id, bound_at);
CREATE INDEX identities_union ON identities (union_id, bound_at) WHERE union_id <> '';

CREATE TABLE tokens (
	kind       text NOT NULL,
	signature  text NOT NULL,
	request_id text NOT NULL,
	client_id  text NOT NULL,
	subject    text NOT NULL,
	active     boolean NOT NULL,
	data       bytea NOT NULL,
	created_at timestamptz,
	expires_at timestamptz,
	PRIMARY KEY (kind, signature)
);
CREATE INDEX tokens_request ON tokens (request_id, kind);
CREATE INDEX tokens_subject ON tokens (subject);
CREATE INDEX tokens_expires ON tokens (expires_at);

-- qiao_deactivate_token sets active = false on an active token, raising
-- QN404 if the token is absent and QC409 if it is already inactive, so
-- that a failed deactivation aborts the transaction it is part of.
CREATE FUNCTION qiao_deactivate_token(p_kind text, p_signature text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
	was_active boolean;
BEGIN
	SELECT active INTO was_active FROM tokens
	WHERE kind = p_kind AND signature = p_signature
	FOR UPDATE;
	IF NOT FOUND THEN
		RAISE EXCEPTION 'token not found' USING ERRCODE = 'QN404';
	END IF;
	IF NOT was_active THEN
		RAISE EXCEPTION 'token already inactive' USING ERRCODE = 'QC409';
	END IF;
	UPDATE tokens SET active = false WHERE kind = p_kind AND signature = p_signature;
END
$$;

CREATE TABLE signing_keys (
	id          text PRIMARY KEY,
	algorithm   text NOT NULL,
	private_key bytea NOT NULL,
	public_jwk  bytea NOT NULL,
	created_at  timestamptz,
	retired_at  timestamptz,
	expires_at  timestamptz
);
CREATE INDEX signing_keys_created ON signing_keys (created_at);
CREATE INDEX signing_keys_expires ON signing_keys (expires_at);

CREATE TABLE sessions (
	id           text PRIMARY KEY,
	user_id      text NOT NULL,
	connector_id text NOT NULL,
	auth_time    timestamptz,
	expires_at   timestamptz,
	data         bytea NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE logins (
	state        text PRIMARY KEY,
	connector_id text NOT NULL,
	binding      text NOT NULL,
	data         bytea NOT NULL,
	created_at   timestamptz,
	expires_at   timestamptz
);
CREATE INDEX logins_expires ON logins (expires_at);

CREATE TABLE audit (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	time         timestamptz,
	action       text NOT NULL,
	user_id      text NOT NULL,
	connector_id text NOT NULL,
	client_id    text NOT NULL,
	ip           text NOT NULL,
	result       text NOT NULL,
	detail       text NOT NULL
);
CREATE INDEX audit_time ON audit (time);
CREATE INDEX audit_user_time ON audit (user_id, time);

CREATE TABLE leases (
	name       text PRIMARY KEY,
	holder     text NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE INDEX leases_expires ON leases (expires_at);

CREATE TABLE cache (
	key        text PRIMARY KEY,
	value      bytea NOT NULL,
	expires_at timestamptz
);
CREATE INDEX cache_expires ON cache (expires_at);
