"""PostgreSQL goes away and comes back: 503 within seconds, recovery without a restart."""

import threading
import time

import webtest

from aiservice import migrations
from aiservice.api.app import create_app
from aiservice.config import Settings
from tests.conftest import JOB


def _until(deadline, fn):
    while time.monotonic() < deadline:
        result = fn()
        if result:
            return result
        time.sleep(0.1)
    return None


def test_database_down_answers_503_then_recovers(durable_cluster, schemas):
    url = durable_cluster.create_database("outage")
    settings = Settings(database_url=url, db_pool_timeout=2, db_connect_timeout=2, db_pool_size=4)
    migrations.migrate(settings)
    client = webtest.TestApp(create_app(settings, schemas=schemas))
    created = client.post_json("/api/v1/jobs", JOB, status=201).json

    durable_cluster.stop("fast")
    for call in (lambda: client.post_json("/api/v1/jobs", JOB, status="*"),
                 lambda: client.get(f"/api/v1/jobs/{created['id']}", status="*"),
                 lambda: client.post_json("/api/v1/jobs/claim", {"worker_id": "w"}, status="*"),
                 lambda: client.get("/api/v1/stats", status="*")):
        started = time.monotonic()
        resp = call()
        assert resp.status_int == 503, resp.text
        assert resp.json["error"]["code"] == "unavailable"
        assert resp.headers["Retry-After"] == "1"
        assert time.monotonic() - started < 5
    assert client.get("/readyz", status="*").status_int == 503
    assert client.get("/healthz").status_int == 200

    durable_cluster.start()
    deadline = time.monotonic() + 20
    ok = _until(deadline, lambda: client.post_json("/api/v1/jobs", JOB, status="*").status_int == 201)
    assert ok, "the API did not recover after PostgreSQL came back"
    assert client.get(f"/api/v1/jobs/{created['id']}").json["id"] == created["id"]
    assert client.get("/readyz").status_int == 200
    # Nothing acknowledged was lost: the job created before the outage and the one after.
    assert len(client.get("/api/v1/jobs").json["jobs"]) == 2
    client.app.store.db.close()


def test_requests_in_flight_during_a_restart_never_answer_500(durable_cluster, schemas):
    url = durable_cluster.create_database("flight")
    settings = Settings(database_url=url, db_pool_timeout=2, db_connect_timeout=2, db_pool_size=4)
    migrations.migrate(settings)
    app = create_app(settings, schemas=schemas)
    statuses, acknowledged, stop = [], [], threading.Event()

    def load():
        client = webtest.TestApp(app)
        while not stop.is_set():
            resp = client.post_json("/api/v1/jobs", JOB, status="*")
            statuses.append(resp.status_int)
            if resp.status_int == 201:
                acknowledged.append(resp.json["id"])

    threads = [threading.Thread(target=load) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    durable_cluster.stop("immediate")
    time.sleep(1)
    durable_cluster.start()
    time.sleep(2)
    stop.set()
    for t in threads:
        t.join()
    assert set(statuses) <= {201, 503}, sorted(set(statuses))
    assert 503 in statuses and statuses[-1] == 201
    client = webtest.TestApp(app)
    for job_id in acknowledged:  # every 201 is committed
        client.get(f"/api/v1/jobs/{job_id}", status=200)
    app.store.db.close()
