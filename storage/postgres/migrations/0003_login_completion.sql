-- Qiao schema, version 4: a finished sign-in is written in one batch.
--
-- qiao_expect raises the SQLSTATE code unless ok is true, so that a
-- conditional write inside a batch (an UPDATE that must hit a row) aborts
-- the batch's implicit transaction instead of silently writing the rest.
--
-- The logins table stays: a sign-in no longer stores its pending request
-- (the browser's sealed login cookie carries it), but a finished sign-in
-- records its spent upstream state there (empty binding and data) until
-- the state would have expired, so that a replayed callback is refused.
CREATE FUNCTION qiao_expect(ok boolean, code text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
	IF NOT ok THEN
		RAISE EXCEPTION 'expected row not found' USING ERRCODE = code;
	END IF;
END
$$;
