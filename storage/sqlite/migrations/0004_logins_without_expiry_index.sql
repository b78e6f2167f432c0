-- The logins table only holds what lives minutes (spent upstream states,
-- scan-login scenes), so garbage collection scans it whole at no cost;
-- its expiry index cost every login one more page written.
DROP INDEX logins_expires;
