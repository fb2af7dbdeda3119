"""The ``aiservice`` command: serve, migrate, dev."""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from aiservice import logs, migrations
from aiservice.config import ConfigError, Settings, redact_url
from aiservice.db import errors_translated
from aiservice.errors import AIServiceError

log = logging.getLogger("aiservice")


def _settings() -> Settings:
    try:
        return Settings.from_env(os.environ)
    except ConfigError as exc:
        raise SystemExit(f"aiservice: {exc}") from None


def _migrate(settings: Settings) -> None:
    try:
        with errors_translated():
            migrations.migrate(settings)  # logs each migration it applies
    except AIServiceError as exc:
        raise SystemExit(f"aiservice: migrations failed on {redact_url(settings.database_url)}: {exc}") from None


def cmd_migrate(args) -> int:
    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    _migrate(settings)
    return 0


def cmd_worker(args) -> int:
    """The built-in worker: claims jobs its providers can run and runs them."""
    from aiservice.jobs import JobStore
    from aiservice.worker.runner import Worker

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    worker = Worker(settings)
    worker.install_signal_handlers()
    if not worker.handlers:
        raise SystemExit("aiservice worker: no providers configured: set LLM_BASE_URL and/or WHISPERX_URL")
    if not _wait_for_migrations(JobStore(worker.db, settings), worker.stop):
        return 0
    return worker.run()


def _wait_for_migrations(store, stop) -> bool:
    """Block until the schema is current (the API migrates it); False if asked to stop first."""
    said = False
    while not stop.is_set():
        try:
            if store.migrations_current():
                return True
        except AIServiceError:
            pass
        if not said:
            log.info("waiting for the database and its migrations")
            said = True
        stop.wait(1.0)
    return False


def cmd_prune(args) -> int:
    """Delete finished jobs older than --older-than, in small batches; print what was done."""
    from aiservice.config import parse_duration
    from aiservice.db import Database
    from aiservice.jobs import JobStore

    try:
        older_than = parse_duration(args.older_than)
        pause = parse_duration(args.pause)
    except ValueError as exc:
        raise SystemExit(f"aiservice prune: {exc}") from None
    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    store = JobStore(Database(settings, "aiservice-prune", pool_size=1), settings)
    started = time.monotonic()
    totals: dict[str, int] = {}
    batches = 0
    try:
        while True:
            counts = store.prune_batch(older_than, args.batch_size)
            for status, n in counts.items():
                totals[status] = totals.get(status, 0) + n
            if sum(counts.values()) < args.batch_size:
                break
            time.sleep(pause)  # let autovacuum and everyone else breathe
        while True:
            n = store.prune_batch_records(older_than, args.batch_size)
            batches += n
            if n < args.batch_size:
                break
    except AIServiceError as exc:
        raise SystemExit(f"aiservice prune: stopped after deleting {sum(totals.values())} jobs: {exc}") from None
    finally:
        store.db.close()
    detail = ", ".join(f"{status} {n}" for status, n in sorted(totals.items())) or "nothing to delete"
    print(f"pruned {sum(totals.values())} jobs finished more than {args.older_than} ago ({detail}); "
          f"{batches} batch records; {time.monotonic() - started:.1f}s")
    return 0


def cmd_serve(args) -> int:
    """Migrate (when MIGRATE_ON_START), then become gunicorn with the packaged config."""
    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    if settings.migrate_on_start:
        _migrate(settings)
    # Migrations are done once here, not again in every gunicorn worker.
    env = {**os.environ, "MIGRATE_ON_START": "false"}
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:aiservice.gunicorn_conf", "aiservice.wsgi:app"]
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def cmd_dev(args) -> int:
    """Run the whole service on this machine, with a PostgreSQL of its own unless DATABASE_URL is set."""
    logs.configure(os.environ.get("LOG_LEVEL", "INFO"))
    env = dict(os.environ)
    cluster = None
    if not env.get("DATABASE_URL"):
        from aiservice.localpg import (LocalPostgres, LocalPostgresError, port_is_free,
                                       reachable_by_server_user)

        root = Path(args.data_dir).resolve() / "pg"
        if not reachable_by_server_user(root):
            # e.g. a checkout under /root (mode 0700): keep the data where 'postgres' can go.
            root = Path("/var/tmp") / f"aiservice-dev-{hashlib.sha256(bytes(root)).hexdigest()[:10]}" / "pg"
        port = args.pg_port if port_is_free(args.pg_port) else None
        cluster = LocalPostgres(root, port=port)
        try:
            cluster.init()
            if cluster.running():
                cluster.stop("immediate")  # left over from a run that was killed
            cluster.start()
            env["DATABASE_URL"] = cluster.create_database("aiservice")
        except LocalPostgresError as exc:
            raise SystemExit(f"aiservice dev: {exc}") from None
        log.info("PostgreSQL running at %s (data in %s)", env["DATABASE_URL"], cluster.data)
    children = []
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        children.append(subprocess.Popen([sys.executable, "-m", "aiservice", "serve"], env=env))
        if env.get("LLM_BASE_URL") or env.get("WHISPERX_URL"):
            children.append(subprocess.Popen([sys.executable, "-m", "aiservice", "worker"], env=env))
        else:
            log.info("no worker: set LLM_BASE_URL and/or WHISPERX_URL to run the built-in worker")
        while not stopping and all(c.poll() is None for c in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=40)
            except subprocess.TimeoutExpired:
                child.kill()
        if cluster is not None:
            cluster.stop()
            log.info("PostgreSQL stopped")
    failed = [c.returncode for c in children if c.returncode not in (0, -signal.SIGTERM)]
    return 0 if stopping or not failed else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aiservice", description="AI Service: jobs for AI work on PostgreSQL.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the HTTP API under gunicorn").set_defaults(func=cmd_serve)
    sub.add_parser("migrate", help="apply sql/migrations in order").set_defaults(func=cmd_migrate)
    sub.add_parser("worker", help="run the built-in worker").set_defaults(func=cmd_worker)
    prune = sub.add_parser("prune", help="delete finished jobs older than a duration, in small batches")
    prune.add_argument("--older-than", required=True, help="e.g. 30d, 12h")
    prune.add_argument("--batch-size", type=int, default=1000, help="rows deleted per transaction")
    prune.add_argument("--pause", default="50ms", help="pause between batches")
    prune.set_defaults(func=cmd_prune)
    dev = sub.add_parser("dev", help="run the service here, with its own PostgreSQL when DATABASE_URL is unset")
    dev.add_argument("--data-dir", default=".local", help="where the local PostgreSQL keeps its data")
    dev.add_argument("--pg-port", type=int, default=54329, help="port of the local PostgreSQL")
    dev.set_defaults(func=cmd_dev)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
