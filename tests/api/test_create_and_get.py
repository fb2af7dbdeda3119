import datetime as dt
import threading

import webtest
from jsonschema import Draft202012Validator

from tests.conftest import JOB


def _job_schema(schemas):
    return Draft202012Validator(schemas.documents["job"])


def test_create_answers_201_with_the_whole_job(app, schemas):
    resp = app.post_json("/api/v1/jobs", JOB, status=201)
    job = resp.json
    _job_schema(schemas).validate(job)
    assert resp.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert job["status"] == "pending" and job["priority"] == 0 and job["max_attempts"] == 3
    assert job["attempts"] == 0 and job["errors"] == [] and job["error"] is None
    assert {k: job[k] for k in JOB} == JOB


def test_get_returns_the_stored_job(app, make_job):
    job = make_job(priority=7, max_attempts=5, owner_ref="channel/9")
    assert app.get(f"/api/v1/jobs/{job['id']}").json == job


def test_get_unknown_or_malformed_id_is_404(app):
    for path in ("/api/v1/jobs/01a20cdc-3fcb-7262-bbe8-f83cc1580a2b", "/api/v1/jobs/not-a-uuid",
                 "/api/v1/jobs/1' OR '1'='1"):
        body = app.get(path, status=404).json
        assert body["error"]["code"] == "job_not_found"


def test_run_after_in_the_future_keeps_the_job_unclaimed(app, make_job, claim):
    later = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
    job = make_job(run_after=later)
    assert job["run_after"].startswith(later[:16])
    assert claim(limit=5) == []


def test_same_idempotency_key_and_body_returns_the_first_job_with_200(app):
    body = {**JOB, "idempotency_key": "call-42"}
    first = app.post_json("/api/v1/jobs", body, status=201)
    again = app.post_json("/api/v1/jobs", body, status=200)
    assert again.json == first.json
    assert again.headers["Idempotent-Replayed"] == "true"


def test_idempotency_keys_are_per_owner_service(app):
    a = app.post_json("/api/v1/jobs", {**JOB, "idempotency_key": "k"}, status=201).json
    b = app.post_json("/api/v1/jobs", {**JOB, "owner_service": "monitoring-tg", "idempotency_key": "k"}, status=201).json
    assert a["id"] != b["id"]


def test_same_idempotency_key_with_a_different_body_is_409(app):
    app.post_json("/api/v1/jobs", {**JOB, "idempotency_key": "k"}, status=201)
    body = app.post_json("/api/v1/jobs", {**JOB, "input": {"text": "other"}, "idempotency_key": "k"}, status=409).json
    assert body["error"]["code"] == "idempotency_key_reused"
    assert body["error"]["current_status"] == "pending"


def test_concurrent_creates_with_one_key_make_one_job(app, sql):
    body = {**JOB, "idempotency_key": "race"}
    results = []
    barrier = threading.Barrier(16)

    def post():
        client = webtest.TestApp(app.app)
        barrier.wait()
        resp = client.post_json("/api/v1/jobs", body, status="*")
        results.append((resp.status_int, resp.json["id"]))

    threads = [threading.Thread(target=post) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * 15 + [201]
    assert len({i for _, i in results}) == 1
    assert sql("SELECT count(*) AS n FROM jobs")[0]["n"] == 1


def test_built_in_task_input_is_validated_at_create(app):
    bad = {**JOB, "task_type": "llm_chat", "input": {"messages": [{"role": "user"}], "temperature": 9}}
    details = app.post_json("/api/v1/jobs", bad, status=422).json["error"]["details"]
    pointers = {d["pointer"] for d in details}
    assert pointers == {"/input/messages/0/content", "/input/temperature"}


def test_compact_chat_input_is_accepted(app):
    app.post_json("/api/v1/jobs", {**JOB, "task_type": "llm_chat", "input": {"system": "Answer as JSON.", "user": "Classify"}}, status=201)


def test_only_jobs_with_an_idempotency_key_carry_a_request_fingerprint(app, sql):
    plain = app.post_json("/api/v1/jobs", JOB, status=201).json
    keyed = app.post_json("/api/v1/jobs", {**JOB, "idempotency_key": "k"}, status=201).json
    batch = app.post_json("/api/v1/jobs/batch", {"jobs": [JOB, {**JOB, "idempotency_key": "b"}]}, status=201).json
    rows = {str(r["id"]): r["request_hash"] for r in sql("SELECT id, request_hash FROM jobs")}
    assert rows[plain["id"]] is None and rows[batch["jobs"][0]["id"]] is None
    assert len(rows[keyed["id"]]) == 64 and len(rows[batch["jobs"][1]["id"]]) == 64
