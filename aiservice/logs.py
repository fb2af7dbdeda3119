"""Logging set-up, called only by entry points.

One line per event. ``LOG_FORMAT=json`` (the systemd units' choice) writes one
JSON object per line; ``text`` a readable line. Structured fields passed as
``extra=`` (job_id, task_type, attempt, ...) and the request id of the HTTP
request being served come out as fields in JSON and as ``key=value`` in text.
gunicorn's access log goes through the same formatter. Payloads, results and
secrets are never logged: callers pass ids and categories, not bodies.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import logging
import sys

# The request id of the HTTP request this thread is serving (set by the API middleware).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

FIELDS = ("job_id", "worker_id", "task_type", "model_profile", "attempt", "duration_ms", "category",
          "request_id", "method", "path", "status", "remote")

# gunicorn access-log atoms -> our field names
_ACCESS_ATOMS = {"m": "method", "U": "path", "s": "status", "h": "remote", "B": "bytes", "M": "duration_ms"}


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        return True


def _fields(record: logging.LogRecord) -> dict:
    found = {}
    if record.name == "gunicorn.access" and isinstance(record.args, dict):
        atoms = record.args
        found = {name: atoms.get(atom) for atom, name in _ACCESS_ATOMS.items() if atoms.get(atom) not in (None, "-")}
        found["request_id"] = atoms.get("{x-request-id}o")
        for key in ("status", "bytes", "duration_ms"):
            if isinstance(found.get(key), str) and found[key].isdigit():
                found[key] = int(found[key])
    for name in FIELDS:
        value = getattr(record, name, None)
        if value is not None and name not in found:
            found[name] = value
    return {k: v for k, v in found.items() if v not in (None, "-")}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        if record.name == "gunicorn.access":
            message = "request"
        else:
            message = record.getMessage()
        entry = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": message,
            **_fields(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = _fields(record)
        if record.name == "gunicorn.access":  # the access line already says the rest
            fields = {"request_id": fields["request_id"]} if fields.get("request_id") else {}
        extra = " ".join(f"{k}={v}" for k, v in fields.items() if f"{k}=" not in record.getMessage())
        return f"{line} {extra}" if extra else line


def formatter(fmt: str) -> logging.Formatter:
    return JSONFormatter() if fmt == "json" else TextFormatter()


def configure(level: str = "INFO", fmt: str = "text") -> None:
    """Send every log line to stderr (journald keeps it under systemd), formatted as ``fmt``."""
    root = logging.getLogger()
    handler = getattr(root, "_aiservice_handler", None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.addFilter(_RequestIdFilter())
        root.addHandler(handler)
        root._aiservice_handler = handler
    handler.setFormatter(formatter(fmt))
    root.setLevel(level)


def gunicorn_logconfig(level: str, fmt: str) -> dict:
    """gunicorn's logconfig_dict: its error and access logs in our format, on stderr."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": _RequestIdFilter}},
        "formatters": {"service": {"()": f"{__name__}.{'JSONFormatter' if fmt == 'json' else 'TextFormatter'}"}},
        "handlers": {"stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                                "formatter": "service", "filters": ["request_id"]}},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["stderr"], "propagate": False},
        },
        # gunicorn merges this over its defaults, whose root uses a handler we replaced;
        # the app's own configure() gives root its handler after the fork.
        "root": {"level": level, "handlers": []},
    }
