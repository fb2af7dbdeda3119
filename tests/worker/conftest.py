import dataclasses
import threading

import pytest

from aiservice.worker.runner import Worker
from tests.fakes import FakeProvider


@pytest.fixture
def fake():
    provider = FakeProvider()
    yield provider
    provider.close()


@pytest.fixture
def start_worker(settings, db):
    """Factory: a Worker (real threads, real PostgreSQL) running in the background."""
    started = []

    def start(**changes):
        changed = dataclasses.replace(settings, worker_id=changes.pop("worker_id", "test-worker"),
                                      worker_poll_interval=changes.pop("worker_poll_interval", 10.0),
                                      **changes)
        worker = Worker(changed)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        assert worker.ready.wait(10), "worker did not start"
        assert worker.listener.connected.wait(10), "worker is not listening"
        started.append((worker, thread))
        return worker

    yield start
    for worker, thread in started:
        worker.request_stop()
        thread.join(timeout=40)
        assert not thread.is_alive()


@pytest.fixture
def wait_for(store):
    """Poll a job until ``predicate(job)`` holds or ``timeout`` passes; return the job."""
    import time

    def wait(job_id, predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while True:
            job = store.get(job_id)
            if predicate(job):
                return job
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; job is {job['status']} attempts={job['attempts']} error={job['error']}")
            time.sleep(0.02)

    return wait
