import pytest

from tests.conftest import JOB


def test_list_is_newest_first_and_pages_cover_everything_once(app, make_job):
    ids = [make_job(owner_ref=f"r/{i}")["id"] for i in range(7)]
    seen, cursor, pages = [], None, 0
    while True:
        url = "/api/v1/jobs?limit=3" + (f"&cursor={cursor}" if cursor else "")
        body = app.get(url).json
        seen += [j["id"] for j in body["jobs"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))
    assert pages == 3


def test_an_exact_last_page_has_no_cursor(app, make_job):
    for _ in range(2):
        make_job()
    assert app.get("/api/v1/jobs?limit=2").json["next_cursor"] is None


@pytest.mark.parametrize("param,value,expected", [
    ("owner_service", "monitoring-pf", 1), ("owner_ref", "beeline/7", 1), ("task_type", "transcribe", 1),
    ("model_profile", "whisperx", 1), ("status", "pending", 3), ("status", "failed", 0),
])
def test_filters(app, make_job, param, value, expected):
    make_job(owner_service="monitoring-pf")
    make_job(owner_ref="beeline/7")
    make_job(task_type="transcribe", model_profile="whisperx", input={"audio_url": "http://127.0.0.1/a.wav"})
    jobs = app.get(f"/api/v1/jobs?{param}={value}").json["jobs"]
    assert len(jobs) == expected
    assert all(j[param] == value for j in jobs)


def test_filter_by_batch(app, make_job):
    make_job()
    batch = app.post_json("/api/v1/jobs/batch", {"defaults": JOB, "jobs": [{}, {}]}).json
    jobs = app.get(f"/api/v1/jobs?batch_id={batch['batch_id']}").json["jobs"]
    assert {j["id"] for j in jobs} == {j["id"] for j in batch["jobs"]}


@pytest.mark.parametrize("query,parameter", [
    ("limit=0", "limit"), ("limit=501", "limit"), ("limit=ten", "limit"), ("status=done", "status"),
    ("cursor=%%%", "cursor"), ("cursor=AAAA", "cursor"), ("batch_id=42", "batch_id"),
    ("colour=red", "colour"), ("status=pending&status=failed", "status"),
])
def test_bad_query_parameters_are_422_naming_the_parameter(app, query, parameter):
    err = app.get(f"/api/v1/jobs?{query}", status=422).json["error"]
    assert err["code"] == "validation_failed"
    assert err["details"][0]["parameter"] == parameter
