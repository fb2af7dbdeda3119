"""The worker against a fake OpenAI-compatible server: inputs, results, and every failure's category."""

import base64
import datetime as dt
import email.utils
import json
import time

import pytest

from aiservice.localpg import free_port
from tests.conftest import JOB
from tests.fakes import CLOSE, chat_response, json_answer, slow

CHAT = {**JOB, "task_type": "llm_chat", "model_profile": "qwen2.5-14b"}


@pytest.fixture
def llm_worker(start_worker, fake):
    def start(**changes):
        return start_worker(llm_base_url=fake.url + "/v1", **changes)
    return start


def _done(job):
    return job["status"] in ("completed", "failed")


def test_messages_input_completes_with_the_result_fields(app, llm_worker, fake, wait_for):
    fake.answer = lambda r: chat_response(content='{"topic": "billing"}', model="qwen2.5-14b-instruct")
    llm_worker()
    messages = [{"role": "system", "content": "Answer as JSON."}, {"role": "user", "content": "Classify"}]
    job = app.post_json("/api/v1/jobs", {**CHAT, "input": {"messages": messages, "max_tokens": 64,
                                                           "temperature": 0.2, "seed": 7}}).json
    done = wait_for(job["id"], _done)
    assert done["status"] == "completed", done["error"]
    result = done["result"]
    assert result["content"] == '{"topic": "billing"}'
    assert result["model"] == "qwen2.5-14b-instruct"
    assert result["usage"] == {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    assert result["finish_reason"] == "stop" and result["duration_ms"] >= 0
    [request] = fake.requests
    assert request.method == "POST" and request.path == "/v1/chat/completions"
    sent = request.json()
    assert sent == {"model": "qwen2.5-14b", "messages": messages, "stream": False,
                    "max_tokens": 64, "temperature": 0.2, "seed": 7}


def test_compact_input_becomes_system_and_user_messages(app, llm_worker, fake, wait_for):
    llm_worker()
    job = app.post_json("/api/v1/jobs", {**CHAT, "task_type": "chat_completion",
                                         "input": {"system": "Be brief.", "user": "Hi"}}).json
    assert wait_for(job["id"], _done)["status"] == "completed"
    assert fake.requests[0].json()["messages"] == [{"role": "system", "content": "Be brief."},
                                                   {"role": "user", "content": "Hi"}]


def test_authorization_is_sent_only_when_a_key_is_set(app, llm_worker, fake, wait_for):
    llm_worker(llm_api_key="sk-test-123")
    job = app.post_json("/api/v1/jobs", {**CHAT, "input": {"user": "a"}}).json
    wait_for(job["id"], _done)
    assert fake.requests[-1].headers["authorization"] == "Bearer sk-test-123"


def test_no_authorization_header_without_a_key(app, llm_worker, fake, wait_for):
    llm_worker()
    job = app.post_json("/api/v1/jobs", {**CHAT, "input": {"user": "a"}}).json
    wait_for(job["id"], _done)
    assert "authorization" not in fake.requests[-1].headers


def test_user_info_in_the_base_url_becomes_basic_auth_and_the_query_is_kept(app, start_worker, fake, wait_for):
    base = fake.url.replace("http://", "http://svc:p%40ss@") + "/v1?api-version=2024-06-01"
    start_worker(llm_base_url=base)
    job = app.post_json("/api/v1/jobs", {**CHAT, "input": {"user": "a"}}).json
    assert wait_for(job["id"], _done)["status"] == "completed"
    request = fake.requests[-1]
    assert request.path == "/v1/chat/completions" and request.query == {"api-version": ["2024-06-01"]}
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"svc:p@ss").decode()


def test_missing_usage_is_null_safe(app, llm_worker, fake, wait_for):
    fake.answer = lambda r: chat_response(usage=False)
    llm_worker()
    job = app.post_json("/api/v1/jobs", {**CHAT, "input": {"user": "a"}}).json
    done = wait_for(job["id"], _done)
    assert done["result"]["usage"] == {"prompt_tokens": None, "completion_tokens": None, "total_tokens": None}


def test_invalid_input_fails_without_calling_the_provider(llm_worker, fake, sql, wait_for):
    # Written past the API, as another system or an older version might have.
    [row] = sql("INSERT INTO jobs (id, owner_service, task_type, model_profile, input) "
                "VALUES (gen_random_uuid(), 't', 'llm_chat', 'qwen2.5-14b', '{\"messages\": []}') RETURNING id")
    llm_worker()
    done = wait_for(row["id"], _done)
    assert done["status"] == "failed" and done["error"]["category"] == "invalid_input"
    assert "/input/messages" in done["error"]["message"]
    assert fake.requests == []


def test_only_jobs_of_its_model_profile_are_claimed(app, llm_worker, fake, wait_for):
    llm_worker()
    other = app.post_json("/api/v1/jobs", {**CHAT, "model_profile": "llama-70b", "input": {"user": "a"}}).json
    mine = app.post_json("/api/v1/jobs", {**CHAT, "input": {"user": "a"}}).json
    wait_for(mine["id"], _done)
    time.sleep(0.2)
    assert app.get(f"/api/v1/jobs/{other['id']}").json["status"] == "pending"


def _error_case(app, llm_worker, fake, wait_for, answer, **changes):
    fake.answer = answer
    llm_worker(**changes)
    job = app.post_json("/api/v1/jobs", {**CHAT, "input": {"user": "a"}, "max_attempts": 3}).json
    return wait_for(job["id"], lambda j: j["attempts"] >= 1 and j["status"] != "running")


@pytest.mark.parametrize("answer,category,status", [
    (lambda r: json_answer(400, {"error": {"message": "maximum context length is 4096 tokens", "code": "context_length_exceeded"}}),
     "invalid_input", "failed"),
    (lambda r: json_answer(401, {"error": {"message": "Incorrect API key provided"}}), "provider_error", "failed"),
    (lambda r: json_answer(404, {"object": "error", "message": "model not found"}), "provider_error", "failed"),
    (lambda r: json_answer(429, {"error": {"message": "You exceeded your current quota"}}), "rate_limited", "failed"),
    (lambda r: json_answer(500, {"error": {"message": "boom"}}), "provider_unavailable", "pending"),
    (lambda r: json_answer(503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}),
     "provider_unavailable", "pending"),
    (lambda r: (200, {"Content-Type": "application/json"}, b"<html>gateway</html>"), "invalid_output", "failed"),
    (lambda r: (200, {"Content-Type": "application/json"}, b'{"choices": [{"message": '), "invalid_output", "failed"),
    (lambda r: json_answer(200, {"choices": []}), "invalid_output", "failed"),
    (lambda r: CLOSE, "provider_unavailable", "pending"),
])
def test_failures_map_to_categories(app, llm_worker, fake, wait_for, answer, category, status):
    job = _error_case(app, llm_worker, fake, wait_for, answer)
    assert (job["error"]["category"], job["status"]) == (category, status), job["error"]
    assert job["errors"][0]["attempt"] == 1


def test_provider_messages_are_kept_but_the_key_is_scrubbed(app, llm_worker, fake, wait_for):
    job = _error_case(app, llm_worker, fake, wait_for,
                      lambda r: json_answer(401, {"error": {"message": "Incorrect API key provided: sk-live-SECRET"}}),
                      llm_api_key="sk-live-SECRET")
    assert "Incorrect API key provided" in job["error"]["message"]
    assert "sk-live-SECRET" not in json.dumps(job, default=str)


def test_429_retry_after_seconds_sets_the_next_attempt(app, llm_worker, fake, wait_for):
    job = _error_case(app, llm_worker, fake, wait_for,
                      lambda r: json_answer(429, {"error": {"message": "slow down"}}, **{"Retry-After": "7"}))
    assert job["status"] == "pending" and job["error"]["category"] == "rate_limited"
    wait = (job["run_after"] - job["updated_at"]).total_seconds()
    assert 6.9 <= wait <= 7.1


def test_429_retry_after_http_date(app, llm_worker, fake, wait_for):
    when = email.utils.format_datetime(dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=20), usegmt=True)
    job = _error_case(app, llm_worker, fake, wait_for,
                      lambda r: json_answer(429, {"error": {"message": "slow"}}, **{"Retry-After": when}))
    wait = (job["run_after"] - job["updated_at"]).total_seconds()
    assert 17 <= wait <= 21


def test_a_slow_provider_times_out(app, llm_worker, fake, wait_for):
    job = _error_case(app, llm_worker, fake, wait_for, slow(3), llm_timeout=0.5)
    assert job["error"]["category"] == "timeout" and job["status"] == "pending"


def test_llm_timeout_bounds_the_whole_call_even_when_bytes_trickle(app, llm_worker, fake, wait_for):
    def trickle(request):
        body = json.dumps({"choices": [{"message": {"content": "x" * 40}}]}).encode()
        def chunks():
            for byte in body:
                time.sleep(0.05)
                yield bytes([byte])
        return 200, {"Content-Type": "application/json", "Content-Length": str(len(body))}, chunks()

    job = _error_case(app, llm_worker, fake, wait_for, trickle, llm_timeout=1.0)
    assert job["error"]["category"] == "timeout", job["error"]
    # The trickle would take 2 s or more; the attempt was cut at the 1 s bound.
    assert (job["updated_at"] - job["started_at"]).total_seconds() < 1.6


def test_a_refused_connection_is_provider_unavailable(app, start_worker, wait_for):
    start_worker(llm_base_url=f"http://127.0.0.1:{free_port()}/v1")
    job = app.post_json("/api/v1/jobs", {**CHAT, "input": {"user": "a"}}).json
    job = wait_for(job["id"], lambda j: j["attempts"] >= 1 and j["status"] != "running")
    assert job["error"]["category"] == "provider_unavailable" and job["status"] == "pending"
    assert "cannot connect to http://127.0.0.1" in job["error"]["message"]


def test_retryable_failures_are_retried_after_the_backoff_and_then_succeed(app, llm_worker, fake, wait_for):
    calls = []

    def answer(request):
        calls.append(time.monotonic())
        return json_answer(503, {"error": "busy"}) if len(calls) < 3 else chat_response("third time")

    fake.answer = answer
    llm_worker(retry_backoff_base=0.3, retry_backoff_max=1.0)
    job = app.post_json("/api/v1/jobs", {**CHAT, "input": {"user": "a"}}).json
    done = wait_for(job["id"], _done, timeout=15)
    assert done["status"] == "completed" and done["attempts"] == 3
    assert [e["category"] for e in done["errors"]] == ["provider_unavailable", "provider_unavailable"]
    assert calls[1] - calls[0] >= 0.3 * 0.5 - 0.05  # the backoff was honoured
    assert calls[2] - calls[1] >= 0.6 * 0.5 - 0.05


def test_a_handler_exception_does_not_kill_the_worker(app, start_worker, wait_for, monkeypatch):
    from aiservice.worker import handlers

    worker = start_worker(llm_base_url="http://127.0.0.1:9/v1")
    calls = []

    def explode(self, job):
        calls.append(job["id"])
        if len(calls) == 1:
            raise KeyError("secret-thing")
        return {"content": "fine"}

    monkeypatch.setattr(handlers.LLMChat, "run", explode)
    first = app.post_json("/api/v1/jobs", {**CHAT, "input": {"user": "a"}, "max_attempts": 1}).json
    failed = wait_for(first["id"], _done)
    assert failed["error"] == {"category": "internal", "message": "KeyError in the llm handler"}
    second = app.post_json("/api/v1/jobs", {**CHAT, "input": {"user": "b"}}).json
    assert wait_for(second["id"], _done)["status"] == "completed"
    assert worker.ready.is_set()
