"""TLS handshake parsing: ClientHello (SNI, ALPN, versions, ciphers, JA3/JA4), ServerHello
(chosen version, cipher, ALPN, JA3S) and, for TLS 1.2 and older, the server certificate's
subject and issuer. Works on a byte stream so that a hello split across TCP segments or records
parses once the bytes are all there."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from struct import unpack_from
from typing import Any, TypeVar

CONTENT_HANDSHAKE = 22
HS_CLIENT_HELLO = 1
HS_SERVER_HELLO = 2
HS_CERTIFICATE = 11

EXT_SNI = 0
EXT_SUPPORTED_GROUPS = 10
EXT_EC_POINT_FORMATS = 11
EXT_SIGNATURE_ALGORITHMS = 13
EXT_ALPN = 16
EXT_SUPPORTED_VERSIONS = 43

VERSION_NAMES = {
    0x0304: "TLSv1.3",
    0x0303: "TLSv1.2",
    0x0302: "TLSv1.1",
    0x0301: "TLSv1",
    0x0300: "SSLv3",
    0x0002: "SSLv2",
    0xFEFF: "DTLSv1.0",
    0xFEFD: "DTLSv1.2",
    0xFEFC: "DTLSv1.3",
}
_JA4_VERSIONS = {
    0x0304: "13",
    0x0303: "12",
    0x0302: "11",
    0x0301: "10",
    0x0300: "s3",
    0x0002: "s2",
    0xFEFF: "d1",
    0xFEFD: "d2",
    0xFEFC: "d3",
}


GREASE = frozenset(0x0A0A + 0x1010 * i for i in range(16))
"""GREASE values (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa."""


def is_grease(value: int) -> bool:
    return value in GREASE


class TLSParseError(ValueError):
    """The bytes are not the TLS handshake they claimed to be."""


_FINGERPRINTS: dict[tuple[Any, ...], tuple[str, str]] = {}
_JA3S: dict[tuple[Any, ...], str] = {}
_T = TypeVar("_T")


def _remembered(
    cache: dict[tuple[Any, ...], _T], key: tuple[Any, ...], make: Callable[[], _T]
) -> _T:
    """cache[key], made by make() the first time; the cache starts afresh at 4,096 entries."""
    hit = cache.get(key)
    if hit is None:
        hit = make()
        if len(cache) >= 4096:
            cache.clear()
        cache[key] = hit
    return hit


@dataclass
class ClientHello:
    version: int = 0
    ciphers: list[int] = field(default_factory=list)
    extensions: list[int] = field(default_factory=list)
    sni: str | None = None
    alpn: list[str] = field(default_factory=list)
    supported_versions: list[int] = field(default_factory=list)
    groups: list[int] = field(default_factory=list)
    point_formats: list[int] = field(default_factory=list)
    signature_algorithms: list[int] = field(default_factory=list)

    @property
    def max_version(self) -> int:
        offered = [v for v in self.supported_versions if not is_grease(v)]
        return max(offered) if offered else self.version

    def ja3_string(self) -> str:
        def join(values: list[int]) -> str:
            return "-".join([str(v) for v in values if v not in GREASE])

        return ",".join(
            [
                str(self.version),
                join(self.ciphers),
                join(self.extensions),
                join(self.groups),
                join(self.point_formats),
            ]
        )

    def ja3(self) -> str:
        return hashlib.md5(self.ja3_string().encode(), usedforsecurity=False).hexdigest()

    def fingerprints(self, transport: str = "t") -> tuple[str, str]:
        """(JA4, JA3), computed once per distinct set of the fields they read: clients of
        one kind send the same hello again and again."""
        key = (
            transport, self.version, tuple(self.ciphers), tuple(self.extensions),
            tuple(self.groups), tuple(self.point_formats), tuple(self.signature_algorithms),
            tuple(self.supported_versions), self.sni is not None and self.sni != "",
            self.alpn[0] if self.alpn else None,
        )  # fmt: skip
        return _remembered(_FINGERPRINTS, key, lambda: (self.ja4(transport), self.ja3()))

    def ja4(self, transport: str = "t") -> str:
        """JA4 (FoxIO): `t13d1516h2_8daaf6152771_e5627efa2ab1`."""
        ciphers = [c for c in self.ciphers if not is_grease(c)]
        exts = [e for e in self.extensions if not is_grease(e)]
        version = _JA4_VERSIONS.get(self.max_version, "00")
        if transport == "t" and version.startswith("d"):
            transport = "d"
        sni = "d" if self.sni else "i"
        alpn = "00"
        if self.alpn and self.alpn[0]:
            first = self.alpn[0]
            if (
                first[0].isascii()
                and first[0].isalnum()
                and first[-1].isascii()
                and (first[-1].isalnum())
            ):
                alpn = first[0] + first[-1]
            else:
                raw = first.encode("utf-8", "surrogateescape").hex()
                alpn = raw[0] + raw[-1]
        head = f"{transport}{version}{sni}{min(len(ciphers), 99):02d}{min(len(exts), 99):02d}{alpn}"
        if ciphers:
            part_b = _sha12(",".join(f"{c:04x}" for c in sorted(ciphers)))
        else:
            part_b = "000000000000"
        ext_list = sorted(e for e in exts if e not in (EXT_SNI, EXT_ALPN))
        if ext_list:
            text = ",".join(f"{e:04x}" for e in ext_list)
            sigs = [s for s in self.signature_algorithms if not is_grease(s)]
            if sigs:
                text += "_" + ",".join(f"{s:04x}" for s in sigs)
            part_c = _sha12(text)
        else:
            part_c = "000000000000"
        return f"{head}_{part_b}_{part_c}"


@dataclass
class ServerHello:
    version: int = 0
    cipher: int = 0
    extensions: list[int] = field(default_factory=list)
    selected_version: int | None = None
    alpn: str | None = None

    @property
    def negotiated_version(self) -> int:
        return self.selected_version or self.version

    def ja3s(self) -> str:
        # A server answers its clients alike: hash each distinct answer once.
        key = (self.version, self.cipher, tuple(self.extensions))
        return _remembered(_JA3S, key, self._ja3s)

    def _ja3s(self) -> str:
        text = f"{self.version},{self.cipher}," + "-".join(str(e) for e in self.extensions)
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


@dataclass
class CertificateInfo:
    subject: str
    issuer: str

    @property
    def self_signed(self) -> bool:
        return self.subject == self.issuer


def _sha12(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def looks_like_tls(data: bytes) -> bool:
    """A TLS handshake record (or SSLv2-style hello) starts this payload."""
    return (
        len(data) >= 6
        and data[0] == CONTENT_HANDSHAKE
        and data[1] == 3
        and data[2] <= 4
        and data[5] in (HS_CLIENT_HELLO, HS_SERVER_HELLO)
    )


def records_complete(stream: bytes | bytearray) -> bool:
    """Does the stream end on a record boundary (every record whole)? A cheap walk over the
    5-byte record headers, so that a handshake is parsed once per complete flight, not once
    per TCP segment."""
    pos = 0
    n = len(stream)
    while pos + 5 <= n:
        pos += 5 + ((stream[pos + 3] << 8) | stream[pos + 4])
    return pos == n


# The last stream parsed, with its result: the name learner (model/hostnames.py) asks about a
# stream twice when it holds no SNI yet (`client_hello_sni`, then `hello_incomplete`).
_last_stream: list[Any] = [None, None]


def handshake_messages(stream: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    """The complete handshake messages at the start of a TLS byte stream, and whether the
    stream is still handshake (False once a non-handshake record shows up). The result is
    shared with the next caller asking about the same bytes: do not modify it."""
    if type(stream) is bytes:
        if stream == _last_stream[0]:
            return _last_stream[1]
        result = _handshake_messages(stream)
        _last_stream[0] = stream
        _last_stream[1] = result
        return result
    return _handshake_messages(stream)


def _handshake_messages(stream: bytes) -> tuple[list[tuple[int, bytes]], bool]:
    payload = bytearray()
    pos = 0
    more = True
    while pos + 5 <= len(stream):
        ctype = stream[pos]
        (length,) = unpack_from("!H", stream, pos + 3)
        if ctype != CONTENT_HANDSHAKE:
            more = False
            break
        if stream[pos + 1] != 3:
            raise TLSParseError("not a TLS record")
        end = pos + 5 + length
        if end > len(stream):
            payload += stream[pos + 5 :]
            break
        payload += stream[pos + 5 : end]
        pos = end
    messages: list[tuple[int, bytes]] = []
    off = 0
    while off + 4 <= len(payload):
        mtype = payload[off]
        mlen = int.from_bytes(payload[off + 1 : off + 4], "big")
        if off + 4 + mlen > len(payload):
            break
        messages.append((mtype, bytes(payload[off + 4 : off + 4 + mlen])))
        off += 4 + mlen
    return messages, more


def handshake_messages_raw(payload: bytes) -> list[tuple[int, bytes]]:
    """Handshake messages of an already unwrapped handshake byte string (QUIC CRYPTO frames)."""
    messages: list[tuple[int, bytes]] = []
    off = 0
    while off + 4 <= len(payload):
        mtype = payload[off]
        mlen = int.from_bytes(payload[off + 1 : off + 4], "big")
        if off + 4 + mlen > len(payload):
            break
        messages.append((mtype, payload[off + 4 : off + 4 + mlen]))
        off += 4 + mlen
    return messages


def _vec(data: bytes, pos: int, width: int) -> tuple[bytes, int]:
    if pos + width > len(data):
        raise TLSParseError("truncated length")
    n = int.from_bytes(data[pos : pos + width], "big")
    end = pos + width + n
    if end > len(data):
        raise TLSParseError("truncated vector")
    return data[pos + width : end], end


def _u16_list(data: bytes) -> list[int]:
    n = len(data) >> 1
    return list(unpack_from(f"!{n}H", data)) if n else []


_HELLO_EXTS_READ = frozenset(
    {
        EXT_SNI,
        EXT_ALPN,
        EXT_SUPPORTED_VERSIONS,
        EXT_SUPPORTED_GROUPS,
        EXT_EC_POINT_FORMATS,
        EXT_SIGNATURE_ALGORITHMS,
    }
)


def parse_client_hello(body: bytes) -> ClientHello:
    """Parse the body of a ClientHello handshake message."""
    if len(body) < 38:
        raise TLSParseError("short ClientHello")
    hello = ClientHello(version=int.from_bytes(body[0:2], "big"))
    pos = 34
    _, pos = _vec(body, pos, 1)  # session id
    suites, pos = _vec(body, pos, 2)
    hello.ciphers = _u16_list(suites)
    _, pos = _vec(body, pos, 1)  # compression methods
    if pos >= len(body):
        return hello
    exts, _ = _vec(body, pos, 2)
    off = 0
    n = len(exts)
    extensions = hello.extensions
    while off + 4 <= n:
        etype, elen = unpack_from("!HH", exts, off)
        start = off + 4
        off = start + elen
        extensions.append(etype)
        if etype not in _HELLO_EXTS_READ:
            continue  # most extensions only count for the fingerprints: no copy of their bytes
        data = exts[start:off]
        if etype == EXT_SNI and len(data) >= 5:
            names, _ = _vec(data, 0, 2)
            npos = 0
            while npos + 3 <= len(names):
                ntype = names[npos]
                name, npos = _vec(names, npos + 1, 2)
                if ntype == 0:
                    hello.sni = name.decode("ascii", "replace")
                    break
        elif etype == EXT_ALPN and len(data) >= 2:
            protos, _ = _vec(data, 0, 2)
            apos = 0
            while apos < len(protos):
                proto, apos = _vec(protos, apos, 1)
                hello.alpn.append(proto.decode("ascii", "replace"))
        elif etype == EXT_SUPPORTED_VERSIONS and data:
            hello.supported_versions = _u16_list(data[1 : 1 + data[0]])
        elif etype == EXT_SUPPORTED_GROUPS and len(data) >= 2:
            hello.groups = _u16_list(_vec(data, 0, 2)[0])
        elif etype == EXT_EC_POINT_FORMATS and data:
            hello.point_formats = list(data[1 : 1 + data[0]])
        elif etype == EXT_SIGNATURE_ALGORITHMS and len(data) >= 2:
            hello.signature_algorithms = _u16_list(_vec(data, 0, 2)[0])
    return hello


def parse_server_hello(body: bytes) -> ServerHello:
    if len(body) < 38:
        raise TLSParseError("short ServerHello")
    hello = ServerHello(version=int.from_bytes(body[0:2], "big"))
    pos = 34
    _, pos = _vec(body, pos, 1)
    if pos + 3 > len(body):
        raise TLSParseError("short ServerHello")
    hello.cipher = int.from_bytes(body[pos : pos + 2], "big")
    pos += 3
    if pos >= len(body):
        return hello
    exts, _ = _vec(body, pos, 2)
    off = 0
    while off + 4 <= len(exts):
        etype, elen = unpack_from("!HH", exts, off)
        data = exts[off + 4 : off + 4 + elen]
        off += 4 + elen
        hello.extensions.append(etype)
        if etype == EXT_SUPPORTED_VERSIONS and len(data) == 2:
            hello.selected_version = int.from_bytes(data, "big")
        elif etype == EXT_ALPN and len(data) >= 3:
            protos, _ = _vec(data, 0, 2)
            if protos:
                hello.alpn = _vec(protos, 0, 1)[0].decode("ascii", "replace")
    return hello


def parse_certificate(body: bytes) -> CertificateInfo | None:
    """Subject and issuer of the first (leaf) certificate of a TLS 1.2 Certificate message."""
    chain, _ = _vec(body, 0, 3)
    if not chain:
        return None
    der, _ = _vec(chain, 0, 3)
    return _leaf_names(der)


@lru_cache(maxsize=4096)
def _leaf_names(der: bytes) -> CertificateInfo | None:
    # Servers present the same certificate to every client: decode each one once.
    try:
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        return CertificateInfo(cert.subject.rfc4514_string(), cert.issuer.rfc4514_string())
    except ValueError:
        return None


def version_name(version: int | None) -> str | None:
    if version is None:
        return None
    return VERSION_NAMES.get(version, f"0x{version:04x}")
