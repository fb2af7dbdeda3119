"""Every state transition, allowed and refused, and the fencing of the lease holder's writes."""

import datetime as dt

import pytest

STATES = ("pending", "running", "completed", "failed", "cancelled")


@pytest.fixture
def job_in(app, make_job, claim):
    """Factory: a job brought to ``status`` through the API; running ones are held by w1."""

    def make(status: str, **fields):
        job = make_job(**fields)
        if status == "pending":
            return job
        [job] = claim("w1")
        if status == "completed":
            app.post_json(f"/api/v1/jobs/{job['id']}/complete", {"worker_id": "w1", "result": {"ok": 1}})
        elif status == "failed":
            app.post_json(f"/api/v1/jobs/{job['id']}/fail", {"worker_id": "w1", "category": "invalid_input", "message": "bad"})
        elif status == "cancelled":
            app.post_json(f"/api/v1/jobs/{job['id']}/cancel")
        return app.get(f"/api/v1/jobs/{job['id']}").json

    return make


ACTIONS = {
    "complete": {"worker_id": "w1", "result": {"text": "done"}},
    "fail": {"worker_id": "w1", "category": "provider_error", "message": "boom"},
    "heartbeat": {"worker_id": "w1"},
    "retry": None,
    "cancel": None,
}
# (action, from status) -> status after, or None for 409
ALLOWED = {
    ("complete", "running"): "completed",
    ("fail", "running"): "failed",
    ("heartbeat", "running"): "running",
    ("retry", "failed"): "pending",
    ("retry", "running"): "pending",
    ("cancel", "pending"): "cancelled",
    ("cancel", "running"): "cancelled",
}


@pytest.mark.parametrize("status", STATES)
@pytest.mark.parametrize("action", ACTIONS)
def test_transition_table(app, job_in, action, status, sql):
    job = job_in(status)
    before = sql("SELECT * FROM jobs WHERE id = %s", [job["id"]])[0]
    url = f"/api/v1/jobs/{job['id']}/{action}"
    body = ACTIONS[action]
    expected = ALLOWED.get((action, status))
    if expected:
        resp = app.post_json(url, body, status=200) if body else app.post(url, status=200)
        assert resp.json["status"] == expected
    else:
        resp = app.post_json(url, body, status=409) if body else app.post(url, status=409)
        assert resp.json["error"]["code"] == "invalid_transition"
        assert resp.json["error"]["current_status"] == status
        assert sql("SELECT * FROM jobs WHERE id = %s", [job["id"]])[0] == before  # nothing changed


def test_complete_stores_result_and_times(app, job_in):
    job = job_in("running")
    done = app.post_json(f"/api/v1/jobs/{job['id']}/complete", {"worker_id": "w1", "result": {"content": "ok"}}).json
    assert done["result"] == {"content": "ok"}
    assert done["finished_at"] and done["duration_ms"] is not None and done["duration_ms"] >= 0
    assert done["lease_expires_at"] is None


@pytest.mark.parametrize("action", ["complete", "fail", "heartbeat"])
def test_writes_by_another_worker_are_409(app, job_in, action, sql):
    job = job_in("running")
    body = {**ACTIONS[action], "worker_id": "intruder"}
    err = app.post_json(f"/api/v1/jobs/{job['id']}/{action}", body, status=409).json["error"]
    assert err["code"] == "lease_mismatch" and err["current_status"] == "running"
    assert sql("SELECT worker_id, status FROM jobs WHERE id = %s", [job["id"]])[0] == {"worker_id": "w1", "status": "running"}


@pytest.mark.parametrize("action", ["complete", "fail", "heartbeat"])
def test_writes_for_a_stale_attempt_are_409(app, job_in, action):
    job = job_in("running")
    body = {**ACTIONS[action], "attempt": job["attempts"] + 1}
    assert app.post_json(f"/api/v1/jobs/{job['id']}/{action}", body, status=409).json["error"]["code"] == "lease_mismatch"
    body = {**ACTIONS[action], "attempt": job["attempts"]}
    app.post_json(f"/api/v1/jobs/{job['id']}/{action}", body, status=200)


def test_a_worker_whose_lease_was_taken_over_cannot_complete(app, job_in, claim, sql):
    job = job_in("running")
    sql("UPDATE jobs SET lease_expires_at = now() - interval '1 s' WHERE id = %s", [job["id"]])
    [taken] = claim("w2")
    assert taken["id"] == job["id"] and taken["attempts"] == 2
    err = app.post_json(f"/api/v1/jobs/{job['id']}/complete", {"worker_id": "w1", "result": {}}, status=409).json["error"]
    assert err["code"] == "lease_mismatch"
    # Even the same worker id is fenced out by the attempt number.
    app.post_json(f"/api/v1/jobs/{job['id']}/complete", {"worker_id": "w2", "attempt": 1, "result": {}}, status=409)
    app.post_json(f"/api/v1/jobs/{job['id']}/complete", {"worker_id": "w2", "attempt": 2, "result": {}}, status=200)


def test_heartbeat_extends_the_lease(app, job_in):
    job = job_in("running")
    beat = app.post_json(f"/api/v1/jobs/{job['id']}/heartbeat", {"worker_id": "w1", "lease_seconds": 3600}).json
    expires = dt.datetime.fromisoformat(beat["lease_expires_at"].replace("Z", "+00:00"))
    left = (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()
    assert 3500 < left <= 3600


def test_retryable_failure_goes_back_to_pending_with_backoff(app, job_in, settings):
    job = job_in("running")
    failed = app.post_json(f"/api/v1/jobs/{job['id']}/fail", {"worker_id": "w1", "category": "timeout", "message": "read timed out"}).json
    assert failed["status"] == "pending" and failed["worker_id"] is None and failed["finished_at"] is None
    assert failed["error"] == {"category": "timeout", "message": "read timed out"}
    assert [(e["attempt"], e["category"]) for e in failed["errors"]] == [(1, "timeout")]
    wait = (dt.datetime.fromisoformat(failed["run_after"].replace("Z", "+00:00"))
            - dt.datetime.fromisoformat(failed["updated_at"].replace("Z", "+00:00"))).total_seconds()
    # attempt 1: base * 2^0 with jitter in (0.5, 1.0]
    assert settings.retry_backoff_base * 0.5 - 0.01 <= wait <= settings.retry_backoff_base + 0.01


def test_backoff_grows_with_attempts_and_stops_at_the_cap(store, sql):
    sql("INSERT INTO jobs (id, owner_service, task_type, model_profile, max_attempts) "
        "VALUES (gen_random_uuid(), 't', 'x', 'm', 10)")
    waits = []
    for _ in range(5):
        sql("UPDATE jobs SET run_after = now()")
        [job] = store.claim("w", 1)
        failed = store.fail(job["id"], "w", "rate_limited", "slow down")
        waits.append((failed["run_after"] - failed["updated_at"]).total_seconds())
    base, cap = store.settings.retry_backoff_base, store.settings.retry_backoff_max
    for attempt, wait in enumerate(waits, start=1):
        full = min(cap, base * 2 ** (attempt - 1))
        assert full * 0.5 - 0.01 <= wait <= full + 0.01, (attempt, wait)


def test_retry_after_wins_when_longer(app, job_in):
    job = job_in("running")
    failed = app.post_json(f"/api/v1/jobs/{job['id']}/fail", {"worker_id": "w1", "category": "rate_limited",
                                                            "message": "429", "retry_after_seconds": 120}).json
    wait = (dt.datetime.fromisoformat(failed["run_after"].replace("Z", "+00:00"))
            - dt.datetime.fromisoformat(failed["updated_at"].replace("Z", "+00:00"))).total_seconds()
    assert 119.9 <= wait <= 120.1


@pytest.mark.parametrize("category,retryable,expected", [
    ("timeout", None, "pending"), ("rate_limited", None, "pending"),
    ("provider_unavailable", None, "pending"), ("lease_expired", None, "pending"),
    ("provider_error", None, "failed"), ("invalid_input", None, "failed"),
    ("invalid_output", None, "failed"), ("internal", None, "failed"),
    ("my_custom_error", None, "failed"), ("my_custom_error", True, "pending"),
    ("timeout", False, "failed"),
])
def test_which_failures_are_retried(app, job_in, category, retryable, expected):
    job = job_in("running")
    body = {"worker_id": "w1", "category": category, "message": "x"}
    if retryable is not None:
        body["retryable"] = retryable
    assert app.post_json(f"/api/v1/jobs/{job['id']}/fail", body).json["status"] == expected


def test_a_retryable_failure_on_the_last_attempt_ends_failed(app, job_in):
    job = job_in("running", max_attempts=1)
    failed = app.post_json(f"/api/v1/jobs/{job['id']}/fail", {"worker_id": "w1", "category": "timeout", "message": "x"}).json
    assert failed["status"] == "failed" and failed["finished_at"] is not None


def test_long_error_messages_are_cut(app, job_in):
    job = job_in("running")
    failed = app.post_json(f"/api/v1/jobs/{job['id']}/fail", {"worker_id": "w1", "category": "internal", "message": "x" * 20000}).json
    assert len(failed["error"]["message"]) == 4000


def test_retry_of_a_failed_job_gives_it_another_attempt(app, job_in, claim):
    job = job_in("failed", max_attempts=1)
    retried = app.post(f"/api/v1/jobs/{job['id']}/retry").json
    assert retried["status"] == "pending" and retried["max_attempts"] == 2
    assert retried["errors"] == job["errors"]  # history kept
    [again] = claim("w9")
    assert again["id"] == job["id"] and again["attempts"] == 2


def test_retry_of_a_running_job_fences_out_the_old_holder(app, job_in):
    job = job_in("running")
    app.post(f"/api/v1/jobs/{job['id']}/retry", status=200)
    err = app.post_json(f"/api/v1/jobs/{job['id']}/complete", {"worker_id": "w1", "result": {}}, status=409).json["error"]
    assert err["current_status"] == "pending"


def test_cancel_of_a_running_job_fences_out_the_holder(app, job_in):
    job = job_in("running")
    app.post(f"/api/v1/jobs/{job['id']}/cancel", status=200)
    err = app.post_json(f"/api/v1/jobs/{job['id']}/complete", {"worker_id": "w1", "result": {}}, status=409).json["error"]
    assert err["code"] == "invalid_transition" and err["current_status"] == "cancelled"


def test_retry_and_cancel_accept_an_empty_object_but_no_fields(app, job_in):
    job = job_in("pending")
    app.post_json(f"/api/v1/jobs/{job['id']}/cancel", {"why": "x"}, status=422)
    app.post_json(f"/api/v1/jobs/{job['id']}/cancel", {}, status=200)


@pytest.mark.parametrize("action", ACTIONS)
def test_actions_on_unknown_jobs_are_404(app, action):
    url = f"/api/v1/jobs/01a20cdc-3fcb-7262-bbe8-f83cc1580a2b/{action}"
    body = ACTIONS[action]
    resp = app.post_json(url, body, status=404) if body else app.post(url, status=404)
    assert resp.json["error"]["code"] == "job_not_found"
    app.post_json(f"/api/v1/jobs/garbage/{action}", body or {}, status=404)
