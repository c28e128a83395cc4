"""DNS messages seen on the wire, reduced to what passive naming and the DNS panel need.

A lean parser on purpose: every DNS packet passes through it (a general-purpose library took
~300 µs a message, a third of the report's time on a DNS-heavy capture). Every length and offset
is checked; compression pointers must point backwards (no loops) and at most 64 are followed; a
name is at most 255 bytes. A message whose answer section is broken still yields its header and
question (`partial`), as a capture cut at a snap length or the first IP fragment of a large answer
usually is; a message whose header or question is broken yields nothing, and the caller counts it.
Label bytes outside printable ASCII are written as \\DDD: a hostile name carries no control codes.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Any

DNS_PORTS = frozenset({53, 5353, 5355})
"""DNS, multicast DNS and LLMNR share the message format."""

A = 1
CNAME = 5
AAAA = 28


@dataclass(slots=True)
class Answer:
    name: str
    rtype: str
    ttl: int
    data: str


@dataclass(slots=True)
class DnsMessage:
    id: int
    response: bool
    opcode: int
    rcode: str
    qname: str | None
    qtype: str | None
    answers: list[Answer] = field(default_factory=list)
    truncated: bool = False
    partial: bool = False
    """True when only the header and question could be read."""

    def addresses(self) -> list[tuple[str, str, int]]:
        """(address, name, ttl) for every A/AAAA answer, `name` being the name the client asked
        for when a CNAME chain leads to the address (that is the name the user knows), with the
        smallest TTL along the chain (the mapping is only valid that long)."""
        cname_of: dict[str, tuple[str, int]] = {}
        for ans in self.answers:
            if ans.rtype == "CNAME":
                cname_of[ans.data.lower()] = (ans.name.lower(), ans.ttl)
        out = []
        for ans in self.answers:
            if ans.rtype not in ("A", "AAAA"):
                continue
            name = ans.name.lower()
            ttl = ans.ttl
            seen = {name}
            while name in cname_of:
                parent, cttl = cname_of[name]
                if parent in seen:
                    break  # a CNAME loop in a hostile answer
                seen.add(parent)
                name = parent
                ttl = min(ttl, cttl)
            out.append((ans.data, name, ttl))
        return out

    def cnames(self) -> list[tuple[str, str, int]]:
        """(alias, target, ttl) of every CNAME answer."""
        return [(a.name, a.data, a.ttl) for a in self.answers if a.rtype == "CNAME"]


RCODES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    6: "YXDOMAIN",
    7: "YXRRSET",
    8: "NXRRSET",
    9: "NOTAUTH",
    10: "NOTZONE",
}
TYPES = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    13: "HINFO",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    35: "NAPTR",
    39: "DNAME",
    41: "OPT",
    43: "DS",
    46: "RRSIG",
    47: "NSEC",
    48: "DNSKEY",
    50: "NSEC3",
    52: "TLSA",
    64: "SVCB",
    65: "HTTPS",
    99: "SPF",
    251: "IXFR",
    252: "AXFR",
    255: "ANY",
    257: "CAA",
}
MAX_NAME = 255
MAX_POINTERS = 64
MAX_RECORDS = 100
"""Answers read per message (a legitimate answer rarely has more than a few dozen)."""

# Label bytes shown as themselves: printable ASCII except the two that need escaping.
_PLAIN = frozenset(range(0x21, 0x7F)) - {ord("."), ord("\\")}
_PLAIN_BYTES = bytes(sorted(_PLAIN))
_HEADER = struct.Struct("!HHHHHH")
_RR = struct.Struct("!HHIH")


class DnsFormatError(ValueError):
    pass


def type_name(rtype: int) -> str:
    return TYPES.get(rtype) or f"TYPE{rtype}"


def _label_text(label: bytes) -> str:
    if not label.translate(None, _PLAIN_BYTES):  # every byte plain (checked in C)
        return label.decode("ascii").lower()
    out = []
    for b in label:
        if b in _PLAIN:
            out.append(chr(b).lower())
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


def read_name(buf: bytes, pos: int) -> tuple[str, int]:
    """The (possibly compressed) name at `pos`, and the offset after it in the message."""
    labels: list[bytes] = []
    end = -1
    pointers = 0
    total = 0
    size = len(buf)
    while True:
        if pos >= size:
            raise DnsFormatError("name runs past the end")
        length = buf[pos]
        if length == 0:
            pos += 1
            break
        kind = length & 0xC0
        if kind == 0xC0:
            if pos + 1 >= size:
                raise DnsFormatError("cut compression pointer")
            target = ((length & 0x3F) << 8) | buf[pos + 1]
            if end < 0:
                end = pos + 2
            if target >= pos:
                raise DnsFormatError("compression pointer does not point backwards")
            pointers += 1
            if pointers > MAX_POINTERS:
                raise DnsFormatError("too many compression pointers")
            pos = target
            continue
        if kind:
            raise DnsFormatError("unknown label type")
        label = buf[pos + 1 : pos + 1 + length]
        if len(label) != length:
            raise DnsFormatError("label runs past the end")
        total += length + 1
        if total > MAX_NAME:
            raise DnsFormatError("name longer than 255 bytes")
        labels.append(label)
        pos += 1 + length
    after = end if end >= 0 else pos
    if not labels:
        return ".", after
    if not b"".join(labels).translate(None, _PLAIN_BYTES):
        # the usual name: plain ASCII only, no dot or backslash inside a label
        return b".".join(labels).decode("ascii").lower(), after
    return ".".join(_label_text(label) for label in labels), after


# The last payload parsed and its message: the DPI and the resolution feature read the same DNS
# packet one after the other (the very same bytes object), and the second one gets it free.
_last: list[Any] = [None, None]


def parse(payload: bytes) -> DnsMessage | None:
    """Parse one DNS message (UDP payload, or a TCP message without its length prefix). The
    result is shared with the next caller parsing the same payload object: do not modify it."""
    if payload is _last[0]:
        return _last[1]
    msg = _parse(payload)
    _last[0] = payload
    _last[1] = msg
    return msg


def _parse(payload: bytes) -> DnsMessage | None:
    if len(payload) < 12:
        return None
    ident, flags, qdcount, ancount, _ns, _ar = _HEADER.unpack_from(payload, 0)
    qname = qtype = None
    pos = 12
    try:
        if qdcount:
            qname, pos = read_name(payload, pos)
            if pos + 4 > len(payload):
                raise DnsFormatError("cut question")
            (qt,) = struct.unpack_from("!H", payload, pos)
            qtype = type_name(qt)
            pos += 4
    except DnsFormatError:
        return None
    out = DnsMessage(
        id=ident,
        response=bool(flags & 0x8000),
        opcode=(flags >> 11) & 0xF,
        rcode=RCODES.get(flags & 0xF) or str(flags & 0xF),
        qname=qname,
        qtype=qtype,
        truncated=bool(flags & 0x0200),
    )
    try:
        for _ in range(min(qdcount, 8) - 1):  # rare: more than one question
            _, pos = read_name(payload, pos)
            pos += 4
        answers = out.answers
        for _ in range(min(ancount, MAX_RECORDS)):
            owner, pos = read_name(payload, pos)
            if pos + 10 > len(payload):
                raise DnsFormatError("cut record")
            rtype, _cls, ttl, rdlength = _RR.unpack_from(payload, pos)
            pos += 10
            rdata_end = pos + rdlength
            if rdata_end > len(payload):
                raise DnsFormatError("record data runs past the end")
            if rtype == A and rdlength == 4:
                data = socket.inet_ntop(socket.AF_INET, payload[pos:rdata_end])
            elif rtype == AAAA and rdlength == 16:
                data = socket.inet_ntop(socket.AF_INET6, payload[pos:rdata_end])
            elif rtype == CNAME:
                data, _ = read_name(payload, pos)
            else:
                data = ""
            if ttl & 0x80000000:
                ttl = 0  # RFC 2181: a TTL with the top bit set means zero
            answers.append(Answer(owner, type_name(rtype), ttl, data))
            pos = rdata_end
    except DnsFormatError:
        out.partial = True
    return out


def parse_tcp(stream: bytes) -> list[DnsMessage]:
    """Messages in a TCP segment payload: each one is prefixed by its 2-byte length. A message
    that continues in a later segment is skipped (the flow start is what naming needs)."""
    out = []
    pos = 0
    while pos + 2 <= len(stream):
        (length,) = struct.unpack_from("!H", stream, pos)
        body = stream[pos + 2 : pos + 2 + length]
        if length < 12 or len(body) < length:
            break
        msg = parse(body)
        if msg is not None:
            out.append(msg)
        pos += 2 + length
    return out
