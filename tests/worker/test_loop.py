"""The worker's loop: free-slot claiming, wake-ups, leases, shutdown, database restarts."""

import dataclasses
import threading
import time

from aiservice import migrations
from aiservice.config import Settings
from aiservice.db import Database
from aiservice.jobs import JobStore
from aiservice.worker.runner import Worker
from tests.conftest import JOB
from tests.fakes import FakeProvider, chat_response, slow

CHAT = {**JOB, "task_type": "llm_chat", "model_profile": "qwen2.5-14b", "input": {"user": "hi"}}


def _done(job):
    return job["status"] in ("completed", "failed")


def test_never_holds_more_jobs_than_threads(app, start_worker, fake, store, sql):
    fake.answer = slow(0.3)
    start_worker(llm_base_url=fake.url + "/v1", worker_concurrency=2, worker_claim_limit=4)
    ids = [app.post_json("/api/v1/jobs", CHAT).json["id"] for _ in range(8)]
    most_running = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        running = sql("SELECT count(*) AS n FROM jobs WHERE status = 'running'")[0]["n"]
        most_running = max(most_running, running)
        if sql("SELECT count(*) AS n FROM jobs WHERE status = 'completed'")[0]["n"] == 8:
            break
        time.sleep(0.02)
    assert all(store.get(i)["status"] == "completed" for i in ids)
    assert most_running == 2
    assert fake.max_in_flight == 2


def test_an_idle_worker_wakes_on_notify_within_milliseconds(app, start_worker, fake, wait_for):
    # Poll interval 10 s: only a NOTIFY can explain a pick-up within a second.
    start_worker(llm_base_url=fake.url + "/v1", worker_poll_interval=10.0)
    time.sleep(0.3)  # let it settle into its idle wait
    latencies = []
    for _ in range(5):
        started = time.monotonic()
        job = app.post_json("/api/v1/jobs", CHAT).json
        wait_for(job["id"], lambda j: j["status"] != "pending", timeout=5)
        latencies.append(time.monotonic() - started)
        time.sleep(0.1)
    assert max(latencies) < 1.0, latencies


def test_a_job_retried_later_is_picked_up_when_due_not_at_the_next_poll(app, start_worker, fake, wait_for):
    calls = []

    def answer(request):
        calls.append(time.monotonic())
        if len(calls) == 1:
            return 429, {"Retry-After": "1", "Content-Type": "application/json"}, b'{"error": "slow"}'
        return chat_response()

    fake.answer = answer
    start_worker(llm_base_url=fake.url + "/v1", worker_poll_interval=10.0, retry_backoff_base=0.1)
    job = app.post_json("/api/v1/jobs", CHAT).json
    done = wait_for(job["id"], _done, timeout=8)
    assert done["status"] == "completed"
    gap = calls[1] - calls[0]
    assert 0.9 <= gap < 2.5, gap


def test_heartbeats_keep_a_long_job_from_being_taken_over(app, start_worker, fake, wait_for, store):
    fake.answer = slow(2.5)
    start_worker(llm_base_url=fake.url + "/v1", lease_seconds=0.9)
    job = app.post_json("/api/v1/jobs", CHAT).json
    running = wait_for(job["id"], lambda j: j["status"] == "running")
    first_lease = running["lease_expires_at"]
    time.sleep(1.2)
    # Another worker claiming now finds nothing to take over.
    assert store.claim("thief", 5) == []
    assert store.get(job["id"])["lease_expires_at"] > first_lease
    done = wait_for(job["id"], _done)
    assert done["status"] == "completed" and done["attempts"] == 1 and done["errors"] == []


def test_a_job_cancelled_while_running_keeps_its_cancellation(app, start_worker, fake, wait_for):
    fake.answer = slow(1.0)
    worker = start_worker(llm_base_url=fake.url + "/v1", lease_seconds=0.6)
    job = app.post_json("/api/v1/jobs", CHAT).json
    wait_for(job["id"], lambda j: j["status"] == "running")
    app.post(f"/api/v1/jobs/{job['id']}/cancel")
    time.sleep(1.5)
    after = app.get(f"/api/v1/jobs/{job['id']}").json
    assert after["status"] == "cancelled" and after["result"] is None
    assert worker.stats["completed"] == 0 and worker.stats["dropped"] == 1


def test_stop_lets_a_job_in_flight_finish(app, settings, fake, wait_for, db):
    fake.answer = slow(0.8)
    worker, thread = _running(settings, fake, worker_shutdown_grace=10)
    job = app.post_json("/api/v1/jobs", CHAT).json
    wait_for(job["id"], lambda j: j["status"] == "running")
    started = time.monotonic()
    worker.request_stop()
    thread.join(15)
    assert not thread.is_alive()
    assert app.get(f"/api/v1/jobs/{job['id']}").json["status"] == "completed"
    assert time.monotonic() - started < 5
    # Nothing new is claimed after the stop.
    later = app.post_json("/api/v1/jobs", CHAT).json
    time.sleep(0.3)
    assert app.get(f"/api/v1/jobs/{later['id']}").json["status"] == "pending"


def test_stop_hands_back_what_outlasts_the_grace_period(app, settings, fake, wait_for):
    fake.answer = slow(3)
    worker, thread = _running(settings, fake, worker_shutdown_grace=0.5)
    job = app.post_json("/api/v1/jobs", CHAT).json
    wait_for(job["id"], lambda j: j["status"] == "running")
    worker.request_stop()
    thread.join(10)
    assert not thread.is_alive()
    back = app.get(f"/api/v1/jobs/{job['id']}").json
    assert back["status"] == "pending" and back["attempts"] == 0 and back["worker_id"] is None
    assert worker.stats["released"] == 1
    time.sleep(3)  # the provider answers now: the late result is not written
    assert app.get(f"/api/v1/jobs/{job['id']}").json["status"] == "pending"


def _running(settings, fake, **changes):
    """A worker of its own (the test stops it) running in a thread; returns (worker, thread)."""
    worker = Worker(dataclasses.replace(settings, llm_base_url=fake.url + "/v1", worker_id="w-stop",
                                        worker_poll_interval=5.0, **changes))
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert worker.ready.wait(10)
    return worker, thread


def test_the_worker_survives_a_database_restart(durable_cluster):
    provider = FakeProvider()
    url = durable_cluster.create_database("restart")
    settings = Settings(database_url=url, llm_base_url=provider.url + "/v1", worker_id="survivor",
                        worker_poll_interval=0.5, db_pool_timeout=1, db_connect_timeout=1)
    migrations.migrate(settings)
    store = JobStore(Database(settings, "test"), settings)
    worker = Worker(settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert worker.ready.wait(10) and worker.listener.connected.wait(10)
        first, _ = store.create({**CHAT})
        _wait(store, first["id"], "completed")
        durable_cluster.stop("fast")
        time.sleep(1.5)
        durable_cluster.start()
        assert worker.listener.connected.wait(15), "the listener did not reconnect"
        second = _create_when_up(store)
        _wait(store, second["id"], "completed", timeout=20)
        # The wake-up came from NOTIFY on the new connection, not a poll: check it is listening.
        assert worker.listener.is_alive()
    finally:
        worker.request_stop()
        thread.join(20)
        store.db.close()
        provider.close()


def _create_when_up(store, timeout=15):
    from aiservice.errors import Unavailable
    deadline = time.monotonic() + timeout
    while True:
        try:
            row, _ = store.create({**CHAT})
            return row
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _wait(store, job_id, status, timeout=10):
    deadline = time.monotonic() + timeout
    while store.get(job_id)["status"] != status:
        assert time.monotonic() < deadline, store.get(job_id)
        time.sleep(0.05)


def test_a_busy_worker_claims_and_completes_many_jobs_per_statement(app, start_worker, fake, sql):
    """Zero-latency provider, 8 threads, 400 jobs: freed slots gather before a claim, and results
    finished meanwhile are written together (a statement per job each way would be 800)."""
    from aiservice import metrics

    claims_before = metrics.CLAIMS.collect()[0].samples
    count_before = next(s.value for s in claims_before if s.name.endswith("_count"))
    app.post_json("/api/v1/jobs/batch", {"defaults": {k: v for k, v in CHAT.items() if k != "input"},
                                         "jobs": [{"input": {"user": "hi"}}] * 400}, status=201)
    worker = start_worker(llm_base_url=fake.url + "/v1", worker_concurrency=8, worker_claim_limit=8)
    deadline = time.monotonic() + 60
    while sql("SELECT count(*) AS n FROM jobs WHERE status = 'completed'")[0]["n"] < 400:
        assert time.monotonic() < deadline, "the jobs did not complete"
        time.sleep(0.05)
    claims = next(s.value for s in metrics.CLAIMS.collect()[0].samples if s.name.endswith("_count")) - count_before
    assert worker.completer.completed == 400
    assert worker.completer.batches <= 0.6 * 400, worker.completer.batches
    assert claims <= 0.6 * 400, claims
