"""Server names a client states in the first packets of a connection: the TLS ClientHello's SNI
(parsed with the DPI module's TLS parser) and the HTTP/1.x Host header."""

from __future__ import annotations

from packettracer.model.dpi.tls import (
    HS_CLIENT_HELLO,
    TLSParseError,
    handshake_messages,
    parse_client_hello,
)

_METHODS = (
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"PATCH ",
    b"CONNECT ",
    b"TRACE ",
)


def client_hello_sni(stream: bytes) -> str | None:
    """The server_name of the TLS ClientHello at the start of `stream`, or None (no hello, no
    SNI, or not complete yet: see `hello_incomplete`)."""
    if len(stream) < 6 or stream[0] != 0x16:
        return None
    try:
        messages, _ = handshake_messages(stream)
        for mtype, body in messages:
            if mtype == HS_CLIENT_HELLO:
                sni = parse_client_hello(body).sni
                return sni_name(sni) if sni else None
    except (TLSParseError, ValueError, IndexError):
        return None
    return None


def hello_incomplete(stream: bytes) -> bool:
    """Does `stream` start a TLS handshake whose first message is not complete yet (a large
    ClientHello, e.g. with post-quantum key shares, spans two TCP segments)?"""
    if len(stream) < 9 or stream[0] != 0x16 or stream[5] != HS_CLIENT_HELLO:
        return False
    try:
        messages, more = handshake_messages(stream)
    except (TLSParseError, ValueError, IndexError):
        return False
    return not messages and more


def http_host(payload: bytes) -> str | None:
    """The Host header of an HTTP/1.x request that starts in `payload` (port stripped)."""
    if not payload.startswith(_METHODS):
        return None
    head = payload[:4096].split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == b"host":
            return host_header_name(value)
    return None


def host_header_name(value: bytes) -> str | None:
    """The name in an HTTP Host header's value (port and IPv6 brackets stripped)."""
    host = value.strip()
    if host.startswith(b"["):
        host = host[1 : host.find(b"]")] if b"]" in host else b""
    elif host.count(b":") == 1:
        host = host.split(b":", 1)[0]
    return _ascii_name(host)


def sni_name(sni: str) -> str | None:
    """A TLS server_name as a name (ASCII, lower case, no trailing dot), or None."""
    return _ascii_name(sni.encode("ascii", "replace")) if sni else None


def _ascii_name(raw: bytes) -> str | None:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    text = text.strip().rstrip(".").lower()
    if not text or len(text) > 253 or not text.isprintable() or " " in text:
        return None
    return text
