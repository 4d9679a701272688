-- 020_retry_once.sql — a retry inside a client's refresh_grace is allowed
-- once per rotated refresh token, and replaces the redemption it retries.
--
-- A rotated refresh token presented again inside the grace period, while
-- the successor it was rotated into is unused, is taken for a client that
-- lost the answer and retries: it gets a new successor, and the old one is
-- revoked. Until now each such presentation was a retry, so whoever held
-- the rotated token could redeem it again and again within the grace
-- period, each time with a new access token, and each time spend a use of
-- the grant: a one-time ticket's retry was refused as used up.
--
-- retried_at marks the rotated token that has been retried: presented
-- once more after that, it is a replay (RFC 9700 §4.14.2) and revokes the
-- grant. access_jti names the access token a token's redemption made, so
-- that a retry revokes the access token of the redemption it replaces (a
-- retry does not spend a use: it is the same redemption, answered again).
-- Brokered redemptions hand out the main issuer's token and name none.

ALTER TABLE scrip.refresh_tokens ADD COLUMN retried_at timestamptz;
ALTER TABLE scrip.refresh_tokens ADD COLUMN access_jti text;
