package sqlite

// The statements the store prepares once per pool. Everything else
// (ListAudit's variable filter) is built per call.

const (
	qPing = `SELECT 1`

	// users and identities
	identityCols = `connector_id, subject, user_id, connector_type, union_id, display_name,
		picture, real_profile, secret, bound_at, last_used_at`
	// identityRead reads an identity with what its user set themselves.
	identityRead = identityCols + `, coalesce(users.profile_name, ''), users.profile_picture IS NOT NULL
		FROM identities LEFT JOIN users ON users.id = identities.user_id`

	qInsertUser     = `INSERT INTO users (id, created_at) VALUES (?, ?)`
	qGetUser        = `SELECT id, created_at FROM users WHERE id = ?`
	qListUsers      = `SELECT id, created_at FROM users WHERE id > ? ORDER BY id LIMIT ?`
	qDeleteUser     = `DELETE FROM users WHERE id = ?`
	qDeleteUserToks = `DELETE FROM tokens WHERE subject = ?`
	qDeleteUserSess = `DELETE FROM sessions WHERE user_id = ?`
	qDeleteUserIDs  = `DELETE FROM identities WHERE user_id = ?`
	qInsertIdentity = `INSERT INTO identities (` + identityCols + `)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qGetIdentity    = `SELECT ` + identityRead + ` WHERE connector_id = ? AND subject = ?`
	qListIdentities = `SELECT ` + identityRead + ` WHERE user_id = ? ORDER BY bound_at, connector_id, subject`
	qFindByUnionID  = `SELECT ` + identityRead + `
		WHERE union_id = ? AND union_id <> '' ORDER BY bound_at, connector_id, subject`
	qUpdateIdentity = `UPDATE identities SET union_id = ?, display_name = ?, picture = ?,
		real_profile = ?, secret = ?, last_used_at = ? WHERE connector_id = ? AND subject = ?`
	// qUpdateSameUnion is qUpdateIdentity for an identity whose union id
	// stays: it leaves union_id out of SET, so that SQLite does not
	// rewrite the entry of identities_union (it rewrites the index
	// entries of every column SET names, changed or not).
	qUpdateSameUnion = `UPDATE identities SET display_name = ?, picture = ?, real_profile = ?, secret = ?,
		last_used_at = ? WHERE connector_id = ? AND subject = ? AND union_id = ?`
	qCountIdentities = `SELECT count(*), coalesce(sum(connector_id = ?), 0) FROM identities WHERE user_id = ?`
	qUnbindIdentity  = `DELETE FROM identities WHERE user_id = ? AND connector_id = ?`
	// Before the identities go: what came through them (or whose
	// identity is unknown) goes with them.
	qUnbindSessions = `DELETE FROM sessions WHERE user_id = ?1 AND connector_id = ?2
		AND (identity_subject = '' OR identity_subject IN
			(SELECT subject FROM identities WHERE user_id = ?1 AND connector_id = ?2))`
	qUnbindTokens = `DELETE FROM tokens WHERE subject = ?1 AND (identity_connector = ''
		OR (identity_connector = ?2 AND identity_subject IN
			(SELECT subject FROM identities WHERE user_id = ?1 AND connector_id = ?2)))`
	qCountUsers      = `SELECT count(*) FROM users WHERE id IN (?, ?)`
	qUserIdentities  = `SELECT ` + identityRead + ` WHERE user_id = ? ORDER BY bound_at, connector_id, subject`
	qSharedConnector = `SELECT DISTINCT connector_id FROM identities WHERE user_id = ?
		AND connector_id IN (SELECT connector_id FROM identities WHERE user_id = ?) ORDER BY connector_id`
	qMoveIdentities = `UPDATE identities SET user_id = ? WHERE user_id = ?`

	// tokens
	qInsertToken = `INSERT INTO tokens (kind, signature, request_id, client_id, subject, active,
		data, created_at, expires_at, identity_connector, identity_subject)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	qGetToken = `SELECT kind, signature, request_id, client_id, subject, active, data,
		created_at, expires_at, identity_connector, identity_subject
		FROM tokens WHERE kind = ? AND signature = ?`
	qDeactivateToken = `UPDATE tokens SET active = 0 WHERE kind = ? AND signature = ? AND active = 1`
	qTokenExists     = `SELECT 1 FROM tokens WHERE kind = ? AND signature = ?`
	qDeleteToken     = `DELETE FROM tokens WHERE kind = ? AND signature = ?`
	qRevokeRequest   = `DELETE FROM tokens WHERE request_id = ? AND kind = ?`

	// signing keys
	qListKeys = `SELECT id, algorithm, private_key, public_jwk, created_at, retired_at, expires_at
		FROM signing_keys ORDER BY created_at DESC, rowid DESC`
	qCurrentKey = `SELECT id FROM signing_keys WHERE retired_at IS NULL AND algorithm = ?
		ORDER BY created_at DESC, rowid DESC LIMIT 1`
	qRetireKey          = `UPDATE signing_keys SET retired_at = ?, expires_at = ? WHERE id = ?`
	qRetireUnretiredKey = `UPDATE signing_keys SET retired_at = ?, expires_at = ? WHERE id = ? AND retired_at IS NULL`
	qKeyExists          = `SELECT count(*) FROM signing_keys WHERE id = ?`
	qInsertKey          = `INSERT INTO signing_keys (id, algorithm, private_key, public_jwk, created_at,
		retired_at, expires_at) VALUES (?, ?, ?, ?, ?, NULL, NULL)`

	// sessions
	qInsertSession = `INSERT INTO sessions (id, user_id, connector_id, auth_time, expires_at, data,
		identity_subject) VALUES (?, ?, ?, ?, ?, ?, ?)`
	qGetSession = `SELECT id, user_id, connector_id, auth_time, expires_at, data, identity_subject
		FROM sessions WHERE id = ?`
	qUpdateSession = `UPDATE sessions SET user_id = ?, connector_id = ?, auth_time = ?,
		expires_at = ?, data = ?, identity_subject = ? WHERE id = ?`
	qDeleteSession = `DELETE FROM sessions WHERE id = ?`

	// logins
	qInsertLogin = `INSERT INTO logins (state, connector_id, binding, data, created_at, expires_at)
		VALUES (?, ?, ?, ?, ?, ?)`
	qTakeLogin = `DELETE FROM logins WHERE state = ?
		RETURNING state, connector_id, binding, data, created_at, expires_at`

	// audit
	qInsertAudit = `INSERT INTO audit (time, action, user_id, connector_id, client_id, ip, result, detail)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

	// leases: take the lease if it is free, expired, or already ours.
	qAcquireLease = `INSERT INTO leases (name, holder, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
		WHERE leases.holder = excluded.holder OR leases.expires_at <= ?`
	qReleaseLease = `DELETE FROM leases WHERE name = ? AND holder = ?`

	// cache
	qPutCache = `INSERT INTO cache (key, value, expires_at) VALUES (?, ?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at`
	qGetCache = `SELECT value, expires_at FROM cache WHERE key = ?`

	// garbage collection
	qGCTokens   = `DELETE FROM tokens WHERE expires_at <= ?`
	qGCSessions = `DELETE FROM sessions WHERE expires_at <= ?`
	qGCLogins   = `DELETE FROM logins WHERE expires_at <= ?`
	qGCKeys     = `DELETE FROM signing_keys WHERE expires_at <= ?`
	qGCCache    = `DELETE FROM cache WHERE expires_at <= ?`
	qGCLeases   = `DELETE FROM leases WHERE expires_at <= ?`
	// Old audit rows go in slices of auditGCBatch, each its own short
	// write transaction, so that a first collection of a large log does
	// not hold the one writer for long.
	qGCAudit = `DELETE FROM audit WHERE id IN (SELECT id FROM audit WHERE time < ? ORDER BY time LIMIT ?)`
)

// writeQueries run on the writer, in or out of a transaction.
func writeQueries() []string {
	return []string{
		qInsertUser, qDeleteUser, qDeleteUserToks, qDeleteUserSess, qDeleteUserIDs,
		qInsertIdentity, qUpdateIdentity, qCountIdentities, qUnbindIdentity,
		qUnbindSessions, qUnbindTokens,
		qCountUsers, qUserIdentities, qSharedConnector, qMoveIdentities,
		qInsertToken, qDeactivateToken, qTokenExists, qDeleteToken, qRevokeRequest,
		qCurrentKey, qRetireKey, qInsertKey, qRetireUnretiredKey, qKeyExists,
		qInsertSession, qUpdateSession, qDeleteSession,
		qInsertLogin, qTakeLogin,
		qInsertAudit,
		qAcquireLease, qReleaseLease,
		qPutCache,
		qGCTokens, qGCSessions, qGCLogins, qGCKeys, qGCCache, qGCLeases, qGCAudit,
	}
}

// readQueries run on the readers.
func readQueries() []string {
	return []string{
		qPing,
		qGetUser, qListUsers, qGetIdentity, qListIdentities, qFindByUnionID,
		qGetToken, qListKeys, qGetSession, qGetCache,
	}
}
