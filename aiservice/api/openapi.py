"""The OpenAPI 3.1 document, assembled once from the files in ``schema/``."""

from __future__ import annotations

import copy

from aiservice import __version__
from aiservice.schemas import Schemas

_JOB = {"$ref": "#/components/schemas/job"}
_ERROR = {"$ref": "#/components/schemas/error"}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_JOB_LIST = {"type": "object", "required": ["jobs"], "properties": {
    "jobs": {"type": "array", "items": _JOB},
    "next_cursor": {"type": ["string", "null"]}}}
_BATCH_CREATED = {"type": "object", "properties": {
    "batch_id": {"type": "string", "format": "uuid"}, "jobs": {"type": "array", "items": _JOB}}}
_ANY = {"type": "object"}

# (path, method, summary, request schema or None, success status, response schema, errors)
_OPERATIONS = [
    ("/api/v1/jobs", "post", "Create a job (200 with the first job when the idempotency_key was used before)",
     "jobs.create", "201", _JOB, ("400", "409", "413", "422", "503")),
    ("/api/v1/jobs", "get", "List jobs, newest first, with filters and a cursor",
     None, "200", _JOB_LIST, ("422", "503")),
    ("/api/v1/jobs/batch", "post", "Create many jobs, all or nothing",
     "jobs.batch", "201", _BATCH_CREATED, ("400", "409", "413", "422", "503")),
    ("/api/v1/jobs/claim", "post", "Claim up to `limit` jobs for a worker",
     "jobs.claim", "200", _JOB_LIST, ("400", "413", "422", "503")),
    ("/api/v1/jobs/{id}", "get", "Get a job", None, "200", _JOB, ("404", "503")),
    ("/api/v1/jobs/{id}/heartbeat", "post", "Extend the lease of a running job (lease holder only)",
     "jobs.heartbeat", "200", _JOB, ("400", "404", "409", "422", "503")),
    ("/api/v1/jobs/{id}/complete", "post", "Store the result of a running job (lease holder only)",
     "jobs.complete", "200", _JOB, ("400", "404", "409", "413", "422", "503")),
    ("/api/v1/jobs/{id}/fail", "post", "Record a failed attempt (lease holder only); retried when retryable",
     "jobs.fail", "200", _JOB, ("400", "404", "409", "422", "503")),
    ("/api/v1/jobs/{id}/retry", "post", "Put a failed or running job back to pending",
     "jobs.retry", "200", _JOB, ("404", "409", "503")),
    ("/api/v1/jobs/{id}/cancel", "post", "Cancel a pending or running job",
     "jobs.cancel", "200", _JOB, ("404", "409", "503")),
    ("/api/v1/batches/{id}", "get", "Job counts of a batch by status", None, "200", _ANY, ("404", "503")),
    ("/api/v1/stats", "get", "Queue depth, oldest pending age, failures by category, throughput",
     None, "200", _ANY, ("422", "503")),
    ("/api/v1/providers/status", "get", "Each configured provider: kind, redacted URL, reachable, latency, models",
     None, "200", _ANY, ()),
    ("/metrics", "get", "Prometheus text format", None, "200", {"type": "string"}, ()),
    ("/healthz", "get", "Process health (no database)", None, "200", _ANY, ()),
    ("/readyz", "get", "PostgreSQL answers and migrations are current", None, "200", _ANY, ("503",)),
]

_LIST_PARAMETERS = [
    {"name": name, "in": "query", "schema": schema}
    for name, schema in (
        ("limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}),
        ("cursor", {"type": "string"}),
        ("owner_service", {"type": "string"}),
        ("owner_ref", {"type": "string"}),
        ("status", {"enum": ["pending", "running", "completed", "failed", "cancelled"]}),
        ("task_type", {"type": "string"}),
        ("model_profile", {"type": "string"}),
        ("batch_id", {"type": "string", "format": "uuid"}),
    )
]


def _component(document: dict) -> dict:
    component = copy.deepcopy(document)
    component.pop("$schema", None)
    component.pop("$id", None)
    return component


def build(schemas: Schemas) -> dict:
    components = {name.replace("/", "."): _component(doc) for name, doc in sorted(schemas.documents.items())}
    paths: dict[str, dict] = {}
    for path, method, summary, request, status, response, errors in _OPERATIONS:
        operation = {
            "summary": summary,
            "responses": {
                status: {"description": "OK", "content": {"application/json": {"schema": response}}},
                **{code: {"description": "Error", "content": {"application/json": {"schema": _ERROR}}}
                   for code in errors},
            },
        }
        if "{id}" in path:
            operation["parameters"] = [_ID]
        if path == "/api/v1/jobs" and method == "get":
            operation["parameters"] = _LIST_PARAMETERS
        if request:
            optional = request in ("jobs.retry", "jobs.cancel")
            operation["requestBody"] = {
                "required": not optional,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{request}"}}},
            }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "AI Service", "version": __version__,
                 "description": "PostgreSQL-backed job service for AI work."},
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "paths": paths,
        "components": {"schemas": components},
    }
