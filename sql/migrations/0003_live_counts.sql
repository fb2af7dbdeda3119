-- 0003: live job counts kept as they change, so /api/v1/stats and /metrics read
-- a few dozen rows instead of counting every pending job (counting degrades
-- badly under churn: heap fetches on pages vacuum has not reached yet).
--
-- job_live_counts holds, per (status, task_type, model_profile), the number of
-- pending and running jobs, split over 64 shards chosen by backend pid: two
-- sessions rarely touch the same counter row, so concurrent completions do not
-- queue behind one row lock. The true count is the sum over shards.
-- Statement-level triggers with transition tables see a whole statement at
-- once: a batch of 1000 jobs or a claim of 10 is one call, not one per row. An
-- UPDATE that moves nothing in or out of pending/running (a heartbeat) nets to
-- zero and writes nothing. Terminal statuses are not counted here: history is
-- read by time window through jobs_finished_idx.

CREATE TABLE job_live_counts (
    status        text     NOT NULL,
    task_type     text     NOT NULL,
    model_profile text     NOT NULL,
    shard         smallint NOT NULL,
    n             bigint   NOT NULL,
    PRIMARY KEY (status, task_type, model_profile, shard)
);

INSERT INTO job_live_counts (status, task_type, model_profile, shard, n)
SELECT status, task_type, model_profile, 0, count(*)
FROM jobs WHERE status IN ('pending', 'running')
GROUP BY status, task_type, model_profile;

CREATE FUNCTION aiservice_count_live() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    my_shard smallint := pg_backend_pid() % 64;
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO job_live_counts AS c (status, task_type, model_profile, shard, n)
        SELECT status, task_type, model_profile, my_shard, count(*)
        FROM new_rows WHERE status IN ('pending', 'running')
        GROUP BY status, task_type, model_profile
        ORDER BY status, task_type, model_profile
        ON CONFLICT (status, task_type, model_profile, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO job_live_counts AS c (status, task_type, model_profile, shard, n)
        SELECT status, task_type, model_profile, my_shard, sum(delta)
        FROM (SELECT status, task_type, model_profile, 1 AS delta
              FROM new_rows WHERE status IN ('pending', 'running')
              UNION ALL
              SELECT status, task_type, model_profile, -1
              FROM old_rows WHERE status IN ('pending', 'running')) changes
        GROUP BY status, task_type, model_profile
        HAVING sum(delta) <> 0
        ORDER BY status, task_type, model_profile
        ON CONFLICT (status, task_type, model_profile, shard) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO job_live_counts AS c (status, task_type, model_profile, shard, n)
        SELECT status, task_type, model_profile, my_shard, -count(*)
        FROM old_rows WHERE status IN ('pending', 'running')
        GROUP BY status, task_type, model_profile
        ORDER BY status, task_type, model_profile
        ON CONFLICT (status, task_type, model_profile, shard) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aiservice_count_live();
CREATE TRIGGER jobs_count_update AFTER UPDATE ON jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aiservice_count_live();
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION aiservice_count_live();

CREATE FUNCTION aiservice_count_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM job_live_counts;
    RETURN NULL;
END;
$$;

CREATE TRIGGER jobs_count_truncate AFTER TRUNCATE ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION aiservice_count_truncate();

-- Counter rows change on every claim and finish: vacuum them often.
ALTER TABLE job_live_counts SET (autovacuum_vacuum_scale_factor = 0,
                                 autovacuum_vacuum_threshold = 1000,
                                 autovacuum_vacuum_cost_delay = 0);
