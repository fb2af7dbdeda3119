-- Jobs that needed the most attempts: finished in the window, or still live.
-- The categories of their failed attempts show whether a provider, the input
-- or a worker was to blame.
--
-- Run:  psql "$DATABASE_URL" -v since='24 hours' -v limit=20 -f sql/reports/attempts.sql
-- Variables:  since  how far back finished jobs are considered (default 24 hours)
--             limit  rows (default 20)
-- Read-only; reads the finished_at index and the partial indexes of live jobs.

\if :{?since}
\else
  \set since '24 hours'
\endif
\if :{?limit}
\else
  \set limit 20
\endif

SELECT id, owner_service, task_type, model_profile, status, attempts, max_attempts,
       (SELECT string_agg(e ->> 'category', ',' ORDER BY (e ->> 'attempt')::int)
        FROM jsonb_array_elements(errors) e) AS failed_attempts
FROM jobs
WHERE attempts > 1
  AND (finished_at >= now() - :'since'::interval OR status IN ('pending', 'running'))
ORDER BY attempts DESC, id
LIMIT :limit;
