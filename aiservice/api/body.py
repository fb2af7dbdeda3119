"""Reading request bodies and query strings: size limit, JSON, and values PostgreSQL would refuse."""

from __future__ import annotations

import base64
import json
import re
import uuid

import falcon

from aiservice.errors import InvalidJSON, InvalidRequest, PayloadTooLarge
from aiservice.schemas import pointer

# JSON escapes that decode to text PostgreSQL cannot store: NUL, and UTF-16
# surrogates (a lone one cannot be encoded as UTF-8; a valid pair decodes to
# one character, so the walk below finds nothing wrong with it).
_SUSPECT_ESCAPE = re.compile(rb"\\u(0000|[dD][89a-fA-F])")


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def read_json(req: falcon.Request, max_bytes: int, *, optional: bool = False) -> object:
    """The parsed JSON body; 413 over ``max_bytes``, 400 when it is not JSON."""
    length = req.content_length
    if length is not None and length > max_bytes:
        raise PayloadTooLarge(f"the request body is {length} bytes; the limit is {max_bytes}")
    if length is None and req.env.get("wsgi.input_terminated"):
        # A chunked body: gunicorn marks the stream as ending at the body's end.
        raw = req.stream.read(max_bytes + 1)
    else:
        raw = req.bounded_stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"the request body is over the limit of {max_bytes} bytes")
    if not raw.strip():
        if optional:
            return {}
        raise InvalidJSON("the request body is empty; send a JSON object")
    try:
        document = json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidJSON("the request body is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, bad UTF-8, NaN/Infinity
        raise InvalidJSON(f"the request body is not valid JSON: {exc}") from None
    if _SUSPECT_ESCAPE.search(raw):
        bad = _find_unstorable_text(document, ())
        if bad is not None:
            raise InvalidRequest(
                f"{pointer(bad) or 'the body'}: text holds a NUL character or a lone surrogate",
                details=[{"pointer": pointer(bad),
                          "message": "text holds a NUL character or a lone UTF-16 surrogate"}],
            )
    return document


def _storable(text: str) -> bool:
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _find_unstorable_text(value, path: tuple):
    """The path of the first string (key or value) PostgreSQL cannot store, or None."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            if not _storable(item):
                return where
        elif isinstance(item, dict):
            for key, child in item.items():
                if not _storable(key):
                    return (*where, key)
                stack.append((child, (*where, key)))
        elif isinstance(item, list):
            stack.extend((child, (*where, i)) for i, child in enumerate(item))
    return None


# --- query strings -----------------------------------------------------------

def query_params(req: falcon.Request, allowed: set[str]) -> dict[str, str]:
    """The query parameters, each given once and all known; 422 otherwise."""
    details = []
    params = {}
    for name, value in req.params.items():
        if name not in allowed:
            details.append({"parameter": name, "message": "is not a known parameter"})
        elif isinstance(value, list):
            details.append({"parameter": name, "message": "is given more than once"})
        elif not _storable(value):
            details.append({"parameter": name, "message": "holds a NUL character"})
        else:
            params[name] = value
    if details:
        raise InvalidRequest(f"query parameter {details[0]['parameter']}: {details[0]['message']}",
                             details=details)
    return params


def parameter_error(name: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"query parameter {name}: {message}",
                          details=[{"parameter": name, "message": message}])


def encode_cursor(job_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(job_id.bytes).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> uuid.UUID:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        if len(raw) != 16:
            raise ValueError
        return uuid.UUID(bytes=raw)
    except ValueError:
        raise parameter_error("cursor", "is not a cursor returned by this API") from None
