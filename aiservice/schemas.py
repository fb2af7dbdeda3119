"""JSON Schemas from ``schema/``: checked and compiled once, then used per request.

Two validators per schema. jsonschema-rs (compiled Rust) answers the common
question, "is this valid?", in 1-3 µs where the pure-Python jsonschema takes
35-115 µs per document, the largest cost of a create after the commit itself.
The Python validator stays the authority: it runs whenever the fast one says
no (or cannot read the value), and its findings are what the caller sees, so
the error details and the edge cases (Python's ``re``, our formats) are
exactly the reference implementation's. A test checks, over thousands of
mutated documents, that the fast validator never accepts what the reference
refuses.

Errors come back as ``details``: ``{"pointer": "/jobs/3/input/messages", "message": "..."}``,
the JSON pointer naming the offending field of the request body.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import re
import uuid
from importlib import resources

import jsonschema
import jsonschema_rs
from jsonschema import Draft202012Validator, FormatChecker

from aiservice.errors import InvalidRequest

# Built-in task types whose ``input`` is validated at create time.
TASK_INPUT_SCHEMAS = {
    "llm_chat": "tasks/llm_chat",
    "chat_completion": "tasks/llm_chat",
    "transcribe": "tasks/transcribe",
}

MAX_DETAILS = 50
_MAX_MESSAGE = 300

FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parsed = parse_datetime(value)
    return parsed is not None


@FORMATS.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    if isinstance(value, str):
        uuid.UUID(value)
    return True


@functools.lru_cache(maxsize=None)
def _ecma_pattern(pattern: str) -> re.Pattern:
    """``pattern`` for Python's ``re`` with ECMA-262's ``$``: the very end, not before a final newline."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + "\\Z"
    return re.compile(pattern)


def _pattern(validator, pattern, instance, schema):
    # JSON Schema patterns are ECMA-262; jsonschema's default (re.search) lets
    # "calls\n" through "^[a-z]+$", and a newline in a name reaches the logs.
    if validator.is_type(instance, "string") and not _ecma_pattern(pattern).search(instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


# The reference validator: Draft 2020-12 with ECMA-262 anchors.
_Reference = jsonschema.validators.extend(Draft202012Validator, {"pattern": _pattern})


def _accepts(check):
    """``check`` as the bool-returning format callable jsonschema-rs takes."""
    def accepts(value: str) -> bool:
        try:
            return bool(check(value))
        except ValueError:
            return False
    return accepts


# The same format checks, for the fast validator.
_FAST_FORMATS = {"date-time": _accepts(_is_datetime), "uuid": _accepts(_is_uuid)}


def parse_datetime(value: str) -> dt.datetime:
    """RFC 3339 time with a zone (``2026-11-24T09:00:00Z``); raise ValueError otherwise."""
    text = value.strip()
    if len(text) < 20 or text[10] not in "Tt ":
        raise ValueError(f"{value!r} is not an RFC 3339 date-time")
    parsed = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text[-1] in "Zz" else text)
    if parsed.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone")
    return parsed


def pointer(path) -> str:
    """A JSON pointer (RFC 6901) for a sequence of keys and indexes."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in path)


def _load_documents() -> dict[str, dict]:
    root = resources.files("aiservice.schema")
    documents: dict[str, dict] = {}
    pending = [(root, "")]
    while pending:
        folder, prefix = pending.pop()
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.name.startswith(("_", ".")):
                pending.append((entry, f"{prefix}{entry.name}/"))
            elif entry.name.endswith(".json"):
                documents[prefix + entry.name[: -len(".json")]] = json.loads(entry.read_text("utf-8"))
    return documents


class Schemas:
    """Every schema in ``schema/`` by name (``jobs.create``, ``tasks/llm_chat``), compiled once."""

    def __init__(self) -> None:
        self.documents = _load_documents()
        # Batch defaults: any create field but idempotency_key, none required.
        defaults = copy.deepcopy(self.documents["jobs.create"])
        defaults.pop("required", None)
        defaults["properties"].pop("idempotency_key")
        defaults["$id"] = "jobs.batch.defaults.json"
        defaults["title"] = "Defaults of a batch"
        self.documents["jobs.batch.defaults"] = defaults
        self._validators = {}
        self._fast = {}
        for name, document in self.documents.items():
            Draft202012Validator.check_schema(document)
            self._validators[name] = _Reference(document, format_checker=FORMATS)
            self._fast[name] = jsonschema_rs.Draft202012Validator(
                document, formats=_FAST_FORMATS, validate_formats=True, ignore_unknown_formats=False)

    def is_valid_fast(self, name: str, instance: object) -> bool:
        """The fast validator's verdict; False also when it cannot read ``instance``."""
        try:
            return self._fast[name].is_valid(instance)
        except Exception:  # noqa: BLE001  a value it cannot convert: the reference decides
            return False

    def errors(self, name: str, instance: object, prefix: tuple = ()) -> list[dict]:
        """The details of every violation of schema ``name`` (empty when valid)."""
        if self.is_valid_fast(name, instance):
            return []
        validator = self._validators[name]
        details = []
        for error in validator.iter_errors(instance):
            details.extend(_describe(error, prefix))
        return _unique(details)

    def check(self, name: str, instance: object, prefix: tuple = ()) -> None:
        """Raise ``InvalidRequest`` (422) when ``instance`` does not match schema ``name``."""
        details = self.errors(name, instance, prefix)
        if details:
            raise InvalidRequest(_summary(details), details=details[:MAX_DETAILS])

    def task_input_errors(self, task_type: str, instance: object, prefix: tuple) -> list[dict]:
        """Violations of a built-in task's input schema (none for other task types)."""
        name = TASK_INPUT_SCHEMAS.get(task_type)
        return self.errors(name, instance, prefix) if name else []


def _describe(error: jsonschema.ValidationError, prefix: tuple) -> list[dict]:
    path = (*prefix, *error.absolute_path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        return [
            {"pointer": pointer((*path, name)), "message": "is required"}
            for name in error.validator_value
            if name not in instance
        ]
    if error.validator == "additionalProperties" and isinstance(instance, dict):
        known = set(error.schema.get("properties", {}))
        return [
            {"pointer": pointer((*path, name)), "message": "is not an allowed field"}
            for name in instance
            if name not in known
        ]
    message = error.message
    if error.validator in ("oneOf", "anyOf", "not"):
        message = error.schema.get("x-one-of-message", message)
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return [{"pointer": pointer(path), "message": message}]


def _unique(details: list[dict]) -> list[dict]:
    seen = set()
    out = []
    for d in details:
        key = (d["pointer"], d["message"])
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def _summary(details: list[dict]) -> str:
    first = details[0]
    where = first["pointer"] or "the body"
    more = f" (and {len(details) - 1} more)" if len(details) > 1 else ""
    return f"{where}: {first['message']}{more}"
