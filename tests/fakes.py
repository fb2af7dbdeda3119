"""Fake model providers: real HTTP servers on 127.0.0.1 that answer what a test scripts.

``FakeProvider(answer)`` calls ``answer(request)`` for every request; it returns
``(status, headers, body)``, or ``CLOSE`` to drop the connection unanswered.
Every request is recorded, with the most that were in flight at once.
"""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

CLOSE = object()


@dataclasses.dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    def multipart(self) -> list[tuple[str, str | None, bytes]]:
        """(name, filename, content) of each part of a multipart/form-data body."""
        head = f"Content-Type: {self.headers['content-type']}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + self.body)
        return [(part.get_param("name", header="content-disposition"),
                 part.get_filename(), part.get_payload(decode=True)) for part in message.iter_parts()]


def chat_response(content="ok", model="served-model", usage=True, finish_reason="stop"):
    body = {"id": "chatcmpl-1", "object": "chat.completion", "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish_reason}]}
    if usage:
        body["usage"] = {"prompt_tokens": 11, "completion_tokens": 3, "total_tokens": 14}
    return 200, {"Content-Type": "application/json"}, json.dumps(body).encode()


def json_answer(status, doc, **headers):
    return status, {"Content-Type": "application/json", **headers}, json.dumps(doc).encode()


class FakeProvider:
    def __init__(self, answer=None):
        self.answer = answer or (lambda request: chat_response())
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stalls

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(self.command, parts.path, parse_qs(parts.query),
                                  {k.lower(): v for k, v in self.headers.items()}, body)
                with provider._lock:
                    provider.requests.append(request)
                    provider.in_flight += 1
                    provider.max_in_flight = max(provider.max_in_flight, provider.in_flight)
                try:
                    answer = provider.answer(request)
                finally:
                    with provider._lock:
                        provider.in_flight -= 1
                if answer is CLOSE:
                    self.close_connection = True
                    self.connection.close()
                    return
                status, headers, payload = answer
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if isinstance(payload, bytes) and "content-length" not in {k.lower() for k in headers}:
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    if isinstance(payload, bytes):
                        self.wfile.write(payload)
                    else:  # an iterator: send piece by piece (a trickling server)
                        for piece in payload:
                            self.wfile.write(piece)
                            self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def slow(seconds, then=None):
    """An answer that waits ``seconds`` first."""
    def answer(request):
        time.sleep(seconds)
        return (then or (lambda r: chat_response()))(request)
    return answer
