"""The one place errors become HTTP responses, all of the shape
``{"error": {"code": "...", "message": "...", "details": [...]}}``."""

from __future__ import annotations

import json
import logging

import falcon

from aiservice import errors

log = logging.getLogger(__name__)

_STATUS = (
    (errors.InvalidJSON, falcon.HTTP_400),
    (errors.PayloadTooLarge, falcon.HTTP_413),
    (errors.InvalidRequest, falcon.HTTP_422),
    (errors.JobNotFound, falcon.HTTP_404),
    (errors.BatchNotFound, falcon.HTTP_404),
    (errors.Conflict, falcon.HTTP_409),
    (errors.Unavailable, falcon.HTTP_503),
)

# Codes for Falcon's own errors (unknown route, wrong method, ...).
_HTTP_CODES = {
    400: "bad_request", 404: "not_found", 405: "method_not_allowed", 411: "length_required",
    413: "payload_too_large", 415: "unsupported_media_type", 503: "unavailable",
}


def error_body(code: str, message: str, details: list | None = None, **extra) -> dict:
    return {"error": {"code": code, "message": message, "details": details or [], **extra}}


def handle_service_error(req, resp, ex: errors.AIServiceError, params) -> None:
    status = next((s for cls, s in _STATUS if isinstance(ex, cls)), falcon.HTTP_500)
    extra = {}
    if isinstance(ex, errors.Conflict) and ex.current_status:
        extra["current_status"] = ex.current_status
    if isinstance(ex, errors.Unavailable):
        resp.set_header("Retry-After", "1")
    resp.status = status
    resp.media = error_body(ex.code, ex.message, ex.details, **extra)


def handle_unexpected(req, resp, ex: Exception, params) -> None:
    # Falcon's own HTTPError keeps its more specific default handler (resolution is by MRO).
    log.exception("unexpected error on %s %s", req.method, req.path)
    resp.status = falcon.HTTP_500
    resp.media = error_body("internal_error", "an unexpected error occurred; it has been logged")


def serialize_http_error(req, resp, exc: falcon.HTTPError) -> None:
    code = _HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
    message = exc.description or exc.title or code
    if exc.status_code == 405:
        message = f"{req.method} is not allowed on {req.path}"
    elif exc.status_code == 404 and not exc.description:
        message = f"no such endpoint: {req.path}"
    resp.content_type = falcon.MEDIA_JSON
    resp.text = json.dumps(error_body(code, message))


def register(app: falcon.App) -> None:
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(errors.AIServiceError, handle_service_error)
    app.set_error_serializer(serialize_http_error)
