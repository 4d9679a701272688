-- 011_vo_given.sql — scripd names the VO of every token, grant and audit
-- row it writes (the client's, or the grant's), so the triggers of
-- 006_vos.sql that look it up now run only for a row that arrives without
-- one (written by hand, or by an older scripd): a row written with its VO
-- costs no trigger call. What is stored does not change.

DROP TRIGGER issued_tokens_vo ON scrip.issued_tokens;
CREATE TRIGGER issued_tokens_vo BEFORE INSERT ON scrip.issued_tokens FOR EACH ROW
	WHEN (NEW.vo IS NULL) EXECUTE FUNCTION scrip.row_vo_fill();
DROP TRIGGER grants_vo ON scrip.grants;
CREATE TRIGGER grants_vo BEFORE INSERT ON scrip.grants FOR EACH ROW
	WHEN (NEW.vo IS NULL) EXECUTE FUNCTION scrip.row_vo_fill();
DROP TRIGGER ended_jobs_vo ON scrip.ended_jobs;
CREATE TRIGGER ended_jobs_vo BEFORE INSERT ON scrip.ended_jobs FOR EACH ROW
	WHEN (NEW.vo IS NULL) EXECUTE FUNCTION scrip.row_vo_fill();
DROP TRIGGER upstream_calls_vo ON scrip.upstream_calls;
CREATE TRIGGER upstream_calls_vo BEFORE INSERT ON scrip.upstream_calls FOR EACH ROW
	WHEN (NEW.vo IS NULL) EXECUTE FUNCTION scrip.upstream_calls_vo_fill();
DROP TRIGGER audit_events_vo ON scrip.audit_events;
CREATE TRIGGER audit_events_vo BEFORE INSERT ON scrip.audit_events FOR EACH ROW
	WHEN (NEW.vo IS NULL) EXECUTE FUNCTION scrip.audit_events_vo_fill();
