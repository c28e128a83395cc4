"""HTTP/1.x request and response heads: method, Host, User-Agent, status, Server."""

from __future__ import annotations

import re
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


# The header lines the DPI reads (every line but the first): name, then the rest of its line.
# One scan in C over the head instead of splitting and decoding every header line.
_WANTED = re.compile(
    rb"\r\n[ \t\x0b\x0c\r\n]*(host|user-agent|content-type|server)[ \t\x0b\x0c]*:"
    rb"([^\r]*(?:\r(?!\n)[^\r]*)*)",  # the value: up to the line's end (a lone CR is in it)
    re.IGNORECASE,
)


def _headers(head: bytes) -> dict[bytes, str]:
    """The wanted headers of a message head (lower-case names; the first of a repeated one)."""
    out: dict[bytes, str] = {}
    for m in _WANTED.finditer(head):
        key = m.group(1).lower()
        if key not in out:
            out[key] = m.group(2).strip().decode("latin-1")
    return out


def parse_request(data: bytes) -> HttpRequest | None:
    """The request head at the start of `data`, or None if it is not HTTP/1.x."""
    if not data or data[0] not in FIRST_BYTES or not data.startswith(METHODS):
        return None
    head = data.split(b"\r\n\r\n", 1)[0]
    parts = head.split(b"\r\n", 1)[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
        return None
    # SSDP and its relatives ride on HTTP syntax over UDP; the caller tells them apart.
    headers = _headers(head)
    host_header = host = headers.get(b"host")
    if host:
        host = host.rsplit(":", 1)[0] if not host.startswith("[") else host
    return HttpRequest(
        method=parts[0].decode("latin-1"),
        target=parts[1].decode("latin-1")[:200],
        version=parts[2].decode("latin-1"),
        host=host or None,
        user_agent=headers.get(b"user-agent"),
        content_type=headers.get(b"content-type"),
        host_header=host_header,
    )


def parse_response(data: bytes) -> HttpResponse | None:
    if not data.startswith(b"HTTP/1."):
        return None
    head = data.split(b"\r\n\r\n", 1)[0]
    parts = head.split(b"\r\n", 1)[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        return None
    headers = _headers(head)
    return HttpResponse(
        version=parts[0].decode("latin-1"),
        status=int(parts[1]),
        server=headers.get(b"server"),
        content_type=headers.get(b"content-type"),
    )
