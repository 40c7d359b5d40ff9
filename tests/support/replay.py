"""A real HTTP server on 127.0.0.1 that replays scripted provider responses.

Tests queue responses per path (status, headers, body, delay) and read back
every request the server received, so they can check what left the host.
The server runs in a thread and binds an ephemeral port.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Reply:
    """One scripted response. ``delay`` holds the answer back, in seconds."""

    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json"


@dataclass(frozen=True)
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class ReplayServer:
    """Replays queued replies per path; the last reply of a path repeats."""

    def __init__(self) -> None:
        self._replies: dict[str, deque[Reply]] = defaultdict(deque)
        self._lock = threading.Lock()
        self.received: list[Received] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        # A short poll interval makes shutdown quick; tests start many servers.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def queue(self, path: str, *replies: Reply) -> None:
        """Append replies for requests whose path (without query) is ``path``."""
        with self._lock:
            self._replies[path].extend(replies)

    def requests_to(self, path: str) -> list[Received]:
        with self._lock:
            return [request for request in self.received if request.path == path]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def _next_reply(self, path: str) -> Reply:
        with self._lock:
            replies = self._replies.get(path)
            if not replies:
                return Reply(status=404, body=b'{"error": "no reply queued"}')
            return replies.popleft() if len(replies) > 1 else replies[0]

    def _record(self, request: Received) -> None:
        with self._lock:
            self.received.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                server._record(
                    Received(
                        method=self.command,
                        path=parts.path,
                        query=parse_qs(parts.query),
                        headers={key.lower(): value for key, value in self.headers.items()},
                        body=body,
                    )
                )
                reply = server._next_reply(parts.path)
                if reply.delay:
                    time.sleep(reply.delay)
                payload = reply.body.encode() if isinstance(reply.body, str) else reply.body
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test); nothing to send

            do_GET = _serve  # noqa: N815 - names fixed by BaseHTTPRequestHandler
            do_POST = _serve  # noqa: N815
            do_HEAD = _serve  # noqa: N815

            def log_message(self, format: str, *args: object) -> None:
                return

        return Handler


@contextmanager
def replay_server() -> Iterator[ReplayServer]:
    """Run a ReplayServer for the duration of the block."""
    server = ReplayServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
