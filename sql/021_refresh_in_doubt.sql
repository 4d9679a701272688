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
