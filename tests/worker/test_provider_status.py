"""GET /api/v1/providers/status: probes without completions, never a secret."""

import dataclasses
import json
import time

import webtest

from aiservice.api.app import create_app
from aiservice.localpg import free_port
from tests.fakes import FakeProvider, json_answer

KEY = "sk-live-TOPSECRET"


def _client(settings, schemas, **changes):
    return webtest.TestApp(create_app(dataclasses.replace(settings, **changes), schemas=schemas))


def test_reachable_providers_with_their_models(settings, schemas):
    def answer(request):
        if request.path == "/v1/models":
            return json_answer(200, {"object": "list", "data": [{"id": "qwen2.5-14b"}, {"id": "other"}]})
        if request.path == "/docs":
            return 200, {"Content-Type": "text/html"}, b"<html>docs</html>"
        return 404, {}, b""

    fake = FakeProvider(answer)
    try:
        base = fake.url.replace("http://", f"http://user:{KEY}@")
        client = _client(settings, schemas, llm_base_url=base + "/v1?token=" + KEY, llm_api_key=KEY,
                         whisperx_url=fake.url)
        body = client.get("/api/v1/providers/status").json
        text = json.dumps(body)
        assert KEY not in text and "user" not in text and "token" not in text
        llm, whisperx = body["providers"]
        assert llm["reachable"] and llm["ok"] and llm["status_code"] == 200 and llm["kind"] == "openai-compatible"
        assert llm["models"] == ["qwen2.5-14b", "other"] and llm["model_available"] is True
        assert llm["url"] == fake.url + "/v1" and llm["latency_ms"] >= 0
        assert whisperx["reachable"] and whisperx["ok"] and whisperx["kind"] == "whisperx-asr"
        assert body["healthy"] is True
        paths = [r.path for r in fake.requests]
        assert sorted(paths) == ["/docs", "/v1/models"]  # no completion was sent
        assert fake.requests[paths.index("/v1/models")].headers["authorization"] == f"Bearer {KEY}"
    finally:
        fake.close()


def test_a_provider_that_does_not_serve_the_model_is_not_ok(settings, schemas):
    fake = FakeProvider(lambda r: json_answer(200, {"data": [{"id": "llama-3-8b"}]}))
    try:
        llm = _client(settings, schemas, llm_base_url=fake.url + "/v1").get("/api/v1/providers/status").json["providers"][0]
        assert llm["reachable"] and not llm["ok"] and llm["model_available"] is False
        assert "does not list the model qwen2.5-14b" in llm["error"]
    finally:
        fake.close()


def test_results_are_cached_briefly(settings, schemas):
    fake = FakeProvider(lambda r: json_answer(200, {"data": []}))
    try:
        client = _client(settings, schemas, llm_base_url=fake.url + "/v1")
        client.get("/api/v1/providers/status")
        client.get("/api/v1/providers/status")
        assert len(fake.requests) == 1
    finally:
        fake.close()


def test_unreachable_and_unconfigured_providers(settings, schemas):
    client = _client(settings, schemas, llm_base_url=f"http://127.0.0.1:{free_port()}/v1", llm_api_key=KEY)
    started = time.monotonic()
    body = client.get("/api/v1/providers/status").json
    assert time.monotonic() - started < 5
    llm, whisperx = body["providers"]
    assert llm["configured"] and not llm["reachable"] and not llm["ok"] and "cannot connect" in llm["error"]
    assert whisperx["configured"] is False
    assert body["healthy"] is False
    assert KEY not in json.dumps(body)


def test_a_rejected_key_is_reported_without_the_key(settings, schemas):
    fake = FakeProvider(lambda r: json_answer(401, {"error": {"message": f"Incorrect API key provided: {KEY}"}}))
    try:
        body = _client(settings, schemas, llm_base_url=fake.url + "/v1", llm_api_key=KEY).get(
            "/api/v1/providers/status").json
        llm = body["providers"][0]
        assert llm["status_code"] == 401 and llm["reachable"] is True and llm["ok"] is False
        assert body["healthy"] is False
        assert "Incorrect API key provided" in llm["error"] and KEY not in json.dumps(body)
    finally:
        fake.close()


def test_a_slow_provider_is_cut_off(settings, schemas):
    fake = FakeProvider(lambda r: (time.sleep(6), json_answer(200, {"data": []}))[1])
    try:
        started = time.monotonic()
        body = _client(settings, schemas, llm_base_url=fake.url + "/v1").get("/api/v1/providers/status").json
        assert time.monotonic() - started < 4.5
        assert body["providers"][0]["reachable"] is False
        assert "did not answer" in body["providers"][0]["error"]
    finally:
        fake.close()
