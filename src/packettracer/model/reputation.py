"""IP reputation: blocklists as sorted, merged integer ranges searched with bisect (one structure
per list and address family), and the reserved (bogon) address ranges.

A million-entry list loads in about 4 s of CPU and answers a lookup in about 2 microseconds
(benchmarks/reputation_lookup.py prints the figures). Formats read, one entry per line:

- plain addresses or CIDRs with `#` or `;` comments (FireHOL netsets, Emerging Threats,
  abuse.ch, most lists): `1.2.3.0/24`, `1.2.3.4  # note`
- Spamhaus DROP/EDROP: `1.2.3.0/24 ; SBL123` (the text after `;` is kept as the entry's note)
- ranges: `1.2.3.4-1.2.3.9`
- Tor exit lists: `ExitAddress 1.2.3.4 2024-01-01 00:00:00` (other Tor lines ignored)
"""

from __future__ import annotations

import ipaddress
import socket
from array import array
from bisect import bisect_right
from collections.abc import Iterable
from dataclasses import dataclass, field

V4_MAX = (1 << 32) - 1
V6_MAX = (1 << 128) - 1


@dataclass
class Match:
    list: str
    start: int
    end: int
    version: int
    note: str = ""

    @property
    def network(self) -> str:
        """The listed range as text (a CIDR when it is one); formatted only when asked."""
        return _describe(self.start, self.end, self.version)


class _Ranges:
    """Disjoint [start, end] ranges, sorted; overlapping input merged (the first note wins)."""

    __slots__ = ("starts", "ends", "notes")

    def __init__(self, v4: bool) -> None:
        self.starts: array[int] | list[int] = array("I") if v4 else []
        self.ends: array[int] | list[int] = array("I") if v4 else []
        self.notes: dict[int, str] = {}

    @classmethod
    def build(cls, items: list[tuple[int, int, str]], v4: bool) -> _Ranges:
        out = cls(v4)
        items.sort()  # by start; merging below absorbs any overlap
        starts: list[int] = []
        ends: list[int] = []
        notes: dict[int, str] = {}
        for start, end, note in items:
            if ends and start <= ends[-1] + 1:
                if end > ends[-1]:
                    ends[-1] = end
                continue
            starts.append(start)
            ends.append(end)
            if note:
                notes[len(starts) - 1] = note
        if v4:
            out.starts = array("I", starts)
            out.ends = array("I", ends)
        else:
            out.starts = starts
            out.ends = ends
        out.notes = notes
        return out

    def find(self, value: int) -> int:
        i = bisect_right(self.starts, value) - 1
        if i >= 0 and value <= self.ends[i]:
            return i
        return -1

    def __len__(self) -> int:
        return len(self.starts)


@dataclass
class Blocklist:
    name: str
    v4: _Ranges = field(default_factory=lambda: _Ranges(True))
    v6: _Ranges = field(default_factory=lambda: _Ranges(False))
    entries: int = 0
    skipped: int = 0
    source: str = ""

    def lookup_int(self, value: int, version: int) -> Match | None:
        ranges = self.v4 if version == 4 else self.v6
        i = ranges.find(value)
        if i < 0:
            return None
        return Match(self.name, ranges.starts[i], ranges.ends[i], version, ranges.notes.get(i, ""))

    @property
    def ranges(self) -> int:
        return len(self.v4) + len(self.v6)


def _describe(start: int, end: int, version: int) -> str:
    size = end - start + 1
    bits = 32 if version == 4 else 128
    if size & (size - 1) == 0 and start % size == 0:
        prefix = bits - (size.bit_length() - 1)
        addr = ipaddress.ip_address(start) if version == 4 else ipaddress.IPv6Address(start)
        return f"{addr}/{prefix}" if prefix != bits else str(addr)
    if version == 4:
        return f"{ipaddress.IPv4Address(start)}-{ipaddress.IPv4Address(end)}"
    return f"{ipaddress.IPv6Address(start)}-{ipaddress.IPv6Address(end)}"


def _v4int(text: str) -> int:
    return int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")


def parse_entry(token: str) -> tuple[int, int, int]:
    """'1.2.3.0/24' -> (version, start, end); raises ValueError."""
    if "-" in token and "/" not in token:
        lo, _, hi = token.partition("-")
        a = ipaddress.ip_address(lo.strip())
        b = ipaddress.ip_address(hi.strip())
        if a.version != b.version or int(b) < int(a):
            raise ValueError(token)
        return a.version, int(a), int(b)
    if ":" not in token:
        # The fast path for the common case (IPv4), 3-4x quicker than ipaddress.
        addr, slash, plen = token.partition("/")
        value = _v4int(addr)
        bits = int(plen) if slash else 32
        if not 0 <= bits <= 32:
            raise ValueError(token)
        size = 1 << (32 - bits)
        start = value & ~(size - 1) & V4_MAX
        return 4, start, start + size - 1
    net = ipaddress.ip_network(token, strict=False)
    return net.version, int(net.network_address), int(net.broadcast_address)


def parse_lines(name: str, lines: Iterable[str], source: str = "") -> Blocklist:
    v4: list[tuple[int, int, str]] = []
    v6: list[tuple[int, int, str]] = []
    skipped = 0
    for raw in lines:
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        note = ""
        if ";" in line:
            line, _, note = line.partition(";")
            note = note.strip()
        if "#" in line:
            line, _, comment = line.partition("#")
            note = note or comment.strip()
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "ExitAddress":
            if len(parts) < 2:
                skipped += 1
                continue
            token = parts[1]
            note = note or "tor exit"
        elif parts[0] in ("ExitNode", "Published", "LastStatus"):
            continue
        else:
            token = parts[0]
            # "1.2.3.4 SBL123" and "1.2.3.4,note" style
            token = token.split(",")[0]
        try:
            version, start, end = parse_entry(token)
        except (ValueError, OSError):
            skipped += 1
            continue
        (v4 if version == 4 else v6).append((start, end, note[:80]))
    bl = Blocklist(name, source=source)
    bl.entries = len(v4) + len(v6)
    bl.skipped = skipped
    bl.v4 = _Ranges.build(v4, True)
    bl.v6 = _Ranges.build(v6, False)
    return bl


class ReputationDB:
    """All loaded lists; `lookup` returns the first list that holds the address."""

    def __init__(self) -> None:
        self.lists: dict[str, Blocklist] = {}

    def set_list(self, blocklist: Blocklist) -> None:
        self.lists[blocklist.name] = blocklist

    def remove(self, name: str) -> None:
        self.lists.pop(name, None)

    def __len__(self) -> int:
        return sum(b.entries for b in self.lists.values())

    def lookup_packed(self, packed: bytes) -> Match | None:
        if not self.lists:
            return None
        version = 4 if len(packed) == 4 else 6
        value = int.from_bytes(packed, "big")
        for bl in self.lists.values():
            m = bl.lookup_int(value, version)
            if m is not None:
                return m
        return None

    def lookup(self, address: str) -> Match | None:
        try:
            packed = ipaddress.ip_address(address).packed
        except ValueError:
            return None
        return self.lookup_packed(packed)


# Reserved space that must never appear as a host on the internet (RFC 6890 and friends).
# Private (RFC 1918), loopback, link-local, CGNAT and multicast are normal on a LAN and not here.
_BOGON_TEXT = """
0.0.0.0/8 ; this network
192.0.0.0/24 ; IETF protocol assignments
192.0.2.0/24 ; TEST-NET-1 (documentation)
198.18.0.0/15 ; benchmarking
198.51.100.0/24 ; TEST-NET-2 (documentation)
203.0.113.0/24 ; TEST-NET-3 (documentation)
240.0.0.0/4 ; reserved (class E)
::/128 ; unspecified
100::/64 ; discard-only
2001:db8::/32 ; documentation
3fff::/20 ; documentation
"""
BOGONS = parse_lines("bogon", _BOGON_TEXT.splitlines())
_BROADCAST = b"\xff\xff\xff\xff"


def _first_bytes(ranges: _Ranges, bits: int) -> bytes:
    """A 256-entry table: 1 where an address with that first byte may fall in `ranges`."""
    table = bytearray(256)
    shift = bits - 8
    for start, end in zip(ranges.starts, ranges.ends, strict=True):
        for first in range(start >> shift, (end >> shift) + 1):
            table[first] = 1
    return bytes(table)


_BOGON_FIRST_V4 = _first_bytes(BOGONS.v4, 32)
_BOGON_FIRST_V6 = _first_bytes(BOGONS.v6, 128)


def bogon(packed: bytes) -> Match | None:
    """The reserved range holding this address, if any (limited broadcast excluded)."""
    if packed == _BROADCAST:
        return None
    version = 4 if len(packed) == 4 else 6
    # most addresses are ruled out by their first byte, without the integer and the bisect
    if packed and not (_BOGON_FIRST_V4 if version == 4 else _BOGON_FIRST_V6)[packed[0]]:
        return None
    return BOGONS.lookup_int(int.from_bytes(packed, "big"), version)
