"""The fast validator (jsonschema-rs) must never accept what the reference (jsonschema) refuses.

Schemas.errors trusts a "valid" from the fast validator without asking the
reference, so that one direction is what correctness rests on. These tests
mutate valid documents of every request schema 1,500 times each (wrong types,
edge values, missing and extra fields, strings that Python's ``re`` and
ECMA-262 treat differently) and compare the two verdicts.
"""

from __future__ import annotations

import copy
import random

import pytest

from aiservice.schemas import Schemas

CHAT = {"messages": [{"role": "system", "content": "Answer as JSON."},
                     {"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "stop": ["\n\n"], "seed": 7,
        "response_format": {"type": "json_object"}}
CREATE = {"owner_service": "calls", "owner_ref": "call/1", "task_type": "llm_chat",
          "model_profile": "qwen2.5-14b", "input": CHAT, "priority": 5,
          "run_after": "2026-11-24T09:00:00Z", "max_attempts": 3, "idempotency_key": "k-1"}

VALID = {
    "jobs.create": [CREATE, {"owner_service": "a", "task_type": "x", "model_profile": "m"}],
    "jobs.batch": [{"defaults": {"owner_service": "calls", "task_type": "llm_chat", "model_profile": "m"},
                    "jobs": [{"owner_ref": "1", "input": CHAT}, {"input": {"user": "hi"}}]}],
    "jobs.batch.defaults": [{"owner_service": "calls", "priority": 1, "run_after": "2026-11-24T09:00:00+01:00"}],
    "tasks/llm_chat": [CHAT, {"user": "hello", "system": "be brief", "max_tokens": 1}],
    "tasks/transcribe": [{"audio_url": "https://example.com/a.wav", "language": "de", "diarize": True,
                          "min_speakers": 1, "max_speakers": 3, "initial_prompt": "names"},
                         {"audio_base64": "UklGRg==", "language": "en_US"}],
    "jobs.claim": [{"worker_id": "gpu-1", "limit": 10, "task_types": ["transcribe"],
                    "model_profiles": ["whisperx-large-v3"], "lease_seconds": 120}],
    "jobs.complete": [{"worker_id": "gpu-1", "attempt": 1, "result": {"content": "ok"}}],
    "jobs.fail": [{"worker_id": "gpu-1", "attempt": 2, "category": "rate_limited", "message": "slow down",
                   "retryable": True, "retry_after_seconds": 30}],
    "jobs.heartbeat": [{"worker_id": "gpu-1", "attempt": 1, "lease_seconds": 60}],
    "jobs.retry": [{}],
    "jobs.cancel": [{}],
}

ODD_VALUES = [None, True, False, 0, 1, -1, 2, 1.0, 1.5, -0.0, 10**20, 2**63, -(2**63) - 1, 1e308, "", " ",
              "x", "calls", "calls\n", "Calls", "_calls", "a" * 300, "é", "\u0000", "\ud800",
              "2026-11-24T09:00:00Z", "2026-11-24T09:00:00", "2026-11-24", "2026-13-45T99:00:00Z",
              "2026-11-24t09:00:00z", "2026-11-24 09:00:00+00:00", "0192f0e0-7b1a-7cc3-9b7e-2f1c2d3e4f50",
              "0192f0e0-7b1a-7cc3-9b7e", "{0192f0e0-7b1a-7cc3-9b7e-2f1c2d3e4f50}", "http://x", "ftp://x",
              "UklGRg==\n", "user", "system", "tool", "rate_limited", "9lives", "json_schema",
              [], [1], ["a", "a"], ["a", "b"], [None], [{}], [{"role": "user"}],
              [{"role": "user", "content": "hi"}], {}, {"a": 1}, {"type": "text"}, {"user": "hi"},
              {"messages": [{"role": "user", "content": "x"}], "user": "y"}]


def _paths(doc, here=()):
    yield here
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, (*here, key))
    elif isinstance(doc, list):
        for i, value in enumerate(doc):
            yield from _paths(value, (*here, i))


def _mutate(doc, rng: random.Random):
    doc = copy.deepcopy(doc)
    for _ in range(rng.randint(1, 3)):
        paths = list(_paths(doc))
        path = rng.choice(paths)
        if not path:
            if isinstance(doc, dict) and rng.random() < 0.5:
                doc[rng.choice(["extra", "input", "user", "messages", "jobs", "limit"])] = copy.deepcopy(rng.choice(ODD_VALUES))
                continue
            return copy.deepcopy(rng.choice(ODD_VALUES))
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        key = path[-1]
        roll = rng.random()
        if roll < 0.2 and isinstance(parent, dict):
            del parent[key]
        elif roll < 0.3 and isinstance(parent, dict):
            parent[f"{key}_extra"] = rng.choice(ODD_VALUES)
        elif roll < 0.4 and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[key]))
        else:
            parent[key] = copy.deepcopy(rng.choice(ODD_VALUES))
    return doc


@pytest.fixture(scope="module")
def schemas():
    return Schemas()


@pytest.mark.parametrize("name", sorted(VALID))
def test_the_fast_validator_accepts_the_valid_documents(schemas, name):
    for doc in VALID[name]:
        assert schemas._validators[name].is_valid(doc), doc  # the examples themselves are right
        assert schemas.is_valid_fast(name, doc), doc  # so valid requests take the fast path


@pytest.mark.parametrize("name", sorted(VALID))
def test_the_fast_validator_never_accepts_what_the_reference_refuses(schemas, name):
    rng = random.Random(name)
    refused = disagreements = 0
    for i in range(1500):
        doc = _mutate(VALID[name][i % len(VALID[name])], rng)
        reference = schemas._validators[name].is_valid(doc)
        fast = schemas.is_valid_fast(name, doc)
        assert not (fast and not reference), f"fast path accepts an invalid {name}: {doc!r}"
        refused += not reference
        disagreements += fast != reference
        if not fast:  # the caller's answer is the reference's, whatever the fast path said
            assert (schemas.errors(name, doc) == []) == reference
    assert refused > 150  # the mutations do reach the schema's rules
    assert disagreements == 0  # the two agree (ECMA-262 anchors in both), so the fast path is not refusing blindly


def test_values_the_fast_validator_cannot_read_fall_back_to_the_reference(schemas):
    job = {**CREATE, "input": {"user": "hi", "seed": 10**40}}  # beyond 64 bits
    assert schemas.task_input_errors("llm_chat", job["input"], ("input",)) == []
    job["input"]["max_tokens"] = 10**40
    assert schemas.task_input_errors("llm_chat", job["input"], ("input",))[0]["pointer"] == "/input/max_tokens"
