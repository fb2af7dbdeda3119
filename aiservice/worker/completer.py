"""The worker's completer: results written in batches, the way PostgreSQL commits in groups.

A job thread that has a result hands it over and waits. One thread writes
everything handed over meanwhile in one statement and one commit
(``JobStore.complete_many``), then wakes each waiter with its own answer: the
row, or the error a single ``complete`` would have raised. A lone completion is
written at once; under load, the jobs that finish while one batch commits go
together in the next. This is River's BatchCompleter and graphile-worker's
batched completion, kept synchronous: the job thread still sees its result
committed (or refused) before it frees its slot, so nothing acknowledged can be
lost and the dispatcher never claims past its threads.
"""

from __future__ import annotations

import logging
import threading
import uuid

from aiservice import metrics
from aiservice.errors import AIServiceError, InvalidRequest
from aiservice.jobs import JobStore

log = logging.getLogger(__name__)


class _Handed:
    """One result handed over. ``done`` is a bare lock, taken at hand-over and released once the
    answer is in: the waiter blocks in C on its second acquire (an Event costs a Python Condition
    and a fresh lock per wait, about 20 µs a job here)."""

    __slots__ = ("job_id", "attempt", "result", "answer", "done")

    def __init__(self, job_id: uuid.UUID, attempt: int, result: dict):
        self.job_id = job_id
        self.attempt = attempt
        self.result = result
        self.answer: dict | AIServiceError | None = None
        self.done = threading.Lock()
        self.done.acquire()


class Completer:
    """Batches ``complete`` calls from many job threads; at most ``max_batch`` per statement."""

    def __init__(self, store: JobStore, worker_id: str, max_batch: int = 100):
        self.store = store
        self.worker_id = worker_id
        self.max_batch = max_batch
        self._cond = threading.Condition()
        self._handed: list[_Handed] = []
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="completer", daemon=True)
        self.batches = 0  # statements written, for tests and the curious
        self.completed = 0

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Write what is handed over, then stop; later calls write in the caller's thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def complete(self, job_id: uuid.UUID, attempt: int, result: dict) -> dict:
        """Store ``result``; return the row written or raise what ``JobStore.complete`` would."""
        handed = _Handed(job_id, attempt, result)
        with self._cond:
            closed = self._closed
            if not closed:
                self._handed.append(handed)
                self._cond.notify()
        if closed:
            self._write([handed])
        handed.done.acquire()  # until _write has answered
        if isinstance(handed.answer, AIServiceError):
            raise handed.answer
        return handed.answer

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._handed and not self._closed:
                    self._cond.wait()
                if not self._handed:
                    return
                batch = self._handed[: self.max_batch]
                del self._handed[: self.max_batch]
            self._write(batch)

    def _write(self, batch: list[_Handed]) -> None:
        try:
            answers = self.store.complete_many(
                self.worker_id, [(h.job_id, h.attempt, h.result) for h in batch])
        except InvalidRequest as exc:
            if len(batch) == 1:
                answers = {batch[0].job_id: exc}
            else:
                # One result the database refuses (say, a \u0000 in a string, which
                # jsonb cannot hold) must not sink the others: write them one by one.
                for h in batch:
                    self._write([h])
                return
        except AIServiceError as exc:  # Unavailable: each job thread retries while its lease lasts
            answers = {h.job_id: exc for h in batch}
        except Exception as exc:  # noqa: BLE001  a waiter must never hang
            log.exception("batched completion failed")
            answers = {h.job_id: AIServiceError(f"completion failed: {type(exc).__name__}") for h in batch}
        self.batches += 1
        metrics.COMPLETION_BATCHES.inc()
        self.completed += sum(1 for a in answers.values() if not isinstance(a, AIServiceError))
        for h in batch:
            h.answer = answers[h.job_id]
            h.done.release()
