-- name: create_job^
-- Insert one job; with an idempotency key already used by this owner, insert
-- nothing and return no row (the caller then reads the existing job).
INSERT INTO jobs (id, owner_service, owner_ref, task_type, model_profile, input,
                  priority, run_after, max_attempts, idempotency_key, request_hash)
VALUES (%(id)s, %(owner_service)s, %(owner_ref)s, %(task_type)s, %(model_profile)s,
        %(input)s, %(priority)s, coalesce(%(run_after)s, now()), %(max_attempts)s,
        %(idempotency_key)s, %(request_hash)s)
ON CONFLICT (owner_service, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id, status, job_json(jobs)::text AS public;

-- name: get_job_by_idempotency_key^
-- The job an owner created earlier with this idempotency key.
SELECT *, job_json(jobs)::text AS public FROM jobs
WHERE owner_service = %(owner_service)s AND idempotency_key = %(idempotency_key)s;

-- name: create_batch!
-- Record a batch before its jobs are inserted (same transaction).
INSERT INTO batches (id, owner_service, job_count)
VALUES (%(id)s, %(owner_service)s, %(job_count)s);

-- name: create_jobs
-- Insert many jobs in one statement from parallel arrays (sent as binary
-- parameters: text-format arrays cost about five times as much to adapt).
-- Jobs whose idempotency key already exists are skipped; the caller reads them.
INSERT INTO jobs (id, owner_service, owner_ref, task_type, model_profile, input,
                  priority, run_after, max_attempts, idempotency_key, request_hash,
                  batch_id)
SELECT j.id, j.owner_service, j.owner_ref, j.task_type, j.model_profile, j.input::jsonb,
       j.priority, coalesce(j.run_after, now()), j.max_attempts, j.idempotency_key,
       j.request_hash, %(batch_id)s
FROM unnest(%(ids)b::uuid[], %(owner_services)b::text[], %(owner_refs)b::text[],
            %(task_types)b::text[], %(model_profiles)b::text[], %(inputs)b::text[],
            %(priorities)b::int[], %(run_afters)b::timestamptz[], %(max_attempts)b::int[],
            %(idempotency_keys)b::text[], %(request_hashes)b::text[])
     AS j(id, owner_service, owner_ref, task_type, model_profile, input,
          priority, run_after, max_attempts, idempotency_key, request_hash)
ON CONFLICT (owner_service, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id, job_json(jobs)::text AS public;

-- name: get_jobs_by_idempotency_keys
-- Existing jobs for (owner_service, idempotency_key) pairs given as two arrays.
SELECT jobs.*, job_json(jobs)::text AS public FROM jobs
JOIN unnest(%(owner_services)s::text[], %(idempotency_keys)s::text[]) AS k(owner_service, idempotency_key)
  ON jobs.owner_service = k.owner_service AND jobs.idempotency_key = k.idempotency_key;

-- name: get_job^
-- One job by id.
SELECT *, job_json(jobs)::text AS public FROM jobs WHERE id = %(id)s;

-- name: get_job_state^
-- Just enough of a job to explain why a fenced write did not match.
SELECT status, worker_id, attempts FROM jobs WHERE id = %(id)s;

-- name: get_job_states
-- The same for many jobs at once (the ones a batched completion did not match).
SELECT id, status, worker_id, attempts FROM jobs WHERE id = ANY(%(ids)s);

-- name: list_jobs
-- Newest first, keyset-paginated on id (UUIDv7: id order is creation order).
-- Every filter is optional; run unprepared so each call gets a plan for the
-- filters it actually has.
SELECT id, job_json(jobs)::text AS public FROM jobs
WHERE (%(owner_service)s::text IS NULL OR owner_service = %(owner_service)s)
  AND (%(owner_ref)s::text IS NULL OR owner_ref = %(owner_ref)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
  AND (%(task_type)s::text IS NULL OR task_type = %(task_type)s)
  AND (%(model_profile)s::text IS NULL OR model_profile = %(model_profile)s)
  AND (%(batch_id)s::uuid IS NULL OR batch_id = %(batch_id)s)
  AND (%(before_id)s::uuid IS NULL OR id < %(before_id)s)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: claim_jobs
-- Atomically claim up to %(limit)s jobs for one worker: pending jobs that are
-- due, highest priority first, then the longest-waiting; and running jobs whose
-- lease expired (taken over, their lost attempt recorded in errors). Expired
-- jobs that have no attempts left end failed with category lease_expired
-- instead. The CTEs stay MATERIALIZED so that the planner cannot turn the
-- LIMIT into more locked or updated rows than asked for.
-- With %(public)s true (the API's claim) each row also carries job_json, the
-- job as the API shows it; the built-in worker does not pay for it.
WITH expired AS MATERIALIZED (
    SELECT id, attempts, max_attempts, priority, run_after
    FROM jobs
    WHERE status = 'running' AND lease_expires_at < now()
      AND (%(task_types)s::text[] IS NULL OR task_type = ANY(%(task_types)s))
      AND (%(model_profiles)s::text[] IS NULL OR model_profile = ANY(%(model_profiles)s))
    ORDER BY lease_expires_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), exhausted AS (
    UPDATE jobs SET
        status = 'failed',
        error = jsonb_build_object('category', 'lease_expired',
                                   'message', 'lease expired and no attempts remain'),
        errors = jobs.errors || jsonb_build_array(jsonb_build_object(
            'attempt', jobs.attempts, 'category', 'lease_expired',
            'message', 'lease of worker ' || jobs.worker_id || ' expired',
            'worker_id', jobs.worker_id, 'at', now())),
        lease_expires_at = NULL,
        finished_at = now(),
        duration_ms = (extract(epoch FROM now() - jobs.started_at) * 1000)::bigint,
        updated_at = now()
    FROM expired
    WHERE jobs.id = expired.id AND expired.attempts >= expired.max_attempts
    RETURNING jobs.id
), due AS MATERIALIZED (
    SELECT id, priority, run_after
    FROM jobs
    WHERE status = 'pending' AND run_after <= now()
      AND (%(task_types)s::text[] IS NULL OR task_type = ANY(%(task_types)s))
      AND (%(model_profiles)s::text[] IS NULL OR model_profile = ANY(%(model_profiles)s))
    ORDER BY priority DESC, run_after, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
), picked AS MATERIALIZED (
    SELECT id FROM (
        SELECT id, priority, run_after FROM expired WHERE attempts < max_attempts
        UNION ALL
        SELECT id, priority, run_after FROM due
    ) candidates
    ORDER BY priority DESC, run_after, id
    LIMIT %(limit)s
)
UPDATE jobs SET
    errors = CASE WHEN jobs.status = 'running'
        THEN jobs.errors || jsonb_build_array(jsonb_build_object(
            'attempt', jobs.attempts, 'category', 'lease_expired',
            'message', 'lease of worker ' || jobs.worker_id || ' expired; job taken over',
            'worker_id', jobs.worker_id, 'at', now()))
        ELSE jobs.errors END,
    error = CASE WHEN jobs.status = 'running'
        THEN jsonb_build_object('category', 'lease_expired',
                                'message', 'lease of worker ' || jobs.worker_id || ' expired')
        ELSE jobs.error END,
    status = 'running',
    worker_id = %(worker_id)s,
    attempts = jobs.attempts + 1,
    lease_seconds = %(lease_seconds)s::float8,
    lease_expires_at = now() + make_interval(secs => %(lease_seconds)s::float8),
    started_at = now(),
    updated_at = now()
FROM picked
WHERE jobs.id = picked.id
RETURNING jobs.*,
          CASE WHEN %(public)s THEN job_json(jobs)::text END AS public;

-- name: heartbeat_job^
-- Extend the lease of a running job held by this worker (and attempt, if given).
UPDATE jobs SET
    lease_expires_at = now() + make_interval(secs => coalesce(%(lease_seconds)s::float8, lease_seconds)),
    lease_seconds = coalesce(%(lease_seconds)s::float8, lease_seconds),
    updated_at = now()
WHERE id = %(id)s AND status = 'running' AND worker_id = %(worker_id)s
  AND (%(attempt)s::int IS NULL OR attempts = %(attempt)s)
RETURNING *, job_json(jobs)::text AS public;

-- name: complete_job^
-- Store the result of a running job held by this worker (and attempt, if given).
UPDATE jobs SET
    status = 'completed',
    result = %(result)s,
    error = NULL,
    lease_expires_at = NULL,
    finished_at = now(),
    duration_ms = (extract(epoch FROM now() - started_at) * 1000)::bigint,
    updated_at = now()
WHERE id = %(id)s AND status = 'running' AND worker_id = %(worker_id)s
  AND (%(attempt)s::int IS NULL OR attempts = %(attempt)s)
RETURNING *, job_json(jobs)::text AS public;

-- name: complete_jobs
-- Store the results of many running jobs this worker holds, each fenced by its
-- attempt, in one statement and one commit: the worker's completer writes
-- whatever finished meanwhile together (results as binary text arrays, cast
-- here). Returns what the outcome metrics need of each row written; an id
-- missing from the answer was refused.
UPDATE jobs SET
    status = 'completed',
    result = done.result::jsonb,
    error = NULL,
    lease_expires_at = NULL,
    finished_at = now(),
    duration_ms = (extract(epoch FROM now() - jobs.started_at) * 1000)::bigint,
    updated_at = now()
FROM unnest(%(ids)b::uuid[], %(attempts)b::int[], %(results)b::text[]) AS done(id, attempt, result)
WHERE jobs.id = done.id AND jobs.attempts = done.attempt
  AND jobs.status = 'running' AND jobs.worker_id = %(worker_id)s
RETURNING jobs.id, jobs.status, jobs.task_type, jobs.model_profile, jobs.error;

-- name: fail_job^
-- Record a failed attempt of a running job held by this worker. A retryable
-- failure with attempts left goes back to pending after an exponential backoff
-- with jitter (or the provider's Retry-After, when that is longer); anything
-- else ends failed.
WITH decision AS (
    SELECT id, (%(retryable)s::boolean AND attempts < max_attempts) AS again
    FROM jobs
    WHERE id = %(id)s AND status = 'running' AND worker_id = %(worker_id)s
      AND (%(attempt)s::int IS NULL OR attempts = %(attempt)s)
)
UPDATE jobs SET
    status = CASE WHEN d.again THEN 'pending' ELSE 'failed' END,
    run_after = CASE WHEN d.again THEN now() + make_interval(secs => greatest(
        coalesce(%(retry_after_seconds)s::float8, 0),
        least(%(backoff_max)s::float8, %(backoff_base)s::float8 * power(2, jobs.attempts - 1))
            * (0.5 + random() * 0.5)))
        ELSE jobs.run_after END,
    error = jsonb_build_object('category', %(category)s::text, 'message', %(message)s::text),
    errors = jobs.errors || jsonb_build_array(jsonb_build_object(
        'attempt', jobs.attempts, 'category', %(category)s::text, 'message', %(message)s::text,
        'worker_id', jobs.worker_id, 'at', now())),
    worker_id = CASE WHEN d.again THEN NULL ELSE jobs.worker_id END,
    lease_expires_at = NULL,
    finished_at = CASE WHEN d.again THEN NULL ELSE now() END,
    duration_ms = CASE WHEN d.again THEN NULL
        ELSE (extract(epoch FROM now() - jobs.started_at) * 1000)::bigint END,
    updated_at = now()
FROM decision d
WHERE jobs.id = d.id
RETURNING jobs.*, job_json(jobs)::text AS public;

-- name: retry_job^
-- Put a failed or running job back to pending, due now. A job that had used
-- all its attempts gets one more; a running holder loses its lease.
UPDATE jobs SET
    status = 'pending',
    run_after = now(),
    max_attempts = greatest(max_attempts, attempts + 1),
    worker_id = NULL,
    lease_expires_at = NULL,
    finished_at = NULL,
    duration_ms = NULL,
    updated_at = now()
WHERE id = %(id)s AND status IN ('failed', 'running')
RETURNING *, job_json(jobs)::text AS public;

-- name: cancel_job^
-- Cancel a pending or running job; a running holder's later writes get 409.
UPDATE jobs SET
    status = 'cancelled',
    lease_expires_at = NULL,
    finished_at = now(),
    duration_ms = CASE WHEN started_at IS NULL THEN NULL
        ELSE (extract(epoch FROM now() - started_at) * 1000)::bigint END,
    updated_at = now()
WHERE id = %(id)s AND status IN ('pending', 'running')
RETURNING *, job_json(jobs)::text AS public;

-- name: get_batch^
-- A batch and its job counts by status.
SELECT b.id, b.owner_service, b.job_count, api_time(b.created_at) AS created_at,
       coalesce((SELECT jsonb_object_agg(status, n) FROM (
           SELECT status, count(*) AS n FROM jobs WHERE batch_id = b.id GROUP BY status
       ) c), '{}') AS counts
FROM batches b
WHERE b.id = %(id)s;

-- name: heartbeat_jobs
-- Extend the leases of many running jobs this worker holds, each fenced by its
-- attempt; returns the ids still held (a missing id was lost, retried or cancelled).
UPDATE jobs SET
    lease_expires_at = now() + make_interval(secs => lease_seconds),
    updated_at = now()
FROM unnest(%(ids)s::uuid[], %(attempts)s::int[]) AS held(id, attempt)
WHERE jobs.id = held.id AND jobs.attempts = held.attempt
  AND jobs.status = 'running' AND jobs.worker_id = %(worker_id)s
RETURNING jobs.id;

-- name: release_jobs
-- Hand running jobs back to pending, due now, without counting the attempt
-- (a worker shutting down before it could finish them); fenced like heartbeat.
UPDATE jobs SET
    status = 'pending',
    attempts = greatest(jobs.attempts - 1, 0),
    worker_id = NULL,
    lease_expires_at = NULL,
    started_at = NULL,
    run_after = now(),
    updated_at = now()
FROM unnest(%(ids)s::uuid[], %(attempts)s::int[]) AS held(id, attempt)
WHERE jobs.id = held.id AND jobs.attempts = held.attempt
  AND jobs.status = 'running' AND jobs.worker_id = %(worker_id)s
RETURNING jobs.id;

-- name: next_due^
-- Seconds until the next job of these kinds becomes claimable by time alone:
-- the earliest future run_after of a pending job, or the earliest lease expiry
-- of a running one. NULL when there is none.
SELECT extract(epoch FROM least(
    (SELECT min(run_after) FROM jobs
     WHERE status = 'pending' AND run_after > now()
       AND task_type = ANY(%(task_types)s) AND model_profile = ANY(%(model_profiles)s)),
    (SELECT min(lease_expires_at) FROM jobs
     WHERE status = 'running'
       AND task_type = ANY(%(task_types)s) AND model_profile = ANY(%(model_profiles)s))
) - now()) AS seconds;
