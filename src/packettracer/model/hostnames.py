"""Server names a client states in the first packets of a connection: the TLS ClientHello's SNI
and the HTTP/1.x Host header. Deliberately small (one segment, no reassembly): naming only needs
the name, and the DPI module has the full TLS parser for everything else."""

from __future__ import annotations

from struct import unpack_from

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


def client_hello_sni(payload: bytes) -> str | None:
    """The server_name of a TLS ClientHello that starts in `payload`, or None."""
    try:
        if len(payload) < 43 or payload[0] != 0x16 or payload[1] != 0x03 or payload[5] != 0x01:
            return None
        pos = 9 + 2 + 32  # record header, handshake header, client version, random
        sid_len = payload[pos]
        pos += 1 + sid_len
        (cs_len,) = unpack_from("!H", payload, pos)
        pos += 2 + cs_len
        comp_len = payload[pos]
        pos += 1 + comp_len
        (ext_total,) = unpack_from("!H", payload, pos)
        pos += 2
        end = min(len(payload), pos + ext_total)
        while pos + 4 <= end:
            ext_type, ext_len = unpack_from("!HH", payload, pos)
            pos += 4
            if ext_type == 0:
                # server_name_list: list length, then (type, length, name) entries
                inner = pos + 2
                if payload[inner] != 0:
                    return None
                (name_len,) = unpack_from("!H", payload, inner + 1)
                raw = payload[inner + 3 : inner + 3 + name_len]
                if len(raw) != name_len:
                    return None
                return _ascii_name(raw)
            pos += ext_len
    except (IndexError, ValueError, Exception):
        return None
    return None


def http_host(payload: bytes) -> str | None:
    """The Host header of an HTTP/1.x request that starts in `payload` (port stripped)."""
    if not payload.startswith(_METHODS):
        return None
    head = payload[:4096].split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n")[1:]:
        key, sep, value = line.partition(b":")
        if sep and key.strip().lower() == b"host":
            host = value.strip()
            if host.startswith(b"["):
                host = host[1 : host.find(b"]")] if b"]" in host else b""
            elif host.count(b":") == 1:
                host = host.split(b":", 1)[0]
            return _ascii_name(host)
    return None


def _ascii_name(raw: bytes) -> str | None:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        return None
    text = text.strip().rstrip(".").lower()
    if not text or len(text) > 253 or not text.isprintable() or " " in text:
        return None
    return text
