-- The oldest pending jobs (waiting longest) and the longest-running jobs, with
-- who holds them and when their lease ends: what to look at when a queue stalls.
--
-- Run:  psql "$DATABASE_URL" -v limit=20 -f sql/reports/stuck.sql
-- Variables:  limit  rows per list (default 20)
-- Read-only; reads the partial indexes of live jobs.

\if :{?limit}
\else
  \set limit 20
\endif

SELECT id, owner_service, owner_ref, task_type, model_profile, priority, attempts,
       date_trunc('second', now() - created_at) AS waiting, run_after > now() AS scheduled
FROM jobs
WHERE status = 'pending'
ORDER BY id
LIMIT :limit;

SELECT id, owner_service, owner_ref, task_type, model_profile, worker_id, attempts,
       date_trunc('second', now() - started_at) AS running_for,
       date_trunc('second', lease_expires_at - now()) AS lease_left
FROM jobs
WHERE status = 'running'
ORDER BY started_at
LIMIT :limit;
