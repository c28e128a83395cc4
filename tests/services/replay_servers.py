"""Local servers that replay real recorded responses (RDAP, WHOIS, ip-api.com) on 127.0.0.1 and
record what they were asked, so tests can check what would have left the machine."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

# (status, headers, body) for a request (method, path, body)
Route = Callable[[str, str, bytes], tuple[int, dict[str, str], bytes]]


@dataclass
class Recorded:
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def json_bodies(self) -> list[Any]:
        return [json.loads(body) for method, _, body in self.requests if method == "POST"]


@contextmanager
def http_server(route: Route) -> Iterator[Recorded]:
    rec = Recorded()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            rec.requests.append((method, self.path, body))
            status, headers, payload = route(method, self.path, body)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            self._serve("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._serve("POST")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def whois_server(answers: dict[str, str]) -> Iterator[Recorded]:
    """Answers a query line (an address, or ARIN's "n + address") with the recorded text."""
    rec = Recorded()

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            line = self.rfile.readline(1000).decode("ascii", "replace").strip()
            rec.requests.append(("WHOIS", line, b""))
            address = line.removeprefix("n + ").strip()
            text = answers.get(address, "% No entries found\n")
            self.wfile.write(text.encode("utf-8"))

    class Server(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True

    server = Server(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
