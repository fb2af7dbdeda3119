"""The API's announcer of new jobs: prompt for a lone create, bounded under a stream of them."""

import time

import psycopg

from aiservice.db import Notifier


def _listen(database_url):
    conn = psycopg.connect(database_url, autocommit=True)
    conn.execute(f"LISTEN {Notifier.CHANNEL}")
    return conn


def _received(conn, within: float) -> int:
    return sum(1 for _ in conn.notifies(timeout=within))


def test_a_lone_create_is_announced_at_once(db, database_url):
    with _listen(database_url) as conn:
        started = time.monotonic()
        db.notifier.notify()
        note = next(conn.notifies(timeout=2, stop_after=1))
        assert note.channel == Notifier.CHANNEL
        assert time.monotonic() - started < 0.5


def test_a_stream_of_creates_is_announced_at_most_once_per_interval(db, database_url):
    with _listen(database_url) as conn:
        db.notifier.notify()
        _received(conn, 0.3)  # the connection is up
        started = time.monotonic()
        while time.monotonic() - started < 0.2:
            db.notifier.notify()
            time.sleep(0.0002)
        elapsed = time.monotonic() - started
        count = _received(conn, 0.3)
    assert 2 <= count <= elapsed / Notifier.MIN_INTERVAL + 2
