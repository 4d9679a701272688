-- 012_issued_client_unlocked.sql — an issued token no longer locks its
-- client's row. The foreign key issued_tokens.client_id → clients made
-- every insert run a check that takes a FOR KEY SHARE lock on the client's
-- row: the few busy clients of a site (a pilot factory, a transfer service)
-- had their rows locked by every concurrent transaction, which PostgreSQL
-- records as shared lock groups (MultiXacts) rewritten on each insert; it
-- was a fifth of the database's CPU per exchange.
--
-- What the key guaranteed stays true: scripd writes a token only for the
-- client it has just authenticated, and a client row is never deleted nor
-- renamed (disable it with `scripctl client disable`), now refused by a
-- trigger, so no token can lose its client. grants.client_id keeps its
-- foreign key (a grant is written once, not per token).

ALTER TABLE scrip.issued_tokens DROP CONSTRAINT issued_tokens_client_id_fkey;

CREATE FUNCTION scrip.clients_keep() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' AND NEW.client_id = OLD.client_id THEN
		RETURN NEW;
	END IF;
	RAISE EXCEPTION 'client % cannot be deleted or renamed: its tokens and audit rows name it', OLD.client_id
		USING ERRCODE = 'restrict_violation',
		      HINT = 'disable it instead: scripctl client disable ' || OLD.client_id;
END
$$;

CREATE TRIGGER clients_keep BEFORE DELETE OR UPDATE OF client_id ON scrip.clients
	FOR EACH ROW EXECUTE FUNCTION scrip.clients_keep();
