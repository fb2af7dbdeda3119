"""AI Service benchmark: every figure beside a ceiling measured in the same run,
on the same PostgreSQL (durable: fsync and synchronous_commit on).

    bench/run --quick      # smoke run, < 2 minutes
    bench/run              # full run

Prints one table and writes the same as JSON under bench/results/. See
bench/README.md for what each figure means and what was found.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import psycopg
import urllib3

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aiservice import migrations  # noqa: E402
from aiservice.config import Settings  # noqa: E402
from aiservice.db import Database  # noqa: E402
from aiservice.jobs import JobStore  # noqa: E402
from aiservice.localpg import LocalPostgres, find_bindir, free_port  # noqa: E402
from aiservice.queries import Q  # noqa: E402
from aiservice.schemas import Schemas  # noqa: E402

CHAT_INPUT = {"messages": [{"role": "system", "content": "Answer as JSON."},
                           {"role": "user", "content": "Classify this call transcript: " + "lorem ipsum " * 20}],
              "max_tokens": 64}
JOB = {"owner_service": "bench", "owner_ref": "call/1", "task_type": "llm_chat",
       "model_profile": "qwen2.5-14b", "input": CHAT_INPUT}

# A zero-latency OpenAI-compatible provider: raw sockets, keep-alive, one canned
# answer. http.server spent ~175 µs of CPU per call on these two shared cores;
# this spends ~45 µs, so the figure measures the worker, not the fake.
FAKE_PROVIDER = r"""
import json, socket, sys, threading
BODY = json.dumps({"model": "m", "choices": [{"message": {"role": "assistant", "content": "ok"},
                   "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(BODY) + BODY
def serve(conn):
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    with conn:
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
                continue
            length = 0
            for line in buf[:end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            while len(buf) < end + 4 + length:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            buf = buf[end + 4 + length:]
            conn.sendall(ANSWER)
server = socket.create_server(("127.0.0.1", int(sys.argv[1])), backlog=256)
while True:
    conn, _ = server.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""


# --- processes --------------------------------------------------------------------------

class Bench:
    def __init__(self, quick: bool):
        self.quick = quick
        # Throughput figures: service and ceiling measured in turn, `repeats`
        # times, `seconds` each; the table shows medians and the median ratio.
        self.seconds = 6 if quick else 10
        self.repeats = 1 if quick else 3
        self.root = tempfile.mkdtemp(prefix="aiservice-bench-")
        self.pg = LocalPostgres(self.root)  # durable defaults: fsync and synchronous_commit on
        self.procs: list[subprocess.Popen] = []
        self.results: list[dict] = []
        self.http = urllib3.PoolManager(maxsize=32, retries=False, timeout=30)

    def start(self) -> None:
        self.pg.init()
        self.pg.start()

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.pg.stop("fast")
        shutil.rmtree(self.root, ignore_errors=True)

    def database(self, name: str) -> str:
        url = self.pg.create_database(name)
        migrations.migrate(Settings(database_url=url))
        return url

    def spawn(self, argv, env=None, wait_url=None) -> subprocess.Popen:
        proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        if wait_url:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if self.http.request("GET", wait_url, timeout=1).status < 500:
                        return proc
                except urllib3.exceptions.HTTPError:
                    pass
                time.sleep(0.2)
            raise RuntimeError(f"{argv} did not come up")
        return proc

    def end(self, proc) -> None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=40)
        self.procs.remove(proc)

    def api(self, url: str, app: str = "aiservice.wsgi:app", **env) -> tuple[subprocess.Popen, str]:
        """The API under the production gunicorn config (or another app under the same settings)."""
        port = free_port()
        argv = [sys.executable, "-m", "gunicorn", "-c", "python:aiservice.gunicorn_conf", app]
        proc = self.spawn(argv, {"DATABASE_URL": url, "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(port),
                                 "MIGRATE_ON_START": "false", "LOG_LEVEL": "WARNING",
                                 "PYTHONPATH": str(ROOT / "bench"), **env},
                          wait_url=f"http://127.0.0.1:{port}/healthz" if app.startswith("aiservice") else None)
        base = f"http://127.0.0.1:{port}"
        if not app.startswith("aiservice"):
            time.sleep(2)
        return proc, base

    def record(self, figure, value, unit, ceiling=None, ceiling_name=None, target=None, ratio=None,
               **extra) -> dict:
        if ratio is None:
            ratio = round(value / ceiling, 3) if ceiling else None
        ok = None
        if target is not None:
            kind, bound = target
            measured = ratio if kind == "ratio>=" else value
            if kind == "within":
                ok = abs(value - 1) <= bound
            else:
                ok = measured >= bound if kind in ("ratio>=", ">=") else measured <= bound
        row = {"figure": figure, "value": round(value, 2), "unit": unit,
               "ceiling": round(ceiling, 2) if ceiling else None, "ceiling_name": ceiling_name,
               "ratio": round(ratio, 3) if ratio is not None else None, "target": f"{target[0]} {target[1]}" if target else None, "ok": ok, **extra}
        self.results.append(row)
        print(f"  {figure}: {row['value']} {unit}" + (f" / {row['ceiling']} ({ceiling_name}) = {row['ratio']}"
                                                    if ceiling else "")
              + (f"  target {row['target']}: {'OK' if ok else 'MISSED'}" if target else ""), flush=True)
        return row


# --- load generators ----------------------------------------------------------------------

def wrk(url: str, body: str, connections: int, seconds: int) -> dict:
    """POST ``body`` to ``url`` with wrk; requests/s, non-2xx count, and wrk's share of the CPU."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                 f"wrk.body = {json.dumps(body)}\n")
    script.close()
    started = time.monotonic()
    proc = subprocess.Popen(["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency",
                             "-s", script.name, url], stdout=subprocess.PIPE, text=True)
    cpu = _cpu_seconds_until_exit(proc)
    out = proc.stdout.read()
    proc.wait()
    elapsed = time.monotonic() - started
    os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)", out)
    return {"rps": rps, "non_2xx": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(1) if errors else None,
            "p50_ms": _to_ms(p50) if p50 else None, "wrk_cpu_share": round(cpu / (elapsed * os.cpu_count()), 3)}


def _to_ms(match) -> float:
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def _cpu_seconds_until_exit(proc) -> float:
    """User+system CPU of a child, read from /proc just before it exits."""
    ticks = os.sysconf("SC_CLK_TCK")
    last = 0.0
    while proc.poll() is None:
        try:
            fields = open(f"/proc/{proc.pid}/stat").read().rsplit(")", 1)[1].split()
            last = (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError):
            pass
        time.sleep(0.2)
    return last


def rate_of(seconds: float, n: int, work) -> float:
    """Run ``work(stop_event) -> count`` in n threads for up to ``seconds``; count per second.

    If the work runs out first (every thread returned), the rate is over the time it took."""
    stop = threading.Event()
    counts = [0] * n

    def run(i):
        counts[i] = work(stop)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    started = time.monotonic()
    for t in threads:
        t.start()
    deadline = started + seconds
    while time.monotonic() < deadline and any(t.is_alive() for t in threads):
        time.sleep(0.05)
    stop.set()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - started)


def paired(b: "Bench", service, ceiling, repeats: int | None = None) -> dict:
    """Measure service and ceiling in turn, ``b.repeats`` times; medians, and the median of the pair ratios."""
    runs, ceilings = [], []
    for _ in range(repeats or b.repeats):
        runs.append(service())
        ceilings.append(ceiling())
    ratios = [r / c for r, c in zip(runs, ceilings)]
    return {"value": statistics.median(runs), "ceiling": statistics.median(ceilings),
            "ratio": statistics.median(ratios), "runs": [round(r, 1) for r in runs],
            "ceiling_runs": [round(c, 1) for c in ceilings], "ratio_runs": [round(r, 3) for r in ratios]}


def truncate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE jobs, batches")
        conn.execute("VACUUM ANALYZE jobs")
        conn.execute("CHECKPOINT")


def seed_pending(url: str, n: int, task_type="llm_chat", profile="qwen2.5-14b") -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO jobs (id, owner_service, task_type, model_profile, input) "
                     "SELECT gen_random_uuid(), 'bench', %s, %s, %s::jsonb FROM generate_series(1, %s)",
                     [task_type, profile, json.dumps(CHAT_INPUT), n])
        conn.execute("VACUUM ANALYZE jobs")


def rss_peak_mb(pid: int) -> float:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


# --- figures ------------------------------------------------------------------------------

def single_create(b: Bench, url: str) -> None:
    body = json.dumps(JOB)
    api, base = b.api(url)
    minimal, mbase = b.api(url, app="minimal_app:app")
    wrk_runs = {}

    def run(target, name):
        truncate(url)
        result = wrk(target + "/api/v1/jobs", body, 16, b.seconds)
        wrk_runs.setdefault(name, []).append(result)
        return result["rps"]

    # The noisiest pair on a shared machine (one full run read 0.69, 0.93, 0.62): five readings.
    m = paired(b, lambda: run(base, "service"), lambda: run(mbase, "minimal"), None if b.quick else 5)
    b.api_rss = max(rss_peak_mb(p) for p in children(api.pid))
    b.end(api)
    b.end(minimal)
    truncate(url)
    pgbench = _pgbench_insert(url, b.seconds)
    b.record("single create over HTTP, 16 clients", m["value"], "jobs/s", m["ceiling"],
             "minimal Falcon app, 1 INSERT/request", ("ratio>=", 0.7), ratio=m["ratio"],
             pgbench_inserts_per_s=pgbench, p50_ms=statistics.median(r["p50_ms"] for r in wrk_runs["service"]),
             non_2xx=sum(r["non_2xx"] for r in wrk_runs["service"]),
             wrk_cpu_share=max(r["wrk_cpu_share"] for r in wrk_runs["service"]),
             ceiling_wrk_cpu_share=max(r["wrk_cpu_share"] for r in wrk_runs["minimal"]),
             **{k: m[k] for k in ("runs", "ceiling_runs", "ratio_runs")})


def _pgbench_insert(url: str, seconds: int) -> float:
    script = tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False)
    literal = json.dumps(CHAT_INPUT).replace("'", "''")
    script.write("INSERT INTO jobs (id, owner_service, task_type, model_profile, input) VALUES "
                 f"(gen_random_uuid(), 'bench', 'llm_chat', 'qwen2.5-14b', '{literal}');\n")
    script.close()
    pgbench = shutil.which("pgbench") or str(find_bindir() / "pgbench")
    out = subprocess.run([pgbench, "-n", "-M", "prepared", "-c", "16", "-j", "2", "-T", str(seconds),
                          "-f", script.name, url], capture_output=True, text=True).stdout
    os.unlink(script.name)
    return float(re.search(r"tps = ([\d.]+)", out).group(1))


def batch_create(b: Bench, url: str) -> None:
    body = json.dumps({"defaults": {k: v for k, v in JOB.items() if k != "input"},
                       "jobs": [{"owner_ref": f"call/{i}", "input": CHAT_INPUT} for i in range(1000)]})
    api, base = b.api(url)
    settings = Settings(database_url=url, db_pool_size=4)
    store = JobStore(Database(settings, "bench"), settings)
    jobs = [{**JOB, "owner_ref": f"call/{i}"} for i in range(1000)]
    wrk_runs = []

    def service():
        truncate(url)
        result = wrk(base + "/api/v1/jobs/batch", body, 4, b.seconds)
        wrk_runs.append(result)
        return result["rps"] * 1000

    def insert(stop):
        n = 0
        while not stop.is_set():
            store.create_batch(jobs)  # one unnest statement, binary parameters
            n += 1000
        return n

    def ceiling():
        truncate(url)
        return rate_of(b.seconds, 4, insert)

    m = paired(b, service, ceiling)
    b.end(api)
    store.db.close()
    schemas = Schemas()
    timings = {}
    for name, check in (("service", lambda job: (schemas.errors("jobs.create", job),
                                                 schemas.task_input_errors("llm_chat", job["input"], ("input",)))),
                        ("reference", lambda job: (schemas._validators["jobs.create"].is_valid(job),
                                                   schemas._validators["tasks/llm_chat"].is_valid(job["input"])))):
        started = time.perf_counter()
        for job in jobs:
            check(job)
        timings[name] = (time.perf_counter() - started) / len(jobs) * 1e6
    b.record("batch create, 1000 jobs/request", m["value"], "jobs/s", m["ceiling"],
             "psycopg, one unnest per 1000 (binary)", ("ratio>=", 0.15), ratio=m["ratio"],
             validation_us_per_job=round(timings["service"], 1),
             validation_cpu_share=round(timings["service"] * m["value"] / 1e6 / os.cpu_count(), 4),
             python_jsonschema_us_per_job=round(timings["reference"], 1),
             non_2xx=sum(r["non_2xx"] for r in wrk_runs), wrk_cpu_share=max(r["wrk_cpu_share"] for r in wrk_runs),
             **{k: m[k] for k in ("runs", "ceiling_runs", "ratio_runs")})


def external_worker(b: Bench, url: str) -> None:
    n_jobs = 40_000 if b.quick else 60_000
    api, base = b.api(url)
    http = urllib3.PoolManager(maxsize=16, retries=False, timeout=30)
    settings = Settings(database_url=url, db_pool_size=8)
    store = JobStore(Database(settings, "bench"), settings)

    def over_http(stop):
        done = 0
        worker = f"ext-{uuid.uuid4().hex[:6]}"
        while not stop.is_set():
            claimed = json.loads(http.request("POST", base + "/api/v1/jobs/claim", body=json.dumps(
                {"worker_id": worker, "limit": 10}), headers={"Content-Type": "application/json"}).data)["jobs"]
            if not claimed:
                break
            for job in claimed:
                http.request("POST", f"{base}/api/v1/jobs/{job['id']}/complete",
                             body=json.dumps({"worker_id": worker, "attempt": job["attempts"],
                                              "result": {"content": "ok"}}),
                             headers={"Content-Type": "application/json"})
                done += 1
        return done

    def direct(stop):
        done = 0
        worker = f"sql-{uuid.uuid4().hex[:6]}"
        while not stop.is_set():
            claimed = store.claim(worker, 10)
            if not claimed:
                break
            for job in claimed:
                store.complete(job["id"], worker, {"content": "ok"}, attempt=job["attempts"])
                done += 1
        return done

    def measure(work):
        truncate(url)
        seed_pending(url, n_jobs)
        return rate_of(b.seconds, 8, work)

    m = paired(b, lambda: measure(over_http), lambda: measure(direct))
    b.end(api)
    store.db.close()
    b.direct_claim_complete = m["ceiling"]
    b.record("external worker over HTTP: claim 10 + complete each, 8 clients", m["value"], "jobs/s", m["ceiling"],
             "same claim + complete by psycopg", ("ratio>=", 0.3), ratio=m["ratio"],
             **{k: m[k] for k in ("runs", "ceiling_runs", "ratio_runs")})


def _workers(b: Bench, url: str, fake_port: int, processes: int, threads: int) -> list:
    """The built-in worker as deployed: ``processes`` instances (worker@1..N), ``threads`` each."""
    procs = []
    for i in range(processes):
        env = {"DATABASE_URL": url, "LLM_BASE_URL": f"http://127.0.0.1:{fake_port}/v1",
               "WORKER_CONCURRENCY": str(threads), "WORKER_CLAIM_LIMIT": str(threads),
               "WORKER_POLL_INTERVAL": "10s", "LOG_LEVEL": "WARNING", "WORKER_ID": f"bench-{i + 1}",
               "WORKER_METRICS_ADDR": f"127.0.0.1:{free_port()}"}
        procs.append((b.spawn([sys.executable, "-m", "aiservice", "worker"], env), env["WORKER_METRICS_ADDR"]))
    time.sleep(2)
    return procs


def _burn_down(b: Bench, url: str, base: str, n_batches: int) -> float:
    """Create ``n_batches`` × 1000 jobs over the API and time until the worker has completed them all."""
    headers = {"Content-Type": "application/json"}
    batch = json.dumps({"defaults": {k: v for k, v in JOB.items() if k != "input"},
                        "jobs": [{"input": CHAT_INPUT}] * 1000})
    truncate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        started = time.monotonic()
        for _ in range(n_batches):
            assert b.http.request("POST", base + "/api/v1/jobs/batch", body=batch, headers=headers).status == 201
        n_jobs = n_batches * 1000
        while conn.execute("SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()[0] < n_jobs:
            time.sleep(0.05)
        return n_jobs / (time.monotonic() - started)


def built_in_worker(b: Bench, url: str) -> None:
    """Jobs created over the API (its NOTIFY wakes the worker), run against a zero-latency fake provider
    by one ``aiservice worker`` process: 32 threads for the throughput (more threads, bigger claim and
    completion batches: 16 gave about 1,000 jobs/s here, 32 about 1,250), and 16 threads for pickup
    latency, memory and a throughput reading beside it."""
    n_batches = 4 if b.quick else 8
    truncate(url)
    b.fake_port = free_port()
    b.spawn([sys.executable, "-c", FAKE_PROVIDER, str(b.fake_port)])
    api, base = b.api(url)
    ceiling = getattr(b, "direct_claim_complete", None)

    (worker, _), = _workers(b, url, b.fake_port, 1, 16)
    # Pickup latency: the worker idle, creates 30 ms apart.
    headers = {"Content-Type": "application/json"}
    latencies = []
    with psycopg.connect(url, autocommit=True) as conn:
        for _ in range(50 if b.quick else 200):
            job_id = json.loads(b.http.request("POST", base + "/api/v1/jobs", body=json.dumps(JOB),
                                               headers=headers).data)["id"]
            while True:  # by the database's clock: created_at -> started_at
                row = conn.execute("SELECT extract(epoch FROM started_at - created_at) FROM jobs "
                                   "WHERE id = %s AND started_at IS NOT NULL", [job_id]).fetchone()
                if row:
                    latencies.append(float(row[0]) * 1000)
                    break
                time.sleep(0.001)
            time.sleep(0.03)
    sixteen = _burn_down(b, url, base, n_batches)
    rss = rss_peak_mb(worker.pid)
    b.end(worker)
    (worker, _), = _workers(b, url, b.fake_port, 1, 32)
    runs = [_burn_down(b, url, base, n_batches) for _ in range(b.repeats)]
    rss_32 = rss_peak_mb(worker.pid)
    b.end(worker)
    b.end(api)
    maximum = statistics.median(runs)
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    b.record("built-in worker end to end, zero-latency provider, 32 threads", maximum, "jobs/s", ceiling,
             "direct SQL claim + complete", ("ratio>=", 0.5), runs=[round(r, 1) for r in runs],
             peak_rss_mb=round(rss_32, 1))
    b.record("built-in worker end to end, 16 threads", sixteen, "jobs/s", ceiling, "direct SQL claim + complete")
    b.record("pickup latency p50, create -> running, idle worker", statistics.median(latencies), "ms", target=("<=", 20))
    b.record("pickup latency p99, create -> running, idle worker", p99, "ms", target=("<=", 100))
    b.record("peak RSS, the worker with 16 threads", rss, "MB", target=("<=", 120))


def _worker_claims(addresses: list[str]) -> tuple[float, float]:
    """Sum and count of the claim-duration histograms of the workers at ``addresses``."""
    total = count = 0.0
    for address in addresses:
        text = urllib3.request("GET", f"http://{address}/metrics", timeout=5).data.decode()
        for line in text.splitlines():
            if line.startswith("aiservice_worker_claim_duration_seconds_sum"):
                total += float(line.split()[-1])
            elif line.startswith("aiservice_worker_claim_duration_seconds_count"):
                count += float(line.split()[-1])
    return total, count


def sustained(b: Bench, url: str) -> None:
    """Five minutes of single creates over HTTP, paced at 70 % of the measured maximum, with the
    built-in worker (one process, 32 threads) completing them; the last minute against the first."""
    minutes = b.sustained_minutes
    truncate(url)
    if not getattr(b, "fake_port", None):
        b.fake_port = free_port()
        b.spawn([sys.executable, "-c", FAKE_PROVIDER, str(b.fake_port)])
    api, base = b.api(url)
    deployed = _workers(b, url, b.fake_port, 1, 32)
    addresses = [address for _, address in deployed]
    body = json.dumps(JOB)
    # The maximum of this very workload: wrk creating as fast as it can while the workers complete.
    with psycopg.connect(url, autocommit=True) as conn:
        wrk(base + "/api/v1/jobs", body, 16, 3)  # warm-up
        before = conn.execute("SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()[0]
        started = time.monotonic()
        wrk(base + "/api/v1/jobs", body, 16, b.seconds)
        after = conn.execute("SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()[0]
        maximum = (after - before) / (time.monotonic() - started)
        # Let the workers finish the backlog, then start from a queue in its
        # normal state (no truncate, no checkpoint: production never gets one).
        while conn.execute("SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')").fetchone()[0]:
            time.sleep(0.2)
        conn.execute("VACUUM ANALYZE jobs")  # the burst's dead rows must not weigh on the first minute only
    rate = 0.7 * maximum
    clients = 8
    stop = threading.Event()
    sent = [0] * clients
    refused = [0] * clients

    def client(i):
        http = urllib3.PoolManager(maxsize=1, retries=False, timeout=30)
        interval = clients / rate
        due = time.monotonic() + i * interval / clients
        while not stop.is_set():
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            due += interval
            status = http.request("POST", base + "/api/v1/jobs", body=body,
                                  headers={"Content-Type": "application/json"}).status
            sent[i] += 1
            refused[i] += status != 201

    # Claim latency as the database sees it: pgbench (a C client, so no GIL in the
    # timing) runs BEGIN, the claim statement for one job, ROLLBACK, five times a
    # second; the workers skip the locked row meanwhile. The
    # workers' own claim timings are recorded as well; they include GIL waits.
    probe_dir = tempfile.mkdtemp(prefix="probe-", dir=b.root)
    claim_sql = (Q.claim_jobs.replace("%(worker_id)s", "'bench-probe'").replace("%(limit)s", "1")
                 .replace("%(task_types)s", "NULL").replace("%(model_profiles)s", "NULL")
                 .replace("%(lease_seconds)s", "60").replace("%(public)s", "false").replace("%%", "%"))
    script = pathlib.Path(probe_dir, "claim.sql")
    script.write_text(f"BEGIN;\n{claim_sql};\nROLLBACK;\n")
    pgbench = shutil.which("pgbench") or str(find_bindir() / "pgbench")
    prober = subprocess.Popen([pgbench, "-n", "-M", "prepared", "-c", "1", "-R", "5", "-T", str(minutes * 60 + 5),
                               "-l", "--log-prefix", str(pathlib.Path(probe_dir, "log")), "-f", str(script), url],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    per_minute = []
    with psycopg.connect(url, autocommit=True) as conn:
        def mark():
            at = conn.execute("SELECT now()").fetchone()[0]
            return at, time.time(), _worker_claims(addresses)

        for t in threads:
            t.start()
        marks = [mark()]
        for _ in range(minutes):
            time.sleep(60)
            marks.append(mark())
        stop.set()
        for t in threads:
            t.join()
        prober.send_signal(signal.SIGINT)
        prober.wait(timeout=30)
        probes = []  # (epoch seconds, ms) from pgbench's per-transaction log
        for log in pathlib.Path(probe_dir).glob("log*"):
            for line in log.read_text().splitlines():
                fields = line.split()
                if len(fields) < 6 or not fields[2].isdigit():  # a partial last line, or "skipped"
                    continue
                lag = int(fields[6]) if len(fields) > 6 else 0  # -R counts the schedule lag in; take it out
                probes.append((int(fields[4]) + int(fields[5]) / 1e6, (int(fields[2]) - lag) / 1000))
        for (t0, m0, (s0, c0)), (t1, m1, (s1, c1)) in zip(marks, marks[1:]):
            completed, pickup = conn.execute(
                "SELECT count(*) FILTER (WHERE finished_at >= %s AND finished_at < %s), "
                "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM started_at - created_at)) "
                "FILTER (WHERE started_at >= %s AND started_at < %s) FROM jobs", [t0, t1, t0, t1]).fetchone()
            seconds = (t1 - t0).total_seconds()
            claim_ms = [ms for at, ms in probes if m0 <= at < m1]
            per_minute.append({"completed_per_s": round(completed / seconds, 1),
                               "claim_p50_ms": round(statistics.median(claim_ms), 3),
                               "claim_p99_ms": round(sorted(claim_ms)[int(len(claim_ms) * 0.99) - 1], 3),
                               "worker_claim_mean_ms": round((s1 - s0) / max(c1 - c0, 1) * 1000, 3),
                               "worker_claims": int(c1 - c0), "pickup_p50_ms": round(float(pickup or 0) * 1000, 1)})
        backlog = conn.execute("SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')").fetchone()[0]
    for proc, _ in deployed:
        b.end(proc)
    b.end(api)
    first, last = per_minute[0], per_minute[-1]
    extra = {"per_minute": per_minute, "paced_creates_per_s": round(rate, 1), "maximum_per_s": round(maximum, 1),
             "sent": sum(sent), "non_201": sum(refused), "backlog_at_end": backlog}
    b.record(f"sustained {minutes} min at 70 % of the maximum ({rate:,.0f} of {maximum:,.0f} jobs/s): "
             f"throughput, last minute / first ({last['completed_per_s']} vs {first['completed_per_s']}/s)",
             last["completed_per_s"] / first["completed_per_s"], "x", target=("within", 0.2), **extra)
    b.record(f"sustained: claim latency p50, last minute / first ({last['claim_p50_ms']} vs "
             f"{first['claim_p50_ms']} ms)", last["claim_p50_ms"] / first["claim_p50_ms"], "x", target=("within", 0.2))


def _claim_p50_ms(store: JobStore, samples: int) -> float:
    """Median time of one claim of 10 jobs; each claim is then completed (untimed), as in production:
    the claimed jobs leave the queue's head and their old index entries stay behind for vacuum."""
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        jobs = store.claim("latency", 10)
        times.append((time.perf_counter() - started) * 1000)
        store.complete_many("latency", [(j["id"], j["attempts"], {"content": "ok"}) for j in jobs])
    return statistics.median(times)


def _wait_for_autovacuum(url: str, limit: float) -> float:
    """Wait until autovacuum has been through the jobs table since now and is not running on it.

    The figure is the steady state once the service's own autovacuum settings
    have cleaned up after the churn, not a reading taken in the middle of that
    vacuum (autovacuum_naptime is 1 min; the jobs table vacuums after 20k changes)."""
    started = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        since = conn.execute("SELECT now()").fetchone()[0]
        while time.monotonic() - started < limit:
            done, running = conn.execute(
                "SELECT coalesce(last_autovacuum > %s, false), "
                "EXISTS (SELECT 1 FROM pg_stat_progress_vacuum WHERE relid = 'jobs'::regclass) "
                "FROM pg_stat_user_tables WHERE relname = 'jobs'", [since]).fetchone()
            if done and not running:
                break
            time.sleep(1)
    return round(time.monotonic() - started, 1)


def claims(b: Bench, url: str) -> None:
    """Claim latency at 10 thousand pending, at a deep queue, and after as many jobs came and went."""
    deep = 100_000 if b.quick else 1_000_000
    samples = 100 if b.quick else 300
    truncate(url)
    seed_pending(url, 10_000)
    settings = Settings(database_url=url)
    store = JobStore(Database(settings, "bench"), settings)
    base = _claim_p50_ms(store, samples)
    seed_pending(url, deep - 10_000)
    at_depth = _claim_p50_ms(store, samples)
    b.record(f"claim latency, {deep:,} vs 10,000 pending (p50 {at_depth:.2f} vs {base:.2f} ms)",
             at_depth / base, "x", target=("<=", 1.5))
    # Now let `deep` jobs come and go the way they do in production: completed,
    # then pruned, with autovacuum (the table's own settings) left to catch up.
    # 20 thousand pending: three measurements each complete samples x 10 of them.
    truncate(url)
    seed_pending(url, 20_000)
    base = _claim_p50_ms(store, samples)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO jobs (id, owner_service, task_type, model_profile, input) "
                     "SELECT gen_random_uuid(), 'churn', 'llm_chat', 'qwen2.5-14b', %s::jsonb "
                     "FROM generate_series(1, %s)", [json.dumps(CHAT_INPUT), deep])
        conn.execute("UPDATE jobs SET status = 'completed', result = '{\"content\": \"ok\"}', "
                     "started_at = now(), finished_at = now() - interval '40 days' WHERE owner_service = 'churn'")
    while sum(store.prune_batch(30 * 86400, 5000).values()) == 5000:
        pass
    just_pruned = _claim_p50_ms(store, samples)
    waited = _wait_for_autovacuum(url, 5 if b.quick else 240)
    after = _claim_p50_ms(store, samples)
    store.db.close()
    b.record(f"claim latency after {deep:,} jobs created, completed and pruned, vs before "
             f"(p50 {after:.2f} vs {base:.2f} ms; {just_pruned:.2f} ms right after the prune)",
             after / base, "x", target=("<=", 1.3), autovacuum_waited_s=waited)


def reads(b: Bench, url: str) -> None:
    finished, pending = (100_000, 10_000) if b.quick else (1_000_000, 100_000)
    truncate(url)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("""INSERT INTO jobs (id, owner_service, task_type, model_profile, status, input, result,
                               attempts, started_at, finished_at, duration_ms, created_at)
            SELECT gen_random_uuid(), 'svc' || (i %% 5), 'llm_chat', 'qwen2.5-14b', 'completed', %s::jsonb,
                   '{"content": "ok", "usage": {"total_tokens": 12}}', 1, now() - (i || ' s')::interval,
                   now() - (i || ' s')::interval + interval '200 ms', 200, now() - (i || ' s')::interval - interval '1 s'
            FROM generate_series(1, %s) i""", [json.dumps(CHAT_INPUT), finished])
    seed_pending(url, pending)
    api, base = b.api(url)
    with psycopg.connect(url) as conn:
        some_id = conn.execute("SELECT id FROM jobs ORDER BY id LIMIT 1 OFFSET 5000").fetchone()[0]
    for name, path in (("stats", "/api/v1/stats"),
                       ("list, filtered, first page", "/api/v1/jobs?owner_service=svc3&status=completed&limit=50"),
                       ("get", f"/api/v1/jobs/{some_id}")):
        times = []
        for _ in range(30):
            started = time.perf_counter()
            resp = b.http.request("GET", base + path)
            times.append((time.perf_counter() - started) * 1000)
            assert resp.status == 200, resp.data[:200]
        b.record(f"{name}, {finished:,} finished + {pending:,} pending, p50", statistics.median(times[5:]), "ms",
                 target=("<=", 50))
    if hasattr(b, "api_rss"):
        b.record("peak RSS, one API worker process", b.api_rss, "MB", target=("<=", 80))
    b.end(api)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run in under two minutes")
    parser.add_argument("--only", action="append", metavar="FIGURE",
                        help="run only these figures (single_create, batch_create, external_worker, "
                             "built_in_worker, sustained, claims, reads); repeatable")
    parser.add_argument("--sustained-minutes", type=int, default=5, metavar="N")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is not installed (bench/run installs Debian's wrk)")
    b = Bench(args.quick)
    b.sustained_minutes = args.sustained_minutes
    started = time.monotonic()
    b.start()
    try:
        url = b.database("bench")
        print(f"AI Service benchmark ({'quick' if args.quick else 'full'}), {os.cpu_count()} cores, "
              f"durable PostgreSQL at {b.pg.bindir}", flush=True)
        figures = [single_create, batch_create, external_worker, built_in_worker, claims, reads]
        if not args.quick:
            figures.insert(4, sustained)
        if args.only:
            known = {f.__name__: f for f in [*figures, sustained]}
            figures = [known[name] for name in args.only]
        for figure in figures:
            figure(b, url)
    finally:
        b.stop()
    report = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "quick": args.quick,
              "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "seconds": round(time.monotonic() - started, 1), "figures": b.results}
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"{report['when'].replace(':', '')}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(report, indent=2))
    print()
    print(table(b.results))
    print(f"\n{len(b.results)} figures in {report['seconds']}s; written to {path.relative_to(ROOT)}")


def table(rows: list[dict]) -> str:
    lines = ["| figure | value | ceiling | ratio | target | |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ceiling = f"{r['ceiling']:,} ({r['ceiling_name']})" if r["ceiling"] else "-"
        status = "" if r["ok"] is None else ("ok" if r["ok"] else "MISSED")
        lines.append(f"| {r['figure']} | {r['value']:,} {r['unit']} | {ceiling} | {r['ratio'] or '-'} | "
                     f"{r['target'] or '-'} | {status} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
