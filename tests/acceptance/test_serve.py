"""The real thing: `aiservice serve` (gunicorn, gthread workers) over HTTP on 127.0.0.1."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import urllib3

from aiservice.localpg import free_port

JOB = {"owner_service": "telephony", "owner_ref": "beeline/1", "task_type": "llm_chat",
       "model_profile": "qwen2.5-14b", "input": {"user": "Classify this text", "max_tokens": 16}}


class Server:
    def __init__(self, argv, env):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **env, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(self.port), "HTTP_WORKERS": "2"}
        self.proc = subprocess.Popen(argv + ([f"--bind=127.0.0.1:{self.port}"] if "gunicorn" in argv[2] else []),
                                     env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=10), retries=False)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.proc.stdout.read()}")
            try:
                if self.http.request("GET", self.base + "/readyz").status == 200:
                    return
            except urllib3.exceptions.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError("server did not become ready")

    def call(self, method, path, body=None, headers=None, **kw):
        data = json.dumps(body).encode() if body is not None else None
        resp = self.http.request(method, self.base + path, body=data,
                                 headers={"Content-Type": "application/json", **(headers or {})}, **kw)
        return resp.status, (json.loads(resp.data) if resp.data else None), resp.headers

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=35)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.returncode


@pytest.fixture
def serve(empty_database):
    servers = []

    def start(argv=None, **env):
        url = empty_database()
        argv = argv or [sys.executable, "-m", "aiservice", "serve"]
        server = Server(argv, {"DATABASE_URL": url, **env})
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_serve_migrates_and_runs_a_job_through_its_life(serve):
    s = serve()
    status, job, headers = s.call("POST", "/api/v1/jobs", JOB)
    assert status == 201 and headers["X-Request-ID"]
    status, claimed, _ = s.call("POST", "/api/v1/jobs/claim", {"worker_id": "gpu-1", "limit": 4})
    assert [j["id"] for j in claimed["jobs"]] == [job["id"]]
    status, done, _ = s.call("POST", f"/api/v1/jobs/{job['id']}/complete",
                             {"worker_id": "gpu-1", "attempt": 1, "result": {"content": "spam"}})
    assert status == 200 and done["status"] == "completed"
    assert s.call("GET", f"/api/v1/jobs/{job['id']}")[1]["result"] == {"content": "spam"}
    assert s.stop() == 0


def test_idempotent_create_race_over_http(serve):
    s = serve()
    results, barrier = [], threading.Barrier(12)

    def post():
        barrier.wait()
        status, body, _ = s.call("POST", "/api/v1/jobs", {**JOB, "idempotency_key": "once"})
        results.append((status, body["id"]))

    threads = [threading.Thread(target=post) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(st for st, _ in results) == [200] * 11 + [201]
    assert len({i for _, i in results}) == 1


def test_chunked_request_bodies_are_read(serve):
    s = serve()
    body = json.dumps(JOB).encode()
    resp = s.http.request("POST", s.base + "/api/v1/jobs", body=iter([body[:10], body[10:]]),
                          headers={"Content-Type": "application/json"}, chunked=True)
    assert resp.status == 201, resp.data


def test_plain_gunicorn_entry_point_works(serve):
    s = serve([sys.executable, "-m", "gunicorn", "aiservice.wsgi:app", "--worker-class=gthread", "--threads=4"])
    assert s.call("POST", "/api/v1/jobs", JOB)[0] == 201
    assert s.call("GET", "/readyz")[0] == 200


def test_serve_without_database_url_stops_with_one_clear_line():
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    result = subprocess.run([sys.executable, "-m", "aiservice", "serve"], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert result.stderr.strip() == "aiservice: DATABASE_URL is not set: point it at PostgreSQL, " \
                                    "e.g. postgresql://user@127.0.0.1:5432/aiservice"


def test_serve_with_a_bad_value_names_the_variable(database_url):
    env = {**os.environ, "DATABASE_URL": database_url, "HTTP_PORT": "http"}
    result = subprocess.run([sys.executable, "-m", "aiservice", "serve"], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and result.stderr.strip().startswith("aiservice: HTTP_PORT: invalid value")


def test_sigterm_lets_requests_finish_and_exits_zero(serve):
    s = serve()
    for _ in range(5):
        assert s.call("POST", "/api/v1/jobs", JOB)[0] == 201
    started = time.monotonic()
    assert s.stop() == 0
    assert time.monotonic() - started < 10
    with pytest.raises(urllib3.exceptions.HTTPError):
        s.http.request("GET", s.base + "/healthz")


def test_json_logs_one_object_per_line_with_the_request_id_and_no_secret(serve):
    s = serve(LOG_FORMAT="json", LLM_API_KEY="sk-never-log-me")
    status, _, headers = s.call("POST", "/api/v1/jobs", JOB, headers={"X-Request-ID": "trace-42"})
    assert status == 201 and headers["X-Request-ID"] == "trace-42"
    s.call("GET", "/api/v1/jobs/not-a-job")
    assert s.stop() == 0
    output = s.proc.stdout.read()
    entries = [json.loads(line) for line in output.splitlines() if line.strip()]
    access = [e for e in entries if e["logger"] == "gunicorn.access"]
    assert {"method": "POST", "path": "/api/v1/jobs", "status": 201, "request_id": "trace-42"}.items() <= access[-2].items()
    assert access[-1]["status"] == 404
    assert "sk-never-log-me" not in output and "Classify this text" not in output


def test_metrics_add_up_across_gunicorn_worker_processes(serve):
    from prometheus_client.parser import text_string_to_metric_families

    s = serve(HTTP_WORKERS="2")
    for _ in range(20):
        assert s.call("POST", "/api/v1/jobs", JOB)[0] == 201
    seen = set()
    for _ in range(6):
        resp = s.http.request("GET", s.base + "/metrics")
        total = sum(sample.value for family in text_string_to_metric_families(resp.data.decode())
                    for sample in family.samples
                    if sample.name == "aiservice_http_requests_total"
                    and sample.labels == {"method": "POST", "route": "/api/v1/jobs", "status": "201"})
        seen.add(total)
    assert seen == {20.0}  # every scrape, whichever process answers, reports all 20
