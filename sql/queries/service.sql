-- name: queue_depth
-- Live (pending and running) jobs by status, task type and model profile, from
-- the counters the triggers of migration 0003 keep: a few dozen rows to read,
-- however many jobs there are.
SELECT status, task_type, model_profile, sum(n)::bigint AS count
FROM job_live_counts
GROUP BY status, task_type, model_profile
HAVING sum(n) <> 0
ORDER BY status, task_type, model_profile;

-- name: oldest_pending^
-- The age of the oldest pending job (ids are UUIDv7: min(id) is the oldest, read
-- from jobs_status_idx) and how long the job at the head of the queue, the one
-- the next claim takes, has been due (the first entry of jobs_claim_idx).
SELECT (SELECT extract(epoch FROM now() - created_at) FROM jobs
        WHERE status = 'pending' ORDER BY status, id LIMIT 1) AS oldest_pending_age_seconds,
       (SELECT extract(epoch FROM now() - run_after) FROM jobs
        WHERE status = 'pending' AND run_after <= now()
        ORDER BY priority DESC, run_after, id LIMIT 1) AS head_wait_seconds;

-- name: finished_since
-- Jobs that finished in the window, by final status, and failures by category.
SELECT status, error ->> 'category' AS category, count(*) AS count
FROM jobs
WHERE finished_at >= now() - make_interval(secs => %(window_seconds)s)
GROUP BY status, error ->> 'category';

-- name: database_health^
-- What degrades a queue table: the age of the oldest open transaction (it
-- stops vacuum) and the dead rows of the jobs table.
SELECT (SELECT extract(epoch FROM now() - min(xact_start)) FROM pg_stat_activity
        WHERE xact_start IS NOT NULL AND backend_type = 'client backend'
          AND pid <> pg_backend_pid()) AS oldest_transaction_age_seconds,
       (SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'jobs') AS jobs_dead_rows,
       (SELECT n_live_tup FROM pg_stat_user_tables WHERE relname = 'jobs') AS jobs_live_rows;

-- name: migrations_table_exists^
-- Whether migrations ever ran here.
SELECT to_regclass('schema_migrations') IS NOT NULL AS present;

-- name: applied_migrations
-- Migrations recorded as applied, with their checksums.
SELECT name, checksum FROM schema_migrations ORDER BY name;

-- name: prune_jobs
-- Delete up to %(batch_size)s jobs that finished (completed, failed, cancelled)
-- before the cutoff, oldest first, skipping rows another session holds: one
-- small transaction per call, so prune never blocks the API or the workers.
-- Returns how many of each status went.
WITH doomed AS (
    SELECT id FROM jobs
    WHERE finished_at < now() - make_interval(secs => %(older_than_seconds)s::float8)
      AND status IN ('completed', 'failed', 'cancelled')
    ORDER BY finished_at
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
), deleted AS (
    DELETE FROM jobs USING doomed WHERE jobs.id = doomed.id RETURNING jobs.status
)
SELECT status, count(*) AS count FROM deleted GROUP BY status;

-- name: prune_batches
-- Delete batch records older than the cutoff whose jobs are all gone.
DELETE FROM batches
WHERE id IN (
    SELECT b.id FROM batches b
    WHERE b.created_at < now() - make_interval(secs => %(older_than_seconds)s::float8)
      AND NOT EXISTS (SELECT 1 FROM jobs j WHERE j.batch_id = b.id)
    LIMIT %(batch_size)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id;
