-- 018_shared_rows_mac.sql — the main issuers' key sets and introspection
-- answers that one scripd stores for the others carry a MAC.
--
-- Each scripd takes a key set of scrip.upstream_key_sets as the main
-- issuer's, and an answer of scrip.upstream_introspections as the issuer's
-- word on an opaque token. Without a check, whoever could write these
-- tables could have every scripd trust a key of their own, and so accept
-- subject tokens they signed for any user. The MAC is HMAC-SHA256, with a
-- key derived from the encryption_key of scripd, over the row's content
-- and its times (fetched_at and expires_at, introspected_at and
-- expires_at), so that a row can be neither forged nor kept alive longer.
-- A row without one (written before this migration) or with a wrong one
-- is not used: the reader asks the issuer itself.

ALTER TABLE scrip.upstream_key_sets
	ADD COLUMN mac bytea CHECK (length(mac) = 32);
ALTER TABLE scrip.upstream_introspections
	ADD COLUMN mac bytea CHECK (length(mac) = 32);
