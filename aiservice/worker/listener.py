"""LISTEN on a dedicated autocommit connection; every notification sets the wake event.

The connection is never the pool's (``notifies()`` holds the connection's
lock for as long as it runs). When PostgreSQL goes away the thread
reconnects with a capped backoff and, once back, wakes the worker once, since
notifications sent while it was gone are lost.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from psycopg import sql

from aiservice.config import Settings
from aiservice.db import connect_kwargs

log = logging.getLogger(__name__)

CHANNEL = "aiservice_jobs"


class Listener(threading.Thread):
    def __init__(self, settings: Settings, wake: threading.Event, stop: threading.Event,
                 application_name: str):
        super().__init__(name="listener", daemon=True)
        self.settings = settings
        self.wake = wake
        self.stop_event = stop
        self.application_name = application_name
        self.connected = threading.Event()

    def run(self) -> None:
        delay = 0.2
        while not self.stop_event.is_set():
            try:
                with psycopg.connect(self.settings.database_url, autocommit=True,
                                     **connect_kwargs(self.settings, self.application_name)) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                    log.info("listening for new jobs on channel %s", CHANNEL)
                    self.connected.set()
                    self.wake.set()  # anything announced while we were away
                    delay = 0.2
                    while not self.stop_event.is_set():
                        # Returns after a notification or a quarter second of quiet
                        # (to see the stop event); raises when the connection is lost.
                        for _ in conn.notifies(timeout=0.25, stop_after=1):
                            self.wake.set()
            except psycopg.Error as exc:
                if self.connected.is_set():
                    log.warning("lost the LISTEN connection, reconnecting: %s",
                                (str(exc).splitlines() or [type(exc).__name__])[0])
                self.connected.clear()
            if self.stop_event.wait(delay):
                return
            delay = min(delay * 2, 5.0)
