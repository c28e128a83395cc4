"""An OS label per host from passive signals: p0f matches of its SYNs and SYN+ACKs, its HTTP
User-Agent, its DHCP parameter request list (option 55) and vendor class, and its TTL family.

p0f's label is the verdict when there is one (exact before generic before fuzzy, then the most
frequent); the other signals raise or lower the confidence, and give the verdict when p0f has
none. Every signal behind a verdict is kept, so that the dashboard can say why.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

# User-Agent -> OS; first match wins (iPhone before "Mac OS X", Android before Linux).
UA_RULES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"Windows NT 10\.0"), "Windows 10 or 11"),
    (re.compile(r"Windows NT 6\.3"), "Windows 8.1"),
    (re.compile(r"Windows NT 6\.2"), "Windows 8"),
    (re.compile(r"Windows NT 6\.1"), "Windows 7"),
    (re.compile(r"Windows NT 6\.0"), "Windows Vista"),
    (re.compile(r"Windows NT 5\.[12]"), "Windows XP"),
    (re.compile(r"Windows"), "Windows"),
    (re.compile(r"iPhone|iPad|iPod|CFNetwork.*Darwin.*(iPhone|iPad)"), "iOS"),
    (re.compile(r"Mac OS X|Macintosh|Darwin"), "Mac OS X"),
    (re.compile(r"Android"), "Android"),
    (re.compile(r"CrOS"), "ChromeOS"),
    (re.compile(r"FreeBSD"), "FreeBSD"),
    (re.compile(r"Linux|Ubuntu|Debian|Fedora|X11"), "Linux"),
]

# DHCP option 55 (parameter request list) -> OS, from the fingerbank-style lists clients send.
DHCP_FINGERPRINTS: dict[str, str] = {
    "1,3,6,15,31,33,43,44,46,47,119,121,249,252": "Windows 10 or 11",
    "1,15,3,6,44,46,47,31,33,121,249,43": "Windows 7 or 8",
    "1,15,3,6,44,46,47,31,33,121,249,43,252": "Windows 7 or 8",
    "1,15,3,6,44,46,47,31,33,249,43": "Windows XP",
    "1,15,3,6,44,46,47,31,33,249,43,252": "Windows XP",
    "1,28,2,3,15,6,119,12,44,47,26,121,42": "Linux",
    "1,28,2,3,15,6,12": "Linux",
    "1,3,6,12,15,28,42": "Linux",
    "1,121,3,6,15,119,252,95,44,46": "Mac OS X",
    "1,121,3,6,15,119,252": "Mac OS X",
    "1,3,6,15,119,252": "Mac OS X",
    "1,121,3,6,15,108,114,119,252,95,44,46": "Mac OS X",
    "1,3,6,15,26,28,51,58,59,43": "Android",
    "1,3,6,15,26,28,51,58,59": "Android",
    "1,3,6,15,26,28,51,58,59,43,114": "Android",
    "1,3,6,15,26,28,51,58,59,43,114,108": "Android",
}
DHCP_VENDOR_RULES: list[tuple[str, str]] = [
    ("MSFT 5.0", "Windows"),
    ("MSFT 98", "Windows"),
    ("android-dhcp", "Android"),
    ("dhcpcd", "Linux"),
    ("udhcp", "Linux"),
]

FAMILIES: list[tuple[str, str]] = [
    ("Windows", "Windows"),
    ("Linux", "Linux"),
    ("Android", "Linux"),
    ("ChromeOS", "Linux"),
    ("Mac OS", "Apple"),
    ("MacOS", "Apple"),
    ("iOS", "Apple"),
    ("FreeBSD", "BSD"),
    ("OpenBSD", "BSD"),
    ("NetBSD", "BSD"),
    ("Solaris", "Solaris"),
]

TTL_FAMILY = {
    64: "Linux/Unix/macOS (TTL 64)",
    128: "Windows (TTL 128)",
    255: "network device or Solaris (TTL 255)",
}


_RANK = {"exact": 0, "generic": 1, "fuzzy": 2}
_KIND_CONFIDENCE = {"exact": 0.8, "generic": 0.65, "fuzzy": 0.45}


def family(label: str) -> str | None:
    for prefix, fam in FAMILIES:
        if label.startswith(prefix):
            return fam
    return None


def ua_os(user_agent: str) -> str | None:
    for pattern, label in UA_RULES:
        if pattern.search(user_agent):
            return label
    return None


def dhcp_os(params: str | None, vendor: str | None) -> str | None:
    if params:
        hit = DHCP_FINGERPRINTS.get(params)
        if hit:
            return hit
    if vendor:
        for prefix, label in DHCP_VENDOR_RULES:
            if vendor.startswith(prefix):
                return label
    return None


def _weigh(
    label: str | None, confidence: float, other: str, alone: float, agree: float, disagree: float
) -> tuple[str, float]:
    """The verdict after one more signal: `other` with confidence `alone` when there was none,
    else the same verdict, surer when `other` names the same OS family, less sure otherwise."""
    if label is None:
        return other, alone
    if family(other) == family(label):
        return label, confidence + agree
    return label, confidence - disagree


def initial_ttl(ttl: int) -> int:
    for initial in (32, 64, 128):
        if ttl <= initial:
            return initial
    return 255


class HostOS:
    """What one host's packets said about its OS. Its counts (plain dicts: a Counter costs a
    Python-level call to make) are made on first use: the DPI keeps one per host (tens of
    thousands on a scan), most of which never see a User-Agent or a DHCP request."""

    __slots__ = ("_p0f", "_user_agents", "_dhcp", "_ttls", "syns", "fingerprinted")

    def __init__(self) -> None:
        self._p0f: dict[tuple[str, str], int] | None = None
        self._user_agents: dict[str, int] | None = None
        self._dhcp: dict[str, int] | None = None
        self._ttls: dict[int, int] | None = None
        self.syns = 0
        """SYNs and SYN+ACKs of the host that were fingerprinted."""
        self.fingerprinted = False
        """The host sent a SYN or SYN+ACK (so a TTL-only verdict is worth giving)."""

    @property
    def p0f(self) -> dict[tuple[str, str], int]:
        """(label, kind: exact|generic|fuzzy) -> SYN/SYN+ACK count."""
        if self._p0f is None:
            self._p0f = {}
        return self._p0f

    @property
    def user_agents(self) -> dict[str, int]:
        if self._user_agents is None:
            self._user_agents = {}
        return self._user_agents

    @property
    def dhcp(self) -> dict[str, int]:
        if self._dhcp is None:
            self._dhcp = {}
        return self._dhcp

    @property
    def ttls(self) -> dict[int, int]:
        if self._ttls is None:
            self._ttls = {}
        return self._ttls

    def verdict(self) -> tuple[str, float, list[dict[str, Any]]] | None:
        """(label, confidence 0..1, signals) or None."""
        signals: list[dict[str, Any]] = []
        label: str | None = None
        confidence = 0.0
        p0f = self._p0f
        if p0f:
            if len(p0f) == 1:
                ((best, kind),) = p0f
            else:
                (best, kind), _ = min(
                    p0f.items(), key=lambda kv: (_RANK[kv[0][1]], -kv[1], kv[0][0])
                )
            label = best
            confidence = _KIND_CONFIDENCE[kind]
            top = p0f.items() if len(p0f) == 1 else Counter(p0f).most_common(4)
            for (lab, k), n in top:
                signals.append({"source": "p0f", "value": lab, "match": k, "count": n})
        # Every host with a handshake gets here: the other signals only when it has them.
        if self._user_agents:
            ua_labels: Counter[str] = Counter()
            for ua, n in self._user_agents.items():
                hit = ua_os(ua)
                if hit:
                    ua_labels[hit] += n
            if ua_labels:
                ua_label, n = ua_labels.most_common(1)[0]
                signals.append({"source": "user-agent", "value": ua_label, "count": n})
                label, confidence = _weigh(label, confidence, ua_label, 0.6, 0.1, 0.15)
        if self._dhcp:
            dhcp_labels: Counter[str] = Counter()
            for value, n in self._dhcp.items():
                params, _, vendor = value.partition("|")
                hit = dhcp_os(params or None, vendor or None)
                if hit:
                    dhcp_labels[hit] += n
            if dhcp_labels:
                dhcp_label = dhcp_labels.most_common(1)[0][0]
                signals.append({"source": "dhcp", "value": dhcp_label})
                label, confidence = _weigh(label, confidence, dhcp_label, 0.55, 0.05, 0.1)
        ttls = self._ttls
        if ttls:
            # The most frequent TTL (the first seen of equals, as most_common(1) gives).
            ttl = initial_ttl(
                next(iter(ttls)) if len(ttls) == 1 else Counter(ttls).most_common(1)[0][0]
            )
            ttl_label = TTL_FAMILY.get(ttl)
            if ttl_label:
                signals.append({"source": "ttl", "value": ttl_label, "initial_ttl": ttl})
                fam = family(label) if label else None
                if label is None:
                    if self.fingerprinted:
                        label, confidence = ttl_label, 0.25
                elif (fam == "Windows") == (ttl == 128) and ttl != 255:
                    confidence += 0.05
        if label is None:
            return None
        confidence = max(0.05, min(0.99, confidence))
        return label, round(confidence, 2), signals
