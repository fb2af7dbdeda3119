import pytest


def test_stats_count_the_queue_and_recent_outcomes(app, make_job, claim, sql):
    for _ in range(3):
        make_job()
    make_job(task_type="transcribe", model_profile="whisperx", input={"audio_url": "http://127.0.0.1/a.wav"})
    make_job(run_after="2999-01-01T00:00:00Z")
    jobs = claim("w1", limit=3)
    app.post_json(f"/api/v1/jobs/{jobs[0]['id']}/complete", {"worker_id": "w1", "result": {}})
    app.post_json(f"/api/v1/jobs/{jobs[1]['id']}/fail", {"worker_id": "w1", "category": "invalid_output", "message": "x"})
    stats = app.get("/api/v1/stats").json
    assert stats["queue"] == {"pending": 2, "running": 1}
    depth = {(d["status"], d["task_type"], d["model_profile"]): d["count"] for d in stats["depth"]}
    assert depth == {("pending", "call_analysis", "qwen2.5-14b"): 1, ("pending", "transcribe", "whisperx"): 1,
                     ("running", "call_analysis", "qwen2.5-14b"): 1}
    assert stats["finished"] == {"completed": 1, "failed": 1, "cancelled": 0}
    assert stats["failures_by_category"] == {"invalid_output": 1}
    assert stats["oldest_pending_age_seconds"] >= 0 and stats["head_wait_seconds"] >= 0
    assert stats["throughput_per_minute"] == pytest.approx(1 / 60, abs=0.001)
    assert "oldest_transaction_age_seconds" in stats["database"]


def test_the_window_limits_history(app, make_job, claim, sql):
    make_job()
    [job] = claim()
    app.post_json(f"/api/v1/jobs/{job['id']}/complete", {"worker_id": "w1", "result": {}})
    sql("UPDATE jobs SET finished_at = now() - interval '2 hours'")
    assert app.get("/api/v1/stats").json["finished"]["completed"] == 0
    assert app.get("/api/v1/stats?window=3h").json["finished"]["completed"] == 1


def test_an_empty_queue_has_no_oldest_age(app):
    stats = app.get("/api/v1/stats").json
    assert stats["oldest_pending_age_seconds"] is None and stats["queue"]["pending"] == 0


@pytest.mark.parametrize("window", ["forever", "0s", "90d"])
def test_bad_windows_are_422(app, window):
    assert app.get(f"/api/v1/stats?window={window}", status=422).json["error"]["details"][0]["parameter"] == "window"
