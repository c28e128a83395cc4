"""Port-scan and sweep detection from packets: pure logic, O(1) work per packet, bounded memory.

A *probe* is the first packet of a flow sent by its initiator that tries to open something: a TCP
SYN, a stray FIN / NULL / XMAS / ACK, a UDP datagram, an ICMP echo or timestamp request, an ARP
request. Per source we keep the distinct (target, port) probes of a sliding window, with running
counts of ports per target and targets per port, and how the targets answered (SYN/ACK, UDP reply
or echo reply count as a positive answer; RST and ICMP unreachable as refusals; silence as
failure). A source becomes a scanner when, inside the window:

- vertical: one target got `vertical_ports` distinct ports, or `min_ports` with a failure share of
  at least `small_scan_failed_ratio` (small nmap runs),
- horizontal: one port went to `horizontal_hosts` distinct targets,
- block: `block_hosts` targets each got `block_ports` distinct ports,
- sweep: `sweep_hosts` targets got an ICMP echo/timestamp (or `arp_sweep_hosts` an ARP request),

and, for the TCP/UDP shapes, at least `failed_ratio` of its probes got no positive answer (normal
clients get nearly all their connections answered). FIN, NULL and XMAS probes never occur in
normal traffic, so they need no failure share.

The technique is named from the packets: raw SYNs (no or only an MSS option, as nmap -sS and
masscan send them, and half-open: the scanner answers a SYN/ACK with RST) are "TCP SYN"; SYNs with a
full option set that complete the handshake are "TCP connect".
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from packettracer.capture.packet import ACK, ARP, FIN, ICMP, ICMP6, PSH, RST, SYN, TCP, UDP, URG
from packettracer.model.flows import Flow, format_address

TECH_SYN = "TCP SYN"
TECH_CONNECT = "TCP connect"
TECH_FIN = "TCP FIN"
TECH_NULL = "TCP NULL"
TECH_XMAS = "TCP XMAS"
TECH_ACK = "TCP ACK"
TECH_UDP = "UDP"
TECH_ICMP = "ICMP sweep"
TECH_ARP = "ARP sweep"
# Techniques that normal stacks never use to open anything.
STEALTH = frozenset({TECH_FIN, TECH_NULL, TECH_XMAS})

# Pseudo ports for probes without a port, kept apart from real ports in the window.
PORT_ICMP = -1
PORT_ARP = -2

# traceroute's UDP probe ports: a trace looks like a small UDP vertical scan otherwise.
TRACEROUTE_PORTS = range(33434, 33535)
ICMP_PROBE_TYPES = {ICMP: (8, 13), ICMP6: (128,)}
ICMP_ANSWER_TYPES = {ICMP: (0, 14), ICMP6: (129,)}
ICMP_UNREACH = {ICMP: 3, ICMP6: 1}

MAX_WINDOW_PROBES = 8192
"""Distinct probes one source keeps in its window (oldest dropped beyond)."""
MAX_TOTAL_PROBES = 262_144
"""Probes kept over all sources; beyond it the least recently active sources are dropped
(about 30 MB at most, whatever the traffic)."""
MAX_DETECTIONS = 10_000
MAX_EVIDENCE_ITEMS = 65536
MAX_OPEN = 1024


@dataclass
class ScanThresholds:
    window: float = 60.0
    vertical_ports: int = 15
    horizontal_hosts: int = 15
    block_hosts: int = 4
    block_ports: int = 5
    min_ports: int = 5
    failed_ratio: float = 0.5
    small_scan_failed_ratio: float = 0.6
    sweep_hosts: int = 10
    arp_sweep_hosts: int = 24
    max_sources: int = 4096

    @classmethod
    def from_settings(cls, sec: Any) -> ScanThresholds:
        return cls(
            window=sec.scan_window,
            vertical_ports=sec.vertical_ports,
            horizontal_hosts=sec.horizontal_hosts,
            block_hosts=sec.block_hosts,
            block_ports=sec.block_ports,
            min_ports=sec.min_ports,
            failed_ratio=sec.failed_ratio,
            small_scan_failed_ratio=sec.small_scan_failed_ratio,
            sweep_hosts=sec.sweep_hosts,
            arp_sweep_hosts=sec.arp_sweep_hosts,
            max_sources=sec.max_sources,
        )


def port_ranges(ports: set[int] | list[int]) -> str:
    """[1, 2, 3, 7, 9, 10] -> '1-3,7,9-10'."""
    out: list[str] = []
    it = sorted(p for p in ports if p >= 0)
    i = 0
    while i < len(it):
        j = i
        while j + 1 < len(it) and it[j + 1] == it[j] + 1:
            j += 1
        out.append(str(it[i]) if i == j else f"{it[i]}-{it[j]}")
        i = j + 1
    return ",".join(out)


@dataclass
class ScanEvidence:
    """What a detection says, and why."""

    scanner: str
    shape: str  # vertical | horizontal | block | sweep
    technique: str
    targets: list[str]
    target_count: int
    ports: str
    port_count: int
    packets: int
    probes: int
    first_seen: float
    last_seen: float
    rate: float
    answered: int
    refused: int
    open_ports: list[str]
    techniques: dict[str, int] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return f"scan.{self.shape}"

    @property
    def failed_ratio(self) -> float:
        return 1.0 - self.answered / self.probes if self.probes else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "scanner": self.scanner,
            "shape": self.shape,
            "technique": self.technique,
            "targets": self.targets,
            "target_count": self.target_count,
            "ports": self.ports,
            "port_count": self.port_count,
            "packets": self.packets,
            "probes": self.probes,
            "first_seen": round(self.first_seen, 6),
            "last_seen": round(self.last_seen, 6),
            "window": round(self.last_seen - self.first_seen, 3),
            "rate": round(self.rate, 2),
            "answered": self.answered,
            "refused": self.refused,
            "failed_ratio": round(self.failed_ratio, 3),
            "open_ports": self.open_ports,
            "techniques": dict(self.techniques),
        }

    def summary(self) -> str:
        targets = self.targets[0] if self.target_count == 1 else f"{self.target_count} hosts"
        return (
            f"{self.technique} {self.shape} scan from {self.scanner} of {targets}, "
            f"{self.port_count} ports ({_shorten(self.ports or '-', 40)})"
        )


ProbeKey = tuple[bytes, int]


class _Source:
    """One source's sliding window and running counts."""

    __slots__ = (
        "addr",
        "window",
        "per_target",
        "per_port",
        "rich_targets",
        "packets",
        "probes",
        "answered",
        "refused",
        "halfopen",
        "completed",
        "techniques",
        "first_seen",
        "last_seen",
        "flagged",
        "dirty",
        "all_targets",
        "all_ports",
        "open",
        "shape",
    )

    def __init__(self, addr: bytes, ts: float) -> None:
        self.addr = addr
        # (target, port) -> last probe time; insertion order is time order (moved on update).
        self.window: OrderedDict[ProbeKey, float] = OrderedDict()
        self.per_target: dict[bytes, int] = {}
        self.per_port: dict[int, int] = {}
        self.rich_targets = 0
        self.packets = 0
        self.probes = 0
        self.answered = 0
        self.refused = 0
        self.halfopen = 0
        self.completed = 0
        self.techniques: dict[str, int] = {}
        self.first_seen = ts
        self.last_seen = ts
        self.flagged = False
        self.dirty = False
        self.all_targets: set[bytes] = set()
        self.all_ports: set[int] = set()
        self.open: set[tuple[bytes, int]] = set()
        self.shape = ""


class ScanDetector:
    """Feed every packet to `packet()`; detections go to `on_detect` (first time at once, then
    updated evidence on `tick()`), and stay in `detections` keyed by scanner address."""

    def __init__(
        self,
        thresholds: ScanThresholds | None = None,
        on_detect: Callable[[ScanEvidence], None] | None = None,
    ) -> None:
        self.t = thresholds or ScanThresholds()
        self.on_detect = on_detect
        self.sources: OrderedDict[bytes, _Source] = OrderedDict()
        self.detections: dict[str, ScanEvidence] = {}
        self._flagged: dict[bytes, _Source] = {}
        self.window_probes = 0
        """Probes held in all windows together (bounded by MAX_TOTAL_PROBES)."""

    # -- the hot path -------------------------------------------------------------------------

    def packet(self, pkt: Any, flow: Flow, forward: bool) -> None:
        proto = pkt.proto
        first = flow.packets_fwd + flow.packets_rev == 1
        if proto == TCP:
            flags = pkt.tcp_flags
            if forward:
                if first:
                    tech = self._tcp_technique(flags, pkt)
                    if tech is not None:
                        self._probe(pkt.src, pkt.dst, pkt.dport, tech, pkt.ts)
                elif flow.packets_fwd == 2 and flow.packets_rev >= 1:
                    src = self.sources.get(pkt.src)
                    if src is not None:
                        if flags & RST:
                            src.halfopen += 1
                        elif flags & ACK and not flags & SYN:
                            src.completed += 1
            elif flow.packets_rev == 1:
                src = self.sources.get(pkt.dst)
                if src is not None and flow.packets_fwd <= 2:
                    if flags & SYN and flags & ACK:
                        src.answered += 1
                        if len(src.open) < MAX_OPEN:
                            src.open.add((pkt.src, pkt.sport))
                        src.dirty = True
                    elif flags & RST:
                        src.refused += 1
            return
        if proto == UDP:
            if forward:
                if first and pkt.dport not in TRACEROUTE_PORTS and _unicast(pkt.dst):
                    self._probe(pkt.src, pkt.dst, pkt.dport, TECH_UDP, pkt.ts)
            elif flow.packets_rev == 1:
                src = self.sources.get(pkt.dst)
                if src is not None:
                    src.answered += 1
                    if len(src.open) < MAX_OPEN:
                        src.open.add((pkt.src, pkt.sport))
                    src.dirty = True
            return
        if proto in (ICMP, ICMP6):
            itype = pkt.icmp_type
            if itype == ICMP_UNREACH[proto]:
                src = self.sources.get(pkt.dst)
                if src is not None:
                    src.refused += 1
            elif forward and first and itype in ICMP_PROBE_TYPES[proto]:
                if _unicast(pkt.dst):
                    self._probe(pkt.src, pkt.dst, PORT_ICMP, TECH_ICMP, pkt.ts)
            elif itype in ICMP_ANSWER_TYPES[proto] and flow.packets_rev == 1 and not forward:
                src = self.sources.get(pkt.dst)
                if src is not None:
                    src.answered += 1
            return
        if proto == ARP:
            if first and pkt.src != pkt.dst and pkt.src != b"\x00\x00\x00\x00":
                self._probe(pkt.src, pkt.dst, PORT_ARP, TECH_ARP, pkt.ts)
            elif not forward and flow.packets_rev == 1:
                src = self.sources.get(pkt.dst)
                if src is not None:
                    src.answered += 1

    @staticmethod
    def _tcp_technique(flags: int, pkt: Any) -> str | None:
        f = flags & (FIN | SYN | RST | PSH | ACK | URG)
        if f == SYN:
            # Stacks send MSS, SACK, timestamps, window scale; raw scanners at most an MSS.
            return TECH_SYN if len(pkt.tcp_options) <= 4 else TECH_CONNECT
        if f == 0:
            return TECH_NULL
        if f == FIN:
            return TECH_FIN
        if f == FIN | PSH | URG:
            return TECH_XMAS
        if f == ACK and not pkt.payload:
            # Also what a capture started mid-connection shows first; the failure share and
            # thresholds keep those quiet.
            return TECH_ACK
        return None

    def _probe(self, src_addr: bytes, dst: bytes, port: int, tech: str, ts: float) -> None:
        sources = self.sources
        src = sources.get(src_addr)
        if src is None:
            src = _Source(src_addr, ts)
            sources[src_addr] = src
            if len(sources) > self.t.max_sources:
                self._drop_oldest()
        else:
            sources.move_to_end(src_addr)
        src.packets += 1
        if ts > src.last_seen:
            src.last_seen = ts
        window = src.window
        # Expire from the front: amortized O(1), the window is in time order.
        cutoff = ts - self.t.window
        while window:
            oldest = next(iter(window))
            if window[oldest] >= cutoff and len(window) < MAX_WINDOW_PROBES:
                break
            self._forget(src, oldest)
        key = (dst, port)
        if key in window:
            window.move_to_end(key)
            window[key] = ts
            return
        window[key] = ts
        self.window_probes += 1
        if self.window_probes > MAX_TOTAL_PROBES and len(sources) > 1:
            self._drop_oldest()
        src.probes += 1
        src.techniques[tech] = src.techniques.get(tech, 0) + 1
        n = src.per_target.get(dst, 0) + 1
        src.per_target[dst] = n
        if n == self.t.block_ports and port >= 0:
            src.rich_targets += 1
        h = src.per_port.get(port, 0) + 1
        src.per_port[port] = h
        if src.flagged:
            src.dirty = True
            if len(src.all_targets) < MAX_EVIDENCE_ITEMS:
                src.all_targets.add(dst)
            src.all_ports.add(port)
            return
        shape = self._shape(src, n, h, port)
        if shape:
            self._flag(src, shape)

    def _drop_oldest(self) -> None:
        old_addr, old = self.sources.popitem(last=False)
        self.window_probes -= len(old.window)
        if old.flagged:
            self._flagged.pop(old_addr, None)

    def _forget(self, src: _Source, key: ProbeKey) -> None:
        del src.window[key]
        self.window_probes -= 1
        dst, port = key
        n = src.per_target[dst] - 1
        if n == self.t.block_ports - 1 and port >= 0:
            src.rich_targets -= 1
        if n:
            src.per_target[dst] = n
        else:
            del src.per_target[dst]
        h = src.per_port[port] - 1
        if h:
            src.per_port[port] = h
        else:
            del src.per_port[port]

    def _failed_share(self, src: _Source) -> float:
        return 1.0 - min(src.answered, src.probes) / src.probes if src.probes else 0.0

    def _shape(self, src: _Source, ports_on_target: int, hosts_on_port: int, port: int) -> str:
        """The scan shape this probe completes, or "" (checked once per new probe)."""
        t = self.t
        if port == PORT_ICMP:
            return "sweep" if hosts_on_port >= t.sweep_hosts else ""
        if port == PORT_ARP:
            return "sweep" if hosts_on_port >= t.arp_sweep_hosts else ""
        stealth = sum(src.techniques.get(x, 0) for x in STEALTH)
        failed = self._failed_share(src)
        if ports_on_target < t.min_ports and hosts_on_port < t.horizontal_hosts:
            return ""
        if stealth < t.min_ports and failed < t.failed_ratio:
            return ""
        if src.rich_targets >= t.block_hosts:
            return "block"
        if ports_on_target >= t.vertical_ports:
            return "vertical"
        if hosts_on_port >= t.horizontal_hosts:
            return "horizontal"
        if stealth >= t.min_ports or failed >= t.small_scan_failed_ratio:
            return "vertical"
        return ""

    def _flag(self, src: _Source, shape: str) -> None:
        src.flagged = True
        src.shape = shape
        for dst, port in src.window:
            if len(src.all_targets) < MAX_EVIDENCE_ITEMS:
                src.all_targets.add(dst)
            src.all_ports.add(port)
        self._flagged[src.addr] = src
        self._emit(src)

    # -- evidence -----------------------------------------------------------------------------

    def _current_shape(self, src: _Source) -> str:
        real_ports = [p for p in src.all_ports if p >= 0]
        pings = src.techniques.get(TECH_ICMP, 0) + src.techniques.get(TECH_ARP, 0)
        if pings and len(real_ports) <= 2 and len(src.all_targets) > 1:
            return "sweep"
        if src.rich_targets >= self.t.block_hosts:
            return "block"
        if src.shape == "horizontal" and len(src.all_targets) > 1 and len(real_ports) <= 2:
            return "horizontal"
        if len(src.all_targets) == 1 or src.shape == "vertical":
            return "vertical" if real_ports else "sweep"
        return src.shape

    def _technique(self, src: _Source, shape: str) -> str:
        techs = dict(src.techniques)
        if shape == "sweep":
            return TECH_ICMP if techs.get(TECH_ICMP, 0) >= techs.get(TECH_ARP, 0) else TECH_ARP
        techs.pop(TECH_ICMP, None)
        techs.pop(TECH_ARP, None)
        if not techs:
            return TECH_ICMP
        syn = techs.pop(TECH_SYN, 0) + techs.pop(TECH_CONNECT, 0)
        if syn:
            # The scanner's answer to a SYN/ACK decides; the SYN's options when no port was open.
            if src.completed > src.halfopen:
                techs[TECH_CONNECT] = syn
            elif src.halfopen > src.completed:
                techs[TECH_SYN] = syn
            else:
                raw = src.techniques.get(TECH_SYN, 0)
                techs[TECH_SYN if raw >= src.techniques.get(TECH_CONNECT, 0) else TECH_CONNECT] = (
                    syn
                )
        return max(techs.items(), key=lambda kv: (kv[1], kv[0]))[0]

    def evidence(self, src: _Source) -> ScanEvidence:
        shape = self._current_shape(src)
        targets = sorted(src.all_targets)
        ports = {p for p in src.all_ports if p >= 0}
        duration = src.last_seen - src.first_seen
        open_ports = sorted(src.open)
        return ScanEvidence(
            scanner=format_address(src.addr),
            shape=shape,
            technique=self._technique(src, shape),
            targets=[format_address(t) for t in targets[:20]],
            target_count=len(targets),
            ports=port_ranges(ports),
            port_count=len(ports),
            packets=src.packets,
            probes=src.probes,
            first_seen=src.first_seen,
            last_seen=src.last_seen,
            rate=src.probes / duration if duration > 0 else float(src.probes),
            answered=src.answered,
            refused=src.refused,
            open_ports=[f"{format_address(a)}:{p}" for a, p in open_ports[:50]],
            techniques=dict(sorted(src.techniques.items())),
        )

    def _emit(self, src: _Source) -> None:
        src.dirty = False
        ev = self.evidence(src)
        self.detections.pop(ev.scanner, None)
        self.detections[ev.scanner] = ev
        if len(self.detections) > MAX_DETECTIONS:
            del self.detections[next(iter(self.detections))]
        if self.on_detect is not None:
            self.on_detect(ev)

    def tick(self, now: float = 0.0) -> None:
        """Re-emit the evidence of scanners that probed or got answers since the last tick."""
        for src in list(self._flagged.values()):
            if src.dirty:
                self._emit(src)

    def is_scanner(self, addr: str) -> bool:
        return addr in self.detections


def _unicast(addr: bytes) -> bool:
    if len(addr) == 4:
        return addr[0] < 224 and addr != b"\xff\xff\xff\xff"
    return bool(addr) and addr[0] != 0xFF


def _shorten(text: str, width: int) -> str:
    if len(text) <= width:
        return text
    cut = text.rfind(",", 0, width - 1)
    return text[: cut if cut > 0 else width - 1] + ",…"
