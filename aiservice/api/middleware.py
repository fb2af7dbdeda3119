"""Middleware: request ids (taken from ``X-Request-ID`` when sane, made otherwise, echoed back)
and HTTP metrics."""

from __future__ import annotations

import re
import time
import os

from aiservice import logs, metrics

_SANE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestId:
    def process_request(self, req, resp):
        given = req.get_header("X-Request-ID")
        req.context.request_id = given if given and _SANE.match(given) else os.urandom(16).hex()
        logs.request_id.set(req.context.request_id)  # every log line of this request carries it

    def process_response(self, req, resp, resource, req_succeeded):
        request_id = getattr(req.context, "request_id", None)
        if request_id:
            resp.set_header("X-Request-ID", request_id)


class Metrics:
    """Counts every request and times it, by method, route template and status."""

    def process_request(self, req, resp):
        req.context.started = time.monotonic()

    def process_response(self, req, resp, resource, req_succeeded):
        started = getattr(req.context, "started", None)
        if started is None:
            return
        route = req.uri_template or "unmatched"
        metrics.HTTP_REQUESTS.labels(req.method, route, str(resp.status_code)).inc()
        metrics.HTTP_LATENCY.labels(req.method, route).observe(time.monotonic() - started)
