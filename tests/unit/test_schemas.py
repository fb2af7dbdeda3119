import json
import pathlib

import pytest
from jsonschema import Draft202012Validator

from aiservice.schemas import TASK_INPUT_SCHEMAS, parse_datetime, pointer

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_every_schema_file_is_a_valid_2020_12_schema_with_its_name_as_id():
    files = sorted((ROOT / "schema").rglob("*.json"))
    assert len(files) >= 10
    for path in files:
        doc = json.loads(path.read_text())
        Draft202012Validator.check_schema(doc)
        assert doc["$id"] == str(path.relative_to(ROOT / "schema")), path


def test_every_request_body_has_a_schema(schemas):
    for name in ("jobs.create", "jobs.batch", "jobs.claim", "jobs.heartbeat", "jobs.complete",
                 "jobs.fail", "jobs.retry", "jobs.cancel"):
        assert name in schemas.documents


def test_every_built_in_task_has_an_input_schema(schemas):
    for task_type, name in TASK_INPUT_SCHEMAS.items():
        assert name in schemas.documents, task_type


def test_pointer_escapes():
    assert pointer(("jobs", 3, "input")) == "/jobs/3/input"
    assert pointer(("a/b", "c~d")) == "/a~1b/c~0d"
    assert pointer(()) == ""


@pytest.mark.parametrize("text", ["2026-11-24T09:00:00Z", "2026-11-24T09:00:00.5+03:00", "2026-11-24 09:00:00+00:00"])
def test_rfc3339_times_are_accepted(text):
    assert parse_datetime(text).tzinfo is not None


@pytest.mark.parametrize("text", ["2026-11-24T09:00:00", "2026-11-24", "tomorrow", "2026-13-01T00:00:00Z"])
def test_other_times_are_refused(text):
    with pytest.raises(ValueError):
        parse_datetime(text)


def test_chat_input_forms(schemas):
    ok = [{"messages": [{"role": "user", "content": "hi"}]}, {"user": "hi"}, {"system": "s", "user": "hi", "max_tokens": 5}]
    for value in ok:
        assert schemas.task_input_errors("llm_chat", value, ("input",)) == []
    both = schemas.task_input_errors("llm_chat", {"user": "hi", "messages": [{"role": "user", "content": "x"}]}, ("input",))
    assert both == [{"pointer": "/input", "message": "give either messages, or user (with an optional system), not both"}]
    bad_role = schemas.task_input_errors("chat_completion", {"messages": [{"role": "robot", "content": "x"}]}, ("input",))
    assert bad_role[0]["pointer"] == "/input/messages/0/role"


def test_transcribe_input_needs_exactly_one_audio_source(schemas):
    assert schemas.task_input_errors("transcribe", {"audio_url": "http://127.0.0.1/a.wav"}, ()) == []
    assert schemas.task_input_errors("transcribe", {"language": "ru"}, ())[0]["message"].startswith("give exactly one")


def test_unknown_task_types_take_any_input(schemas):
    assert schemas.task_input_errors("call_analysis", {"anything": [1, 2]}, ()) == []


@pytest.mark.parametrize("value", ["calls\n", "calls\nmore", "\ncalls"])
def test_patterns_anchor_at_the_very_end_as_in_ecma_262(schemas, value):
    details = schemas.errors("jobs.create", {"owner_service": value, "task_type": "x", "model_profile": "m"})
    assert [d["pointer"] for d in details] == ["/owner_service"]
    assert schemas.errors("jobs.create", {"owner_service": "calls", "task_type": "x", "model_profile": "m"}) == []
