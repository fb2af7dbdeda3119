-- Throughput: jobs finished per hour, by task type and model profile, with
-- how many completed, failed and were cancelled.
--
-- Run:  psql "$DATABASE_URL" -v since='24 hours' -f sql/reports/throughput.sql
-- Variables:  since  how far back to look (an interval; default 24 hours)
-- Read-only; reads the finished_at index.

\if :{?since}
\else
  \set since '24 hours'
\endif

SELECT date_trunc('hour', finished_at) AS hour, task_type, model_profile,
       count(*) FILTER (WHERE status = 'completed') AS completed,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       count(*) FILTER (WHERE status = 'cancelled') AS cancelled
FROM jobs
WHERE finished_at >= now() - :'since'::interval
GROUP BY 1, 2, 3
ORDER BY 1 DESC, 2, 3;
