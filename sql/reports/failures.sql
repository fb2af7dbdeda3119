-- Failures by category, with a sample message (the latest). First the jobs that
-- ended failed in the window; then every failed attempt recorded in the window,
-- including those that were retried (read from each job's errors history).
--
-- Run:  psql "$DATABASE_URL" -v since='24 hours' -f sql/reports/failures.sql
-- Variables:  since  how far back to look (an interval; default 24 hours)
-- Read-only. The first query reads the finished_at index; the second scans jobs
-- updated in the window (seconds on millions of rows: run it off-peak).

\if :{?since}
\else
  \set since '24 hours'
\endif

SELECT error ->> 'category' AS category, task_type, model_profile, count(*) AS failed_jobs,
       (array_agg(left(error ->> 'message', 200) ORDER BY finished_at DESC))[1] AS sample_message
FROM jobs
WHERE finished_at >= now() - :'since'::interval AND status = 'failed'
GROUP BY 1, 2, 3
ORDER BY failed_jobs DESC, category;

SELECT e ->> 'category' AS category, count(*) AS failed_attempts,
       count(DISTINCT j.id) AS jobs,
       (array_agg(left(e ->> 'message', 200) ORDER BY (e ->> 'at')::timestamptz DESC))[1] AS sample_message
FROM jobs j, jsonb_array_elements(j.errors) AS e
WHERE j.updated_at >= now() - :'since'::interval
  AND (e ->> 'at')::timestamptz >= now() - :'since'::interval
GROUP BY 1
ORDER BY failed_attempts DESC, category;
