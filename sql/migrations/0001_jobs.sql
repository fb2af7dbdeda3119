-- 0001: the job table, batches, and the indexes the hot queries need.
--
-- Which query uses which index (names from sql/queries/jobs.sql):
--   jobs_pkey              get_job, complete/fail/heartbeat/retry/cancel (by id),
--                          list_jobs without filters (newest first: ids are UUIDv7,
--                          so id order is creation order)
--   jobs_claim_idx         claim_jobs, pending side: ORDER BY priority DESC,
--                          run_after, id over pending rows only
--   jobs_lease_idx         claim_jobs, take-over side: running rows whose lease
--                          expired; stats (running count)
--   jobs_status_idx        list_jobs?status=..., stats (oldest pending = min(id))
--   jobs_owner_idx         list_jobs?owner_service=... (and owner_ref)
--   jobs_owner_ref_idx     list_jobs?owner_ref=...
--   jobs_batch_idx         batch_counts, list_jobs?batch_id=...
--   jobs_finished_idx      stats (throughput and failures in a time window)
--   jobs_idempotency_key   create_job / create_jobs ON CONFLICT (unique per owner)

CREATE TABLE jobs (
    id               uuid        PRIMARY KEY,
    owner_service    text        NOT NULL,
    owner_ref        text,
    task_type        text        NOT NULL,
    model_profile    text        NOT NULL,
    input            jsonb       NOT NULL DEFAULT '{}',
    result           jsonb,
    status           text        NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'running', 'completed', 'failed', 'cancelled')),
    priority         integer     NOT NULL DEFAULT 0,
    run_after        timestamptz NOT NULL DEFAULT now(),
    attempts         integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts     integer     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    error            jsonb,
    errors           jsonb       NOT NULL DEFAULT '[]',
    worker_id        text,
    lease_seconds    double precision,
    lease_expires_at timestamptz,
    idempotency_key  text,
    request_hash     text,
    batch_id         uuid,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    duration_ms      bigint,
    CHECK (status <> 'running' OR (worker_id IS NOT NULL AND lease_expires_at IS NOT NULL))
);

CREATE INDEX jobs_claim_idx ON jobs (priority DESC, run_after, id) WHERE status = 'pending';
CREATE INDEX jobs_lease_idx ON jobs (lease_expires_at) WHERE status = 'running';
CREATE INDEX jobs_status_idx ON jobs (status, id);
CREATE INDEX jobs_owner_idx ON jobs (owner_service, id);
CREATE INDEX jobs_owner_ref_idx ON jobs (owner_ref, id) WHERE owner_ref IS NOT NULL;
CREATE INDEX jobs_batch_idx ON jobs (batch_id, id) WHERE batch_id IS NOT NULL;
CREATE INDEX jobs_finished_idx ON jobs (finished_at) WHERE finished_at IS NOT NULL;
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (owner_service, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Every claim and finish rewrites a row, so dead tuples pile up fast; vacuum the
-- table after a fixed number of changes instead of a fraction of its size, and
-- without the cost delay that lets a busy queue outrun autovacuum.
ALTER TABLE jobs SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 20000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.02,
    fillfactor = 90
);

CREATE TABLE batches (
    id            uuid        PRIMARY KEY,
    owner_service text,
    job_count     integer     NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);
