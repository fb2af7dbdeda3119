"""Bad input: a clear 4xx naming the field, never a 500, never a row."""

import io
import json

import pytest
from jsonschema import Draft202012Validator

from tests.conftest import JOB

UNKNOWN = "01a20cdc-3fcb-7262-bbe8-f83cc1580a2b"


@pytest.fixture
def check_error(schemas):
    validator = Draft202012Validator(schemas.documents["error"])

    def check(resp, status, code):
        assert resp.status_int == status, resp.text
        assert resp.content_type == "application/json"
        validator.validate(resp.json)
        assert resp.json["error"]["code"] == code
        return resp.json["error"]

    return check


def _post(app, path, raw, **kw):
    return app.post(path, raw, content_type="application/json", status="*", **kw)


@pytest.mark.parametrize("raw", [b"{bad", b"", b"   ", b'{"a": NaN}', b'{"a": Infinity}', b"\xff\xfe{}",
                                 b'{"a": 1} trailing', b"[" * 100000])
def test_unparsable_json_is_400(app, check_error, raw):
    err = check_error(_post(app, "/api/v1/jobs", raw), 400, "invalid_json")
    assert err["message"]


def test_non_object_bodies_are_422(app, check_error):
    for raw in (b"[]", b"42", b'"job"', b"null"):
        err = check_error(_post(app, "/api/v1/jobs", raw), 422, "validation_failed")
        assert err["details"][0]["pointer"] == ""


def test_missing_and_wrong_fields_are_named(app, check_error):
    err = check_error(app.post_json("/api/v1/jobs", {"owner_service": 5, "priority": 1.5, "extra": 1}, status="*"),
                      422, "validation_failed")
    assert {d["pointer"] for d in err["details"]} == {"/owner_service", "/priority", "/extra", "/task_type", "/model_profile"}


@pytest.mark.parametrize("field,value", [
    ("owner_service", ""), ("owner_service", "a b"), ("owner_service", "x" * 101), ("task_type", "LLM"),
    ("model_profile", "bad profile"), ("priority", 10**30), ("priority", True), ("max_attempts", 0),
    ("run_after", "tomorrow"), ("run_after", "2026-11-24T09:00:00"), ("idempotency_key", ""),
    ("input", [1, 2]), ("owner_ref", None),
])
def test_each_bad_field_is_422_with_its_pointer(app, check_error, field, value, sql):
    err = check_error(app.post_json("/api/v1/jobs", {**JOB, field: value}, status="*"), 422, "validation_failed")
    assert err["details"][0]["pointer"] == f"/{field}"
    assert sql("SELECT count(*) AS n FROM jobs")[0]["n"] == 0


@pytest.mark.parametrize("raw,where", [
    ('{"text": "a\\u0000b"}', "/input/text"),
    ('{"k\\u0000": 1}', "/input/k\x00"),
    ('{"text": "\\ud800"}', "/input/text"),
    ('{"list": ["ok", "\\udfff"]}', "/input/list/1"),
])
def test_text_postgresql_cannot_store_is_422(app, check_error, raw, where):
    body = json.dumps({**JOB, "input": "PLACEHOLDER"}).replace('"PLACEHOLDER"', raw)
    err = check_error(_post(app, "/api/v1/jobs", body.encode()), 422, "validation_failed")
    assert err["details"][0]["pointer"] == where.replace("~", "~0").replace("/", "/")


def test_valid_surrogate_pairs_and_unicode_are_stored(app):
    body = json.dumps({**JOB, "input": {"text": "😀 привет \\u00e9"}})
    job = _post(app, "/api/v1/jobs", body.encode())
    assert job.status_int == 201
    assert job.json["input"]["text"].startswith("😀 привет")


def test_a_body_over_the_limit_is_413(app_with, check_error):
    client = app_with(http_max_body_bytes=200)
    check_error(client.post_json("/api/v1/jobs", {**JOB, "input": {"t": "x" * 300}}, status="*"), 413, "payload_too_large")
    client.post_json("/api/v1/jobs", JOB, status=201)


def test_a_body_without_content_length_over_the_limit_is_413(app_with):
    client = app_with(http_max_body_bytes=200)
    body = json.dumps({**JOB, "input": {"t": "x" * 300}}).encode()
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/api/v1/jobs", "SERVER_NAME": "localhost",
               "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
               "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(), "wsgi.version": (1, 0),
               "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False,
               "CONTENT_TYPE": "application/json", "HTTP_TRANSFER_ENCODING": "chunked",
               "wsgi.input_terminated": True}
    status = []
    chunks = client.app(environ, lambda s, h, exc_info=None: status.append(s))
    assert status[0].startswith("413")
    assert json.loads(b"".join(chunks))["error"]["code"] == "payload_too_large"


def test_deep_nesting_is_a_4xx(app):
    deep = "[" * 5000 + "]" * 5000
    body = json.dumps({**JOB, "input": {"deep": "X"}}).replace('"X"', deep)
    resp = _post(app, "/api/v1/jobs", body.encode())
    assert 400 <= resp.status_int < 500


def test_moderately_deep_input_is_stored(app):
    deep = "[" * 500 + "]" * 500
    body = json.dumps({**JOB, "input": {"deep": "X"}}).replace('"X"', deep)
    assert _post(app, "/api/v1/jobs", body.encode()).status_int == 201


def test_wrong_method_is_405_json(app, check_error):
    check_error(app.put_json("/api/v1/jobs", JOB, status="*"), 405, "method_not_allowed")
    check_error(app.delete(f"/api/v1/jobs/{UNKNOWN}", status="*"), 405, "method_not_allowed")
    check_error(app.get(f"/api/v1/jobs/{UNKNOWN}/complete", status="*"), 405, "method_not_allowed")


def test_unknown_route_is_404_json(app, check_error):
    check_error(app.get("/api/v2/everything", status="*"), 404, "not_found")


@pytest.mark.parametrize("path,body,pointer", [
    ("/api/v1/jobs/claim", {"worker_id": "w", "limit": 0}, "/limit"),
    ("/api/v1/jobs/claim", {"worker_id": "w", "limit": 101}, "/limit"),
    ("/api/v1/jobs/claim", {"limit": 1}, "/worker_id"),
    ("/api/v1/jobs/claim", {"worker_id": "w", "task_types": []}, "/task_types"),
    ("/api/v1/jobs/claim", {"worker_id": "w", "lease_seconds": 0}, "/lease_seconds"),
    (f"/api/v1/jobs/{UNKNOWN}/fail", {"worker_id": "w", "category": "Bad Category", "message": "m"}, "/category"),
    (f"/api/v1/jobs/{UNKNOWN}/fail", {"worker_id": "w", "category": "timeout"}, "/message"),
    (f"/api/v1/jobs/{UNKNOWN}/fail", {"worker_id": "w", "category": "timeout", "message": "m", "retry_after_seconds": -1}, "/retry_after_seconds"),
    (f"/api/v1/jobs/{UNKNOWN}/complete", {"worker_id": "w", "result": "text"}, "/result"),
    (f"/api/v1/jobs/{UNKNOWN}/complete", {"worker_id": "w"}, "/result"),
    (f"/api/v1/jobs/{UNKNOWN}/heartbeat", {"worker_id": ""}, "/worker_id"),
    (f"/api/v1/jobs/{UNKNOWN}/heartbeat", {"worker_id": "w", "attempt": 0}, "/attempt"),
])
def test_worker_endpoint_bodies_are_validated_before_the_job_is_looked_up(app, check_error, path, body, pointer):
    err = check_error(app.post_json(path, body, status="*"), 422, "validation_failed")
    assert err["details"][0]["pointer"] == pointer


GARBAGE = [b"", b"{", b"[]", b"null", b"0", b'"s"', b"{}", b'{"a":{"b":[1,2,{"c":null}]}}',
           b'{"worker_id": ["x"], "limit": "1"}', b'{"owner_service": {"$gt": ""}}',
           b'{"worker_id": "w", "result": {}, "category": "x", "message": "m", "jobs": [null]}',
           b'{"jobs": [[]], "defaults": []}', b'{"jobs": [{"owner_service": "a\\u0000"}]}',
           "{\"worker_id\": \"'; DROP TABLE jobs; --\", \"result\": {}}".encode(),
           b'{"priority": 1e400}', b'{"limit": 99999999999999999999999999}']


def test_garbage_never_answers_5xx_and_never_creates_a_job(app, sql):
    paths = ["/api/v1/jobs", "/api/v1/jobs/batch", "/api/v1/jobs/claim"]
    paths += [f"/api/v1/jobs/{UNKNOWN}/{a}" for a in ("heartbeat", "complete", "fail", "retry", "cancel")]
    for path in paths:
        for raw in GARBAGE:
            resp = _post(app, path, raw)
            assert 400 <= resp.status_int < 500, (path, raw, resp.status_int, resp.text)
            assert "error" in resp.json
    assert sql("SELECT count(*) AS n FROM jobs")[0]["n"] == 0
