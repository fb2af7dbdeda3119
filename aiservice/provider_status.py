"""Probing the configured providers for ``GET /api/v1/providers/status``.

No completion is ever sent: the LLM probe is ``GET {LLM_BASE_URL}/models``,
the WhisperX probe ``GET {WHISPERX_URL}/docs`` (asr-webservice has no health
route) or ``/models`` (OpenAI dialect). Probes run in parallel, each bounded,
and results are cached briefly so the endpoint cannot be used to hammer a
provider. The answer holds no key, token, user info or query string.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import threading
import time
from urllib.parse import urlsplit

from aiservice.config import Settings, redact_url
from aiservice.worker.providers import (Client, ProviderError, basic_auth, endpoint, json_object,
                                        make_pool, url_secrets)

PROBE_TIMEOUT = 3.0
CACHE_SECONDS = 10.0


class ProviderStatus:
    def __init__(self, settings: Settings, *, timeout: float = PROBE_TIMEOUT,
                 cache_seconds: float = CACHE_SECONDS):
        self.settings = settings
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._http = make_pool(4)
        self._lock = threading.Lock()
        self._cached: tuple[float, dict] | None = None
        self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="probe")

    def report(self) -> dict:
        """The providers' status, probed at most once per ``cache_seconds``."""
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.cache_seconds:
                return self._cached[1]
            probes = [self._executor.submit(self._probe_llm), self._executor.submit(self._probe_whisperx)]
            providers = [p.result() for p in probes]  # each probe bounds itself
            report = {
                "providers": providers,
                "healthy": all(p["ok"] for p in providers if p["configured"]),
                "checked_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
            }
            self._cached = (time.monotonic(), report)
            return report

    def _probe_llm(self) -> dict:
        s = self.settings
        entry = {"name": "llm", "kind": "openai-compatible", "model": s.llm_model}
        if not s.llm_base_url:
            return _unconfigured(entry)
        headers = basic_auth(s.llm_base_url)
        if s.llm_api_key:
            headers["Authorization"] = f"Bearer {s.llm_api_key}"
        client = Client(self._http, connect_timeout=min(s.provider_connect_timeout, self.timeout),
                        secrets=[s.llm_api_key, *url_secrets(s.llm_base_url)])
        result = self._probe(client, s.llm_base_url, endpoint(s.llm_base_url, "/models"), headers,
                             "the LLM provider")
        models = result.pop("_models", None)
        result["models"] = models
        result["model_available"] = (s.llm_model in models) if models is not None else None
        if result["model_available"] is False:
            result["ok"] = False
            result["error"] = f"the provider does not list the model {s.llm_model}"
        return {**entry, **result}

    def _probe_whisperx(self) -> dict:
        s = self.settings
        entry = {"name": "whisperx", "kind": f"whisperx-{s.whisperx_api}", "model": "whisperx"}
        if not s.whisperx_url:
            return _unconfigured(entry)
        client = Client(self._http, connect_timeout=min(s.provider_connect_timeout, self.timeout),
                        secrets=url_secrets(s.whisperx_url))
        path = "/models" if s.whisperx_api == "openai" else "/docs"
        result = self._probe(client, s.whisperx_url, endpoint(s.whisperx_url, path),
                             basic_auth(s.whisperx_url), "the WhisperX server")
        result["models"] = result.pop("_models", None)
        return {**entry, **result}

    def _probe(self, client: Client, base: str, url: str, headers: dict, what: str) -> dict:
        started = time.monotonic()
        out = {"configured": True, "url": redact_url(base), "reachable": False, "ok": False,
               "status_code": None, "latency_ms": None, "error": None, "_models": None}
        try:
            resp = client.request("GET", url, headers=headers, timeout=self.timeout)
        except ProviderError as exc:
            out["error"] = exc.message
            return out
        out["latency_ms"] = round((time.monotonic() - started) * 1000, 1)
        out["status_code"] = resp.status
        out["reachable"] = True  # it answered over HTTP; "ok" says whether the answer was good
        out["ok"] = resp.status == 200
        if resp.status != 200:
            out["error"] = client.error_for(resp, what).message
            return out
        if urlsplit(url).path.endswith("/models"):
            try:
                data = json_object(resp, what).get("data")
                out["_models"] = [m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)]
            except (ProviderError, TypeError):
                out["ok"] = False
                out["error"] = f"{what} answered /models with an unexpected body"
        return out


def _unconfigured(entry: dict) -> dict:
    return {**entry, "configured": False, "url": None, "reachable": False, "ok": False, "status_code": None,
            "latency_ms": None, "error": None, "models": None}
