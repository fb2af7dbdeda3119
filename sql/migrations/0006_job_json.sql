-- 0006: a job as the API shows it, written by PostgreSQL.
--
-- Every answer that carries a job (create, get, list, claim, the actions) puts
-- job_json(jobs) in its RETURNING or SELECT list and sends the text as it is.
-- This is the one definition of the public job: the API no longer turns 26
-- columns into Python values and back into JSON (about 60 µs of CPU per create
-- in process, two to three times that under gunicorn). Admins can use it too:
--   SELECT job_json(j) FROM jobs j WHERE id = '...';
--
-- Timestamps are RFC 3339 in UTC with microseconds (2026-11-24T09:00:00.000000Z),
-- whatever the session's time zone: api_time, which the batch answer uses too.
-- Ids are strings; input, result, error and errors are the stored JSON;
-- lease_seconds and request_hash stay private. Both functions are a single
-- SELECT with no FROM, so the planner inlines them into each query (api_time is
-- STABLE, not IMMUTABLE, because to_char is).
CREATE FUNCTION api_time(t timestamptz) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') $$;

CREATE FUNCTION job_json(j jobs) RETURNS json
LANGUAGE sql STABLE PARALLEL SAFE
AS $$
    SELECT json_build_object(
        'id', j.id,
        'owner_service', j.owner_service,
        'owner_ref', j.owner_ref,
        'task_type', j.task_type,
        'model_profile', j.model_profile,
        'input', j.input,
        'result', j.result,
        'status', j.status,
        'priority', j.priority,
        'run_after', api_time(j.run_after),
        'attempts', j.attempts,
        'max_attempts', j.max_attempts,
        'error', j.error,
        'errors', j.errors,
        'worker_id', j.worker_id,
        'lease_expires_at', api_time(j.lease_expires_at),
        'idempotency_key', j.idempotency_key,
        'batch_id', j.batch_id,
        'created_at', api_time(j.created_at),
        'started_at', api_time(j.started_at),
        'finished_at', api_time(j.finished_at),
        'updated_at', api_time(j.updated_at),
        'duration_ms', j.duration_ms
    )
$$;
