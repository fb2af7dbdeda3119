"""Batched completion: the store's complete_many and the worker's completer."""

import threading

import pytest

from aiservice.errors import InvalidTransition, JobNotFound, LeaseMismatch
from aiservice.ids import uuid7
from aiservice.worker.completer import Completer

JOB = {"owner_service": "t", "task_type": "llm_chat", "model_profile": "m", "input": {}}


def _running(store, n, worker="w1"):
    for _ in range(n):
        store.create(JOB)
    return store.claim(worker, n)


def test_complete_many_writes_every_held_job_in_one_statement(store, sql):
    jobs = _running(store, 3)
    answers = store.complete_many("w1", [(j["id"], j["attempts"], {"n": i}) for i, j in enumerate(jobs)])
    assert [answers[j["id"]]["status"] for j in jobs] == ["completed"] * 3
    rows = {r["id"]: r for r in sql("SELECT id, status, result, lease_expires_at, finished_at FROM jobs")}
    for i, j in enumerate(jobs):
        assert rows[j["id"]]["result"] == {"n": i}
        assert rows[j["id"]]["lease_expires_at"] is None and rows[j["id"]]["finished_at"] is not None
    live = sql("SELECT coalesce(sum(n), 0) AS n FROM job_live_counts WHERE status = 'running'")[0]["n"]
    assert live == 0  # the count triggers saw the statement


def test_complete_many_says_why_each_refused_job_was_refused(store, sql):
    mine, stale, other, done = _running(store, 4)
    store.complete(done["id"], "w1", {}, attempt=done["attempts"])
    sql("UPDATE jobs SET worker_id = 'w2' WHERE id = %s", [other["id"]])
    unknown = uuid7()
    answers = store.complete_many("w1", [
        (mine["id"], mine["attempts"], {"ok": True}),
        (stale["id"], stale["attempts"] + 1, {}),
        (other["id"], other["attempts"], {}),
        (done["id"], done["attempts"], {}),
        (unknown, 1, {}),
    ])
    assert answers[mine["id"]]["status"] == "completed"
    assert isinstance(answers[stale["id"]], LeaseMismatch)
    assert isinstance(answers[other["id"]], LeaseMismatch)
    assert isinstance(answers[done["id"]], InvalidTransition)
    assert isinstance(answers[unknown], JobNotFound)
    assert sql("SELECT status FROM jobs WHERE id = %s", [stale["id"]])[0]["status"] == "running"


def _hand_over(completer, jobs, results):
    answers = {}

    def one(job, result):
        try:
            answers[job["id"]] = completer.complete(job["id"], job["attempts"], result)
        except Exception as exc:  # noqa: BLE001
            answers[job["id"]] = exc

    threads = [threading.Thread(target=one, args=(j, r)) for j, r in zip(jobs, results)]
    for t in threads:
        t.start()
    return threads, answers


def _wait_handed(completer, n):
    for _ in range(500):
        with completer._cond:
            if len(completer._handed) == n:
                return
        threading.Event().wait(0.01)
    raise AssertionError("the job threads did not hand over their results")


def test_results_handed_over_meanwhile_go_in_one_batch(store, sql):
    jobs = _running(store, 12)
    completer = Completer(store, "w1")
    threads, answers = _hand_over(completer, jobs, [{"i": i} for i in range(12)])
    _wait_handed(completer, 12)  # all twelve wait while no batch is being written
    completer.start()
    for t in threads:
        t.join(10)
    completer.close()
    assert completer.batches == 1 and completer.completed == 12
    assert all(answers[j["id"]]["status"] == "completed" for j in jobs)
    assert sql("SELECT count(*) AS n FROM jobs WHERE status = 'completed'")[0]["n"] == 12


def test_one_result_the_database_refuses_does_not_sink_the_batch(store, sql):
    jobs = _running(store, 4)
    completer = Completer(store, "w1")
    results = [{"text": "fine"}, {"text": "nul \u0000 inside"}, {"text": "fine"}, {"text": "fine"}]
    threads, answers = _hand_over(completer, jobs, results)
    _wait_handed(completer, 4)
    completer.start()
    for t in threads:
        t.join(10)
    completer.close()
    statuses = [answers[j["id"]] if isinstance(answers[j["id"]], Exception) else answers[j["id"]]["status"]
                for j in jobs]
    assert statuses[0] == statuses[2] == statuses[3] == "completed"
    assert "refused by the database" in str(statuses[1])
    assert sql("SELECT status FROM jobs WHERE id = %s", [jobs[1]["id"]])[0]["status"] == "running"


def test_after_close_a_completion_is_written_in_the_callers_thread(store):
    (job,) = _running(store, 1)
    completer = Completer(store, "w1")
    completer.start()
    completer.close()
    assert completer.complete(job["id"], job["attempts"], {})["status"] == "completed"
    with pytest.raises(InvalidTransition):
        completer.complete(job["id"], job["attempts"], {})
