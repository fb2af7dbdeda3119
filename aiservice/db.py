"""PostgreSQL access: the pool, connection options, and error translation.

This is the only module that knows psycopg's exceptions: ``errors_translated``
turns them into ``aiservice.errors`` types, once, for every caller.
"""

from __future__ import annotations

import contextlib
import logging
import select
import threading
from collections.abc import Iterator

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from aiservice.config import Settings
from aiservice.errors import InvalidRequest, Unavailable

log = logging.getLogger(__name__)


def connect_kwargs(settings: Settings, application_name: str) -> dict:
    """libpq options every service session gets."""
    timeout_ms = int(settings.db_statement_timeout * 1000)
    return {
        "application_name": application_name,
        "connect_timeout": max(1, int(round(settings.db_connect_timeout))),
        # UTC everywhere; no statement may run away; a session left idle inside
        # a transaction would stop vacuum on the jobs table, so it is cut off.
        "options": (
            f"-c timezone=UTC -c statement_timeout={timeout_ms}"
            " -c idle_in_transaction_session_timeout=30000"
        ),
    }


def connect(settings: Settings, application_name: str, **kwargs) -> psycopg.Connection:
    """One connection outside the pool (migrations, LISTEN)."""
    with errors_translated():
        return psycopg.connect(
            settings.database_url, **connect_kwargs(settings, application_name), **kwargs
        )


def _check_when_readable(conn: psycopg.Connection) -> None:
    """Pool check: pay for a round trip only when the idle socket has something to say.

    A connection the server closed (restart, admin kill, idle timeout) becomes
    readable; a healthy idle one does not. The full check then raises and the
    pool replaces the connection instead of handing out a dead one.
    """
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        ConnectionPool.check_connection(conn)


class Notifier:
    """Announces new jobs (``NOTIFY aiservice_jobs``) from a connection and a thread of its own.

    Called after a commit, ``notify()`` only sets an event; the thread sends one
    pg_notify for however many calls came in meanwhile. The NOTIFY never runs
    inside a job's transaction, where PostgreSQL's notification lock would
    serialise every commit. After each NOTIFY the thread rests ``MIN_INTERVAL``:
    a lone create is announced at once, a busy API sends at most 50 a second
    (each costs a round trip and thread switches, about 100 µs of CPU in the API
    and more in PostgreSQL, and wakes every listening worker). A create that
    comes during the rest waits for its end, 20 ms at most: River's limiter
    allows one per 100 ms. Failures are logged and forgotten: workers still poll.
    """

    CHANNEL = "aiservice_jobs"
    MIN_INTERVAL = 0.02

    def __init__(self, settings: Settings, application_name: str):
        self.settings = settings
        self.application_name = application_name
        self._pending = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def notify(self) -> None:
        self._pending.set()
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._closed.is_set():
                    self._thread = threading.Thread(target=self._run, name="notifier", daemon=True)
                    self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._pending.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        conn = None
        while True:
            self._pending.wait()
            if self._closed.is_set():
                break
            self._pending.clear()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.settings.database_url, autocommit=True,
                                           **connect_kwargs(self.settings, self.application_name))
                conn.execute("SELECT pg_notify(%s, '')", [self.CHANNEL])
                self._closed.wait(self.MIN_INTERVAL)
            except psycopg.Error as exc:
                log.warning("could not announce new jobs (workers will poll): %s", _first_line(exc))
                if conn is not None:
                    conn.close()
                conn = None
                self._closed.wait(1.0)
        if conn is not None:
            conn.close()


class Database:
    """One connection pool per process, opened on first use (after gunicorn forks)."""

    def __init__(self, settings: Settings, application_name: str = "aiservice-api",
                 pool_size: int | None = None):
        self.settings = settings
        self._lock = threading.Lock()
        self._pool = ConnectionPool(
            settings.database_url,
            kwargs={**connect_kwargs(settings, application_name), "row_factory": dict_row},
            min_size=1,
            max_size=pool_size or settings.db_pool_size,
            timeout=settings.db_pool_timeout,
            check=_check_when_readable,
            name=application_name,
            open=False,
        )
        self._opened = False
        self.notifier = Notifier(settings, application_name)

    def open(self) -> None:
        with self._lock:
            if not self._opened:
                # wait=False: start even while PostgreSQL is down; requests answer
                # 503 until it is back, then the pool refills by itself.
                self._pool.open(wait=False)
                self._opened = True

    def close(self) -> None:
        self.notifier.close()
        with self._lock:
            if self._opened:
                self._pool.close()
                self._opened = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A pooled connection in one transaction: committed on success, rolled back on error."""
        if not self._opened:
            self.open()
        with errors_translated(), self._pool.connection() as conn:
            yield conn


@contextlib.contextmanager
def errors_translated() -> Iterator[None]:
    """Turn psycopg's exceptions into the service's own."""
    try:
        yield
    except PoolTimeout:
        raise Unavailable("the database is unavailable; try again shortly") from None
    except psycopg.OperationalError as exc:
        # Connection refused or lost, server shutting down, statement timeout.
        log.warning("database operation failed: %s", _first_line(exc))
        raise Unavailable("the database is unavailable; try again shortly") from None
    except psycopg.DataError as exc:
        # Validation should stop every bad value first; this keeps one we missed a 4xx.
        diag = exc.diag.message_primary or "invalid value"
        raise InvalidRequest(f"a value was refused by the database: {diag}") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).splitlines() or [""])[0]

