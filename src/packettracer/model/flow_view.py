"""What the flow table shows: filters, sort order, the destinations grouping and the selection.

Pure logic over `Flow` objects (no I/O, no Textual), so it is unit-tested on its own and kept
cheap enough to run on 50,000 flows a few times a second: one pass to filter, then a partial
sort (`heapq.nlargest`) for the top rows only.
"""

from __future__ import annotations

import heapq
import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from packettracer.capture.packet import ICMP, ICMP6, TCP, UDP
from packettracer.model.flows import Flow

PROTO_CYCLE: tuple[str, ...] = ("all", "tcp", "udp", "icmp", "other")
SORT_CYCLE: tuple[str, ...] = ("bytes", "packets", "rate", "recent", "duration")

# Protocol numbers behind each protocol filter ("icmp" covers ICMPv6 too).
_PROTO_SETS: dict[str, frozenset[int]] = {
    "tcp": frozenset({TCP}),
    "udp": frozenset({UDP}),
    "icmp": frozenset({ICMP, ICMP6}),
}
_KNOWN = frozenset({TCP, UDP, ICMP, ICMP6})
_PORT_PROTOS = frozenset({TCP, UDP})

SORT_KEYS: dict[str, Callable[[Flow], float]] = {
    "bytes": lambda f: f.bytes_fwd + f.bytes_rev,
    "packets": lambda f: f.packets_fwd + f.packets_rev,
    "rate": lambda f: f.rate_bps,
    "recent": lambda f: f.last_seen,
    "duration": lambda f: f.last_seen - f.first_seen,
}

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class IpFilter:
    """An IP filter as typed: a CIDR (`10.0.0.0/8`, `2001:db8::/32`) or a substring."""

    text: str
    network: IpNetwork | None = None
    # The network as integers, compared with the packed addresses of the flow key: parsing
    # two address strings per flow would cost ~20 µs, this costs well under one.
    _size: int = 0
    _mask: int = 0
    _net: int = 0

    @classmethod
    def parse(cls, text: str) -> IpFilter | None:
        """None for an empty filter; ValueError for something that looks like a CIDR but is not."""
        text = text.strip()
        if not text:
            return None
        if "/" in text:
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise ValueError(f"not a network: {text!r}") from None
            return cls(
                text, net, net.max_prefixlen // 8, int(net.netmask), int(net.network_address)
            )
        return cls(text.lower())

    def matches(self, flow: Flow) -> bool:
        if self.network is None:
            text = self.text
            return text in flow.src or text in flow.dst
        key = flow.key
        size, mask, net = self._size, self._mask, self._net
        a = key[1]
        b = key[3]
        return (len(a) == size and int.from_bytes(a) & mask == net) or (
            len(b) == size and int.from_bytes(b) & mask == net
        )


@dataclass(frozen=True)
class PortFilter:
    """Ports as typed: `443`, `80,443`, `8000-8100`, or a mix; matches either side of a flow."""

    text: str
    ranges: tuple[tuple[int, int], ...]
    ports: frozenset[int] | None = None
    """The same ports as a set, when there are few enough (the fast test)."""

    @classmethod
    def parse(cls, text: str) -> PortFilter | None:
        text = text.strip()
        if not text:
            return None
        ranges: list[tuple[int, int]] = []
        for part in text.replace(" ", ",").split(","):
            if not part:
                continue
            low_s, dash, high_s = part.partition("-")
            try:
                low = int(low_s)
                high = int(high_s) if dash else low
            except ValueError:
                raise ValueError(f"not a port or port range: {part!r}") from None
            if not (0 <= low <= 65535 and 0 <= high <= 65535) or high < low:
                raise ValueError(f"not a port or port range: {part!r}")
            ranges.append((low, high))
        if not ranges:
            return None
        ports = None
        if sum(high - low + 1 for low, high in ranges) <= 4096:
            ports = frozenset(p for low, high in ranges for p in range(low, high + 1))
        return cls(text, tuple(ranges), ports)

    def matches(self, flow: Flow) -> bool:
        if flow.proto not in (TCP, UDP):
            return False  # ICMP "ports" are type/code, not ports
        if self.ports is not None:
            return flow.sport in self.ports or flow.dport in self.ports
        sport = flow.sport
        dport = flow.dport
        return any(low <= sport <= high or low <= dport <= high for low, high in self.ranges)


@dataclass
class DestinationGroup:
    """Every shown flow towards one remote endpoint (the responder's address)."""

    address: str
    flows: list[Flow] = field(default_factory=list)
    packets: int = 0
    bytes: int = 0
    rate_bps: float = 0.0
    last_seen: float = 0.0
    first_seen: float = float("inf")
    protos: set[str] = field(default_factory=set)
    ports: set[int] = field(default_factory=set)

    @property
    def key(self) -> str:
        return f"dst:{self.address}"

    @property
    def duration(self) -> float:
        return max(0.0, self.last_seen - self.first_seen)

    def add(self, flow: Flow) -> None:
        self.flows.append(flow)
        self.packets += flow.packets_fwd + flow.packets_rev
        self.bytes += flow.bytes_fwd + flow.bytes_rev
        self.rate_bps += flow.rate_bps
        self.last_seen = max(self.last_seen, flow.last_seen)
        self.first_seen = min(self.first_seen, flow.first_seen)
        self.protos.add(flow.proto_name)
        if flow.proto in (TCP, UDP):
            self.ports.add(flow.dport)

    @classmethod
    def of(cls, address: str, members: list[Flow]) -> DestinationGroup:
        """The group of `members`, aggregated in one flat loop (the view builds hundreds of
        these per refresh)."""
        packets = nbytes = 0
        rate = 0.0
        last = 0.0
        first = float("inf")
        # one flow per protocol number: it names the protocol once the loop is done
        samples: dict[int, Flow] = {}
        ports: set[int] = set()
        port_protos = _PORT_PROTOS
        for f in members:
            packets += f.packets_fwd + f.packets_rev
            nbytes += f.bytes_fwd + f.bytes_rev
            rate += f.rate_bps
            if f.last_seen > last:
                last = f.last_seen
            if f.first_seen < first:
                first = f.first_seen
            proto = f.proto
            if proto not in samples:
                samples[proto] = f
            if proto in port_protos:
                ports.add(f.dport)
        names = {f.proto_name for f in samples.values()}
        return cls(address, members, packets, nbytes, rate, last, first, names, ports)


class FlowView:
    """The table's current view settings and selection."""

    def __init__(self) -> None:
        self.ip_filter: IpFilter | None = None
        self.port_filter: PortFilter | None = None
        self.proto = "all"
        self.sort = "bytes"
        self.grouped = False
        self.selected: set[int] = set()
        """Ids of the selected flows."""
        self.site: str | None = None
        """Only flows relayed from this capture site ("local" for this host's own capture)."""

    # -- settings ---------------------------------------------------------------------------

    def set_ip_filter(self, text: str) -> None:
        """Empty text clears the filter; a bad CIDR raises ValueError and keeps the old one."""
        self.ip_filter = IpFilter.parse(text)

    def set_port_filter(self, text: str) -> None:
        self.port_filter = PortFilter.parse(text)

    def cycle_proto(self) -> str:
        self.proto = PROTO_CYCLE[(PROTO_CYCLE.index(self.proto) + 1) % len(PROTO_CYCLE)]
        return self.proto

    def cycle_sort(self) -> str:
        self.sort = SORT_CYCLE[(SORT_CYCLE.index(self.sort) + 1) % len(SORT_CYCLE)]
        return self.sort

    def toggle_grouped(self) -> bool:
        self.grouped = not self.grouped
        return self.grouped

    def set_site(self, site: str | None) -> None:
        self.site = site or None

    @property
    def filtering(self) -> bool:
        return (
            self.ip_filter is not None
            or self.port_filter is not None
            or self.proto != "all"
            or self.site is not None
        )

    def describe(self) -> str:
        parts = [f"sort: {self.sort}", f"proto: {self.proto}"]
        if self.ip_filter is not None:
            parts.append(f"ip: {self.ip_filter.text}")
        if self.port_filter is not None:
            parts.append(f"port: {self.port_filter.text}")
        if self.site is not None:
            parts.append(f"site: {self.site}")
        if self.grouped:
            parts.append("view: destinations")
        return "  ".join(parts)

    # -- selection --------------------------------------------------------------------------

    def toggle(self, flow_ids: Iterable[int]) -> None:
        """Select the flows, or deselect them if all were selected."""
        ids = set(flow_ids)
        if ids and ids <= self.selected:
            self.selected -= ids
        else:
            self.selected |= ids

    def select_all(self, flows: Iterable[Flow]) -> None:
        """Select every flow that passes the current filters."""
        self.selected |= {f.id for f in self.filter(flows)}

    def clear_selection(self) -> None:
        self.selected.clear()

    def prune_selection(self, live_ids: set[int]) -> None:
        """Forget selected flows that have ended."""
        self.selected &= live_ids

    # -- evaluation -------------------------------------------------------------------------

    def matches(self, flow: Flow) -> bool:
        """One flow against every filter. `filter()` applies the same tests in bulk: a filter
        added here must be added there too (tests/model/test_flow_view.py compares them)."""
        if self.proto != "all":
            wanted = _PROTO_SETS.get(self.proto)
            if wanted is None:
                if flow.proto in _KNOWN:
                    return False
            elif flow.proto not in wanted:
                return False
        if self.port_filter is not None and not self.port_filter.matches(flow):
            return False
        if self.site is not None and (flow.site or "local") != self.site:
            return False
        return self.ip_filter is None or self.ip_filter.matches(flow)

    def filter(self, flows: Iterable[Flow]) -> list[Flow]:
        """The flows passing every filter. One cheap pass per active filter, cheapest first:
        this runs over 50,000 flows several times a second."""
        out = flows if isinstance(flows, list) else list(flows)
        if self.proto != "all":
            wanted = _PROTO_SETS.get(self.proto)
            if wanted is None:
                out = [f for f in out if f.proto not in _KNOWN]
            else:
                out = [f for f in out if f.proto in wanted]
        port_filter = self.port_filter
        if port_filter is not None:
            ports = port_filter.ports
            if ports is not None:
                out = [
                    f
                    for f in out
                    if (f.sport in ports or f.dport in ports) and f.proto in _PORT_PROTOS
                ]
            else:
                out = [f for f in out if port_filter.matches(f)]
        ip_filter = self.ip_filter
        if ip_filter is not None:
            if ip_filter.network is None:
                text = ip_filter.text
                out = [f for f in out if text in f.src or text in f.dst]
            else:
                out = [f for f in out if ip_filter.matches(f)]
        site = self.site
        if site is not None:
            out = [f for f in out if (f.site or "local") == site]
        return out if out is not flows else list(out)

    def top(self, flows: Iterable[Flow], limit: int) -> list[Flow]:
        """The first `limit` flows passing the filters, by the current sort (largest first;
        equal values by flow id, so rows do not swap places from one refresh to the next)."""
        key = SORT_KEYS[self.sort]
        top = heapq.nlargest(limit, self.filter(flows), key=key)
        top.sort(key=lambda f: (-key(f), f.id))
        return top

    def groups(self, flows: Iterable[Flow], limit: int) -> list[DestinationGroup]:
        """Flows passing the filters, grouped by destination address, top `limit` groups.
        Only the groups shown are fully aggregated."""
        by_addr: dict[str, list[Flow]] = {}
        for flow in self.filter(flows):
            members = by_addr.get(flow.dst)
            if members is None:
                by_addr[flow.dst] = [flow]
            else:
                members.append(flow)
        flow_key = SORT_KEYS[self.sort]
        if self.sort == "recent":
            rank: dict[str, float] = {a: max(map(flow_key, fl)) for a, fl in by_addr.items()}
        elif self.sort == "duration":
            rank = {
                a: max(f.last_seen for f in fl) - min(f.first_seen for f in fl)
                for a, fl in by_addr.items()
            }
        else:
            rank = {a: sum(map(flow_key, fl)) for a, fl in by_addr.items()}
        chosen = heapq.nlargest(limit, rank, key=rank.__getitem__)
        chosen.sort(key=lambda a: (-rank[a], a))
        return [DestinationGroup.of(address, by_addr[address]) for address in chosen]
