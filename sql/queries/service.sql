-- name: queue_depth
-- Live (pending and running) jobs by status, task type and model profile, with
-- how many pending ones are not yet due. Only rows in the two partial indexes
-- are read, however many finished jobs the table holds.
SELECT status, task_type, model_profile, count(*) AS count,
       count(*) FILTER (WHERE status = 'pending' AND run_after > now()) AS scheduled
FROM jobs
WHERE status IN ('pending', 'running')
GROUP BY status, task_type, model_profile
ORDER BY status, task_type, model_profile;

-- name: oldest_pending^
-- The oldest pending job (ids are UUIDv7, so min(id) is the oldest) and the
-- longest wait of a job that is due now.
SELECT (SELECT extract(epoch FROM now() - created_at) FROM jobs
        WHERE status = 'pending' ORDER BY id LIMIT 1) AS oldest_pending_age_seconds,
       (SELECT extract(epoch FROM now() - min(run_after)) FROM jobs
        WHERE status = 'pending' AND run_after <= now()) AS longest_due_wait_seconds;

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
