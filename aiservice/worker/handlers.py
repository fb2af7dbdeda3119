"""Built-in handlers: one per provider, each turning a claimed job into a result.

A handler declares the task types and model profiles it serves and how many
of its jobs may run at once; ``run(job)`` returns the result object or raises
``ProviderError`` with the failure's category.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
import urllib.parse

import urllib3

from aiservice import metrics
from aiservice.config import Settings
from aiservice.schemas import Schemas
from aiservice.worker.providers import (Client, ProviderError, basic_auth, endpoint, json_object,
                                        url_secrets)

_CHAT_OPTIONS = ("max_tokens", "temperature", "top_p", "stop", "seed", "response_format")


class Handler:
    name: str
    kind: str
    task_types: tuple[str, ...]
    model_profiles: tuple[str, ...]
    concurrency: int

    def run(self, job: dict) -> dict:
        raise NotImplementedError

    def _check_input(self, schemas: Schemas, schema: str, job: dict) -> dict:
        """Jobs written past the API (or before a schema change) are checked again here."""
        details = schemas.errors(schema, job["input"], ("input",))
        if details:
            first = details[0]
            raise ProviderError("invalid_input", f"{first['pointer']}: {first['message']}")
        return job["input"]


class LLMChat(Handler):
    """``llm_chat`` / ``chat_completion`` on ``LLM_MODEL`` via ``POST {LLM_BASE_URL}/chat/completions``."""

    name = "llm"
    kind = "openai-compatible"
    task_types = ("llm_chat", "chat_completion")

    def __init__(self, settings: Settings, http: urllib3.PoolManager, schemas: Schemas):
        self.url = endpoint(settings.llm_base_url, "/chat/completions")
        self.model = settings.llm_model
        self.model_profiles = (settings.llm_model,)
        self.concurrency = settings.worker_threads
        self.timeout = settings.llm_timeout
        self.schemas = schemas
        self.headers = {"Content-Type": "application/json", "Accept": "application/json",
                        **basic_auth(settings.llm_base_url)}
        if settings.llm_api_key:
            self.headers["Authorization"] = f"Bearer {settings.llm_api_key}"
        self.client = Client(http, connect_timeout=settings.provider_connect_timeout,
                             secrets=[settings.llm_api_key, *url_secrets(settings.llm_base_url)])

    def request_body(self, task_input: dict) -> dict:
        if "messages" in task_input:
            messages = task_input["messages"]
        else:
            messages = [{"role": "user", "content": task_input["user"]}]
            if task_input.get("system"):
                messages.insert(0, {"role": "system", "content": task_input["system"]})
        body = {"model": self.model, "messages": messages, "stream": False}
        body.update({k: task_input[k] for k in _CHAT_OPTIONS if k in task_input})
        return body

    def run(self, job: dict) -> dict:
        task_input = self._check_input(self.schemas, "tasks/llm_chat", job)
        body = json.dumps(self.request_body(task_input)).encode("utf-8")
        started = time.monotonic()
        with metrics.provider_call(self.name):
            resp = self.client.request("POST", self.url, body=body, headers=self.headers, timeout=self.timeout)
            if resp.status != 200:
                raise self.client.error_for(resp, "the LLM provider")
            doc = json_object(resp, "the LLM provider")
        try:
            choice = doc["choices"][0]
            content = choice["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise ProviderError("invalid_output", "the LLM provider answered without choices[0].message") from None
        usage = doc.get("usage") if isinstance(doc.get("usage"), dict) else {}
        return {
            "content": content if isinstance(content, str) else "",
            "model": doc.get("model") if isinstance(doc.get("model"), str) else self.model,
            "usage": {k: usage.get(k) for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
            "finish_reason": choice.get("finish_reason"),
            "duration_ms": round((time.monotonic() - started) * 1000),
        }


class Transcribe(Handler):
    """``transcribe`` on ``whisperx`` via ``WHISPERX_URL``, in the asr-webservice or OpenAI dialect."""

    name = "whisperx"
    task_types = ("transcribe",)
    model_profiles = ("whisperx",)

    def __init__(self, settings: Settings, http: urllib3.PoolManager, schemas: Schemas):
        self.base = settings.whisperx_url
        self.dialect = settings.whisperx_api
        self.kind = f"whisperx-{self.dialect}"
        self.concurrency = min(settings.whisperx_concurrency, settings.worker_threads)
        self.timeout = settings.whisperx_timeout
        self.model = settings.whisperx_model
        self.max_bytes = settings.audio_max_bytes
        self.schemas = schemas
        self.auth = basic_auth(self.base)
        self.client = Client(http, connect_timeout=settings.provider_connect_timeout,
                             secrets=url_secrets(self.base))

    def run(self, job: dict) -> dict:
        task_input = self._check_input(self.schemas, "tasks/transcribe", job)
        audio, filename = self.audio(task_input)
        started = time.monotonic()
        with metrics.provider_call(self.name):
            if self.dialect == "openai":
                resp = self._openai(task_input, audio, filename)
            else:
                resp = self._asr(task_input, audio, filename)
            if resp.status != 200:
                raise self.client.error_for(resp, "the WhisperX server")
            doc = json_object(resp, "the WhisperX server")  # asr-webservice says text/plain
        result = normalise_transcript(doc, self.model if self.dialect == "openai" else "whisperx")
        result["duration_ms"] = round((time.monotonic() - started) * 1000)
        return result

    def audio(self, task_input: dict) -> tuple[bytes, str]:
        if "audio_base64" in task_input:
            try:
                data = base64.b64decode(task_input["audio_base64"], validate=True)
            except (binascii.Error, ValueError):
                raise ProviderError("invalid_input", "audio_base64 is not valid base64") from None
            if len(data) > self.max_bytes:
                raise ProviderError("invalid_input", f"the audio is larger than {self.max_bytes} bytes")
            return data, "audio"
        return self._download(task_input["audio_url"])

    def _download(self, url: str) -> tuple[bytes, str]:
        resp = self.client.request("GET", url, timeout=self.timeout, stream=True)
        try:
            if resp.status != 200:
                error = self.client.error_for(resp, "the audio URL")
                if 400 <= resp.status < 500:  # the caller's URL is wrong; trying again will not help
                    raise ProviderError("invalid_input", error.message, status=resp.status)
                raise error
            length = resp.headers.get("content-length")
            if length and length.isdigit() and int(length) > self.max_bytes:
                raise ProviderError("invalid_input", f"the audio is larger than {self.max_bytes} bytes")
            chunks, size = [], 0
            for chunk in resp.stream(64 * 1024):
                size += len(chunk)
                if size > self.max_bytes:
                    raise ProviderError("invalid_input", f"the audio is larger than {self.max_bytes} bytes")
                chunks.append(chunk)
        except urllib3.exceptions.HTTPError:
            raise ProviderError("provider_unavailable", "the audio download broke off") from None
        finally:
            resp.release_conn()
        name = urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1] or "audio"
        return b"".join(chunks), name

    def _asr(self, task_input: dict, audio: bytes, filename: str):
        query = {"task": "transcribe", "output": "json", "encode": "true"}
        if task_input.get("language"):
            query["language"] = task_input["language"]
        if task_input.get("initial_prompt"):
            query["initial_prompt"] = task_input["initial_prompt"]
        if task_input.get("diarize"):
            query["diarize"] = "true"
            for key in ("min_speakers", "max_speakers"):
                if key in task_input:
                    query[key] = str(task_input[key])
        url = endpoint(self.base, "/asr")
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(query)
        fields = {"audio_file": (filename, audio, "application/octet-stream")}
        return self.client.request("POST", url, fields=fields, headers=self.auth, timeout=self.timeout)

    def _openai(self, task_input: dict, audio: bytes, filename: str):
        fields = [("file", (filename, audio, "application/octet-stream")), ("model", self.model),
                  ("response_format", "verbose_json"),
                  ("timestamp_granularities[]", "segment"), ("timestamp_granularities[]", "word")]
        if task_input.get("language"):
            fields.append(("language", task_input["language"]))
        if task_input.get("initial_prompt"):
            fields.append(("prompt", task_input["initial_prompt"]))
        if task_input.get("diarize"):  # WhisperX servers of this dialect take these extras
            fields.append(("diarize", "true"))
            for key in ("min_speakers", "max_speakers"):
                if key in task_input:
                    fields.append((key, str(task_input[key])))
        return self.client.request("POST", endpoint(self.base, "/audio/transcriptions"), fields=fields,
                                   headers=self.auth, timeout=self.timeout)


def normalise_transcript(doc: dict, model: str) -> dict:
    """One result shape for both dialects: text, language, segments (start, end, text, speaker?, words?)."""
    raw_segments = doc.get("segments")
    if not isinstance(raw_segments, list):
        raw_segments = []
    segments = []
    for seg in raw_segments:
        if not isinstance(seg, dict):
            raise ProviderError("invalid_output", "the WhisperX server answered a segment that is not an object")
        out = {"start": seg.get("start"), "end": seg.get("end"), "text": str(seg.get("text") or "").strip()}
        if seg.get("speaker") is not None:
            out["speaker"] = seg["speaker"]
        if isinstance(seg.get("words"), list):
            out["words"] = seg["words"]
        segments.append(out)
    text = doc.get("text")
    if not isinstance(text, str):
        if "segments" not in doc:
            raise ProviderError("invalid_output", "the WhisperX server answered neither text nor segments")
        text = " ".join(s["text"] for s in segments if s["text"])
    result = {"text": text.strip(), "language": doc.get("language"), "segments": segments, "model": model}
    if isinstance(doc.get("words"), list):
        result["words"] = doc["words"]
    return result


def build_handlers(settings: Settings, http: urllib3.PoolManager, schemas: Schemas) -> list[Handler]:
    """The handlers this worker can run, from its configuration."""
    handlers: list[Handler] = []
    if settings.llm_base_url:
        handlers.append(LLMChat(settings, http, schemas))
    if settings.whisperx_url:
        handlers.append(Transcribe(settings, http, schemas))
    return handlers
