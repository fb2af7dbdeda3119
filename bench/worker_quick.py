"""Quick worker figures: pickup latency of an idle worker, and burn-down jobs/s
against a zero-latency fake OpenAI-compatible server on loopback.

    .venv/bin/python bench/worker_quick.py [--jobs 3000] [--threads 8]

Starts its own durable PostgreSQL (fsync and synchronous_commit on), the fake
provider in a separate process, and the real `aiservice worker` process. Latency
is measured by the database's own clock: started_at - created_at. Not the full
benchmark (that is bench/run, issue 5); a smoke check with honest numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import psycopg

from aiservice import migrations
from aiservice.config import Settings
from aiservice.localpg import LocalPostgres, free_port

FAKE = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BODY = json.dumps({"model": "m", "choices": [{"message": {"role": "assistant", "content": "ok"},
                   "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY))); self.end_headers(); self.wfile.write(BODY)
s = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H); s.daemon_threads = True; s.serve_forever()
"""

INPUT = json.dumps({"messages": [{"role": "user", "content": "Classify this text " + "x" * 250}], "max_tokens": 16})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--samples", type=int, default=50)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="aiservice-bench-")
    cluster = LocalPostgres(root)  # durable defaults
    cluster.init()
    cluster.start()
    procs = []
    try:
        url = cluster.create_database("bench")
        migrations.migrate(Settings(database_url=url))
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-c", FAKE, str(port)]))
        env = {**os.environ, "DATABASE_URL": url, "LLM_BASE_URL": f"http://127.0.0.1:{port}/v1",
               "WORKER_CONCURRENCY": str(args.threads), "WORKER_CLAIM_LIMIT": str(args.threads),
               "WORKER_POLL_INTERVAL": "10s", "LOG_LEVEL": "WARNING"}
        worker = subprocess.Popen([sys.executable, "-m", "aiservice", "worker"], env=env)
        procs.append(worker)
        with psycopg.connect(url, autocommit=True) as conn:
            time.sleep(2)  # the worker connects and goes idle
            latencies = []
            for _ in range(args.samples):
                job_id = uuid.uuid4()
                conn.execute("INSERT INTO jobs (id, owner_service, task_type, model_profile, input) "
                             "VALUES (%s, 'bench', 'llm_chat', 'qwen2.5-14b', %s)", [job_id, INPUT])
                while True:
                    row = conn.execute("SELECT extract(epoch FROM started_at - created_at) FROM jobs "
                                       "WHERE id = %s AND started_at IS NOT NULL", [job_id]).fetchone()
                    if row:
                        latencies.append(float(row[0]) * 1000)
                        break
                    time.sleep(0.002)
                time.sleep(0.05)
            conn.execute("DELETE FROM jobs")
            started = time.monotonic()
            conn.execute("INSERT INTO jobs (id, owner_service, task_type, model_profile, input) "
                         "SELECT gen_random_uuid(), 'bench', 'llm_chat', 'qwen2.5-14b', %s "
                         "FROM generate_series(1, %s)", [INPUT, args.jobs])
            while conn.execute("SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()[0] < args.jobs:
                time.sleep(0.05)
            elapsed = time.monotonic() - started
        latencies.sort()
        print(json.dumps({
            "pickup_latency_ms": {"p50": round(statistics.median(latencies), 2),
                                  "p99": round(latencies[int(len(latencies) * 0.99) - 1], 2),
                                  "max": round(latencies[-1], 2), "samples": len(latencies)},
            "burn_down": {"jobs": args.jobs, "seconds": round(elapsed, 2),
                          "jobs_per_second": round(args.jobs / elapsed, 1), "threads": args.threads},
        }, indent=2))
    finally:
        for proc in reversed(procs):
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        cluster.stop("fast")
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
