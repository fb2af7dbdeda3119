-- 0004: new jobs are announced by the API after it commits, not by a trigger.
--
-- A pg_notify inside a transaction takes PostgreSQL's global notification
-- queue lock at commit and holds it through the WAL flush, so every creating
-- transaction waited for the one before it: with 16 clients, INSERT throughput
-- fell from 13 400/s to 3 500/s (pgbench, durable, this machine). The API now
-- sends one NOTIFY from a connection of its own after commits, coalescing all
-- the creates that happen meanwhile (aiservice/db.py, Notifier). Jobs inserted
-- by hand with SQL are found by the worker's poll (WORKER_POLL_INTERVAL).
-- The trigger for rows moving back to pending (retry, retryable failure,
-- hand-back) stays: those are rare next to creates.

DROP TRIGGER jobs_notify_insert ON jobs;
