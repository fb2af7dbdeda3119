"""Settings: the environment, read once at an entry point into a frozen object.

Nothing else in the package reads ``os.environ``; tests build ``Settings``
directly (``Settings(database_url=...)``) or through ``Settings.from_env({...})``.
"""

from __future__ import annotations

import dataclasses
import re
import socket
from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit


class ConfigError(Exception):
    """A variable is missing or has a value we cannot use; the message names it."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def parse_duration(text: str) -> float:
    """``500ms``, ``2s``, ``5m``, ``1h``, ``1d`` (or a bare number of seconds) -> seconds."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration like 500ms, 2s, 5m or 1h")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not a boolean (true/false)")


def _positive_int(text: str) -> int:
    value = int(text.strip())
    if value < 1:
        raise ValueError(f"{value} is not a positive integer")
    return value


def _port(text: str) -> int:
    value = int(text.strip())
    if not 1 <= value <= 65535:
        raise ValueError(f"{value} is not a TCP port")
    return value


def _positive_duration(text: str) -> float:
    value = parse_duration(text)
    if value <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return value


def _host_port(text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise ValueError("must be host:port, e.g. 127.0.0.1:9464")
    return host.strip("[]"), _port(port)


def _url(text: str) -> str:
    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return text.strip().rstrip("/")


def _database_url(text: str) -> str:
    value = text.strip()
    if not value:
        raise ValueError("is empty")
    if "://" in value and urlsplit(value).scheme not in ("postgres", "postgresql"):
        raise ValueError("must be a postgresql:// URL or a libpq connection string")
    return value


def redact_url(url: str | None) -> str | None:
    """The URL without user info, query or fragment: safe for logs and responses."""
    if not url:
        return url
    if "://" not in url:
        # A libpq key=value string: keep only the harmless keys.
        keep = ("host", "hostaddr", "port", "dbname")
        pairs = [p for p in url.split() if p.split("=", 1)[0] in keep]
        return " ".join(pairs)
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


@dataclasses.dataclass(frozen=True)
class Settings:
    """Everything the service reads from its environment, with the defaults of CONTRACT."""

    database_url: str
    http_host: str = "0.0.0.0"
    http_port: int = 8080
    http_workers: int = 2
    http_threads: int = 8
    http_max_body_bytes: int = 16 * 1024 * 1024
    migrate_on_start: bool = True
    batch_max_jobs: int = 5000
    lease_seconds: float = 300.0
    retry_backoff_base: float = 5.0
    retry_backoff_max: float = 600.0
    db_pool_size: int = 8
    db_pool_timeout: float = 3.0
    db_connect_timeout: float = 3.0
    db_statement_timeout: float = 15.0
    llm_base_url: str | None = None
    llm_api_key: str | None = dataclasses.field(default=None, repr=False)
    llm_model: str = "qwen2.5-14b"
    llm_timeout: float = 300.0
    whisperx_url: str | None = None
    whisperx_api: str = "asr"
    whisperx_concurrency: int = 1
    whisperx_timeout: float = 1800.0
    whisperx_model: str = "whisper-1"
    audio_max_bytes: int = 100 * 1024 * 1024
    provider_connect_timeout: float = 5.0
    worker_id: str = dataclasses.field(default_factory=socket.gethostname)
    worker_poll_interval: float = 2.0
    worker_claim_limit: int = 4
    worker_concurrency: int | None = None
    worker_shutdown_grace: float = 30.0
    worker_metrics_addr: tuple[str, int] | None = None
    log_level: str = "INFO"
    log_format: str = "text"

    @property
    def worker_threads(self) -> int:
        """Job threads of the worker: WORKER_CONCURRENCY, else WORKER_CLAIM_LIMIT."""
        return self.worker_concurrency or self.worker_claim_limit

    def __repr__(self) -> str:  # never print the database password
        return f"Settings(database_url={redact_url(self.database_url)!r}, ...)"

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Build settings from an environment mapping; raise ``ConfigError`` naming the bad variable."""
        values: dict[str, object] = {}
        for var, field, parse in _VARIABLES:
            raw = environ.get(var)
            if raw is None or raw.strip() == "":
                continue
            try:
                values[field] = parse(raw)
            except ValueError as exc:
                shown = "" if field in _SECRET_FIELDS else f" ({raw!r})"
                raise ConfigError(f"{var}: invalid value{shown}: {exc}") from None
        if "database_url" not in values:
            raise ConfigError(
                "DATABASE_URL is not set: point it at PostgreSQL, "
                "e.g. postgresql://user@127.0.0.1:5432/aiservice"
            )
        return cls(**values)


_SECRET_FIELDS = {"llm_api_key", "database_url"}

# (variable, Settings field, parser): the one list of every variable we read.
_VARIABLES = (
    ("DATABASE_URL", "database_url", _database_url),
    ("HTTP_HOST", "http_host", str.strip),
    ("HTTP_PORT", "http_port", _port),
    ("HTTP_WORKERS", "http_workers", _positive_int),
    ("HTTP_THREADS", "http_threads", _positive_int),
    ("HTTP_MAX_BODY_BYTES", "http_max_body_bytes", _positive_int),
    ("MIGRATE_ON_START", "migrate_on_start", parse_bool),
    ("BATCH_MAX_JOBS", "batch_max_jobs", _positive_int),
    ("LEASE_DURATION", "lease_seconds", _positive_duration),
    ("RETRY_BACKOFF_BASE", "retry_backoff_base", _positive_duration),
    ("RETRY_BACKOFF_MAX", "retry_backoff_max", _positive_duration),
    ("DB_POOL_SIZE", "db_pool_size", _positive_int),
    ("DB_POOL_TIMEOUT", "db_pool_timeout", _positive_duration),
    ("DB_CONNECT_TIMEOUT", "db_connect_timeout", _positive_duration),
    ("DB_STATEMENT_TIMEOUT", "db_statement_timeout", _positive_duration),
    ("LLM_BASE_URL", "llm_base_url", _url),
    ("LLM_API_KEY", "llm_api_key", str.strip),
    ("LLM_MODEL", "llm_model", str.strip),
    ("LLM_TIMEOUT", "llm_timeout", _positive_duration),
    ("WHISPERX_URL", "whisperx_url", _url),
    ("WHISPERX_API", "whisperx_api", lambda s: _choice(s.strip().lower(), ("asr", "openai"))),
    ("WHISPERX_CONCURRENCY", "whisperx_concurrency", _positive_int),
    ("WHISPERX_TIMEOUT", "whisperx_timeout", _positive_duration),
    ("WHISPERX_MODEL", "whisperx_model", str.strip),
    ("AUDIO_MAX_BYTES", "audio_max_bytes", _positive_int),
    ("PROVIDER_CONNECT_TIMEOUT", "provider_connect_timeout", _positive_duration),
    ("WORKER_ID", "worker_id", str.strip),
    ("WORKER_POLL_INTERVAL", "worker_poll_interval", _positive_duration),
    ("WORKER_CLAIM_LIMIT", "worker_claim_limit", _positive_int),
    ("WORKER_CONCURRENCY", "worker_concurrency", _positive_int),
    ("WORKER_SHUTDOWN_GRACE", "worker_shutdown_grace", _positive_duration),
    ("WORKER_METRICS_ADDR", "worker_metrics_addr", _host_port),
    ("LOG_LEVEL", "log_level", lambda s: _choice(s.strip().upper(), ("DEBUG", "INFO", "WARNING", "ERROR"))),
    ("LOG_FORMAT", "log_format", lambda s: _choice(s.strip().lower(), ("text", "json"))),
)


def _choice(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return value


def variables() -> list[str]:
    """Every environment variable the service reads (for docs and tests)."""
    return [var for var, _, _ in _VARIABLES]
