"""Admin reports run with psql against a seeded database and print the right numbers."""

import datetime as dt
import pathlib
import shutil
import subprocess

import pytest
from psycopg.types.json import Jsonb

from aiservice.ids import uuid7
from aiservice.localpg import find_bindir

ROOT = pathlib.Path(__file__).resolve().parents[2]
NOW = dt.datetime.now(dt.timezone.utc)


def _psql(database_url, report, *variables):
    """The report's rows (every result set, in order), as lists of strings."""
    psql = shutil.which("psql") or str(find_bindir() / "psql")
    args = [psql, database_url, "-X", "-A", "-F", "|", "-t", "-v", "ON_ERROR_STOP=1"]
    for v in variables:
        args += ["-v", v]
    result = subprocess.run(args + ["-f", str(ROOT / "sql" / "reports" / report)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return [line.split("|") for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture
def seed(sql):
    """Factory: insert a job with the given columns (times as datetimes)."""

    def insert(**fields):
        row = {"id": uuid7(), "owner_service": "telephony", "task_type": "llm_chat",
               "model_profile": "qwen", "status": "completed", **fields}
        for key in ("result", "errors", "error", "input"):
            if key in row:
                row[key] = Jsonb(row[key])
        cols = ", ".join(row)
        sql(f"INSERT INTO jobs ({cols}) VALUES ({', '.join('%(' + c + ')s' for c in row)})", row)
        return row["id"]

    return insert


def _finished(minutes_ago, run_ms=10, wait_ms=100, **fields):
    finished = NOW - dt.timedelta(minutes=minutes_ago)
    started = finished - dt.timedelta(milliseconds=run_ms)
    return {"finished_at": finished, "started_at": started, "duration_ms": run_ms,
            "created_at": started - dt.timedelta(milliseconds=wait_ms), **fields}


def test_queue_report(database_url, seed):
    seed(status="pending")
    seed(status="pending")
    seed(status="pending", task_type="transcribe", model_profile="whisperx")
    seed(**_finished(5, task_type="transcribe", model_profile="whisperx"))
    seed(**_finished(3 * 24 * 60, status="failed"))
    rows = _psql(database_url, "queue.sql")
    assert rows[0][:4] == ["pending", "llm_chat", "qwen", "2"]
    assert rows[1][:4] == ["pending", "transcribe", "whisperx", "1"]
    assert [r[:4] for r in rows[2:]] == [["completed", "transcribe", "whisperx", "1"]]
    assert ["failed", "llm_chat", "qwen", "1"] in [r[:4] for r in _psql(database_url, "queue.sql", "since=7 days")]


def test_throughput_report(database_url, seed):
    for _ in range(3):
        seed(**_finished(1))
    seed(**_finished(1, status="failed"))
    seed(**_finished(1, status="cancelled"))
    seed(**_finished(1, task_type="transcribe", model_profile="whisperx"))
    seed(**_finished(3 * 24 * 60))  # outside the default window
    rows = _psql(database_url, "throughput.sql")
    by_kind = {(r[1], r[2]): r[3:] for r in rows}
    assert by_kind == {("llm_chat", "qwen"): ["3", "1", "1"], ("transcribe", "whisperx"): ["1", "0", "0"]}
    assert sum(int(r[3]) for r in _psql(database_url, "throughput.sql", "since=7 days")) == 5


def test_latency_report_percentiles(database_url, seed):
    for wait, run in ((100, 10), (200, 20), (300, 30), (400, 40), (500, 50)):
        seed(**_finished(2, run_ms=run, wait_ms=wait))
    seed(**_finished(2, run_ms=9999, wait_ms=9999, status="failed"))  # only completed jobs count
    [row] = _psql(database_url, "latency.sql")
    assert row == ["qwen", "5", "300", "480", "496", "30", "48", "50"]


def test_failures_report(database_url, seed):
    seed(**_finished(30, status="failed", error={"category": "provider_error", "message": "old message"}))
    seed(**_finished(10, status="failed", error={"category": "provider_error", "message": "new message"}))
    seed(**_finished(10, status="failed", error={"category": "timeout", "message": "slow"}))
    at = (NOW - dt.timedelta(minutes=20)).isoformat()
    seed(status="pending", updated_at=NOW, errors=[
        {"attempt": 1, "category": "rate_limited", "message": "429 a", "at": at},
        {"attempt": 2, "category": "rate_limited", "message": "429 b", "at": (NOW - dt.timedelta(minutes=5)).isoformat()}])
    rows = _psql(database_url, "failures.sql")
    final = [r for r in rows if len(r) == 5]
    attempts = [r for r in rows if len(r) == 4]
    assert final[0] == ["provider_error", "llm_chat", "qwen", "2", "new message"]
    assert final[1] == ["timeout", "llm_chat", "qwen", "1", "slow"]
    assert attempts == [["rate_limited", "2", "1", "429 b"]]


def test_token_report(database_url, seed):
    usage = lambda p, c: {"content": "x", "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}
    seed(**_finished(5, result=usage(100, 20)))
    seed(**_finished(5, result=usage(50, 5)))
    seed(**_finished(5, owner_service="monitoring-tg", result=usage(7, 3)))
    seed(**_finished(5, owner_service="monitoring-tg", result={"content": "x", "usage": {"prompt_tokens": None}}))
    seed(**_finished(5, task_type="transcribe", model_profile="whisperx", result={"text": "hi"}))
    rows = _psql(database_url, "tokens.sql")
    assert rows == [["telephony", "qwen", "2", "150", "25", "175", "0"],
                    ["monitoring-tg", "qwen", "2", "7", "3", "10", "1"]]


def test_stuck_report(database_url, seed):
    old = seed(status="pending", created_at=NOW - dt.timedelta(hours=2))
    seed(status="pending")
    long = seed(status="running", worker_id="gpu-1", attempts=1, started_at=NOW - dt.timedelta(hours=1),
                lease_expires_at=NOW + dt.timedelta(minutes=5))
    seed(status="running", worker_id="gpu-2", attempts=1, started_at=NOW, lease_expires_at=NOW + dt.timedelta(minutes=5))
    rows = _psql(database_url, "stuck.sql", "limit=1")
    assert rows[0][0] == str(old)
    assert rows[1][0] == str(long) and rows[1][5] == "gpu-1"
    assert len(rows) == 2


def test_attempts_report(database_url, seed):
    errors = [{"attempt": 1, "category": "timeout", "message": "", "at": NOW.isoformat()},
              {"attempt": 2, "category": "rate_limited", "message": "", "at": NOW.isoformat()}]
    many = seed(**_finished(5, attempts=3, max_attempts=3, errors=errors))
    seed(**_finished(5, attempts=2, errors=errors[:1]))
    seed(**_finished(5, attempts=1))
    seed(**_finished(3 * 24 * 60, attempts=9))  # outside the window
    rows = _psql(database_url, "attempts.sql")
    assert [r[0] for r in rows][:1] == [str(many)]
    assert rows[0][5:] == ["3", "3", "timeout,rate_limited"]
    assert len(rows) == 2
