"""Which addresses are private or reserved, labelled without any lookup.

An address with a label here is never sent to any outside service (geo, RDAP, WHOIS): the label is
all a user needs, and sending a LAN address out would leak the local network layout.
"""

from __future__ import annotations

import ipaddress
import socket
from functools import lru_cache

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

LAN = "LAN"
LOOPBACK = "loopback"
LINK_LOCAL = "link-local"
MULTICAST = "multicast"
BROADCAST = "broadcast"
CGNAT = "CGNAT"
DOCUMENTATION = "documentation"
UNSPECIFIED = "unspecified"
RESERVED = "reserved"
BENCHMARK = "benchmarking"
ULA = "LAN"  # IPv6 unique local addresses are the v6 LAN

_DOC_NETS = [
    ipaddress.ip_network(n)
    for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32", "3fff::/20")
]
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_BENCH = [ipaddress.ip_network(n) for n in ("198.18.0.0/15", "2001:2::/48")]
_LAN4 = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")]
_ULA = ipaddress.ip_network("fc00::/7")
_BROADCAST = ipaddress.ip_address("255.255.255.255")
# First octets of every IPv4 range that is not globally routed (ipaddress's private, reserved,
# loopback, link-local, multicast and shared lists, and the ranges above): an address outside
# them is public, which `classify` answers without building an ipaddress object (~10x faster).
_SPECIAL_V4_FIRST = frozenset({0, 10, 100, 127, 169, 172, 192, 198, 203, *range(224, 256)})


def parse(address: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


@lru_cache(maxsize=65536)
def classify(address: str) -> str | None:
    """The reserved-range label of `address`, or None for a public (globally routed) address.
    Strings that are not addresses are labelled `reserved` so that they are never looked up."""
    if ":" not in address:
        try:
            packed = socket.inet_pton(socket.AF_INET, address)
        except OSError:
            packed = b""
        # canonical dotted quads only (what ipaddress accepts too)
        if (
            packed
            and packed[0] not in _SPECIAL_V4_FIRST
            and socket.inet_ntop(socket.AF_INET, packed) == address
        ):
            return None
    ip = parse(address)
    if ip is None:
        return RESERVED
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return classify(str(ip.ipv4_mapped))
    if ip.is_unspecified:
        return UNSPECIFIED
    if ip.is_loopback:
        return LOOPBACK
    if ip == _BROADCAST:
        return BROADCAST
    if ip.is_multicast:
        return MULTICAST
    if ip.is_link_local:
        return LINK_LOCAL
    if any(ip in n for n in _DOC_NETS):
        return DOCUMENTATION
    if ip in _CGNAT:
        return CGNAT
    if any(ip in n for n in _BENCH):
        return BENCHMARK
    if any(ip in n for n in _LAN4) or ip in _ULA:
        return LAN
    if not ip.is_global:
        # 0.0.0.0/8, 240.0.0.0/4, 192.0.0.0/24, 6to4/Teredo relays and the other special ranges
        return RESERVED
    return None


def is_public(address: str) -> bool:
    """True only for an address that may be looked up outside (geo, RDAP, WHOIS, PTR online)."""
    return classify(address) is None


@lru_cache(maxsize=65536)
def is_local(address: str) -> bool:
    """On this side of the internet: LAN, CGNAT, loopback, link-local (for 'local talkers')."""
    return classify(address) in (LAN, CGNAT, LOOPBACK, LINK_LOCAL)


def reverse_pointer(address: str) -> str | None:
    """in-addr.arpa / ip6.arpa name of an address (for PTR queries)."""
    ip = parse(address)
    return ip.reverse_pointer if ip is not None else None
