import os
import signal
import subprocess
import sys
import time

import urllib3
from prometheus_client.parser import text_string_to_metric_families

from aiservice.localpg import free_port
from tests.conftest import JOB
from tests.fakes import chat_response, json_answer


def test_the_worker_serves_provider_latency_errors_and_outcomes(app, fake, database_url):
    calls = []
    fake.answer = lambda r: (calls.append(1), json_answer(500, {"error": "boom"}) if len(calls) == 1 else chat_response())[1]
    port = free_port()
    env = {**os.environ, "DATABASE_URL": database_url, "LLM_BASE_URL": fake.url + "/v1",
           "WORKER_METRICS_ADDR": f"127.0.0.1:{port}", "RETRY_BACKOFF_BASE": "100ms"}
    proc = subprocess.Popen([sys.executable, "-m", "aiservice", "worker"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        job = app.post_json("/api/v1/jobs", {**JOB, "task_type": "llm_chat", "model_profile": "qwen2.5-14b",
                                             "input": {"user": "hi"}}).json
        deadline = time.monotonic() + 15
        while app.get(f"/api/v1/jobs/{job['id']}").json["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        text = urllib3.request("GET", f"http://127.0.0.1:{port}/metrics").data.decode()
        samples = {(s.name, frozenset(s.labels.items())): s.value
                   for f in text_string_to_metric_families(text) for s in f.samples}
        assert samples[("aiservice_provider_request_duration_seconds_count", frozenset({("provider", "llm")}))] == 2
        assert samples[("aiservice_provider_errors_total",
                        frozenset({("provider", "llm"), ("category", "provider_unavailable")}))] == 1
        outcome = frozenset({("task_type", "llm_chat"), ("model_profile", "qwen2.5-14b")})
        assert samples[("aiservice_job_outcomes_total", outcome | {("outcome", "retried"), ("category", "provider_unavailable")})] == 1
        assert samples[("aiservice_job_outcomes_total", outcome | {("outcome", "completed"), ("category", "")})] == 1
        # Two attempts: claimed twice, each claim timed; the success went through the completer.
        assert samples[("aiservice_worker_claimed_jobs_total", frozenset())] == 2
        assert samples[("aiservice_worker_claim_duration_seconds_count", frozenset())] >= 2
        assert samples[("aiservice_worker_completion_batches_total", frozenset())] == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
