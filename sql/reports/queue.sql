-- Queue overview: live jobs by status, task type and model profile, with the
-- age of the oldest one in each group, then outcomes over a recent window.
--
-- Run:  psql "$DATABASE_URL" -v since='24 hours' -f sql/reports/queue.sql
-- Variables:  since  how far back the outcomes look (an interval; default 24 hours)
-- Read-only; fast at any table size (it reads the partial indexes of live jobs
-- and the finished_at index).

\if :{?since}
\else
  \set since '24 hours'
\endif

SELECT status, task_type, model_profile, count(*) AS jobs,
       date_trunc('second', max(now() - created_at)) AS oldest_age
FROM jobs
WHERE status IN ('pending', 'running')
GROUP BY status, task_type, model_profile
ORDER BY status, jobs DESC;

SELECT status, task_type, model_profile, count(*) AS jobs,
       round(avg(duration_ms)) AS avg_run_ms,
       round((percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms))::numeric) AS p95_run_ms
FROM jobs
WHERE finished_at >= now() - :'since'::interval
GROUP BY status, task_type, model_profile
ORDER BY status, jobs DESC;
