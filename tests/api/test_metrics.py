"""GET /metrics, parsed with prometheus_client's own text parser."""

import dataclasses

import webtest
from prometheus_client.parser import text_string_to_metric_families

from aiservice.api.app import create_app


def scrape(app) -> dict:
    """{(sample name, frozenset(labels)): value} of one scrape."""
    resp = app.get("/metrics")
    assert resp.content_type == "text/plain"
    samples = {}
    for family in text_string_to_metric_families(resp.text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_queue_gauges_come_from_the_database(app, make_job, claim):
    make_job()
    make_job()
    make_job(task_type="transcribe", model_profile="whisperx", input={"audio_url": "http://127.0.0.1/a.wav"})
    claim("w1", task_types=["transcribe"])
    samples = scrape(app)
    assert value(samples, "aiservice_database_up") == 1
    assert value(samples, "aiservice_jobs", status="pending", task_type="call_analysis", model_profile="qwen2.5-14b") == 2
    assert value(samples, "aiservice_jobs", status="running", task_type="transcribe", model_profile="whisperx") == 1
    assert value(samples, "aiservice_oldest_pending_age_seconds") >= 0


def test_job_outcomes_and_http_requests_are_counted(app, make_job, claim):
    before = scrape(app)
    for _ in range(2):
        make_job()
    first, second = claim("w1", limit=2)
    app.post_json(f"/api/v1/jobs/{first['id']}/complete", {"worker_id": "w1", "result": {}})
    app.post_json(f"/api/v1/jobs/{second['id']}/fail", {"worker_id": "w1", "category": "timeout", "message": "x"})
    after = scrape(app)
    labels = {"task_type": "call_analysis", "model_profile": "qwen2.5-14b"}
    delta = lambda name, **l: value(after, name, **l) - value(before, name, **l)
    assert delta("aiservice_job_outcomes_total", outcome="completed", category="", **labels) == 1
    assert delta("aiservice_job_outcomes_total", outcome="retried", category="timeout", **labels) == 1
    assert delta("aiservice_http_requests_total", method="POST", route="/api/v1/jobs", status="201") == 2
    assert delta("aiservice_http_request_duration_seconds_count", method="POST", route="/api/v1/jobs") == 2
    assert delta("aiservice_http_requests_total", method="POST", route="/api/v1/jobs/{job_id}/complete",
                 status="200") == 1


def test_metrics_answer_while_the_database_is_down(settings, schemas):
    broken = dataclasses.replace(settings, database_url="postgresql://x:pw@127.0.0.1:1/none",
                                 db_pool_timeout=0.5, db_connect_timeout=1)
    client = webtest.TestApp(create_app(broken, schemas=schemas))
    samples = scrape(client)
    assert value(samples, "aiservice_database_up") == 0
    client.app.store.db.close()
