"""Names for addresses: what a user wants to read instead of 151.101.1.69.

Every name keeps where it came from, because they mean different things:
  dns   an answer to a query a client on the wire made (the name the user asked for)
  sni   the server name a TLS/QUIC client sent
  http  the Host header of a plain HTTP request
  ptr   a reverse lookup (often a CDN's or ISP's machine name, not what the user asked for)
The best name prefers what the client asked for (dns, sni, http: the latest one seen) over ptr.

Passive entries are timed by packet time, so a replayed capture behaves as it did live. A DNS name
is valid for its TTL, but never less than `MIN_TTL` (browsers cache answers at least that long,
so a connection may start well after a very short TTL ran out).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

DNS = "dns"
SNI = "sni"
HTTP = "http"
PTR = "ptr"
SOURCES = (DNS, SNI, HTTP, PTR)
MARKERS = {DNS: "ᵈ", SNI: "ˢ", HTTP: "ʰ", PTR: "ʳ"}
"""Small marker shown after a name so a PTR name can be told from the name the client asked for."""
ASCII_MARKERS = {DNS: "d", SNI: "s", HTTP: "h", PTR: "r"}

MIN_TTL = 60.0
SEEN_NAME_LIFETIME = 3600.0
"""How long an SNI or HTTP Host name stays attached to an address after it was last seen."""
# Client-asked names beat PTR; among those the most recent wins.
_RANK = {DNS: 2, SNI: 2, HTTP: 2, PTR: 1}


@dataclass(slots=True)
class NameEntry:
    name: str
    source: str
    learned_at: float
    expires: float | None
    """Packet time after which the name no longer holds; None: until replaced."""

    def valid(self, now: float | None) -> bool:
        return self.expires is None or now is None or now <= self.expires


_psl: PublicSuffixList | None = None


def _suffixes() -> PublicSuffixList:
    global _psl
    if _psl is None:
        # The list ships inside the package (no download); ICANN section only, so that names under
        # a CDN's own suffix (cloudfront.net, github.io) group under that CDN.
        _psl = PublicSuffixList(only_icann=True)
    return _psl


@lru_cache(maxsize=20000)
def registered_domain(name: str) -> str | None:
    """`www.bbc.co.uk` -> `bbc.co.uk` (public-suffix aware); None for a bare suffix or IP."""
    name = name.strip(".").lower()
    if not name or name.replace(".", "").isdigit() or ":" in name:
        return None
    return _suffixes().privatesuffix(name)


def clean_name(raw: str) -> str | None:
    """A name from a packet as we keep it: lowercase, no trailing dot, bounded, printable."""
    name = raw.strip().rstrip(".").lower()
    if not name or len(name) > 253 or not name.isprintable() or " " in name:
        return None
    return name


class NameTable:
    """address -> names seen for it; bounded (least recently updated address dropped first)."""

    def __init__(self, max_addresses: int = 50_000) -> None:
        self.max_addresses = max_addresses
        self._by_addr: OrderedDict[str, list[NameEntry]] = OrderedDict()
        self.updates = 0

    def __len__(self) -> int:
        return len(self._by_addr)

    def add(
        self, address: str, name: str, source: str, ts: float, ttl: float | None = None
    ) -> NameEntry | None:
        clean = clean_name(name)
        if clean is None or source not in _RANK:
            return None
        if source == DNS:
            expires: float | None = ts + max(float(ttl or 0), MIN_TTL)
        elif source in (SNI, HTTP):
            expires = ts + SEEN_NAME_LIFETIME
        else:
            expires = None
        entries = self._by_addr.get(address)
        if entries is None:
            entries = []
            self._by_addr[address] = entries
            if len(self._by_addr) > self.max_addresses:
                self._by_addr.popitem(last=False)
        else:
            self._by_addr.move_to_end(address)
        for entry in entries:
            if entry.name == clean and entry.source == source:
                entry.learned_at = max(entry.learned_at, ts)
                if expires is None or entry.expires is None:
                    entry.expires = expires
                else:
                    entry.expires = max(entry.expires, expires)
                self.updates += 1
                return entry
        entry = NameEntry(clean, source, ts, expires)
        entries.append(entry)
        if len(entries) > 8:
            # keep the few most recent; an address shared by hundreds of vhosts needs no more
            entries.sort(key=lambda e: e.learned_at)
            del entries[0]
        self.updates += 1
        return entry

    def names(self, address: str) -> list[NameEntry]:
        return list(self._by_addr.get(address, ()))

    def best(self, address: str, now: float | None = None) -> NameEntry | None:
        entries = self._by_addr.get(address)
        if not entries:
            return None
        best: NameEntry | None = None
        for entry in entries:
            if not entry.valid(now):
                continue
            if best is None or (_RANK[entry.source], entry.learned_at) > (
                _RANK[best.source],
                best.learned_at,
            ):
                best = entry
        return best

    def has_ptr(self, address: str) -> bool:
        return any(e.source == PTR for e in self._by_addr.get(address, ()))

    def prune(self, now: float) -> int:
        """Drop expired entries (call from a periodic tick)."""
        dropped = 0
        for address in list(self._by_addr):
            entries = self._by_addr[address]
            keep = [e for e in entries if e.valid(now)]
            if len(keep) != len(entries):
                dropped += len(entries) - len(keep)
                if keep:
                    self._by_addr[address] = keep
                else:
                    del self._by_addr[address]
        return dropped


def display(entry: NameEntry | None, ascii_only: bool = False) -> str:
    """`name` plus its source marker, for tables."""
    if entry is None:
        return ""
    marks = ASCII_MARKERS if ascii_only else MARKERS
    return f"{entry.name} {marks.get(entry.source, '')}".rstrip()
