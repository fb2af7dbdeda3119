"""The worker: a dispatcher (the main thread), N job threads, a heartbeat thread and a listener.

- The dispatcher claims only as many jobs as there are free threads (and free
  slots of each handler), at most ``WORKER_CLAIM_LIMIT`` per claim, only the
  task types and model profiles its handlers serve. A claim commits before any
  provider is called.
- While jobs run, it lets freed slots gather for up to ``CLAIM_GATHER`` (5 ms)
  after its last claim, until half the threads are free: one claim then fills
  several slots instead of a claim transaction per finished job. An idle worker
  claims at once.
- Idle, it sleeps until a NOTIFY, the next due time of a scheduled job or an
  expiring lease, or ``WORKER_POLL_INTERVAL``, whichever comes first.
- Job threads run a handler, then fail the job in a short transaction of its
  own, or hand the result to the completer, which writes the results of all
  jobs finished meanwhile in one statement; both are fenced by worker id and
  attempt, and the thread frees its slot only once the outcome is committed.
- The heartbeat thread extends the leases of running jobs every third of the
  lease, in one statement; a lease it finds lost (taken over, retried,
  cancelled) means the thread's result is dropped.
- On SIGTERM/SIGINT: stop claiming, let jobs finish for up to
  ``WORKER_SHUTDOWN_GRACE``, hand back the rest (pending, attempt not
  counted), exit 0. A second signal exits at once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import queue
import signal
import threading
import time
import uuid

import prometheus_client

from aiservice.config import Settings
from aiservice.db import Database
from aiservice.errors import Conflict, JobNotFound, Unavailable
from aiservice.jobs import JobStore
from aiservice import metrics, systemd
from aiservice.schemas import Schemas
from aiservice.worker.completer import Completer
from aiservice.worker.handlers import Handler, build_handlers
from aiservice.worker.listener import Listener
from aiservice.worker.providers import ProviderError, make_pool

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Running:
    job_id: uuid.UUID
    attempt: int
    handler: Handler
    lost: bool = False  # the lease is no longer ours: do not write the outcome


class Worker:
    CLAIM_GATHER = 0.005

    def __init__(self, settings: Settings, handlers: list[Handler] | None = None,
                 schemas: Schemas | None = None):
        self.settings = settings
        self.worker_id = settings.worker_id
        self.threads = settings.worker_threads
        self.claim_limit = settings.worker_claim_limit
        self.lease_seconds = settings.lease_seconds
        app_name = f"aiservice-worker:{self.worker_id}"[:63]
        self.db = Database(settings, app_name, pool_size=self.threads + 2)
        self.store = JobStore(self.db, settings)
        self.completer = Completer(self.store, self.worker_id)
        self.http = make_pool(self.threads)
        self.handlers = handlers if handlers is not None else build_handlers(
            settings, self.http, schemas or Schemas())
        self.stop = threading.Event()         # stop claiming
        self.wake = threading.Event()         # a job may be claimable
        self._stop_heartbeat = threading.Event()
        self._lock = threading.Lock()
        self._slot_freed = threading.Condition(self._lock)
        self._running: dict[uuid.UUID, Running] = {}
        self._busy = {h.name: 0 for h in self.handlers}
        self._queue: queue.Queue = queue.Queue()
        self.listener = Listener(settings, self.wake, self.stop, app_name)
        self.ready = threading.Event()
        self._watchdog = systemd.watchdog_interval()
        self._last_ping = 0.0
        self._last_claim = 0.0
        self.stats = {"completed": 0, "failed": 0, "retrying": 0, "dropped": 0, "released": 0}

    # --- life cycle -----------------------------------------------------------

    def run(self) -> int:
        """Work until ``request_stop``; then finish or hand back what is held. Returns the exit code."""
        if not self.handlers:
            log.error("no providers configured: set LLM_BASE_URL and/or WHISPERX_URL")
            return 2
        self.db.open()
        if self.settings.worker_metrics_addr:
            host, port = self.settings.worker_metrics_addr
            prometheus_client.start_http_server(port, addr=host)
            log.info("metrics at http://%s:%d/metrics", host, port)
        self.listener.start()
        self.completer.start()
        threads = [threading.Thread(target=self._job_thread, name=f"job-{n}", daemon=True)
                   for n in range(self.threads)]
        for t in threads:
            t.start()
        heartbeat = threading.Thread(target=self._heartbeat_thread, name="heartbeat", daemon=True)
        heartbeat.start()
        log.info("worker %s started: %d threads, handlers %s", self.worker_id, self.threads,
                 ", ".join(f"{h.name} ({'/'.join(h.task_types)} on {'/'.join(h.model_profiles)}, "
                           f"{h.concurrency} at once)" for h in self.handlers))
        self.ready.set()
        systemd.notify(f"READY=1\nSTATUS=claiming with {self.threads} threads")
        try:
            self._dispatch()
        finally:
            self._shutdown(threads)
        return 0

    def request_stop(self) -> None:
        if not self.stop.is_set():
            log.info("stopping: no new claims; finishing %d running job(s)", len(self._running))
            systemd.notify("STOPPING=1")
        self.stop.set()
        self.wake.set()  # an idle dispatcher is waiting on this
        with self._slot_freed:
            self._slot_freed.notify_all()

    def install_signal_handlers(self) -> None:
        def handle(signum, frame):
            if self.stop.is_set():
                log.warning("second signal: exiting now; running jobs return after their leases expire")
                os._exit(1)
            self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def _shutdown(self, threads: list[threading.Thread]) -> None:
        deadline = time.monotonic() + self.settings.worker_shutdown_grace
        with self._slot_freed:
            while self._running and time.monotonic() < deadline:
                self._slot_freed.wait(max(0.0, deadline - time.monotonic()))
            left = [r for r in self._running.values() if not r.lost]
            for r in left:
                r.lost = True  # whatever the thread finds later is no longer ours to write
        if left:
            try:
                released = self.store.release(self.worker_id, [(r.job_id, r.attempt) for r in left])
            except Unavailable:
                released = set()
                log.warning("could not hand back %d job(s): the database is unavailable; "
                            "they return when their leases expire", len(left))
            self.stats["released"] += len(released)
            for r in left:
                log.info("handed back job %s (attempt %d not counted)", r.job_id, r.attempt,
                         extra={"job_id": str(r.job_id)})
        self._stop_heartbeat.set()
        for _ in threads:
            self._queue.put(None)
        self.completer.close()
        self.stop.set()
        self.listener.join(timeout=3)
        self.db.close()
        log.info("worker %s stopped", self.worker_id)

    # --- dispatching ------------------------------------------------------------

    def _dispatch(self) -> None:
        while not self.stop.is_set():
            self._ping_watchdog()
            self.wake.clear()  # a NOTIFY from now on makes the next wait return at once
            self._gather_free_slots()
            try:
                more = self._claim_round()
            except Unavailable:
                log.warning("cannot claim: the database is unavailable; retrying")
                self.stop.wait(1.0)
                continue
            if more:
                continue
            with self._slot_freed:
                if self._free_total() == 0 and not self.stop.is_set():
                    self._slot_freed.wait(self._watchdog)  # everything busy: wait for a thread
                    continue
            timeout = self._idle_timeout()
            self.wake.wait(min(timeout, self._watchdog) if self._watchdog else timeout)

    def _gather_free_slots(self) -> None:
        """While jobs run and fewer than half the threads are free, wait for more (briefly)."""
        deadline = self._last_claim + self.CLAIM_GATHER
        with self._slot_freed:
            while (self._running and not self.stop.is_set() and self._free_total() < self.threads / 2
                   and (remaining := deadline - time.monotonic()) > 0):
                self._slot_freed.wait(remaining)

    def _ping_watchdog(self) -> None:
        """Tell systemd the loop is alive; called only from the loop itself."""
        if self._watchdog and time.monotonic() - self._last_ping >= self._watchdog:
            systemd.notify("WATCHDOG=1")
            self._last_ping = time.monotonic()

    def _claim_round(self) -> bool:
        """Claim for every handler with free slots; True if some handler may have more waiting."""
        more = False
        for handler in self.handlers:
            with self._lock:
                free = min(handler.concurrency - self._busy[handler.name], self._free_total())
            if free <= 0 or self.stop.is_set():
                continue
            limit = min(free, self.claim_limit)
            with metrics.CLAIMS.time():
                jobs = self.store.claim(self.worker_id, limit, task_types=handler.task_types,
                                        model_profiles=handler.model_profiles,
                                        lease_seconds=self.lease_seconds)
            metrics.CLAIMED.inc(len(jobs))
            if jobs:
                self._last_claim = time.monotonic()
            with self._lock:
                for job in jobs:
                    self._running[job["id"]] = Running(job["id"], job["attempts"], handler)
                    self._busy[handler.name] += 1
            for job in jobs:
                self._queue.put((handler, job))
            more = more or len(jobs) == limit
        return more

    def _free_total(self) -> int:
        return self.threads - len(self._running)

    def _idle_timeout(self) -> float:
        timeout = self.settings.worker_poll_interval
        try:
            due = self.store.next_due(sorted({t for h in self.handlers for t in h.task_types}),
                                      sorted({p for h in self.handlers for p in h.model_profiles}))
        except Unavailable:
            return timeout
        if due is not None:
            timeout = min(timeout, due + 0.005)
        return timeout

    # --- job threads --------------------------------------------------------------

    def _job_thread(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            handler, job = item
            try:
                self._process(handler, job)
            except Exception:  # never let one job kill the thread
                log.exception("unexpected error while finishing job %s", job["id"],
                              extra={"job_id": str(job["id"])})
            finally:
                with self._slot_freed:
                    self._running.pop(job["id"], None)
                    self._busy[handler.name] -= 1
                    self._slot_freed.notify_all()
                # The dispatcher may be idle only because this handler was full.
                self.wake.set()

    def _process(self, handler: Handler, job: dict) -> None:
        started = time.monotonic()
        error: ProviderError | None = None
        result = None
        try:
            result = handler.run(job)
        except ProviderError as exc:
            error = exc
        except Exception as exc:
            log.exception("handler %s raised on job %s", handler.name, job["id"],
                          extra={"job_id": str(job["id"])})
            error = ProviderError("internal", f"{type(exc).__name__} in the {handler.name} handler")
        duration_ms = round((time.monotonic() - started) * 1000)
        fields = {"job_id": str(job["id"]), "task_type": job["task_type"],
                  "model_profile": job["model_profile"], "attempt": job["attempts"],
                  "duration_ms": duration_ms, "category": error.category if error else None}
        running = self._running.get(job["id"])
        if running is None or running.lost:
            self.stats["dropped"] += 1
            log.info("job %s outcome dropped: its lease is no longer ours", job["id"], extra=fields)
            return
        row = self._write_outcome(job, result, error)
        if row is None:
            self.stats["dropped"] += 1
            return
        outcome = {"completed": "completed", "failed": "failed", "pending": "retrying"}[row["status"]]
        self.stats[outcome] += 1
        level = logging.WARNING if outcome == "failed" else logging.INFO
        message = f" ({error.message})" if error else ""
        log.log(level, "job %s %s%s", job["id"], outcome, message, extra=fields)

    def _write_outcome(self, job: dict, result: dict | None, error: ProviderError | None) -> dict | None:
        """Complete or fail the job; keep trying through a database outage while the lease lasts."""
        deadline = time.monotonic() + self.lease_seconds
        delay = 0.2
        while True:
            try:
                if error is None:
                    return self.completer.complete(job["id"], job["attempts"], result)
                return self.store.fail(job["id"], self.worker_id, error.category, error.message,
                                       attempt=job["attempts"], retryable=error.retryable,
                                       retry_after_seconds=error.retry_after)
            except (Conflict, JobNotFound) as exc:
                log.info("job %s outcome refused: %s", job["id"], exc.message, extra={"job_id": str(job["id"])})
                return None
            except Unavailable:
                if time.monotonic() + delay > deadline:
                    log.error("job %s outcome lost: the database stayed unavailable for the whole lease",
                              job["id"], extra={"job_id": str(job["id"])})
                    return None
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    # --- leases -------------------------------------------------------------------------

    def _heartbeat_thread(self) -> None:
        interval = max(0.1, self.lease_seconds / 3)
        while not self._stop_heartbeat.wait(interval):
            with self._lock:
                held = [(r.job_id, r.attempt) for r in self._running.values() if not r.lost]
            if not held:
                continue
            try:
                still = self.store.heartbeat_many(self.worker_id, held)
            except Unavailable:
                log.warning("heartbeat failed: the database is unavailable")
                continue
            with self._lock:
                for job_id, _ in held:
                    running = self._running.get(job_id)
                    if job_id not in still and running is not None and not running.lost:
                        running.lost = True
                        log.warning("lost the lease of job %s (taken over, retried or cancelled)", job_id,
                                    extra={"job_id": str(job_id)})

