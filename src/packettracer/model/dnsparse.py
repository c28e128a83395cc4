"""DNS messages seen on the wire, reduced to what passive naming and the DNS panel need.

Parsing is dnspython's (`dns.message.from_wire`), which checks every length and pointer. A message
it rejects still yields its header and question when those are intact (a truncated answer section
is common in captures cut at a snap length), so a malformed response still counts its query and
rcode; a message whose header is broken yields nothing and is counted by the caller.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import dns.exception
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype

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


def _text(name: dns.name.Name) -> str:
    # to_text escapes non-printable bytes (\\DDD), so a hostile label cannot carry control codes
    return name.to_text(omit_final_dot=True).lower() or "."


def parse(payload: bytes) -> DnsMessage | None:
    """Parse one DNS message (UDP payload, or a TCP message without its length prefix)."""
    if len(payload) < 12:
        return None
    try:
        msg = dns.message.from_wire(payload, ignore_trailing=True, one_rr_per_rrset=True)
    except (dns.exception.DNSException, ValueError, IndexError, UnicodeError, struct.error):
        return _parse_header(payload)
    qname = qtype = None
    if msg.question:
        q = msg.question[0]
        qname = _text(q.name)
        qtype = dns.rdatatype.to_text(q.rdtype)
    out = DnsMessage(
        id=msg.id,
        response=bool(msg.flags & 0x8000),
        opcode=(msg.flags >> 11) & 0xF,
        rcode=dns.rcode.to_text(msg.rcode()),
        qname=qname,
        qtype=qtype,
        truncated=bool(msg.flags & 0x0200),
    )
    for rrset in msg.answer:
        rtype = dns.rdatatype.to_text(rrset.rdtype)
        owner = _text(rrset.name)
        for rdata in rrset:
            if rrset.rdtype in (A, AAAA):
                data = rdata.address
            elif rrset.rdtype == CNAME:
                data = _text(rdata.target)
            else:
                data = rdata.to_text()[:200]
            out.answers.append(Answer(owner, rtype, int(rrset.ttl), data))
    return out


def _parse_header(payload: bytes) -> DnsMessage | None:
    """Header and first question of a message dnspython rejected, or None."""
    try:
        ident, flags, qdcount = struct.unpack_from("!HHH", payload, 0)
        qname = qtype = None
        if qdcount:
            labels = []
            pos = 12
            while True:
                length = payload[pos]
                if length == 0:
                    pos += 1
                    break
                if length & 0xC0:
                    return None  # a compression pointer in the first question: not trustworthy
                label = payload[pos + 1 : pos + 1 + length]
                if len(label) != length:
                    return None
                labels.append(dns.name.Name([label]).to_text(omit_final_dot=True))
                pos += 1 + length
                if pos > 12 + 255:
                    return None
            (rdtype,) = struct.unpack_from("!H", payload, pos)
            qname = ".".join(labels).lower() or "."
            qtype = dns.rdatatype.to_text(rdtype)
    except (struct.error, IndexError, dns.exception.DNSException):
        return None
    return DnsMessage(
        id=ident,
        response=bool(flags & 0x8000),
        opcode=(flags >> 11) & 0xF,
        rcode=dns.rcode.to_text(flags & 0xF),
        qname=qname,
        qtype=qtype,
        truncated=bool(flags & 0x0200),
        partial=True,
    )


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
