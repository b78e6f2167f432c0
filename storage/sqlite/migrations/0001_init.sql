-- Qiao schema, version 1. Every time is integer unix milliseconds UTC;
-- NULL stands for the zero time (for expiries: never expires).
-- Tables of small rows keyed by text are WITHOUT ROWID: the row lives in
-- the primary-key b-tree, one page write fewer per insert. Tokens and
-- keys keep a rowid: their rows (serialized requests, encrypted private
-- keys) are too large for a clustered index.

CREATE TABLE users (
	id         TEXT PRIMARY KEY,
	created_at INTEGER
) WITHOUT ROWID;

CREATE TABLE identities (
	connector_id   TEXT NOT NULL,
	subject        TEXT NOT NULL,
	user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	connector_type TEXT NOT NULL DEFAULT '',
	union_id       TEXT NOT NULL DEFAULT '',
	display_name   TEXT NOT NULL DEFAULT '',
	picture        TEXT NOT NULL DEFAULT '',
	real_profile   INTEGER NOT NULL DEFAULT 0,
	secret         BLOB NOT NULL DEFAULT x'',
	bound_at       INTEGER,
	last_used_at   INTEGER,
	PRIMARY KEY (connector_id, subject)
) WITHOUT ROWID;
CREATE INDEX identities_user ON identities (user_id, bound_at);
CREATE INDEX identities_union ON identities (union_id, bound_at);

CREATE TABLE tokens (
	kind       TEXT NOT NULL,
	signature  TEXT NOT NULL,
	request_id TEXT NOT NULL,
	client_id  TEXT NOT NULL,
	subject    TEXT NOT NULL,
	active     INTEGER NOT NULL,
	data       BLOB NOT NULL,
	created_at INTEGER,
	expires_at INTEGER,
	PRIMARY KEY (kind, signature)
);
CREATE INDEX tokens_request ON tokens (request_id, kind);
CREATE INDEX tokens_subject ON tokens (subject);
CREATE INDEX tokens_expires ON tokens (expires_at);

CREATE TABLE signing_keys (
	id          TEXT PRIMARY KEY,
	algorithm   TEXT NOT NULL,
	private_key BLOB NOT NULL,
	public_jwk  BLOB NOT NULL,
	created_at  INTEGER,
	retired_at  INTEGER,
	expires_at  INTEGER
);
CREATE INDEX signing_keys_created ON signing_keys (created_at);
CREATE INDEX signing_keys_expires ON signing_keys (expires_at);

CREATE TABLE sessions (
	id           TEXT PRIMARY KEY,
	user_id      TEXT NOT NULL,
	connector_id TEXT NOT NULL,
	auth_time    INTEGER,
	expires_at   INTEGER,
	data         BLOB NOT NULL
) WITHOUT ROWID;
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

CREATE TABLE logins (
	state        TEXT PRIMARY KEY,
	connector_id TEXT NOT NULL,
	binding      TEXT NOT NULL,
	data         BLOB NOT NULL,
	created_at   INTEGER,
	expires_at   INTEGER
) WITHOUT ROWID;
CREATE INDEX logins_expires ON logins (expires_at);

CREATE TABLE audit (
	id           INTEGER PRIMARY KEY,
	time         INTEGER,
	action       TEXT NOT NULL,
	user_id      TEXT NOT NULL,
	connector_id TEXT NOT NULL,
	client_id    TEXT NOT NULL,
	ip           TEXT NOT NULL,
	result       TEXT NOT NULL,
	detail       TEXT NOT NULL
);
CREATE INDEX audit_time ON audit (time);
CREATE INDEX audit_user_time ON audit (user_id, time);

CREATE TABLE leases (
	name       TEXT PRIMARY KEY,
	holder     TEXT NOT NULL,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX leases_expires ON leases (expires_at);

CREATE TABLE cache (
	key        TEXT PRIMARY KEY,
	value      BLOB NOT NULL,
	expires_at INTEGER
) WITHOUT ROWID;
CREATE INDEX cache_expires ON cache (expires_at);
