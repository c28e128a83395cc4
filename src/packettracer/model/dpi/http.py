"""HTTP/1.x request and response heads: method, Host, User-Agent, status, Server."""

from __future__ import annotations

from dataclasses import dataclass

METHODS = (
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"CONNECT ",
    b"PATCH ",
    b"TRACE ",
    b"PROPFIND ",
    b"NOTIFY ",
    b"M-SEARCH ",
    b"SUBSCRIBE ",
)
# First bytes of a request (a cheap gate before any parsing).
FIRST_BYTES = frozenset(m[0] for m in METHODS)


@dataclass
class HttpRequest:
    method: str
    target: str
    version: str
    host: str | None = None
    user_agent: str | None = None
    content_type: str | None = None
    host_header: str | None = None
    """The Host header as sent (with its port)."""


@dataclass
class HttpResponse:
    version: str
    status: int
    server: str | None = None
    content_type: str | None = None


def _headers(lines: list[bytes]) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        key = name.strip().lower().decode("latin-1")
        out.setdefault(key, value.strip().decode("latin-1"))
    return out


def parse_request(data: bytes) -> HttpRequest | None:
    """The request head at the start of `data`, or None if it is not HTTP/1.x."""
    if not data or data[0] not in FIRST_BYTES or not data.startswith(METHODS):
        return None
    head = data.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return None
    # SSDP and its relatives ride on HTTP syntax over UDP; the caller tells them apart.
    headers = _headers(lines[1:])
    host_header = host = headers.get("host")
    if host:
        host = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    return HttpRequest(
        method=parts[0].decode("latin-1"),
        target=parts[1].decode("latin-1")[:200],
        version=parts[2].decode("latin-1"),
        host=host or None,
        user_agent=headers.get("user-agent"),
        content_type=headers.get("content-type"),
        host_header=host_header,
    )


def parse_response(data: bytes) -> HttpResponse | None:
    if not data.startswith(b"HTTP/1."):
        return None
    head = data.split(b"\r\n\r\n", 1)[0]
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    headers = _headers(lines[1:])
    return HttpResponse(
        version=parts[0].decode("latin-1"),
        status=int(parts[1]),
        server=headers.get("server"),
        content_type=headers.get("content-type"),
    )
