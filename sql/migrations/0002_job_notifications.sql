-- 0002: wake idle workers within milliseconds when a job becomes claimable.
--
-- Channel aiservice_jobs, empty payload (a wake-up, not a message: workers
-- then claim as usual). PostgreSQL folds identical notifications of one
-- transaction into one, so a batch of 1000 jobs sends one NOTIFY.
--   - every INSERT statement (create, batch): statement-level, once per statement;
--   - an UPDATE that moves a row to pending (retry, retryable fail, hand-back):
--     the WHEN clause is checked without calling the function, so claims and
--     completions pay nothing for it.
-- Jobs that become due later (run_after in the future, a lease about to
-- expire) are found by the worker itself: it sleeps until the next due time.

CREATE FUNCTION aiservice_notify_jobs() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('aiservice_jobs', '');
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_notify_insert
    AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION aiservice_notify_jobs();

CREATE TRIGGER jobs_notify_pending
    AFTER UPDATE OF status ON jobs
    FOR EACH ROW WHEN (NEW.status = 'pending' AND OLD.status IS DISTINCT FROM 'pending')
    EXECUTE FUNCTION aiservice_notify_jobs();
