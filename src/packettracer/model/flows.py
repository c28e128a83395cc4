"""Bidirectional 5-tuple flows: the flow record and the bounded flow table (LRU + idle expiry)."""

from __future__ import annotations

import socket
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from packettracer.capture.packet import (
    ACK,
    ARP,
    FIN,
    ICMP,
    ICMP6,
    OTHER_PROTO_NAMES,
    PROTO_NAMES,
    RST,
    SYN,
    TCP,
    Packet,
)

FlowKey = tuple[int, bytes, int, bytes, int]

# TCP states, in the words the report and the dashboard use.
SYN_SENT = "syn_sent"
SYN_RECEIVED = "syn_received"
ESTABLISHED = "established"
MIDSTREAM = "midstream"  # first packet seen was not a SYN: the handshake happened before capture
FIN_WAIT = "fin_wait"  # one side sent FIN
CLOSED = "closed"  # both sides sent FIN
RESET = "reset"

FINISHED_STATES = frozenset({CLOSED, RESET})
_HANDSHAKE_STATES = frozenset({SYN_SENT, SYN_RECEIVED})
_ICMP_REPLY_TYPES = frozenset({0, 14, 16, 129})


def format_address(packed: bytes) -> str:
    if len(packed) == 4:
        return socket.inet_ntop(socket.AF_INET, packed)
    if len(packed) == 16:
        return socket.inet_ntop(socket.AF_INET6, packed)
    return packed.hex()


def proto_label(proto: int) -> str:
    """The report's protocol bucket: tcp/udp/icmp/icmp6/other."""
    return PROTO_NAMES.get(proto, "other")


class Flow:
    """One bidirectional flow, oriented by its initiator (`src` sent the SYN, else the first
    packet seen). Kept small: a table holds 50,000 of these."""

    __slots__ = (
        "id",
        "key",
        "proto",
        "src",
        "dst",
        "sport",
        "dport",
        "src_packed",
        "ip_version",
        "vlan",
        "packets_fwd",
        "packets_rev",
        "bytes_fwd",
        "bytes_rev",
        "first_seen",
        "last_seen",
        "tcp_state",
        "end_reason",
        "rate_bps",
        "rate_pps",
        "_tick_bytes",
        "_tick_packets",
        "inspect_left",
        "inspection",
        "ext",
        "site",
    )

    def __init__(self, flow_id: int, key: FlowKey, pkt: Packet, initiator_is_src: bool) -> None:
        self.id = flow_id
        self.key = key
        self.proto = pkt.proto
        if initiator_is_src:
            self.src_packed = pkt.src
            self.src = format_address(pkt.src)
            self.dst = format_address(pkt.dst)
            self.sport = pkt.sport
            self.dport = pkt.dport
        else:
            self.src_packed = pkt.dst
            self.src = format_address(pkt.dst)
            self.dst = format_address(pkt.src)
            self.sport = pkt.dport
            self.dport = pkt.sport
        self.ip_version = pkt.ip_version
        self.vlan = pkt.vlan
        self.packets_fwd = 0
        self.packets_rev = 0
        self.bytes_fwd = 0
        self.bytes_rev = 0
        self.first_seen = pkt.ts
        self.last_seen = pkt.ts
        self.tcp_state: str | None = None
        self.end_reason: str | None = None
        self.rate_bps = 0.0
        self.rate_pps = 0.0
        self._tick_bytes = 0
        self._tick_packets = 0
        # How many more packets the analyzers (DPI, names) want to see of this flow.
        self.inspect_left = 0
        # The packet inspector's working state while it reads the flow's first packets (the
        # DPI's): kept on the flow, where the next packet finds it without a lookup.
        self.inspection: Any = None
        # Facts that later stages add (app, category, names, geo, ...); None until one does.
        self.ext: dict[str, Any] | None = None
        # Which capture site the flow came from (remote agents); None for local capture.
        self.site: str | None = None

    @property
    def proto_name(self) -> str:
        """Name of the protocol as the dashboard shows it (tcp, udp, arp, gre, ...)."""
        name = PROTO_NAMES.get(self.proto)
        if name is not None:
            return name
        return OTHER_PROTO_NAMES.get(self.proto, f"ip-{self.proto}")

    @property
    def packets(self) -> int:
        return self.packets_fwd + self.packets_rev

    @property
    def bytes(self) -> int:
        return self.bytes_fwd + self.bytes_rev

    @property
    def duration(self) -> float:
        return self.last_seen - self.first_seen

    def get(self, name: str, default: Any = None) -> Any:
        ext = self.ext
        if ext is None:
            return default
        return ext.get(name, default)

    def set(self, name: str, value: Any) -> None:
        if self.ext is None:
            self.ext = {}
        self.ext[name] = value

    def to_dict(self, defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The flow as the report and the database see it (ext facts merged in, then the
        `defaults` it has no value of its own for)."""
        out: dict[str, Any] = {
            "proto": proto_label(self.proto),
            "src": self.src,
            "sport": self.sport,
            "dst": self.dst,
            "dport": self.dport,
            "packets_fwd": self.packets_fwd,
            "packets_rev": self.packets_rev,
            "bytes_fwd": self.bytes_fwd,
            "bytes_rev": self.bytes_rev,
            "first_seen": round(self.first_seen, 6),
            "last_seen": round(self.last_seen, 6),
            "duration": round(self.duration, 6),
            "tcp_state": self.tcp_state,
        }
        if self.proto_name != out["proto"]:
            out["proto_name"] = self.proto_name
        if self.vlan:
            out["vlan"] = self.vlan
        if self.site is not None:
            out["site"] = self.site
        if self.end_reason is not None:
            out["end_reason"] = self.end_reason
        ext = self.ext
        if ext:
            out.update(ext)
        if defaults:
            for key, value in defaults.items():
                if ext is None or key not in ext:
                    out[key] = value
        return out


RECORD_FIELDS = (
    "proto",
    "src",
    "sport",
    "dst",
    "dport",
    "packets_fwd",
    "packets_rev",
    "bytes_fwd",
    "bytes_rev",
    "first_seen",
    "last_seen",
    "duration",
    "tcp_state",
)
"""Keys `Flow.to_dict()` always has, in its order (the report's and the database's columns)."""
OPTIONAL_RECORD_FIELDS = ("proto_name", "vlan", "site", "end_reason")
"""Keys `Flow.to_dict()` adds only when they apply, in the order it adds them."""


def flow_key(pkt: Packet) -> FlowKey:
    """Direction-free key: the lower (address, port) endpoint first."""
    a = (pkt.src, pkt.sport)
    b = (pkt.dst, pkt.dport)
    if a <= b:
        return (pkt.proto, pkt.src, pkt.sport, pkt.dst, pkt.dport)
    return (pkt.proto, pkt.dst, pkt.dport, pkt.src, pkt.sport)


class FlowTable:
    """At most `max_flows` flows, least recently seen evicted first; idle flows expire.

    Time is packet time, so a replayed capture expires flows as they would have expired live.
    Ended flows (expired, evicted, closed then reused, or flushed at the end) go to `on_end`.
    """

    def __init__(
        self,
        max_flows: int = 50_000,
        idle_timeout: float = 300.0,
        closed_timeout: float = 10.0,
        on_end: Callable[[Flow], None] | None = None,
    ) -> None:
        self.max_flows = max_flows
        self.idle_timeout = idle_timeout
        self.closed_timeout = closed_timeout
        self.on_end = on_end
        self.flows: OrderedDict[FlowKey, Flow] = OrderedDict()
        self._finished: dict[FlowKey, Flow] = {}
        self._next_id = 1
        self._next_expiry = 0.0
        self.now = 0.0
        self.created = 0
        self.evicted = 0
        self.expired = 0
        self.ended = 0
        self.inspect_packets = 0
        # Direction of the packet most recently passed to update(): True from the initiator.
        self.last_forward = True

    def __len__(self) -> int:
        return len(self.flows)

    def __iter__(self) -> Iterator[Flow]:
        return iter(self.flows.values())

    def update(self, pkt: Packet) -> Flow:
        """Account one packet to its flow, creating the flow if needed."""
        ts = pkt.ts
        if ts > self.now:
            self.now = ts
            if ts >= self._next_expiry:
                self.expire(ts)
        # flow_key() inlined: this runs for every packet.
        src = pkt.src
        dst = pkt.dst
        sport = pkt.sport
        dport = pkt.dport
        proto = pkt.proto
        if (src, sport) <= (dst, dport):
            key = (proto, src, sport, dst, dport)
        else:
            key = (proto, dst, dport, src, sport)
        flows = self.flows
        flow = flows.get(key)
        flags = pkt.tcp_flags
        if flow is None:
            flow = self._create(key, pkt)
        elif flow.tcp_state in FINISHED_STATES and flags & SYN and not (flags & ACK):
            # Port reuse: a new handshake on the tuple of a finished connection is a new flow.
            self._end(flow, "closed")
            del flows[key]
            self._finished.pop(key, None)
            flow = self._create(key, pkt)
        else:
            flows.move_to_end(key)
        if (
            src == flow.src_packed
            and (sport == flow.sport or src != dst)
            # Same host and same "ports" (an ICMP identifier equal to the request type on lo):
            # only the ICMP type tells a reply from its request.
            and not (src == dst and sport == dport and pkt.icmp_type in _ICMP_REPLY_TYPES)
        ):
            flow.packets_fwd += 1
            flow.bytes_fwd += pkt.wirelen
            forward = True
        else:
            flow.packets_rev += 1
            flow.bytes_rev += pkt.wirelen
            forward = False
        self.last_forward = forward
        if ts > flow.last_seen:
            flow.last_seen = ts
        # Only flags that change state, or a handshake still in progress, need the state machine.
        if proto == TCP and (flags & 0x07 or flow.tcp_state in _HANDSHAKE_STATES):
            self._tcp(flow, flags, forward)
        return flow

    def _create(self, key: FlowKey, pkt: Packet) -> Flow:
        flags = pkt.tcp_flags
        # A SYN+ACK seen first means the receiver opened the connection.
        initiator_is_src = not (pkt.proto == TCP and flags & SYN and flags & ACK)
        if (pkt.proto == ICMP and pkt.icmp_type in (0, 14, 16)) or (
            pkt.proto == ICMP6 and pkt.icmp_type == 129
        ):
            initiator_is_src = False  # an echo reply's receiver sent the request
        flow = Flow(self._next_id, key, pkt, initiator_is_src)
        self._next_id += 1
        self.created += 1
        if pkt.proto == TCP:
            flow.tcp_state = SYN_SENT if flags & SYN else MIDSTREAM
        flow.inspect_left = self.inspect_packets
        flows = self.flows
        flows[key] = flow
        if len(flows) > self.max_flows:
            old_key, old = flows.popitem(last=False)
            self._finished.pop(old_key, None)
            self.evicted += 1
            self._end(old, "evicted")
        return flow

    def _tcp(self, flow: Flow, flags: int, forward: bool) -> None:
        state = flow.tcp_state
        if flags & RST:
            if state != RESET:
                flow.tcp_state = RESET
                self._finished[flow.key] = flow
            return
        if flags & SYN:
            if flags & ACK and state in (SYN_SENT, MIDSTREAM):
                flow.tcp_state = SYN_RECEIVED
            return
        if flags & FIN:
            # ext keeps which sides have closed; only needed for the few flows that close.
            sides = flow.get("_fin", 0) | (1 if forward else 2)
            flow.set("_fin", sides)
            if sides == 3:
                if state != CLOSED:
                    flow.tcp_state = CLOSED
                    self._finished[flow.key] = flow
            else:
                flow.tcp_state = FIN_WAIT
            return
        if state in (SYN_RECEIVED, SYN_SENT) and flags & ACK:
            flow.tcp_state = ESTABLISHED

    def _end(self, flow: Flow, reason: str) -> None:
        flow.end_reason = reason
        if flow.ext is not None:
            flow.ext.pop("_fin", None)
        self.ended += 1
        if self.on_end is not None:
            self.on_end(flow)

    def expire(self, now: float) -> None:
        """End idle flows, and finished TCP flows after their shorter timeout."""
        self._next_expiry = now + 1.0
        if self._finished:
            cutoff = now - self.closed_timeout
            done = [k for k, f in self._finished.items() if f.last_seen < cutoff]
            for k in done:
                flow = self._finished.pop(k)
                if self.flows.pop(k, None) is not None:
                    self.expired += 1
                    self._end(flow, "closed")
        cutoff = now - self.idle_timeout
        flows = self.flows
        # The OrderedDict is in last-seen order, so idle flows are at the front.
        while flows:
            key, flow = next(iter(flows.items()))
            if flow.last_seen >= cutoff:
                break
            del flows[key]
            self._finished.pop(key, None)
            self.expired += 1
            self._end(flow, "idle")

    def flush(self) -> None:
        """End every flow (capture finished)."""
        flows = self.flows
        self.flows = OrderedDict()
        self._finished.clear()
        for flow in flows.values():
            self._end(flow, "end")

    def tick(self, interval: float) -> None:
        """Refresh per-flow rates over the last `interval` seconds."""
        if interval <= 0:
            return
        for flow in self.flows.values():
            total = flow.bytes_fwd + flow.bytes_rev
            packets = flow.packets_fwd + flow.packets_rev
            flow.rate_bps = (total - flow._tick_bytes) * 8 / interval
            flow.rate_pps = (packets - flow._tick_packets) / interval
            flow._tick_bytes = total
            flow._tick_packets = packets


__all__ = ["Flow", "FlowTable", "FlowKey", "flow_key", "format_address", "proto_label", "ARP"]
