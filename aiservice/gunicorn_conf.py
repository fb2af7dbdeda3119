"""gunicorn settings for the API (``gunicorn -c python:aiservice.gunicorn_conf aiservice.wsgi:app``).

Every value comes from the same Settings the rest of the service uses, so a
bad variable stops start-up with one line naming it.
"""

import os
import shutil
import tempfile

from aiservice import logs
from aiservice.config import ConfigError, Settings

try:
    _settings = Settings.from_env(os.environ)
except ConfigError as exc:
    raise SystemExit(f"aiservice: {exc}") from None

bind = [f"{_settings.http_host}:{_settings.http_port}"]

# gthread: each worker process serves HTTP_THREADS requests at once from one
# psycopg pool of DB_POOL_SIZE connections (keep the two equal). Requests are
# short (one or two statements), so a couple of processes saturate 2 cores.
worker_class = "gthread"
workers = _settings.http_workers
threads = _settings.http_threads

# Never preload: psycopg connections must not cross a fork, and without
# preload each worker imports the app (and builds its pool) after forking,
# and HUP reloads the code.
preload_app = False

# A request holds a database connection for milliseconds; 60 s means stuck.
timeout = 60
# On SIGTERM/HUP, workers finish in-flight requests for up to 30 s. systemd's
# TimeoutStopSec must be longer than this.
graceful_timeout = 30
keepalive = 5

# Recycle workers now and then, staggered, to bound any slow growth in memory.
max_requests = 20000
max_requests_jitter = 2000

# Both logs to stderr (journald under systemd), through the service's own
# formatter: one JSON object per line with LOG_FORMAT=json, text otherwise.
accesslog = "-"
errorlog = "-"
loglevel = _settings.log_level.lower()
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
logconfig_dict = logs.gunicorn_logconfig(_settings.log_level, _settings.log_format)
proc_name = "aiservice-api"

# Recent gunicorn opens a control socket under ~/.gunicorn by default; the
# service account has no home to write to (and systemd units protect it).
control_socket_disable = True


def post_worker_init(worker):
    """Open this worker's pool now rather than on its first request."""
    store = getattr(worker.wsgi, "store", None)  # absent for another app under these settings
    if store is not None:
        store.db.open()


def worker_exit(server, worker):
    """Close this worker's connections cleanly on its way out."""
    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "store"):
        app.store.db.close()


# Metrics: every worker process writes its counters to files in one directory
# and a scrape of any of them reports the sum (prometheus_client's multiprocess
# mode). Made once per master (HUP re-reads this file: keep the same directory).
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="aiservice-metrics-")
    _own_metrics_dir = True
else:
    _own_metrics_dir = False


def child_exit(server, worker):
    """A worker is gone: merge its live gauges away (counters stay counted)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    if _own_metrics_dir:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)
