import json
import logging

from aiservice import logs


def _record(name="aiservice.worker.runner", msg="job %s completed", args=("j1",), **extra):
    record = logging.LogRecord(name, logging.INFO, __file__, 1, msg, args, None)
    for k, v in extra.items():
        setattr(record, k, v)
    return record


def test_json_lines_carry_the_structured_fields():
    line = logs.JSONFormatter().format(_record(job_id="j1", task_type="llm_chat", attempt=2, category=None))
    entry = json.loads(line)
    assert entry["message"] == "job j1 completed" and entry["level"] == "info"
    assert entry["job_id"] == "j1" and entry["task_type"] == "llm_chat" and entry["attempt"] == 2
    assert "category" not in entry


def test_text_lines_append_the_fields():
    line = logs.TextFormatter().format(_record(job_id="j1", attempt=1))
    assert line.endswith("job j1 completed job_id=j1 attempt=1")


def test_gunicorn_access_records_become_request_fields():
    atoms = {"m": "POST", "U": "/api/v1/jobs", "s": "201", "h": "127.0.0.1", "B": "588", "M": "7",
             "{x-request-id}o": "abc-123", "r": "POST /api/v1/jobs HTTP/1.1"}
    record = _record("gunicorn.access", '%(h)s "%(r)s" %(s)s', atoms)
    entry = json.loads(logs.JSONFormatter().format(record))
    assert entry["method"] == "POST" and entry["path"] == "/api/v1/jobs" and entry["status"] == 201
    assert entry["request_id"] == "abc-123" and entry["duration_ms"] == 7


def test_the_request_id_of_the_current_request_is_added():
    token = logs.request_id.set("rid-9")
    try:
        record = _record()
        logs._RequestIdFilter().filter(record)
        assert json.loads(logs.JSONFormatter().format(record))["request_id"] == "rid-9"
    finally:
        logs.request_id.reset(token)
