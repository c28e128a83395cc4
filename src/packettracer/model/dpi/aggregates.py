"""The DPI's aggregates of ended flows: traffic per application, category, encryption, server
port and side (the Analysis and Ports panels, `report`), the distinct host:port pairs each host
contacted (the scan view, fan-out), and the start times of small flows from one host to one
service (beaconing). Pure logic: the DPI feature hands it the ended flows with their verdicts,
in batches, and reads it for its views."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from functools import lru_cache
from typing import Final

from packettracer.capture.packet import TCP, UDP
from packettracer.model.dpi.categories import UNKNOWN
from packettracer.model.dpi.inspector import Verdict
from packettracer.model.flows import Flow

MAX_BEACON_GROUPS: Final = 5000
BEACON_MAX_BYTES: Final = 4096
"""Flows up to this size (both directions) are beacon candidates."""
MAX_PORT_HOSTS: Final = 20000
MAX_DISTINCT: Final = 5000
MAX_LOCAL_CACHE: Final = 65536

TotalsKey = tuple[str, str, bool, int, int, bool, str | None]
"""(app, category, encrypted, proto number, server port, server is local, service); the port
fields are (proto, 0, False, None) for flows without ports."""

_LOCAL4: Final = ("10.", "192.168.", "127.", "169.254.", "255.255.255.255") + tuple(
    f"172.{n}." for n in range(16, 32)
)


def is_local(addr: str) -> bool:
    """A LAN-side address (private, link-local, loopback, multicast): string tests first,
    because this runs for every ended flow."""
    if ":" not in addr:
        if addr.startswith(_LOCAL4):
            return True
        first = addr[: addr.find(".")]
        return first.isdigit() and 224 <= int(first) <= 239
    return _is_local6(addr)


@lru_cache(maxsize=16384)
def _is_local6(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return ip.is_private or ip.is_link_local or ip.is_loopback or ip.is_multicast


class Sum:
    """Flows and bytes of one kind of flow. A class, not a list: compiled, its counts are
    plain machine integers, with no int object made per update."""

    def __init__(self, nbytes: int) -> None:
        self.flows = 1
        self.nbytes = nbytes

    def __iter__(self) -> Iterator[int]:
        """(flows, bytes), as the views unpack it."""
        yield self.flows
        yield self.nbytes


class Aggregates:
    """Ended flows summed up, bounded: new keys are refused when a table is full (no eviction
    churn on the per-flow path)."""

    def __init__(self, fan_out: int, on_fan_out: Callable[[str, int], None]) -> None:
        self.fan_out = fan_out
        """Distinct host:port pairs that make a host's fan-out a signal."""
        self.on_fan_out = on_fan_out
        """Called once per host, with its count, when it reaches `fan_out`."""
        self.totals: dict[TotalsKey, Sum] = {}
        """One key per kind of flow -> its flows and bytes: categories, shares and ports sum it."""
        self.distinct: dict[str, dict[tuple[str, int], float]] = {}
        """src -> the (dst, dport) pairs it contacted -> the start time of its first flow to the
        pair if that one was small (a beacon candidate), else -1."""
        self.beacons: dict[tuple[str, str, int, int], list[float]] = {}
        """(src, dst, dport, proto) -> start times of its small flows. A group is made when its
        host:port pair repeats: scan probes, which never repeat, cannot fill the table."""
        self.fan_out_flagged: set[str] = set()
        self._local: dict[str, bool] = {}  # address -> is_local (asked once per ended flow)

    def account(self, batch: list[tuple[Flow, Verdict]]) -> None:
        """Add ended flows and their verdicts. Every flow passes here, so the loop is kept
        flat, with what it uses in locals."""
        totals = self.totals
        local_of = self._local
        distinct = self.distinct
        beacons = self.beacons
        fan_out = self.fan_out
        fan_out_flagged = self.fan_out_flagged
        for flow, verdict in batch:
            label, category, _, protocol, encrypted, _, _ = verdict
            name = label or UNKNOWN
            nbytes = flow.bytes_fwd + flow.bytes_rev
            proto = flow.proto
            ports = proto in (TCP, UDP)
            key: TotalsKey
            if ports:
                dst = flow.dst
                dport = flow.dport
                local = local_of.get(dst)
                if local is None:
                    local = is_local(dst)
                    if len(local_of) < MAX_LOCAL_CACHE:
                        local_of[dst] = local
                key = (name, category, encrypted, proto, dport, local, protocol or label)
            else:
                key = (name, category, encrypted, proto, 0, False, None)
            t = totals.get(key)
            if t is None:
                totals[key] = Sum(nbytes)
            else:
                t.flows += 1
                t.nbytes += nbytes
            if not ports:
                continue
            src = flow.src
            seen = distinct.get(src)
            if seen is None:
                seen = {}
                if len(distinct) < MAX_PORT_HOSTS:
                    distinct[src] = seen
            small = nbytes <= BEACON_MAX_BYTES
            pair = (dst, dport)
            first = seen.get(pair)
            if first is None:
                n = len(seen) + 1
                if n <= MAX_DISTINCT:
                    seen[pair] = flow.first_seen if small else -1.0
                    if n >= fan_out and src not in fan_out_flagged:
                        fan_out_flagged.add(src)
                        self.on_fan_out(src, n)
            elif small:
                bkey = (src, dst, dport, proto)
                group = beacons.get(bkey)
                if group is None:
                    if len(beacons) < MAX_BEACON_GROUPS:
                        # The pair's first flow, if it was small, starts the group.
                        group = beacons[bkey] = [first] if first >= 0 else []
                        group.append(flow.first_seen)
                elif len(group) < 64:
                    group.append(flow.first_seen)
