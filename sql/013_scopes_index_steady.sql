-- 013_scopes_index_steady.sql — the GIN index on issued_tokens.scopes merges
-- its pending list in small steps.
--
-- A GIN index (with fastupdate, its default) takes new entries into a
-- pending list, and the insert that finds the list above
-- gin_pending_list_limit (4 MB by default) merges the whole list into the
-- index, inside its own statement. At a few thousand tokens a second that
-- was one insert every few seconds taking 20 to 35 ms instead of under
-- one, and every request grouped into its transaction waited for it. With
-- a limit of 256 kB the same work comes in pieces of a millisecond or two.
-- Turning fastupdate off instead would spread it evenly, but it wrote half
-- as much WAL again per token and cost about a twentieth of the exchange
-- rate. What the index holds, and every query that uses it, do not change.

ALTER INDEX scrip.issued_tokens_scopes SET (gin_pending_list_limit = 256);
