"""Fixtures: a real PostgreSQL started for the run, the real store, the real app.

Nothing here skips: if PostgreSQL cannot start, every database test errors.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import shutil
import tempfile

import pytest
import webtest

from aiservice import migrations
from aiservice.api.app import create_app
from aiservice.config import Settings
from aiservice.db import Database
from aiservice.jobs import JobStore
from aiservice.localpg import FAST, LocalPostgres, find_bindir
from aiservice.schemas import Schemas

# The environment must not leak into tests that build settings from it.
for _var in ("DATABASE_URL", "LLM_API_KEY", "LLM_BASE_URL", "WHISPERX_URL"):
    os.environ.pop(_var, None)


def pytest_report_header(config):
    return f"PostgreSQL server binaries: {find_bindir()}"


@pytest.fixture(scope="session")
def pg_cluster():
    root = tempfile.mkdtemp(prefix="aiservice-test-pg-")
    cluster = LocalPostgres(root, settings=FAST)
    cluster.init()
    cluster.start()
    yield cluster
    cluster.stop("immediate")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def durable_cluster():
    """A cluster of the test's own, with durable settings (fsync on): for crash and restart tests."""
    root = tempfile.mkdtemp(prefix="aiservice-test-durable-")
    cluster = LocalPostgres(root)
    cluster.init()
    cluster.start()
    yield cluster
    cluster.stop("immediate")
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url(pg_cluster) -> str:
    dsn = pg_cluster.create_database("aiservice_test")
    migrations.migrate(Settings(database_url=dsn))
    return dsn


_database_numbers = itertools.count(1)


@pytest.fixture
def empty_database(pg_cluster):
    """Factory: a new, empty database; returns its URL. Dropped after the test."""
    created = []

    def make() -> str:
        name = f"aiservice_empty_{os.getpid()}_{next(_database_numbers)}"
        created.append(name)
        return pg_cluster.create_database(name)

    yield make
    for name in created:
        pg_cluster.drop_database(name)


@pytest.fixture
def settings(database_url) -> Settings:
    return Settings(database_url=database_url, retry_backoff_base=1.0, retry_backoff_max=4.0,
                    db_pool_size=12)


@pytest.fixture
def db(settings):
    database = Database(settings, "aiservice-test")
    with database.transaction() as conn:
        conn.execute("TRUNCATE jobs, batches")
    yield database
    database.close()


@pytest.fixture
def store(db, settings) -> JobStore:
    return JobStore(db, settings)


@pytest.fixture(scope="session")
def schemas() -> Schemas:
    return Schemas()


@pytest.fixture
def app(store, settings, schemas):
    return webtest.TestApp(create_app(settings, store=store, schemas=schemas), lint=True)


@pytest.fixture
def app_with(store, schemas):
    """Factory: the app with some settings changed."""

    def make(**changes):
        changed = dataclasses.replace(store.settings, **changes)
        return webtest.TestApp(create_app(changed, store=JobStore(store.db, changed), schemas=schemas))

    return make


JOB = {"owner_service": "telephony", "owner_ref": "beeline/1", "task_type": "call_analysis",
       "model_profile": "qwen2.5-14b", "input": {"text": "hello"}}


@pytest.fixture
def make_job(app):
    """Factory: create a job over the API (201 expected) and return it."""

    def make(**fields):
        return app.post_json("/api/v1/jobs", {**JOB, **fields}, status=201).json

    return make


@pytest.fixture
def claim(app):
    """Factory: claim jobs over the API and return them."""

    def run(worker_id="w1", limit=1, **fields):
        body = {"worker_id": worker_id, "limit": limit, **fields}
        return app.post_json("/api/v1/jobs/claim", body, status=200).json["jobs"]

    return run


@pytest.fixture
def sql(db):
    """Run SQL directly (test set-up and checks only): returns the rows as dicts."""

    def run(query, params=None):
        with db.transaction() as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    return run
