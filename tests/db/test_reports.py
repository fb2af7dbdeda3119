"""Admin reports run with psql against a seeded database and print the right numbers."""

import pathlib
import shutil
import subprocess

from aiservice.localpg import find_bindir

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _psql(database_url, report, *variables):
    psql = shutil.which("psql") or str(find_bindir() / "psql")
    args = [psql, database_url, "-X", "-A", "-F", "|", "-t", "-v", "ON_ERROR_STOP=1"]
    for v in variables:
        args += ["-v", v]
    result = subprocess.run(args + ["-f", str(ROOT / "sql" / "reports" / report)],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    return [line.split("|") for line in result.stdout.splitlines() if line.strip()]


def test_queue_report(database_url, sql, store):
    for task in ("llm_chat", "llm_chat", "transcribe"):
        sql("INSERT INTO jobs (id, owner_service, task_type, model_profile) VALUES (gen_random_uuid(), 't', %s, 'm')", [task])
    [job] = store.claim("w", 1, task_types=["transcribe"])
    store.complete(job["id"], "w", {"text": "hi"})
    sql("INSERT INTO jobs (id, owner_service, task_type, model_profile, status, finished_at, duration_ms) "
        "VALUES (gen_random_uuid(), 't', 'llm_chat', 'm', 'failed', now() - interval '3 days', 10)")
    rows = _psql(database_url, "queue.sql")
    assert ["pending", "llm_chat", "m", "2"] == rows[0][:4]
    finished = [r[:4] for r in rows[1:]]
    assert finished == [["completed", "transcribe", "m", "1"]]
    rows = _psql(database_url, "queue.sql", "since=7 days")
    assert ["failed", "llm_chat", "m", "1"] in [r[:4] for r in rows]
