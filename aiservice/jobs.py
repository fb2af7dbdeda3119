"""The job store: every job operation, by named query, for the API and the worker alike.

Inputs are already validated (``api/``); rows come back as dicts. A row the
API answers with carries ``public``: the job as the API shows it, JSON text
written by PostgreSQL (``job_json`` in ``sql/migrations/0006_job_json.sql``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable

from psycopg.types.json import Jsonb

from aiservice import metrics, migrations
from aiservice.config import Settings
from aiservice.db import Database
from aiservice.errors import (
    AIServiceError,
    BatchNotFound,
    IdempotencyConflict,
    InvalidTransition,
    JobNotFound,
    LeaseMismatch,
    Unavailable,
)
from aiservice.ids import uuid7
from aiservice.queries import Q

STATUSES = ("pending", "running", "completed", "failed", "cancelled")
RETRYABLE_CATEGORIES = frozenset({"timeout", "rate_limited", "provider_unavailable", "lease_expired"})
MAX_ERROR_MESSAGE = 4000

# The fields a caller sets on a job (all optional but the first three).
JOB_FIELDS = ("owner_service", "task_type", "model_profile", "owner_ref", "input",
              "priority", "run_after", "max_attempts", "idempotency_key")

def request_hash(job: dict) -> str | None:
    """Fingerprint of what a caller asked for, to tell a replay from a reused key.

    Only jobs with an idempotency_key have one (nothing else ever compares it)."""
    if not job.get("idempotency_key"):
        return None
    canonical = json.dumps({k: job.get(k) for k in JOB_FIELDS}, sort_keys=True,
                           separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _lease_refusal(state: dict) -> AIServiceError:
    """Why a write fenced by worker and attempt did not match a job in ``state``."""
    if state["status"] != "running":
        return InvalidTransition(f"the job is {state['status']}, not running",
                                 current_status=state["status"])
    return LeaseMismatch("the job is held by another worker or a later attempt "
                         f"(current attempt {state['attempts']})",
                         current_status=state["status"])


def _with_defaults(job: dict) -> dict:
    return {
        "owner_service": job["owner_service"],
        "task_type": job["task_type"],
        "model_profile": job["model_profile"],
        "owner_ref": job.get("owner_ref"),
        "input": job.get("input", {}),
        "priority": job.get("priority", 0),
        "run_after": job.get("run_after"),
        "max_attempts": job.get("max_attempts", 3),
        "idempotency_key": job.get("idempotency_key"),
    }


class JobStore:
    """Job operations on PostgreSQL. Each method is one short transaction."""

    def __init__(self, db: Database, settings: Settings):
        self.db = db
        self.settings = settings

    # --- creating -------------------------------------------------------

    def create(self, job: dict) -> tuple[dict, bool]:
        """Insert a job; return (row, created). A reused idempotency key returns the first job.

        The row has at least ``id``, ``status`` and ``public``."""
        job = _with_defaults(job)
        fingerprint = request_hash(job)
        params = {**job, "input": Jsonb(job["input"]), "request_hash": fingerprint}
        for _ in range(3):
            with self.db.transaction() as conn:
                row = conn.execute(Q.create_job, {**params, "id": uuid7()}).fetchone()
            if row is not None:
                self.db.notifier.notify()  # committed: wake idle workers
                return row, True
            with self.db.transaction() as conn:
                # ON CONFLICT waited for any concurrent insert of the same key to
                # commit, so this read (a new snapshot) sees the winner.
                existing = conn.execute(Q.get_job_by_idempotency_key, job).fetchone()
            if existing is not None:
                _check_replay(existing, fingerprint)
                return existing, False
            # The winner rolled back, or its job was pruned in between: try again.
        raise Unavailable("could not settle a concurrent create with the same idempotency_key")

    def create_batch(self, jobs: list[dict], owner_service: str | None = None) -> tuple[uuid.UUID, list[dict]]:
        """Insert many jobs in one statement, all or nothing; return (batch id, rows in order).

        Each row has at least ``id`` and ``public``. A job whose idempotency key already exists resolves to the existing job.
        """
        jobs = [_with_defaults(j) for j in jobs]
        batch_id = uuid7()
        ids = [uuid7() for _ in jobs]
        hashes = [request_hash(j) for j in jobs]
        params = {
            "batch_id": batch_id,
            "ids": ids,
            "owner_services": [j["owner_service"] for j in jobs],
            "owner_refs": [j["owner_ref"] for j in jobs],
            "task_types": [j["task_type"] for j in jobs],
            "model_profiles": [j["model_profile"] for j in jobs],
            "inputs": [json.dumps(j["input"], separators=(",", ":")) for j in jobs],
            "priorities": [j["priority"] for j in jobs],
            "run_afters": [j["run_after"] for j in jobs],
            "max_attempts": [j["max_attempts"] for j in jobs],
            "idempotency_keys": [j["idempotency_key"] for j in jobs],
            "request_hashes": hashes,
        }
        with self.db.transaction() as conn:
            conn.execute(Q.create_batch, {"id": batch_id, "owner_service": owner_service,
                                          "job_count": len(jobs)})
            inserted = {row["id"]: row for row in conn.execute(Q.create_jobs, params).fetchall()}
            existing = {}
            if len(inserted) < len(jobs):
                missing = [j for i, j in zip(ids, jobs, strict=True) if i not in inserted]
                rows = conn.execute(Q.get_jobs_by_idempotency_keys, {
                    "owner_services": [j["owner_service"] for j in missing],
                    "idempotency_keys": [j["idempotency_key"] for j in missing],
                }).fetchall()
                existing = {(r["owner_service"], r["idempotency_key"]): r for r in rows}
            ordered = []
            for job_id, job, fingerprint in zip(ids, jobs, hashes, strict=True):
                row = inserted.get(job_id)
                if row is None:
                    row = existing[(job["owner_service"], job["idempotency_key"])]
                    _check_replay(row, fingerprint)
                ordered.append(row)
        self.db.notifier.notify()  # committed: wake idle workers
        return batch_id, ordered

    # --- reading --------------------------------------------------------

    def get(self, job_id: uuid.UUID) -> dict:
        with self.db.transaction() as conn:
            row = conn.execute(Q.get_job, {"id": job_id}).fetchone()
        if row is None:
            raise JobNotFound()
        return row

    def list(self, *, limit: int, before_id: uuid.UUID | None = None, owner_service=None,
             owner_ref=None, status=None, task_type=None, model_profile=None,
             batch_id=None) -> list[dict]:
        """Newest first, ``id`` and ``public`` each; ``before_id`` continues after the last
        job of the previous page."""
        params = {"limit": limit, "before_id": before_id, "owner_service": owner_service,
                  "owner_ref": owner_ref, "status": status, "task_type": task_type,
                  "model_profile": model_profile, "batch_id": batch_id}
        with self.db.transaction() as conn:
            # Unprepared: a cached generic plan cannot use the index of the
            # filter a given call has.
            return conn.execute(Q.list_jobs, params, prepare=False).fetchall()

    def batch(self, batch_id: uuid.UUID) -> dict:
        with self.db.transaction() as conn:
            row = conn.execute(Q.get_batch, {"id": batch_id}).fetchone()
        if row is None:
            raise BatchNotFound()
        return row

    # --- the worker's side ----------------------------------------------

    def claim(self, worker_id: str, limit: int, *, task_types: Iterable[str] | None = None,
              model_profiles: Iterable[str] | None = None,
              lease_seconds: float | None = None, public: bool = False) -> list[dict]:
        """Claim up to ``limit`` jobs for ``worker_id``, highest priority first, then oldest.

        With ``public`` each row also carries the job as the API shows it."""
        params = {
            "worker_id": worker_id,
            "limit": limit,
            "task_types": list(task_types) if task_types is not None else None,
            "model_profiles": list(model_profiles) if model_profiles is not None else None,
            "lease_seconds": float(lease_seconds or self.settings.lease_seconds),
            "public": public,
        }
        with self.db.transaction() as conn:
            rows = conn.execute(Q.claim_jobs, params).fetchall()
        rows.sort(key=lambda r: (-r["priority"], r["run_after"], r["id"]))
        return rows

    def heartbeat(self, job_id: uuid.UUID, worker_id: str, *, attempt: int | None = None,
                  lease_seconds: float | None = None) -> dict:
        return self._fenced(Q.heartbeat_job, job_id, worker_id, attempt,
                            lease_seconds=lease_seconds)

    def complete(self, job_id: uuid.UUID, worker_id: str, result: dict, *,
                 attempt: int | None = None) -> dict:
        row = self._fenced(Q.complete_job, job_id, worker_id, attempt, result=Jsonb(result))
        metrics.job_outcome(row)
        return row

    def complete_many(self, worker_id: str, done: list[tuple[uuid.UUID, int, dict]]
                      ) -> dict[uuid.UUID, dict | AIServiceError]:
        """Complete many held jobs, (id, attempt, result) each, in one statement and one commit.

        Returns, by id, the row written (id, status, task_type, model_profile,
        error) or the error a single ``complete`` would have raised for it
        (``JobNotFound``, ``InvalidTransition``, ``LeaseMismatch``).
        """
        if not done:
            return {}
        params = {"worker_id": worker_id, "ids": [i for i, _, _ in done],
                  "attempts": [a for _, a, _ in done],
                  "results": [json.dumps(r, separators=(",", ":")) for _, _, r in done]}
        with self.db.transaction() as conn:
            rows = {row["id"]: row for row in conn.execute(Q.complete_jobs, params)}
            missing = [i for i, _, _ in done if i not in rows]
            states = ({s["id"]: s for s in conn.execute(Q.get_job_states, {"ids": missing})}
                      if missing else {})
        out: dict[uuid.UUID, dict | AIServiceError] = {}
        for job_id, _, _ in done:
            if job_id in rows:
                metrics.job_outcome(rows[job_id])
                out[job_id] = rows[job_id]
            else:
                out[job_id] = _lease_refusal(states[job_id]) if job_id in states else JobNotFound()
        return out

    def fail(self, job_id: uuid.UUID, worker_id: str, category: str, message: str, *,
             attempt: int | None = None, retryable: bool | None = None,
             retry_after_seconds: float | None = None) -> dict:
        """Record a failed attempt; retryable ones with attempts left go back to pending."""
        if retryable is None:
            retryable = category in RETRYABLE_CATEGORIES
        if len(message) > MAX_ERROR_MESSAGE:
            message = message[: MAX_ERROR_MESSAGE - 3] + "..."
        row = self._fenced(
            Q.fail_job, job_id, worker_id, attempt, category=category, message=message,
            retryable=retryable, retry_after_seconds=retry_after_seconds,
            backoff_base=self.settings.retry_backoff_base,
            backoff_max=self.settings.retry_backoff_max,
        )
        metrics.job_outcome(row)
        return row

    def heartbeat_many(self, worker_id: str, held: list[tuple[uuid.UUID, int]]) -> set[uuid.UUID]:
        """Extend the leases of ``held`` (id, attempt) pairs in one statement; return the ids still held."""
        return self._for_held(Q.heartbeat_jobs, worker_id, held)

    def release(self, worker_id: str, held: list[tuple[uuid.UUID, int]]) -> set[uuid.UUID]:
        """Hand ``held`` jobs back to pending without counting the attempt; return the ids released."""
        return self._for_held(Q.release_jobs, worker_id, held)

    def _for_held(self, query: str, worker_id: str, held: list[tuple[uuid.UUID, int]]) -> set[uuid.UUID]:
        """Run a statement over (id, attempt) pairs this worker holds; return the ids it touched."""
        if not held:
            return set()
        params = {"worker_id": worker_id, "ids": [i for i, _ in held], "attempts": [a for _, a in held]}
        with self.db.transaction() as conn:
            return {row["id"] for row in conn.execute(query, params)}

    def next_due(self, task_types: list[str], model_profiles: list[str]) -> float | None:
        """Seconds until a job of these kinds becomes claimable by time alone (None: no such job)."""
        with self.db.transaction() as conn:
            row = conn.execute(Q.next_due, {"task_types": task_types,
                                            "model_profiles": model_profiles}).fetchone()
        return None if row["seconds"] is None else max(0.0, float(row["seconds"]))

    def _fenced(self, query: str, job_id, worker_id, attempt, **params) -> dict:
        """A write only the lease holder (this worker, this attempt) may make."""
        return self._write(query, {"id": job_id, "worker_id": worker_id, "attempt": attempt,
                                   **params}, _lease_refusal)

    # --- operators' side ------------------------------------------------

    def retry(self, job_id: uuid.UUID) -> dict:
        return self._write(Q.retry_job, {"id": job_id}, lambda state: InvalidTransition(
            f"cannot retry a job that is {state['status']} (only failed or running)",
            current_status=state["status"]))

    def cancel(self, job_id: uuid.UUID) -> dict:
        return self._write(Q.cancel_job, {"id": job_id}, lambda state: InvalidTransition(
            f"cannot cancel a job that is {state['status']} (only pending or running)",
            current_status=state["status"]))

    def _write(self, query: str, params: dict, refusal) -> dict:
        """Run a guarded UPDATE ... RETURNING; when it matches nothing, say why.

        The job's state is read in the same transaction, right after the write
        that did not match: 404 for an unknown job, else ``refusal(state)``.
        """
        with self.db.transaction() as conn:
            row = conn.execute(query, params).fetchone()
            if row is not None:
                return row
            state = conn.execute(Q.get_job_state, {"id": params["id"]}).fetchone()
        if state is None:
            raise JobNotFound()
        raise refusal(state)

    # --- retention ----------------------------------------------------------

    def prune_batch(self, older_than_seconds: float, batch_size: int) -> dict[str, int]:
        """Delete one batch of finished jobs older than the cutoff; return counts by status."""
        params = {"older_than_seconds": older_than_seconds, "batch_size": batch_size}
        with self.db.transaction() as conn:
            return {r["status"]: r["count"] for r in conn.execute(Q.prune_jobs, params)}

    def prune_batch_records(self, older_than_seconds: float, batch_size: int) -> int:
        """Delete batch records whose jobs are all gone; return how many."""
        params = {"older_than_seconds": older_than_seconds, "batch_size": batch_size}
        with self.db.transaction() as conn:
            return len(conn.execute(Q.prune_batches, params).fetchall())

    # --- numbers ----------------------------------------------------------

    def stats(self, window_seconds: float, *, history: bool = True) -> dict:
        """Queue depth, ages and database health; with ``history``, outcomes over the window too."""
        with self.db.transaction() as conn:
            depth = conn.execute(Q.queue_depth).fetchall()
            oldest = conn.execute(Q.oldest_pending).fetchone()
            finished = conn.execute(Q.finished_since, {"window_seconds": window_seconds},
                                    prepare=False).fetchall() if history else []
            health = conn.execute(Q.database_health).fetchone()
        totals = {status: 0 for status in ("pending", "running")}
        for row in depth:
            totals[row["status"]] += row["count"]
        outcome = {status: 0 for status in ("completed", "failed", "cancelled")}
        failures: dict[str, int] = {}
        for row in finished:
            outcome[row["status"]] += row["count"]
            if row["status"] == "failed":
                category = row["category"] or "unknown"
                failures[category] = failures.get(category, 0) + row["count"]
        return {
            "queue": totals,
            "depth": [{"status": r["status"], "task_type": r["task_type"],
                       "model_profile": r["model_profile"], "count": r["count"]} for r in depth],
            "oldest_pending_age_seconds": _seconds(oldest["oldest_pending_age_seconds"]),
            "head_wait_seconds": _seconds(oldest["head_wait_seconds"]),
            "window_seconds": window_seconds,
            "finished": outcome,
            "failures_by_category": dict(sorted(failures.items())),
            "throughput_per_minute": round(outcome["completed"] * 60 / window_seconds, 3),
            "database": {
                "oldest_transaction_age_seconds": _seconds(health["oldest_transaction_age_seconds"]),
                "jobs_dead_rows": health["jobs_dead_rows"],
                "jobs_live_rows": health["jobs_live_rows"],
            },
        }

    def migrations_current(self) -> bool:
        """True when every migration shipped with this version is applied, unchanged."""
        with self.db.transaction() as conn:
            if not conn.execute(Q.migrations_table_exists).fetchone()["present"]:
                return False
            applied = {r["name"]: r["checksum"] for r in conn.execute(Q.applied_migrations)}
        return all(applied.get(m.name) == m.checksum for m in migrations.available())


def _check_replay(existing: dict, fingerprint: str) -> None:
    if existing["request_hash"] != fingerprint:
        raise IdempotencyConflict(
            "this idempotency_key was already used for a different job "
            f"({existing['id']})",
            current_status=existing["status"],
        )


def _seconds(value) -> float | None:
    return None if value is None else round(float(value), 3)
