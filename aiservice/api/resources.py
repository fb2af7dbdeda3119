"""HTTP resources: parse, validate, call the store, answer. No SQL here."""

from __future__ import annotations

import json

import falcon

from aiservice.api.body import (
    decode_cursor,
    encode_cursor,
    parameter_error,
    query_params,
    read_json,
)
from aiservice import metrics
from aiservice.api.errors import error_body
from aiservice.config import Settings, parse_duration
from aiservice.errors import AIServiceError, BatchNotFound, InvalidRequest, JobNotFound
from aiservice.ids import uuid_from_text
from aiservice.jobs import STATUSES, JobStore
from aiservice.schemas import MAX_DETAILS, Schemas, parse_datetime

API = "/api/v1"


class _Resource:
    def __init__(self, store: JobStore, schemas: Schemas, settings: Settings):
        self.store = store
        self.schemas = schemas
        self.settings = settings

    def body(self, req, schema: str, *, optional: bool = False) -> dict:
        document = read_json(req, self.settings.http_max_body_bytes, optional=optional)
        self.schemas.check(schema, document)
        return document

    def job_errors(self, job: dict, prefix: tuple = ()) -> list[dict]:
        """Every violation of the create schema and of the built-in task's input schema."""
        details = self.schemas.errors("jobs.create", job, prefix)
        task_type, task_input = job.get("task_type"), job.get("input")
        if isinstance(task_type, str) and isinstance(task_input, dict):
            details += self.schemas.task_input_errors(task_type, task_input, (*prefix, "input"))
        return details


def _job_id(text: str):
    job_id = uuid_from_text(text)
    if job_id is None:
        raise JobNotFound()
    return job_id


def _as_job(document: dict) -> dict:
    job = dict(document)
    if "run_after" in job:
        job["run_after"] = parse_datetime(job["run_after"])
    return job


def _job_answer(resp: falcon.Response, row: dict) -> None:
    """Answer with the job as PostgreSQL wrote it (``job_json``), untouched."""
    resp.text = row["public"]


def _jobs_answer(resp: falcon.Response, rows: list[dict], **fields) -> None:
    """Answer ``{"jobs": [...], **fields}``, the jobs as PostgreSQL wrote them."""
    parts = [f'{{"jobs":[{",".join(row["public"] for row in rows)}]']
    parts.extend(f",{json.dumps(name)}:{json.dumps(value)}" for name, value in fields.items())
    resp.text = "".join(parts) + "}"


def _raise_if(details: list[dict]) -> None:
    if details:
        first = details[0]
        more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
        raise InvalidRequest(f"{first['pointer']}: {first['message']}{more}",
                             details=details[:MAX_DETAILS])


class Jobs(_Resource):
    """/api/v1/jobs: create one, list many."""

    LIST_PARAMS = {"limit", "cursor", "owner_service", "owner_ref", "status", "task_type",
                   "model_profile", "batch_id"}

    def on_post(self, req, resp):
        document = read_json(req, self.settings.http_max_body_bytes)
        if not isinstance(document, dict):
            self.schemas.check("jobs.create", document)
        _raise_if(self.job_errors(document))
        row, created = self.store.create(_as_job(document))
        resp.status = falcon.HTTP_201 if created else falcon.HTTP_200
        if not created:
            resp.set_header("Idempotent-Replayed", "true")
        resp.location = f"{API}/jobs/{row['id']}"
        _job_answer(resp, row)

    def on_get(self, req, resp):
        params = query_params(req, self.LIST_PARAMS)
        limit = _int_param(params, "limit", default=50, low=1, high=500)
        before = decode_cursor(params["cursor"]) if "cursor" in params else None
        status = params.get("status")
        if status is not None and status not in STATUSES:
            raise parameter_error("status", f"must be one of {', '.join(STATUSES)}")
        batch_id = None
        if "batch_id" in params:
            batch_id = uuid_from_text(params["batch_id"])
            if batch_id is None:
                raise parameter_error("batch_id", "is not a UUID")
        rows = self.store.list(
            limit=limit + 1, before_id=before, status=status, batch_id=batch_id,
            owner_service=params.get("owner_service"), owner_ref=params.get("owner_ref"),
            task_type=params.get("task_type"), model_profile=params.get("model_profile"),
        )
        more = len(rows) > limit
        rows = rows[:limit]
        _jobs_answer(resp, rows, next_cursor=encode_cursor(rows[-1]["id"]) if more else None)


class JobBatch(_Resource):
    """/api/v1/jobs/batch: many jobs, one transaction."""

    def on_post(self, req, resp):
        document = self.body(req, "jobs.batch")
        defaults = document.get("defaults", {})
        self.schemas.check("jobs.batch.defaults", defaults, ("defaults",))
        items = document["jobs"]
        if len(items) > self.settings.batch_max_jobs:
            raise InvalidRequest(
                f"/jobs: at most {self.settings.batch_max_jobs} jobs per batch",
                details=[{"pointer": "/jobs",
                          "message": f"has {len(items)} jobs; the limit is {self.settings.batch_max_jobs}"}],
            )
        jobs, details = [], []
        for i, item in enumerate(items):
            job = {**defaults, **item}
            details.extend(self.job_errors(job, ("jobs", i)))
            if len(details) >= MAX_DETAILS:
                break
            jobs.append(job)
        _raise_if(details)
        keys = [(j["owner_service"], j["idempotency_key"]) for j in jobs if j.get("idempotency_key")]
        if len(keys) != len(set(keys)):
            raise InvalidRequest("/jobs: two jobs share an idempotency_key",
                                 details=[{"pointer": "/jobs", "message": "two jobs share an idempotency_key"}])
        batch_id, rows = self.store.create_batch([_as_job(j) for j in jobs],
                                                 owner_service=defaults.get("owner_service"))
        resp.status = falcon.HTTP_201
        resp.location = f"{API}/batches/{batch_id}"
        _jobs_answer(resp, rows, batch_id=str(batch_id))


class JobClaim(_Resource):
    """/api/v1/jobs/claim: a worker takes jobs."""

    def on_post(self, req, resp):
        body = self.body(req, "jobs.claim")
        rows = self.store.claim(
            body["worker_id"], body.get("limit", 1),
            task_types=body.get("task_types"), model_profiles=body.get("model_profiles"),
            lease_seconds=body.get("lease_seconds"), public=True,
        )
        _jobs_answer(resp, rows)


class Job(_Resource):
    """/api/v1/jobs/{job_id} and its actions."""

    def on_get(self, req, resp, job_id):
        _job_answer(resp, self.store.get(_job_id(job_id)))

    def on_post_heartbeat(self, req, resp, job_id):
        job_id = _job_id(job_id)
        body = self.body(req, "jobs.heartbeat")
        row = self.store.heartbeat(job_id, body["worker_id"], attempt=body.get("attempt"),
                                   lease_seconds=body.get("lease_seconds"))
        _job_answer(resp, row)

    def on_post_complete(self, req, resp, job_id):
        job_id = _job_id(job_id)
        body = self.body(req, "jobs.complete")
        row = self.store.complete(job_id, body["worker_id"], body["result"],
                                  attempt=body.get("attempt"))
        _job_answer(resp, row)

    def on_post_fail(self, req, resp, job_id):
        job_id = _job_id(job_id)
        body = self.body(req, "jobs.fail")
        row = self.store.fail(
            job_id, body["worker_id"], body["category"], body["message"],
            attempt=body.get("attempt"), retryable=body.get("retryable"),
            retry_after_seconds=body.get("retry_after_seconds"),
        )
        _job_answer(resp, row)

    def on_post_retry(self, req, resp, job_id):
        job_id = _job_id(job_id)
        self.body(req, "jobs.retry", optional=True)
        _job_answer(resp, self.store.retry(job_id))

    def on_post_cancel(self, req, resp, job_id):
        job_id = _job_id(job_id)
        self.body(req, "jobs.cancel", optional=True)
        _job_answer(resp, self.store.cancel(job_id))


class Batch(_Resource):
    """/api/v1/batches/{batch_id}: how far a batch has got."""

    def on_get(self, req, resp, batch_id):
        parsed = uuid_from_text(batch_id)
        if parsed is None:
            raise BatchNotFound()
        row = self.store.batch(parsed)
        counts = {status: 0 for status in STATUSES}
        counts.update(row["counts"])
        finished = counts["completed"] + counts["failed"] + counts["cancelled"]
        resp.media = {
            "id": str(row["id"]),
            "owner_service": row["owner_service"],
            "created_at": row["created_at"],
            "total": row["job_count"],
            "counts": counts,
            "done": finished == row["job_count"],
        }


class Stats(_Resource):
    """/api/v1/stats: queue depth, oldest pending age, failures, throughput."""

    def on_get(self, req, resp):
        params = query_params(req, {"window"})
        window = 3600.0
        if "window" in params:
            try:
                window = parse_duration(params["window"])
            except ValueError as exc:
                raise parameter_error("window", str(exc)) from None
            if not 1 <= window <= 30 * 86400:
                raise parameter_error("window", "must be between 1s and 30d")
        resp.media = self.store.stats(window)


class ProvidersStatus:
    """/api/v1/providers/status: each configured provider, probed without sending a completion."""

    def __init__(self, status):
        self.status = status

    def on_get(self, req, resp):
        resp.media = self.status.report()


class Metrics(_Resource):
    """/metrics: Prometheus text format."""

    def on_get(self, req, resp):
        resp.content_type = metrics.CONTENT_TYPE
        resp.data = metrics.render(self.store)


class Health:
    """/healthz: the process is up (no database involved)."""

    def on_get(self, req, resp):
        resp.media = {"status": "ok"}


class Ready(_Resource):
    """/readyz: PostgreSQL answers and the migrations are current."""

    def on_get(self, req, resp):
        try:
            current = self.store.migrations_current()
        except AIServiceError:
            resp.status = falcon.HTTP_503
            resp.media = error_body("not_ready", "the database is unavailable",
                                    [{"check": "database", "ok": False}])
            return
        if not current:
            resp.status = falcon.HTTP_503
            resp.media = error_body("not_ready", "migrations are not applied",
                                    [{"check": "database", "ok": True}, {"check": "migrations", "ok": False}])
            return
        resp.media = {"status": "ready", "checks": {"database": True, "migrations": True}}


class OpenAPI:
    """/api/v1/openapi.json: the document, built once from schema/."""

    def __init__(self, document: dict):
        self.document = document

    def on_get(self, req, resp):
        resp.media = self.document


def _int_param(params: dict, name: str, *, default: int, low: int, high: int) -> int:
    if name not in params:
        return default
    try:
        value = int(params[name])
    except ValueError:
        raise parameter_error(name, "is not an integer") from None
    if not low <= value <= high:
        raise parameter_error(name, f"must be between {low} and {high}")
    return value

