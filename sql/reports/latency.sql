-- Latency: queue wait (created -> started) and run time (started -> finished) of
-- jobs completed in the window, p50 / p95 / p99 in milliseconds, by model profile.
-- The wait of a retried job includes its earlier attempts and backoff.
--
-- Run:  psql "$DATABASE_URL" -v since='24 hours' -f sql/reports/latency.sql
-- Variables:  since  how far back to look (an interval; default 24 hours)
-- Read-only; reads the finished_at index.

\if :{?since}
\else
  \set since '24 hours'
\endif

SELECT model_profile, count(*) AS jobs,
       round(percentile_cont(0.50) WITHIN GROUP (ORDER BY wait_ms)::numeric) AS wait_p50_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY wait_ms)::numeric) AS wait_p95_ms,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY wait_ms)::numeric) AS wait_p99_ms,
       round(percentile_cont(0.50) WITHIN GROUP (ORDER BY duration_ms)::numeric) AS run_p50_ms,
       round(percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)::numeric) AS run_p95_ms,
       round(percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms)::numeric) AS run_p99_ms
FROM (
    SELECT model_profile, duration_ms,
           extract(epoch FROM started_at - created_at) * 1000 AS wait_ms
    FROM jobs
    WHERE finished_at >= now() - :'since'::interval AND status = 'completed'
) j
GROUP BY model_profile
ORDER BY model_profile;
