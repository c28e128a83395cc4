"""Anomaly scores (0-100) built from named, explained signals.

A flow's score and a host's score combine their signals' weights as independent evidence:
score = 100 * (1 - prod(1 - w/100)), so two weak signals make a medium score and no number of
signals passes 100. Each signal keeps a short sentence saying why it fired.
"""

from __future__ import annotations

import ipaddress
import math
from collections import Counter, OrderedDict
from dataclasses import dataclass
from functools import lru_cache

# signal name -> (weight, explanation template)
SIGNALS: dict[str, tuple[int, str]] = {
    "malformed": (30, "malformed {what}"),
    "unexpected_port": (35, "{proto} on port {port}, where {expected} is expected"),
    "tls_no_sni": (10, "TLS ClientHello without a server name"),
    "self_signed": (25, "self-signed certificate ({subject})"),
    "bad_fingerprint": (70, "known-bad TLS fingerprint {fp} ({label})"),
    "dns_long_label": (30, "DNS name with a {n}-character label: {name}"),
    "dns_entropy": (30, "DNS name with a random-looking label (entropy {e:.1f}): {name}"),
    "ttl_change": (40, "TTL from {host} changed from {old} to {new}"),
    "bogon": (40, "traffic to reserved or bogon address {addr}"),
    "beaconing": (45, "{n} small flows to {peer} every {period:.0f}s (beaconing?)"),
    "fan_out": (40, "{host} contacted {n} distinct host:port pairs"),
    "malware_app": (80, "{app} is on the malware/mining list"),
}


@dataclass(frozen=True, slots=True)
class Signal:
    name: str
    weight: int
    reason: str


def signal(kind: str, /, **values: object) -> Signal:
    weight, template = SIGNALS[kind]
    try:
        reason = template.format(**values)
    except (KeyError, ValueError):
        reason = kind
    return Signal(kind, weight, reason)


def combine(signals: list[Signal]) -> int:
    keep = 1.0
    seen: set[str] = set()
    for sig in signals:
        if sig.name in seen:
            continue
        seen.add(sig.name)
        keep *= 1 - sig.weight / 100
    return round(100 * (1 - keep))


def entropy(text: str) -> float:
    if not text:
        return 0.0
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def dns_name_signals(name: str) -> list[Signal]:
    out: list[Signal] = []
    labels = name.split(".")
    # The registered domain and the TLD are not chosen per query; look at the rest.
    for label in labels[:-2]:
        if len(label) > 50:
            out.append(signal("dns_long_label", n=len(label), name=name[:120]))
            break
        if len(label) >= 20:
            e = entropy(label.lower())
            if e >= 4.0:
                out.append(signal("dns_entropy", e=e, name=name[:120]))
                break
    return out


_BOGONS = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "::/128",
        "100::/64",
        "2001:db8::/32",
        "3fff::/20",
    )
]


_BOGON4_PREFIXES = ("0.", "192.0.0.", "192.0.2.", "198.18.", "198.19.", "198.51.100.",
                    "203.0.113.")  # fmt: skip


def is_bogon(addr: str) -> bool:
    """Reserved, documentation or unallocated space (not private LAN ranges: those are normal)."""
    if ":" not in addr:
        # IPv4 by string: this runs for every ended flow.
        if addr.startswith(_BOGON4_PREFIXES):
            return True
        first = addr[: addr.find(".")]
        return first.isdigit() and 240 <= int(first) <= 255 and addr != "255.255.255.255"
    return _is_bogon6(addr)


@lru_cache(maxsize=8192)
def _is_bogon6(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if addr == "255.255.255.255":
        return False
    return any(ip in net for net in _BOGONS if net.version == ip.version)


class TTLTracker:
    """The usual TTL of each host's packets; a jump of more than `jump` hops is a signal."""

    def __init__(self, max_hosts: int = 20000, jump: int = 20, warmup: int = 3) -> None:
        self.hosts: OrderedDict[str, list[int]] = OrderedDict()
        self.max_hosts = max_hosts
        self.jump = jump
        self.warmup = warmup

    def see(self, host: str, ttl: int) -> Signal | None:
        """Record one TTL; returns a signal the first time the host's TTL jumps."""
        entry = self.hosts.get(host)
        if entry is None:
            # [baseline TTL, samples, flagged]
            self.hosts[host] = [ttl, 1, 0]
            if len(self.hosts) > self.max_hosts:
                self.hosts.popitem(last=False)
            return None
        base, n, flagged = entry
        if abs(ttl - base) <= self.jump or flagged:
            if n < 1000:
                entry[1] = n + 1
            return None
        if n < self.warmup:
            entry[0] = ttl
            return None
        entry[2] = 1
        return signal("ttl_change", host=host, old=base, new=ttl)


def beacon_period(times: list[float], max_cv: float = 0.15) -> float | None:
    """The period of flow start times that repeat regularly, or None."""
    if len(times) < 5:
        return None
    times = sorted(times)
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    mean = sum(gaps) / len(gaps)
    if mean < 1.0:
        return None
    var = sum((g - mean) ** 2 for g in gaps) / len(gaps)
    if math.sqrt(var) / mean > max_cv:
        return None
    return mean
