-- 021_refresh_in_doubt.sql — a refresh token of scrip's whose fate at the
-- main issuer is unknown is not taken for the user's refusal.
--
-- A main issuer that rotates refresh tokens spends the one scrip presents.
-- When its answer, and with it the new token, is not stored (lost on the
-- way on the last attempt, a store that failed, a stop in mid-call), the
-- session still holds the spent token; presented at the next refresh, it
-- is refused with invalid_grant, which was taken for the issuer refusing
-- the user: every grant of the user at that issuer suspended.
--
-- refresh_sent_at is set just before scrip presents the held refresh token
-- and cleared when the answer is stored. Found set when the next refresh
-- is read, it says the token held may have been spent: an invalid_grant to
-- it then ends this session only (its grants must be made again), and
-- suspends nothing.

ALTER TABLE scrip.upstream_sessions ADD COLUMN refresh_sent_at timestamptz;

COMMENT ON COLUMN scrip.issued_tokens.subject_token_ref IS
	'jti:<jti of the subject token>, else sha256:<hex>: of a signed JWT, of its header and payload as sent'
	' (so the two ECDSA signatures of one signing name one token); of an opaque token, of its bytes';
