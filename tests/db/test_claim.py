"""Claiming, straight against the store and PostgreSQL."""

import collections
import threading
import uuid

import pytest

from aiservice.errors import JobNotFound
from aiservice.ids import uuid7
from aiservice.queries import Q


def _add(sql, n=1, **fields):
    rows = []
    for _ in range(n):
        row = {"id": uuid7(), "owner_service": "t", "task_type": "llm_chat", "model_profile": "m",
               "priority": 0, **fields}
        cols = ", ".join(row)
        sql(f"INSERT INTO jobs ({cols}) VALUES ({', '.join('%(' + c + ')s' for c in row)})", row)
        rows.append(row["id"])
    return rows if n > 1 else rows[0]


def test_highest_priority_first_then_oldest(store, sql):
    old_low = _add(sql, priority=0)
    high = _add(sql, priority=10)
    new_low = _add(sql, priority=0)
    got = [j["id"] for j in store.claim("w", 3)]
    assert got == [high, old_low, new_low]


def test_jobs_not_yet_due_are_not_claimed(store, sql):
    _add(sql, run_after="2999-01-01T00:00:00Z")
    due = _add(sql)
    assert [j["id"] for j in store.claim("w", 5)] == [due]


def test_claim_sets_owner_lease_and_attempt(store, sql):
    _add(sql)
    [job] = store.claim("worker-a", 1, lease_seconds=30)
    assert job["status"] == "running" and job["worker_id"] == "worker-a" and job["attempts"] == 1
    lease = (job["lease_expires_at"] - job["started_at"]).total_seconds()
    assert 29 <= lease <= 31
    assert store.claim("worker-b", 1) == []


def test_filters_by_task_type_and_model_profile(store, sql):
    chat = _add(sql, task_type="llm_chat", model_profile="qwen")
    asr = _add(sql, task_type="transcribe", model_profile="whisperx")
    assert [j["id"] for j in store.claim("w", 5, task_types=["transcribe"])] == [asr]
    assert store.claim("w", 5, model_profiles=["vision"]) == []
    assert [j["id"] for j in store.claim("w", 5, task_types=["llm_chat"], model_profiles=["qwen"])] == [chat]


def test_eight_concurrent_claimers_never_claim_a_job_twice(store, sql, settings):
    total = 400
    _add(sql, n=total)
    claimed = collections.Counter()
    lock = threading.Lock()
    start = threading.Barrier(8)

    def claimer(n):
        start.wait()
        while True:
            jobs = store.claim(f"w{n}", 3)
            if not jobs:
                return
            with lock:
                claimed.update(j["id"] for j in jobs)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(claimed) == total
    assert max(claimed.values()) == 1
    assert sql("SELECT count(*) AS n FROM jobs WHERE status = 'running' AND attempts = 1")[0]["n"] == total


def test_an_expired_lease_is_taken_over_by_the_next_claim(store, sql):
    job_id = _add(sql)
    store.claim("dead-worker", 1, lease_seconds=60)
    sql("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = %s", [job_id])
    [taken] = store.claim("live-worker", 1)
    assert taken["id"] == job_id and taken["worker_id"] == "live-worker" and taken["attempts"] == 2
    assert taken["errors"][0]["category"] == "lease_expired"
    assert taken["errors"][0]["worker_id"] == "dead-worker"
    assert taken["errors"][0]["attempt"] == 1


def test_a_live_lease_is_not_taken_over(store, sql):
    _add(sql)
    store.claim("w1", 1, lease_seconds=60)
    assert store.claim("w2", 1) == []


def test_an_expired_lease_with_no_attempts_left_ends_failed(store, sql):
    job_id = _add(sql, max_attempts=1)
    store.claim("dead-worker", 1)
    sql("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = %s", [job_id])
    assert store.claim("w2", 1) == []
    [row] = sql("SELECT status, error, finished_at FROM jobs WHERE id = %s", [job_id])
    assert row["status"] == "failed" and row["error"]["category"] == "lease_expired"
    assert row["finished_at"] is not None


def test_claim_never_returns_more_than_the_limit(store, sql):
    _add(sql, n=10)
    expired = _add(sql, n=3)
    sql("UPDATE jobs SET status='running', worker_id='x', attempts=1, lease_expires_at=now() - interval '1 s' "
        "WHERE id = ANY(%s)", [expired])
    assert len(store.claim("w", 4)) == 4
    assert sql("SELECT count(*) AS n FROM jobs WHERE worker_id = 'w'")[0]["n"] == 4


def test_the_claim_query_uses_the_partial_indexes(db):
    with db.transaction() as conn:
        conn.execute("SET LOCAL enable_seqscan = off")  # a tiny table: show the index it would use
        plan = "\n".join(r["QUERY PLAN"] for r in conn.execute(
            "EXPLAIN " + Q.claim_jobs,
            {"worker_id": "w", "limit": 1, "task_types": None, "model_profiles": None,
             "lease_seconds": 30.0, "public": False}).fetchall())
    assert "jobs_claim_idx" in plan and "jobs_lease_idx" in plan


def test_unknown_uuid_is_not_found(store):
    with pytest.raises(JobNotFound):
        store.get(uuid.uuid4())
