"""Prometheus metrics.

Counters and histograms live in the process that sees the event: HTTP requests
in the API, job outcomes in whichever process wrote them (the API for
external workers, the built-in worker for its own jobs), provider calls in the
worker. gunicorn's processes share theirs through prometheus_client's
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, set up by gunicorn_conf.py), so
any process answering a scrape reports the sum. Queue depth and ages are read
from PostgreSQL at scrape time with the same cheap queries as /api/v1/stats.
"""

from __future__ import annotations

import contextlib
import os
import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

CONTENT_TYPE = CONTENT_TYPE_LATEST

HTTP_REQUESTS = Counter("aiservice_http_requests", "HTTP requests answered by the API.",
                        ["method", "route", "status"])
HTTP_LATENCY = Histogram("aiservice_http_request_duration_seconds", "Time to answer an HTTP request.",
                         ["method", "route"],
                         buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
JOB_OUTCOMES = Counter("aiservice_job_outcomes", "Job attempts finished, by outcome and failure category.",
                       ["task_type", "model_profile", "outcome", "category"])
PROVIDER_LATENCY = Histogram("aiservice_provider_request_duration_seconds",
                             "Time of a call to a model provider.", ["provider"],
                             buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900))
CLAIMS = Histogram("aiservice_worker_claim_duration_seconds",
                   "Time of one claim statement by the built-in worker (commit included).",
                   buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
CLAIMED = Counter("aiservice_worker_claimed_jobs", "Jobs the built-in worker claimed.")
COMPLETION_BATCHES = Counter("aiservice_worker_completion_batches",
                             "Statements the built-in worker's completer wrote (each completes one or more jobs).")
PROVIDER_ERRORS = Counter("aiservice_provider_errors", "Failed calls to model providers, by category.",
                          ["provider", "category"])

_OUTCOME = {"completed": "completed", "failed": "failed", "pending": "retried"}


@contextlib.contextmanager
def provider_call(provider: str):
    """Time one call to a provider; count it as an error if it raises ProviderError."""
    from aiservice.worker.providers import ProviderError

    started = time.monotonic()
    try:
        yield
    except ProviderError as exc:
        PROVIDER_ERRORS.labels(provider, exc.category).inc()
        raise
    finally:
        PROVIDER_LATENCY.labels(provider).observe(time.monotonic() - started)


def job_outcome(row: dict) -> None:
    """Count the outcome of an attempt from the row complete/fail returned."""
    category = (row.get("error") or {}).get("category", "") if row["status"] != "completed" else ""
    JOB_OUTCOMES.labels(row["task_type"], row["model_profile"], _OUTCOME.get(row["status"], row["status"]),
                        category).inc()


class QueueCollector:
    """Gauges read from PostgreSQL when scraped: live jobs, oldest pending age, database health."""

    def __init__(self, store):
        self.store = store

    def collect(self):
        from aiservice.errors import AIServiceError

        up = GaugeMetricFamily("aiservice_database_up", "1 when PostgreSQL answered this scrape.")
        try:
            stats = self.store.stats(300.0, history=False)  # gauges only: no window counting
        except AIServiceError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        jobs = GaugeMetricFamily("aiservice_jobs", "Live jobs by status, task type and model profile.",
                                 labels=["status", "task_type", "model_profile"])
        for d in stats["depth"]:
            jobs.add_metric([d["status"], d["task_type"], d["model_profile"]], d["count"])
        for status in ("pending", "running"):  # a zero series beats a missing one
            if not any(d["status"] == status for d in stats["depth"]):
                jobs.add_metric([status, "", ""], 0)
        yield jobs
        head = GaugeMetricFamily("aiservice_queue_head_wait_seconds",
                                 "How long the job the next claim takes has been due (0 when none).")
        head.add_metric([], stats["head_wait_seconds"] or 0)
        yield head
        oldest = GaugeMetricFamily("aiservice_oldest_pending_age_seconds",
                                   "Age of the oldest pending job (0 when none).")
        oldest.add_metric([], stats["oldest_pending_age_seconds"] or 0)
        yield oldest
        tx = GaugeMetricFamily("aiservice_oldest_transaction_age_seconds",
                               "Age of the oldest open transaction (it holds back vacuum).")
        tx.add_metric([], stats["database"]["oldest_transaction_age_seconds"] or 0)
        yield tx
        dead = GaugeMetricFamily("aiservice_jobs_dead_rows", "Dead rows in the jobs table.")
        dead.add_metric([], stats["database"]["jobs_dead_rows"] or 0)
        yield dead


def render(store=None) -> bytes:
    """The Prometheus text for this scrape: this process's (or all gunicorn processes') metrics."""
    registry = CollectorRegistry()
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")  # prometheus_client's own contract
    if directory:
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry, path=directory)
    else:
        for metric in (HTTP_REQUESTS, HTTP_LATENCY, JOB_OUTCOMES, PROVIDER_LATENCY, PROVIDER_ERRORS):
            registry.register(_Forward(metric))
    if store is not None:
        registry.register(QueueCollector(store))
    return generate_latest(registry)


class _Forward:
    """Registers a metric that already belongs to the default registry in another one."""

    def __init__(self, metric):
        self.metric = metric

    def collect(self):
        return self.metric.collect()
