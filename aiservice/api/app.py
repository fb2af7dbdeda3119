"""The app factory: wires resources to routes, errors to responses."""

from __future__ import annotations

import logging
import os

import falcon

from aiservice import logs, migrations
from aiservice.api import errors, openapi, resources
from aiservice.api.middleware import Metrics, RequestId
from aiservice.config import ConfigError, Settings
from aiservice.db import Database, errors_translated
from aiservice.errors import AIServiceError
from aiservice.jobs import JobStore
from aiservice.provider_status import ProviderStatus
from aiservice.schemas import Schemas

log = logging.getLogger(__name__)


class ServiceApp(falcon.App):
    """The Falcon app, holding its store so gunicorn's hooks can open and close the pool."""

    store: JobStore


def create_app(settings: Settings, store: JobStore | None = None, schemas: Schemas | None = None) -> ServiceApp:
    """The API for ``settings``; the database pool opens on the first request."""
    store = store or JobStore(Database(settings, "aiservice-api"), settings)
    schemas = schemas or Schemas()
    app = ServiceApp(middleware=[RequestId(), Metrics()])
    app.req_options.strip_url_path_trailing_slash = True
    app.resp_options.default_media_type = falcon.MEDIA_JSON
    errors.register(app)

    parts = (store, schemas, settings)
    job = resources.Job(*parts)
    app.add_route("/api/v1/jobs", resources.Jobs(*parts))
    app.add_route("/api/v1/jobs/batch", resources.JobBatch(*parts))
    app.add_route("/api/v1/jobs/claim", resources.JobClaim(*parts))
    app.add_route("/api/v1/jobs/{job_id}", job)
    for action in ("heartbeat", "complete", "fail", "retry", "cancel"):
        app.add_route(f"/api/v1/jobs/{{job_id}}/{action}", job, suffix=action)
    app.add_route("/api/v1/batches/{batch_id}", resources.Batch(*parts))
    app.add_route("/api/v1/stats", resources.Stats(*parts))
    app.add_route("/api/v1/providers/status", resources.ProvidersStatus(ProviderStatus(settings)))
    app.add_route("/api/v1/openapi.json", resources.OpenAPI(openapi.build(schemas)))
    app.add_route("/metrics", resources.Metrics(*parts))
    app.add_route("/healthz", resources.Health())
    app.add_route("/readyz", resources.Ready(*parts))
    app.store = store
    return app


def create_wsgi_app() -> ServiceApp:
    """Entry point for ``gunicorn aiservice.wsgi:app``: settings from the environment."""
    try:
        settings = Settings.from_env(os.environ)
    except ConfigError as exc:
        raise SystemExit(f"aiservice: {exc}") from None
    logs.configure(settings.log_level, settings.log_format)
    if settings.migrate_on_start:
        try:
            with errors_translated():
                migrations.migrate(settings)
        except AIServiceError as exc:
            # Serve anyway: /readyz says 503 until the database and migrations are right.
            log.error("migrations not applied at start-up: %s", exc)
    return create_app(settings)
