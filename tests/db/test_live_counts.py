"""The live counters of migration 0003 always equal count(*), whatever changes the jobs."""

import dataclasses
import threading

KINDS = [("llm_chat", "qwen"), ("transcribe", "whisperx"), ("call_analysis", "qwen")]


def _truth(sql):
    rows = sql("SELECT status, task_type, model_profile, count(*) AS n FROM jobs "
               "WHERE status IN ('pending', 'running') GROUP BY 1, 2, 3")
    return {(r["status"], r["task_type"], r["model_profile"]): r["n"] for r in rows}


def _counted(store):
    return {(d["status"], d["task_type"], d["model_profile"]): d["count"] for d in store.stats(60)["depth"]}


def test_counters_follow_every_kind_of_change(store, sql):
    check = lambda: _counted(store) == _truth(sql)
    for task_type, profile in KINDS:
        for _ in range(5):
            store.create({"owner_service": "t", "task_type": task_type, "model_profile": profile})
    store.create_batch([{"owner_service": "t", "task_type": t, "model_profile": p} for t, p in KINDS * 20])
    assert check()
    claimed = store.claim("w1", 30)
    assert check()
    for job in claimed[:10]:
        store.complete(job["id"], "w1", {})
    for job in claimed[10:15]:
        store.fail(job["id"], "w1", "timeout", "x")            # back to pending
    for job in claimed[15:20]:
        store.fail(job["id"], "w1", "invalid_input", "x")      # ends failed
    for job in claimed[20:23]:
        store.retry(job["id"])                                  # running -> pending
    for job in claimed[23:26]:
        store.cancel(job["id"])
    store.heartbeat_many("w1", [(j["id"], j["attempts"]) for j in claimed[26:]])
    assert check()
    store.release("w1", [(j["id"], j["attempts"]) for j in claimed[26:]])
    assert check()
    more = store.claim("w2", 10)
    sql("UPDATE jobs SET lease_expires_at = now() - interval '1 s', max_attempts = "
        "CASE WHEN random() < 0.5 THEN attempts ELSE max_attempts END WHERE worker_id = 'w2'")
    store.claim("w3", 50)  # takes over some, fails the exhausted
    assert check()
    sql("UPDATE jobs SET status = 'cancelled', finished_at = now() WHERE status = 'pending' AND task_type = 'transcribe'")
    sql("UPDATE jobs SET finished_at = now() - interval '40 days' WHERE finished_at IS NOT NULL")
    store.prune_batch(30 * 86400, 1000)
    sql("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status = 'pending' LIMIT 3)")
    assert check()
    assert more  # the scenario really claimed
    sql("TRUNCATE jobs")
    assert _counted(store) == {}


def test_counters_stay_right_under_concurrent_writers(store, sql):
    for task_type, profile in KINDS:
        store.create_batch([{"owner_service": "t", "task_type": task_type, "model_profile": profile}] * 100)

    def work(n):
        while True:
            jobs = store.claim(f"w{n}", 3)
            if not jobs:
                return
            for j in jobs:
                if j["attempts"] == 1 and hash(j["id"]) % 3 == 0:
                    store.fail(j["id"], f"w{n}", "timeout", "x", retry_after_seconds=0)
                else:
                    store.complete(j["id"], f"w{n}", {})

    store.settings = dataclasses.replace(store.settings, retry_backoff_base=0.001, retry_backoff_max=0.001)
    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # stragglers retried with a tiny backoff may still be pending; drain them
    work(99)
    assert _counted(store) == _truth(sql) == {}
    assert sql("SELECT count(*) AS n FROM jobs WHERE status = 'completed'")[0]["n"] == 300
