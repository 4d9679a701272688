-- 008_secret_overlap.sql — a rotated client secret may keep working for a
-- while (`scripctl client rotate-secret --overlap SECONDS`), so that the
-- service can be given its new secret without an outage. Only the previous
-- secret's SHA-256 is kept, with the time it stops being accepted; scripd
-- compares against it only while now() (the database's clock) is before
-- that time, and the next rotation replaces or clears it.
ALTER TABLE scrip.clients
	ADD COLUMN previous_secret_hash       bytea CHECK (length(previous_secret_hash) = 32),
	ADD COLUMN previous_secret_expires_at timestamptz,
	ADD CONSTRAINT clients_previous_secret_paired
		CHECK ((previous_secret_hash IS NULL) = (previous_secret_expires_at IS NULL));
