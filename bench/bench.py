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
from aiservice.schemas import Schemas  # noqa: E402

CHAT_INPUT = {"messages": [{"role": "system", "content": "Answer as JSON."},
                           {"role": "user", "content": "Classify this call transcript: " + "lorem ipsum " * 20}],
              "max_tokens": 64}
JOB = {"owner_service": "bench", "owner_ref": "call/1", "task_type": "llm_chat",
       "model_profile": "qwen2.5-14b", "input": CHAT_INPUT}

FAKE_PROVIDER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
BODY = json.dumps({"model": "m", "choices": [{"message": {"role": "assistant", "content": "ok"},
                   "finish_reason": "stop"}], "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(200); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY))); self.end_headers(); self.wfile.write(BODY)
s = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H); s.daemon_threads = True; s.serve_forever()
"""


# --- processes --------------------------------------------------------------------------

class Bench:
    def __init__(self, quick: bool):
        self.quick = quick
        self.seconds = 8 if quick else 30
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

    def record(self, figure, value, unit, ceiling=None, ceiling_name=None, target=None, **extra) -> dict:
        ratio = round(value / ceiling, 3) if ceiling else None
        ok = None
        if target is not None:
            kind, bound = target
            measured = ratio if kind == "ratio>=" else value
            ok = measured >= bound if kind in ("ratio>=", ">=") else measured <= bound
        row = {"figure": figure, "value": round(value, 2), "unit": unit,
               "ceiling": round(ceiling, 2) if ceiling else None, "ceiling_name": ceiling_name,
               "ratio": ratio, "target": f"{target[0]} {target[1]}" if target else None, "ok": ok, **extra}
        self.results.append(row)
        print(f"  {figure}: {row['value']} {unit}" + (f" / {row['ceiling']} ({ceiling_name}) = {ratio}" if ceiling else "")
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
    truncate(url)
    api, base = b.api(url)
    service = wrk(base + "/api/v1/jobs", body, 16, b.seconds)
    b.api_pid = api.pid
    b.api_rss = max(rss_peak_mb(p) for p in children(api.pid))
    b.end(api)
    truncate(url)
    minimal, mbase = b.api(url, app="minimal_app:app")
    ceiling = wrk(mbase + "/api/v1/jobs", body, 16, b.seconds)
    b.end(minimal)
    truncate(url)
    pgbench = _pgbench_insert(url, b.seconds)
    b.record("single create over HTTP, 16 clients", service["rps"], "jobs/s", ceiling["rps"],
             "minimal Falcon app, 1 INSERT/request", ("ratio>=", 0.7), pgbench_inserts_per_s=pgbench,
             p50_ms=service["p50_ms"], non_2xx=service["non_2xx"], wrk_cpu_share=service["wrk_cpu_share"],
             ceiling_wrk_cpu_share=ceiling["wrk_cpu_share"])


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
    truncate(url)
    api, base = b.api(url)
    service = wrk(base + "/api/v1/jobs/batch", body, 4, b.seconds)
    b.end(api)
    truncate(url)
    settings = Settings(database_url=url, db_pool_size=4)
    store = JobStore(Database(settings, "bench"), settings)
    jobs = [{**JOB, "owner_ref": f"call/{i}"} for i in range(1000)]

    def insert(stop):
        n = 0
        while not stop.is_set():
            store.create_batch(jobs)  # one unnest statement, binary parameters
            n += 1000
        return n

    ceiling = rate_of(b.seconds, 4, insert)
    store.db.close()
    schemas = Schemas()
    started = time.perf_counter()
    for job in jobs:
        schemas.errors("jobs.create", job)
        schemas.task_input_errors("llm_chat", job["input"], ("input",))
    validation_us = (time.perf_counter() - started) / len(jobs) * 1e6
    service_jobs = service["rps"] * 1000
    b.record("batch create, 1000 jobs/request", service_jobs, "jobs/s", ceiling,
             "psycopg, one unnest per 1000 (binary)", ("ratio>=", 0.15),
             validation_us_per_job=round(validation_us, 1),
             validation_cpu_share=round(validation_us * service_jobs / 1e6 / os.cpu_count(), 3),
             non_2xx=service["non_2xx"], wrk_cpu_share=service["wrk_cpu_share"])


def external_worker(b: Bench, url: str) -> None:
    n_jobs = 50000 if b.quick else 200000
    truncate(url)
    seed_pending(url, n_jobs)
    api, base = b.api(url)
    http = urllib3.PoolManager(maxsize=16, retries=False, timeout=30)

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

    service = rate_of(b.seconds, 8, over_http)
    b.end(api)
    truncate(url)
    seed_pending(url, n_jobs)
    settings = Settings(database_url=url, db_pool_size=8)
    store = JobStore(Database(settings, "bench"), settings)

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

    ceiling = rate_of(b.seconds, 8, direct)
    store.db.close()
    b.direct_claim_complete = ceiling
    b.record("external worker over HTTP: claim 10 + complete each, 8 clients", service, "jobs/s", ceiling,
             "same claim + complete by psycopg", ("ratio>=", 0.3))


def built_in_worker(b: Bench, url: str) -> None:
    """Jobs created over the API (its NOTIFY wakes the worker), run against a zero-latency fake provider."""
    n_batches = 3 if b.quick else 20
    truncate(url)
    port = free_port()
    b.spawn([sys.executable, "-c", FAKE_PROVIDER, str(port)])
    api, base = b.api(url)
    env = {"DATABASE_URL": url, "LLM_BASE_URL": f"http://127.0.0.1:{port}/v1", "WORKER_CONCURRENCY": "16",
           "WORKER_CLAIM_LIMIT": "16", "WORKER_POLL_INTERVAL": "10s", "LOG_LEVEL": "WARNING"}
    worker = b.spawn([sys.executable, "-m", "aiservice", "worker"], env)
    time.sleep(2)
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
        conn.execute("TRUNCATE jobs")
        batch = json.dumps({"defaults": {k: v for k, v in JOB.items() if k != "input"},
                            "jobs": [{"input": CHAT_INPUT}] * 1000})
        started = time.monotonic()
        for _ in range(n_batches):
            assert b.http.request("POST", base + "/api/v1/jobs/batch", body=batch, headers=headers).status == 201
        n_jobs = n_batches * 1000
        while conn.execute("SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()[0] < n_jobs:
            time.sleep(0.05)
        rate = n_jobs / (time.monotonic() - started)
    rss = rss_peak_mb(worker.pid)
    b.end(worker)
    b.end(api)
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    ceiling = getattr(b, "direct_claim_complete", None)
    b.record("built-in worker end to end, zero-latency provider", rate, "jobs/s", ceiling,
             "direct SQL claim + complete", ("ratio>=", 0.5), threads=16)
    b.record("pickup latency p50, create -> running, idle worker", statistics.median(latencies), "ms", target=("<=", 20))
    b.record("pickup latency p99, create -> running, idle worker", p99, "ms", target=("<=", 100))
    b.record("peak RSS, the worker with 16 threads", rss, "MB", target=("<=", 120))


def _claim_p50_ms(store: JobStore, samples: int) -> float:
    """Median time of one claim of 10 jobs; each claim is handed back (untimed) to keep the depth."""
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        jobs = store.claim("latency", 10)
        times.append((time.perf_counter() - started) * 1000)
        store.release("latency", [(j["id"], j["attempts"]) for j in jobs])
    return statistics.median(times)


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
    truncate(url)
    seed_pending(url, 10_000)
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
    time.sleep(5 if b.quick else 70)  # autovacuum_naptime is 1 min; the jobs table vacuums after 20k changes
    after = _claim_p50_ms(store, samples)
    store.db.close()
    b.record(f"claim latency after {deep:,} jobs created, completed and pruned, vs before "
             f"(p50 {after:.2f} vs {base:.2f} ms; {just_pruned:.2f} ms right after the prune)",
             after / base, "x", target=("<=", 1.3))


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
    b.record("peak RSS, one API worker process", b.api_rss, "MB", target=("<=", 80))
    b.end(api)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a smoke run in under two minutes")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk is not installed (bench/run installs Debian's wrk)")
    b = Bench(args.quick)
    started = time.monotonic()
    b.start()
    try:
        url = b.database("bench")
        print(f"AI Service benchmark ({'quick' if args.quick else 'full'}), {os.cpu_count()} cores, "
              f"durable PostgreSQL at {b.pg.bindir}", flush=True)
        for figure in (single_create, batch_create, external_worker, built_in_worker, claims, reads):
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
