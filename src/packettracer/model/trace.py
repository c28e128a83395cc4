"""Traceroute results, pure: per-hop statistics, completed paths, route-change diffs and RTT
baseline shifts. The tracer (services/tracer.py) feeds probe answers in; panels, the `trace`
command and the store read the results. No I/O here.
"""

from __future__ import annotations

import ipaddress
import math
import statistics
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

SPARK_SAMPLES = 40
"""RTT samples kept per hop for the sparkline."""


@dataclass
class ProbeReply:
    """One answered probe: who answered at which TTL, how fast, and what the answer means."""

    ttl: int
    address: str
    rtt_ms: float
    destination: bool = False
    """The target itself answered (echo reply, port unreachable, SYN-ACK or RST)."""
    unreachable: str | None = None
    """Traceroute-style flag for a Destination Unreachable from a router: !N, !H, !P, !X, !A."""


@dataclass
class HopStats:
    """Statistics of one TTL across every round of a trace."""

    ttl: int
    sent: int = 0
    received: int = 0
    addresses: Counter[str] = field(default_factory=Counter)
    last_ms: float | None = None
    min_ms: float | None = None
    max_ms: float | None = None
    _sum_ms: float = 0.0
    _jitter_sum: float = 0.0
    _jitter_n: int = 0
    samples: deque[float] = field(default_factory=lambda: deque(maxlen=SPARK_SAMPLES))
    destination: bool = False
    unreachable: str | None = None
    # Filled from the resolution feature when it is present.
    name: str | None = None
    asn: int | None = None
    as_name: str | None = None
    country: str | None = None

    def record_sent(self, count: int = 1) -> None:
        self.sent += count

    def record_reply(self, reply: ProbeReply) -> None:
        self.received += 1
        self.addresses[reply.address] += 1
        rtt = reply.rtt_ms
        if self.last_ms is not None:
            # Jitter as the mean absolute difference of consecutive RTTs (what mtr shows).
            self._jitter_sum += abs(rtt - self.last_ms)
            self._jitter_n += 1
        self.last_ms = rtt
        self.min_ms = rtt if self.min_ms is None else min(self.min_ms, rtt)
        self.max_ms = rtt if self.max_ms is None else max(self.max_ms, rtt)
        self._sum_ms += rtt
        self.samples.append(rtt)
        if reply.destination:
            self.destination = True
        if reply.unreachable:
            self.unreachable = reply.unreachable

    @property
    def address(self) -> str | None:
        """The address that answered most often; None for a silent hop."""
        if not self.addresses:
            return None
        return self.addresses.most_common(1)[0][0]

    @property
    def silent(self) -> bool:
        return self.received == 0

    @property
    def loss(self) -> float:
        """Fraction of probes at this TTL without an answer (0..1)."""
        if self.sent == 0:
            return 0.0
        return max(0.0, 1.0 - self.received / self.sent)

    @property
    def avg_ms(self) -> float | None:
        return self._sum_ms / self.received if self.received else None

    @property
    def jitter_ms(self) -> float | None:
        return self._jitter_sum / self._jitter_n if self._jitter_n else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ttl": self.ttl,
            "address": self.address,
            "addresses": sorted(self.addresses),
            "name": self.name,
            "asn": self.asn,
            "as_name": self.as_name,
            "country": self.country,
            "sent": self.sent,
            "received": self.received,
            "loss": round(self.loss, 4),
            "last_ms": _r(self.last_ms),
            "min_ms": _r(self.min_ms),
            "avg_ms": _r(self.avg_ms),
            "max_ms": _r(self.max_ms),
            "jitter_ms": _r(self.jitter_ms),
            "destination": self.destination,
            "unreachable": self.unreachable,
            "silent": self.silent,
        }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass(frozen=True)
class PathHop:
    """One hop of one completed trace (a round)."""

    ttl: int
    address: str | None
    """None: the hop stayed silent (`*`)."""
    rtt_ms: float | None = None
    asn: int | None = None
    destination: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "ttl": self.ttl,
            "address": self.address,
            "rtt_ms": _r(self.rtt_ms),
            "asn": self.asn,
            "destination": self.destination,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PathHop:
        return cls(
            ttl=int(data["ttl"]),
            address=data.get("address"),
            rtt_ms=data.get("rtt_ms"),
            asn=data.get("asn"),
            destination=bool(data.get("destination", False)),
        )


@dataclass
class TracePath:
    """A completed trace: the path to a target as one round saw it."""

    target: str
    address: str
    proto: str
    timestamp: float
    hops: list[PathHop]
    reached: bool

    @property
    def hop_count(self) -> int:
        """Hops to the destination (its TTL) when reached, else the hops probed."""
        return len(self.hops)

    @property
    def rtt_ms(self) -> float | None:
        """RTT of the destination, else of the last hop that answered."""
        for hop in reversed(self.hops):
            if hop.rtt_ms is not None:
                return hop.rtt_ms
        return None

    def addresses(self) -> list[str | None]:
        return [hop.address for hop in self.hops]

    def as_path(self) -> list[int]:
        return as_path(self.hops)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "address": self.address,
            "proto": self.proto,
            "timestamp": self.timestamp,
            "reached": self.reached,
            "hop_count": self.hop_count,
            "hops": [hop.to_dict() for hop in self.hops],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TracePath:
        return cls(
            target=str(data["target"]),
            address=str(data.get("address", data["target"])),
            proto=str(data.get("proto", "icmp")),
            timestamp=float(data.get("timestamp", 0.0)),
            hops=[PathHop.from_dict(h) for h in data.get("hops", [])],
            reached=bool(data.get("reached", False)),
        )


def as_path(hops: Iterable[PathHop]) -> list[int]:
    """The AS numbers along a path, consecutive repeats and unknowns dropped."""
    result: list[int] = []
    for hop in hops:
        if hop.asn is None:
            continue
        if not result or result[-1] != hop.asn:
            result.append(hop.asn)
    return result


def build_path(
    target: str,
    address: str,
    proto: str,
    timestamp: float,
    replies: Iterable[ProbeReply],
    probed_ttls: int,
    asn_of: dict[str, int] | None = None,
) -> TracePath:
    """One round's answers -> a TracePath. The hop at each TTL is the address that answered most
    often; hops beyond the first TTL where the destination answered are dropped."""
    by_ttl: dict[int, list[ProbeReply]] = {}
    for reply in replies:
        by_ttl.setdefault(reply.ttl, []).append(reply)
    last = probed_ttls
    dest_ttls = [ttl for ttl, rs in by_ttl.items() if any(r.destination for r in rs)]
    stop_ttls = [ttl for ttl, rs in by_ttl.items() if any(r.unreachable for r in rs)]
    if dest_ttls:
        last = min(dest_ttls)
    elif stop_ttls:
        last = min(stop_ttls)
    else:
        # Trailing silent hops say nothing about the path: cut them off.
        answered = [ttl for ttl in by_ttl if ttl <= probed_ttls]
        last = max(answered) if answered else 0
    hops: list[PathHop] = []
    for ttl in range(1, last + 1):
        rs = by_ttl.get(ttl, [])
        if not rs:
            hops.append(PathHop(ttl, None))
            continue
        addr = Counter(r.address for r in rs).most_common(1)[0][0]
        rtts = [r.rtt_ms for r in rs if r.address == addr]
        hops.append(
            PathHop(
                ttl,
                addr,
                rtt_ms=statistics.fmean(rtts),
                asn=(asn_of or {}).get(addr),
                destination=any(r.destination for r in rs),
            )
        )
    return TracePath(target, address, proto, timestamp, hops, reached=bool(dest_ttls))


@dataclass(frozen=True)
class HopChange:
    ttl: int
    old: str | None
    new: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"ttl": self.ttl, "old": self.old, "new": self.new}


@dataclass
class RouteChange:
    """How a new path differs from the previous one for the same target."""

    target: str
    timestamp: float
    kinds: list[str]
    """Any of "hop" (a hop address changed), "as_path", "hop_count"."""
    hop_changes: list[HopChange]
    old_hop_count: int
    new_hop_count: int
    old_as_path: list[int]
    new_as_path: list[int]

    def summary(self) -> str:
        parts: list[str] = []
        for change in self.hop_changes:
            parts.append(f"hop {change.ttl}: {change.old or '*'} -> {change.new or '*'}")
        if "hop_count" in self.kinds:
            parts.append(f"hops {self.old_hop_count} -> {self.new_hop_count}")
        if "as_path" in self.kinds:
            old = " ".join(f"AS{a}" for a in self.old_as_path) or "-"
            new = " ".join(f"AS{a}" for a in self.new_as_path) or "-"
            parts.append(f"AS path {old} -> {new}")
        return f"route to {self.target} changed: " + "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "timestamp": self.timestamp,
            "kinds": list(self.kinds),
            "hop_changes": [c.to_dict() for c in self.hop_changes],
            "old_hop_count": self.old_hop_count,
            "new_hop_count": self.new_hop_count,
            "old_as_path": list(self.old_as_path),
            "new_as_path": list(self.new_as_path),
            "summary": self.summary(),
        }


def compare_paths(old: TracePath, new: TracePath) -> RouteChange | None:
    """The route change from `old` to `new`, or None when they agree.

    A silent hop (`*`) on either side is not a change: silence is loss, not another router. The
    hop count is compared only when both traces reached the destination (a trace that did not
    reach it says nothing about the length)."""
    kinds: list[str] = []
    hop_changes: list[HopChange] = []
    for ttl in range(1, max(old.hop_count, new.hop_count) + 1):
        a = old.hops[ttl - 1].address if ttl <= old.hop_count else None
        b = new.hops[ttl - 1].address if ttl <= new.hop_count else None
        if a is not None and b is not None and a != b:
            hop_changes.append(HopChange(ttl, a, b))
        elif (a is None) != (b is None) and old.reached and new.reached:
            # One path is longer: the extra hops are part of the diff.
            beyond_old = ttl > old.hop_count
            beyond_new = ttl > new.hop_count
            if beyond_old or beyond_new:
                hop_changes.append(HopChange(ttl, a, b))
    if hop_changes:
        kinds.append("hop")
    if old.reached and new.reached and old.hop_count != new.hop_count:
        kinds.append("hop_count")
    old_as, new_as = old.as_path(), new.as_path()
    if old_as and new_as and old_as != new_as:
        kinds.append("as_path")
    if not kinds:
        return None
    return RouteChange(
        target=new.target,
        timestamp=new.timestamp,
        kinds=kinds,
        hop_changes=hop_changes,
        old_hop_count=old.hop_count,
        new_hop_count=new.hop_count,
        old_as_path=old_as,
        new_as_path=new_as,
    )


@dataclass(frozen=True)
class RttShift:
    target: str
    timestamp: float
    baseline_ms: float
    current_ms: float

    def summary(self) -> str:
        direction = "rose" if self.current_ms > self.baseline_ms else "fell"
        return (
            f"RTT to {self.target} {direction}: {self.baseline_ms:.1f} ms -> "
            f"{self.current_ms:.1f} ms"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "timestamp": self.timestamp,
            "baseline_ms": round(self.baseline_ms, 3),
            "current_ms": round(self.current_ms, 3),
            "summary": self.summary(),
        }


class RttBaseline:
    """The usual RTT of a target (median of recent traces) and whether the latest one left it.

    After a shift the baseline restarts from the new level, so one lasting change is recorded
    once, not on every trace that follows."""

    def __init__(
        self, window: int = 10, min_samples: int = 3, min_shift_ms: float = 20.0, ratio: float = 0.5
    ) -> None:
        self.samples: deque[float] = deque(maxlen=window)
        self.min_samples = min_samples
        self.min_shift_ms = min_shift_ms
        self.ratio = ratio

    @property
    def value(self) -> float | None:
        if len(self.samples) < self.min_samples:
            return None
        return statistics.median(self.samples)

    def update(self, target: str, timestamp: float, rtt_ms: float | None) -> RttShift | None:
        if rtt_ms is None or math.isnan(rtt_ms):
            return None
        base = self.value
        shift = None
        if base is not None and abs(rtt_ms - base) > max(self.min_shift_ms, self.ratio * base):
            shift = RttShift(target, timestamp, base, rtt_ms)
            self.samples.clear()
        self.samples.append(rtt_ms)
        return shift


def sparkline(values: Sequence[float | None], width: int | None = None) -> str:
    """Unicode block sparkline; None (a lost probe) is a space."""
    blocks = "▁▂▃▄▅▆▇█"
    if width is not None:
        values = list(values)[-width:]
    known = [v for v in values if v is not None]
    if not known:
        return " " * len(values)
    low, high = min(known), max(known)
    span = high - low or 1.0
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        else:
            out.append(blocks[min(len(blocks) - 1, int((v - low) / span * (len(blocks) - 1)))])
    return "".join(out)


class TargetState:
    """Everything known about one traced target: per-hop statistics over all rounds, the recent
    paths (route history), the route changes and RTT shifts seen."""

    def __init__(
        self,
        target: str,
        address: str,
        proto: str,
        history_size: int = 50,
        baseline: RttBaseline | None = None,
    ) -> None:
        self.target = target
        self.address = address
        self.proto = proto
        self.hops: dict[int, HopStats] = {}
        self.paths: deque[TracePath] = deque(maxlen=history_size)
        self.changes: deque[RouteChange] = deque(maxlen=history_size)
        self.shifts: deque[RttShift] = deque(maxlen=history_size)
        self.baseline = baseline or RttBaseline()
        self.rounds = 0
        self.flow_id = ""
        self.error: str | None = None
        """Why tracing stopped (one line), if it did."""

    @property
    def current(self) -> TracePath | None:
        return self.paths[-1] if self.paths else None

    def seed(self, paths: Iterable[TracePath]) -> None:
        """Earlier paths (from the store), oldest first: the next trace is compared to them."""
        for path in paths:
            self.paths.append(path)

    def apply_round(
        self,
        sent: dict[int, int],
        replies: Sequence[ProbeReply],
        probed_ttls: int,
        timestamp: float,
        asn_of: dict[str, int] | None = None,
    ) -> tuple[TracePath, RouteChange | None, RttShift | None]:
        self.rounds += 1
        for ttl, count in sent.items():
            self.hops.setdefault(ttl, HopStats(ttl)).record_sent(count)
        for reply in replies:
            self.hops.setdefault(reply.ttl, HopStats(reply.ttl)).record_reply(reply)
        path = build_path(
            self.target, self.address, self.proto, timestamp, replies, probed_ttls, asn_of
        )
        if path.reached:
            # Hops beyond the destination belong to an older, longer path.
            for ttl in [t for t in self.hops if t > path.hop_count]:
                del self.hops[ttl]
        previous = self.current
        change = compare_paths(previous, path) if previous is not None else None
        if change is not None:
            self.changes.append(change)
        shift = self.baseline.update(self.target, timestamp, path.rtt_ms if path.reached else None)
        if shift is not None:
            self.shifts.append(shift)
        self.paths.append(path)
        return path, change, shift

    def hop_list(self) -> list[HopStats]:
        """Hops in TTL order, up to the destination or the router that said unreachable (probes
        beyond them, sent in rounds where that answer was lost, say nothing)."""
        hops: list[HopStats] = []
        for ttl in sorted(self.hops):
            hop = self.hops[ttl]
            hops.append(hop)
            if hop.destination or hop.unreachable:
                break
        return hops

    @property
    def reached(self) -> bool:
        return any(h.destination for h in self.hops.values())

    def outcome(self) -> str | None:
        """One line when the trace did not reach the target, else None."""
        if self.error:
            return self.error
        hops = self.hop_list()
        if self.reached or not hops:
            return None if hops else f"no answer from {self.target}"
        for hop in hops:
            if hop.unreachable:
                return (
                    f"{self.target} is unreachable: {hop.unreachable} from "
                    f"{hop.address} at hop {hop.ttl}"
                )
        answered = [h for h in hops if not h.silent]
        if not answered:
            return f"no answer from {self.target} (no hop answered within {len(hops)} hops)"
        last = answered[-1]
        return (
            f"no answer from {self.target} within {len(hops)} hops "
            f"(last answer: hop {last.ttl}, {last.address})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "address": self.address,
            "proto": self.proto,
            "flow": self.flow_id,
            "rounds": self.rounds,
            "reached": self.reached,
            "message": self.outcome(),
            "hops": [h.to_dict() for h in self.hop_list()],
            "changes": [c.to_dict() for c in self.changes],
            "rtt_shifts": [s.to_dict() for s in self.shifts],
        }


def remote_ends(pairs: Iterable[tuple[str, str]], local: set[str]) -> list[str]:
    """The far end of each (src, dst) flow, deduplicated in order: dst, unless dst is one of
    this host's addresses. Multicast, broadcast and unspecified addresses have no route to trace.
    """
    out: list[str] = []
    for src, dst in pairs:
        remote = src if dst in local and src not in local else dst
        try:
            ip = ipaddress.ip_address(remote)
        except ValueError:
            continue
        if ip.is_multicast or ip.is_unspecified or remote == "255.255.255.255":
            continue
        if remote not in out:
            out.append(remote)
    return out
