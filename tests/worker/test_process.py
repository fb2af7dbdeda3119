"""The real `aiservice worker` process: end to end, signals, start-up order."""

import base64
import json
import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from aiservice import migrations
from aiservice.config import Settings
from tests.conftest import JOB
from tests.fakes import slow
from tests.worker.test_transcribe import ASR_JSON, WAV

CHAT = {**JOB, "task_type": "llm_chat", "model_profile": "qwen2.5-14b", "input": {"user": "hi"}}


@pytest.fixture
def worker_process(database_url):
    procs = []

    def start(env_changes, url=None):
        env = {**os.environ, "DATABASE_URL": url or database_url, "WORKER_ID": "proc-1",
               "WORKER_POLL_INTERVAL": "10s", "LOG_LEVEL": "INFO", **env_changes}
        proc = subprocess.Popen([sys.executable, "-m", "aiservice", "worker"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _wait_status(app, job_id, statuses, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = app.get(f"/api/v1/jobs/{job_id}").json
        if job["status"] in statuses:
            return job
        time.sleep(0.05)
    raise AssertionError(f"job still {job['status']}")


def test_jobs_created_over_the_api_are_completed_by_the_worker_process(app, fake, worker_process):
    proc = worker_process({"LLM_BASE_URL": fake.url + "/v1", "LLM_API_KEY": "sk-proc-secret"})
    jobs = [app.post_json("/api/v1/jobs", CHAT).json for _ in range(5)]
    for job in jobs:
        assert _wait_status(app, job["id"], {"completed"})["result"]["content"] == "ok"
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output
    assert output.count(" completed ") == 5
    assert "job_id=" in output and "task_type=llm_chat" in output and "attempt=1" in output
    assert "sk-proc-secret" not in output


def test_sigterm_with_a_slow_job_in_flight_finishes_it_and_exits_zero(app, fake, worker_process):
    fake.answer = slow(1.5)
    proc = worker_process({"LLM_BASE_URL": fake.url + "/v1"})
    job = app.post_json("/api/v1/jobs", CHAT).json
    _wait_status(app, job["id"], {"running"})
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output
    assert app.get(f"/api/v1/jobs/{job['id']}").json["status"] == "completed"


def test_sigterm_past_the_grace_period_hands_the_job_back(app, fake, worker_process):
    fake.answer = slow(5)
    proc = worker_process({"LLM_BASE_URL": fake.url + "/v1", "WORKER_SHUTDOWN_GRACE": "500ms"})
    job = app.post_json("/api/v1/jobs", CHAT).json
    _wait_status(app, job["id"], {"running"})
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, output
    back = app.get(f"/api/v1/jobs/{job['id']}").json
    assert back["status"] == "pending" and back["attempts"] == 0


def test_a_second_signal_exits_at_once(app, fake, worker_process):
    fake.answer = slow(10)
    proc = worker_process({"LLM_BASE_URL": fake.url + "/v1"})
    job = app.post_json("/api/v1/jobs", CHAT).json
    _wait_status(app, job["id"], {"running"})
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=5)
    assert time.monotonic() - started < 2
    assert proc.returncode != 0


def test_without_providers_the_worker_says_what_to_set(worker_process):
    proc = worker_process({"LLM_BASE_URL": "", "WHISPERX_URL": ""})
    output, _ = proc.communicate(timeout=20)
    assert proc.returncode != 0
    assert "no providers configured: set LLM_BASE_URL and/or WHISPERX_URL" in output


def test_a_worker_started_before_migrations_waits_for_them(empty_database, fake, worker_process):
    url = empty_database()
    proc = worker_process({"LLM_BASE_URL": fake.url + "/v1", "WORKER_POLL_INTERVAL": "200ms"}, url=url)
    time.sleep(1.5)
    assert proc.poll() is None
    migrations.migrate(Settings(database_url=url))
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO jobs (id, owner_service, task_type, model_profile, input) VALUES "
                     "(gen_random_uuid(), 't', 'llm_chat', 'qwen2.5-14b', '{\"user\": \"hi\"}')")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with psycopg.connect(url) as conn:
            if conn.execute("SELECT status FROM jobs").fetchone()[0] == "completed":
                break
        time.sleep(0.1)
    else:
        raise AssertionError("the job was not completed")
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=20)
    assert "waiting for the database and its migrations" in output


def test_a_transcription_is_completed_by_the_worker_process(app, fake, worker_process):
    fake.answer = lambda r: (200, {"Content-Type": "text/plain"}, json.dumps(ASR_JSON).encode())
    proc = worker_process({"WHISPERX_URL": fake.url, "WHISPERX_API": "asr"})
    job = app.post_json("/api/v1/jobs", {**JOB, "task_type": "transcribe", "model_profile": "whisperx",
                                         "input": {"audio_base64": base64.b64encode(WAV).decode()}}).json
    done = _wait_status(app, job["id"], {"completed", "failed"})
    assert done["status"] == "completed" and done["result"]["text"] == "Hello there. Hi."
    assert fake.requests[0].multipart()[0][0] == "audio_file"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
