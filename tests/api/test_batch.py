from tests.conftest import JOB

DEFAULTS = {"owner_service": "telephony", "task_type": "call_analysis", "model_profile": "qwen2.5-14b"}


def test_batch_merges_defaults_and_keeps_order(app):
    jobs = [{"owner_ref": f"beeline/{i}", "input": {"n": i}} for i in range(5)]
    jobs[2]["priority"] = 9
    jobs[3]["model_profile"] = "other"
    resp = app.post_json("/api/v1/jobs/batch", {"defaults": {**DEFAULTS, "priority": 1}, "jobs": jobs}, status=201)
    body = resp.json
    assert [j["owner_ref"] for j in body["jobs"]] == [f"beeline/{i}" for i in range(5)]
    assert [j["priority"] for j in body["jobs"]] == [1, 1, 9, 1, 1]
    assert body["jobs"][3]["model_profile"] == "other"
    assert {j["batch_id"] for j in body["jobs"]} == {body["batch_id"]}
    assert resp.headers["Location"] == f"/api/v1/batches/{body['batch_id']}"


def test_batch_status_counts_jobs_by_status(app, claim):
    body = app.post_json("/api/v1/jobs/batch", {"defaults": DEFAULTS, "jobs": [{}, {}, {}]}, status=201).json
    [job] = claim()
    app.post_json(f"/api/v1/jobs/{job['id']}/complete", {"worker_id": "w1", "result": {"ok": True}})
    status = app.get(f"/api/v1/batches/{body['batch_id']}").json
    assert status["total"] == 3
    assert status["counts"] == {"pending": 2, "running": 0, "completed": 1, "failed": 0, "cancelled": 0}
    assert status["done"] is False
    # The batch and its jobs are created in one transaction, and both times come from api_time.
    assert status["created_at"] == body["jobs"][0]["created_at"]
    assert status["created_at"].endswith("Z") and len(status["created_at"]) == 27


def test_unknown_batch_is_404(app):
    assert app.get("/api/v1/batches/01a20cdc-3fcb-7262-bbe8-f83cc1580a2b", status=404).json["error"]["code"] == "batch_not_found"
    app.get("/api/v1/batches/nope", status=404)


def test_one_bad_job_rejects_the_whole_batch_naming_it(app, sql):
    jobs = [{"input": {}} for _ in range(5)]
    jobs[3] = {"input": "not an object"}
    jobs[4] = {"priority": "high"}
    details = app.post_json("/api/v1/jobs/batch", {"defaults": DEFAULTS, "jobs": jobs}, status=422).json["error"]["details"]
    assert [d["pointer"] for d in details] == ["/jobs/3/input", "/jobs/4/priority"]
    assert sql("SELECT count(*) AS n FROM jobs")[0]["n"] == 0


def test_bad_task_input_in_a_batch_points_into_the_item(app):
    body = {"defaults": {**DEFAULTS, "task_type": "llm_chat"}, "jobs": [{"input": {"user": "hi"}}, {"input": {"max_tokens": 5}}]}
    details = app.post_json("/api/v1/jobs/batch", body, status=422).json["error"]["details"]
    assert details[0]["pointer"] == "/jobs/1/input"


def test_bad_defaults_point_at_defaults(app):
    for defaults, where in (({**DEFAULTS, "priority": 5000}, "/defaults/priority"),
                            ({**DEFAULTS, "idempotency_key": "x"}, "/defaults/idempotency_key"),
                            ({**DEFAULTS, "colour": "red"}, "/defaults/colour")):
        details = app.post_json("/api/v1/jobs/batch", {"defaults": defaults, "jobs": [{}]}, status=422).json["error"]["details"]
        assert details[0]["pointer"] == where


def test_missing_required_fields_point_into_each_job(app):
    details = app.post_json("/api/v1/jobs/batch", {"jobs": [{"owner_service": "a"}]}, status=422).json["error"]["details"]
    assert {d["pointer"] for d in details} == {"/jobs/0/task_type", "/jobs/0/model_profile"}


def test_batch_size_is_limited(app_with):
    client = app_with(batch_max_jobs=3)
    body = client.post_json("/api/v1/jobs/batch", {"defaults": DEFAULTS, "jobs": [{}] * 4}, status=422).json
    assert body["error"]["details"][0]["pointer"] == "/jobs"
    client.post_json("/api/v1/jobs/batch", {"defaults": DEFAULTS, "jobs": [{}] * 3}, status=201)


def test_empty_batch_is_422(app):
    details = app.post_json("/api/v1/jobs/batch", {"jobs": []}, status=422).json["error"]["details"]
    assert details[0]["pointer"] == "/jobs"


def test_duplicate_keys_inside_a_batch_are_refused(app):
    body = {"defaults": DEFAULTS, "jobs": [{"idempotency_key": "a"}, {"idempotency_key": "a"}]}
    app.post_json("/api/v1/jobs/batch", body, status=422)


def test_a_key_used_before_resolves_to_the_existing_job(app):
    existing = app.post_json("/api/v1/jobs", {**JOB, "idempotency_key": "seen"}, status=201).json
    body = {"jobs": [{**JOB, "idempotency_key": "seen"}, {**JOB, "idempotency_key": "new"}]}
    jobs = app.post_json("/api/v1/jobs/batch", body, status=201).json["jobs"]
    assert jobs[0]["id"] == existing["id"] and jobs[0]["batch_id"] is None
    assert jobs[1]["idempotency_key"] == "new"


def test_a_key_used_before_with_other_content_rejects_the_batch(app, sql):
    app.post_json("/api/v1/jobs", {**JOB, "idempotency_key": "seen"}, status=201)
    body = {"jobs": [{**JOB, "idempotency_key": "fresh"}, {**JOB, "priority": 3, "idempotency_key": "seen"}]}
    assert app.post_json("/api/v1/jobs/batch", body, status=409).json["error"]["code"] == "idempotency_key_reused"
    assert sql("SELECT count(*) AS n FROM jobs")[0]["n"] == 1
    assert sql("SELECT count(*) AS n FROM batches")[0]["n"] == 0


def test_a_large_batch_goes_in_whole(app, sql):
    jobs = [{"owner_ref": f"r/{i}", "input": {"user": f"text {i}"}} for i in range(1000)]
    body = app.post_json("/api/v1/jobs/batch", {"defaults": {**DEFAULTS, "task_type": "llm_chat"}, "jobs": jobs}, status=201).json
    assert len(body["jobs"]) == 1000
    assert sql("SELECT count(*) AS n FROM jobs WHERE batch_id = %s", [body["batch_id"]])[0]["n"] == 1000
