"""job_json (migration 0006): the job as the API shows it, checked against the row itself."""

import datetime as dt
import json
import re
import uuid

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from tests.conftest import JOB

PUBLIC = ("id", "owner_service", "owner_ref", "task_type", "model_profile", "input", "result",
          "status", "priority", "run_after", "attempts", "max_attempts", "error", "errors",
          "worker_id", "lease_expires_at", "idempotency_key", "batch_id", "created_at",
          "started_at", "finished_at", "updated_at", "duration_ms")
TIMES = ("run_after", "lease_expires_at", "created_at", "started_at", "finished_at", "updated_at")
RFC3339_UTC_MICROS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _expected(row: dict) -> dict:
    """The row in the API's terms, worked out in Python from the stored values."""
    job = {name: row[name] for name in PUBLIC}
    for name in ("id", "batch_id"):
        job[name] = None if row[name] is None else str(row[name])
    for name in TIMES:
        value = row[name]
        job[name] = None if value is None else value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return job


def _rendered(conn, job_id):
    text = conn.execute("SELECT job_json(jobs)::text AS j FROM jobs WHERE id = %s", [job_id]).fetchone()["j"]
    row = conn.execute("SELECT * FROM jobs WHERE id = %s", [job_id]).fetchone()
    return json.loads(text), row


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns"])
def test_job_json_matches_the_row_in_every_state_and_session_time_zone(store, db, schemas, zone):
    validator = Draft202012Validator(schemas.documents["job"], format_checker=FormatChecker())
    pending, _ = store.create({**JOB, "owner_ref": "chan/1", "priority": -3, "idempotency_key": "k",
                               "input": {"messages": [{"role": "user", "content": "é ✓ \"q\" \\ \n"}],
                                         "temperature": 0.7, "max_tokens": 12}})
    batch_id, batch_rows = store.create_batch([{**JOB}, {**JOB}, {**JOB}])
    running, = store.claim("w-1", 1, task_types=[JOB["task_type"]])
    store.complete(running["id"], "w-1", {"text": "done", "n": [1, 2.5, None, True]})
    failed, = store.claim("w-2", 1)
    store.fail(failed["id"], "w-2", "invalid_input", "bad input", retryable=False)
    ids = [pending["id"], batch_rows[2]["id"], running["id"], failed["id"]]
    with db.transaction() as conn:
        # A whole second: the microseconds must still print as six digits.
        conn.execute("UPDATE jobs SET run_after = '2030-01-02 03:04:05+00' WHERE id = %s", [ids[1]])
        conn.execute("SELECT set_config('timezone', %s, true)", [zone])
        seen = {}
        for job_id in ids:
            shown, row = _rendered(conn, job_id)
            if job_id == ids[1]:
                assert shown["run_after"] == "2030-01-02T03:04:05.000000Z"
            assert shown == _expected(row)
            assert list(shown) == list(PUBLIC)  # the order of the contract's job object
            validator.validate(shown)
            for name in TIMES:
                assert shown[name] is None or RFC3339_UTC_MICROS.match(shown[name]), shown[name]
            seen.setdefault(row["status"], shown)
    assert set(seen) == {"pending", "completed", "failed"}
    assert seen["completed"]["result"] == {"text": "done", "n": [1, 2.5, None, True]}
    assert seen["failed"]["error"]["category"] == "invalid_input"
    assert any(s["batch_id"] == str(batch_id) for s in seen.values())


def test_every_answer_with_a_job_carries_job_json(store):
    """The store's rows for the API hold ``public``; the built-in worker's claim does not pay for it."""
    created, _ = store.create({**JOB})
    assert json.loads(created["public"])["id"] == str(created["id"])
    assert json.loads(store.get(created["id"])["public"])["status"] == "pending"
    claimed, = store.claim("w", 1, public=True)
    assert json.loads(claimed["public"])["worker_id"] == "w"
    beat = store.heartbeat(claimed["id"], "w")
    assert json.loads(beat["public"])["lease_expires_at"] is not None
    store.create({**JOB})
    bare, = store.claim("w", 1)
    assert bare["public"] is None
    listed = store.list(limit=5)
    assert [uuid.UUID(json.loads(r["public"])["id"]) for r in listed] == [r["id"] for r in listed]
