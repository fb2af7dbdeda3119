import os
import subprocess
import sys
import threading

import psycopg

from aiservice.ids import uuid7


def _job(sql, status, finished_days_ago=None, batch_id=None):
    job_id = uuid7()
    finished = f"now() - interval '{finished_days_ago} days'" if finished_days_ago is not None else "NULL"
    sql(f"INSERT INTO jobs (id, owner_service, task_type, model_profile, status, finished_at, batch_id) "
        f"VALUES (%s, 't', 'x', 'm', %s, {finished}, %s)", [job_id, status, batch_id])
    return job_id


def _prune(database_url, *args):
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run([sys.executable, "-m", "aiservice", "prune", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_prune_deletes_only_old_finished_jobs_in_batches(sql, database_url):
    for _ in range(5):
        _job(sql, "completed", 40)
    _job(sql, "failed", 35)
    _job(sql, "cancelled", 31)
    recent = _job(sql, "completed", 10)
    pending = _job(sql, "pending")
    retried = _job(sql, "pending")  # a job retried after an old failure has no finished_at
    result = _prune(database_url, "--older-than", "30d", "--batch-size", "2", "--pause", "0s")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("pruned 7 jobs finished more than 30d ago (cancelled 1, completed 5, failed 1)")
    left = {r["id"] for r in sql("SELECT id FROM jobs")}
    assert left == {recent, pending, retried}


def test_prune_removes_emptied_batches(sql, database_url):
    batch = uuid7()
    sql("INSERT INTO batches (id, job_count, created_at) VALUES (%s, 1, now() - interval '40 days')", [batch])
    _job(sql, "completed", 40, batch_id=batch)
    result = _prune(database_url, "--older-than", "30d")
    assert "1 batch records" in result.stdout
    assert sql("SELECT count(*) AS n FROM batches")[0]["n"] == 0


def test_prune_skips_rows_another_session_holds_instead_of_waiting(sql, database_url):
    held = _job(sql, "completed", 40)
    other = _job(sql, "completed", 40)
    with psycopg.connect(database_url) as conn:
        conn.execute("SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", [held])
        done = threading.Event()
        result = {}

        def run():
            result["r"] = _prune(database_url, "--older-than", "30d")
            done.set()

        threading.Thread(target=run).start()
        assert done.wait(30), "prune waited on a locked row"
        conn.rollback()
    assert result["r"].returncode == 0
    assert {r["id"] for r in sql("SELECT id FROM jobs")} == {held}
    assert other not in {r["id"] for r in sql("SELECT id FROM jobs")}


def test_prune_needs_a_duration(database_url):
    result = _prune(database_url, "--older-than", "a month")
    assert result.returncode != 0 and "aiservice prune:" in result.stderr
