"""The scan detector on crafted packet sequences (through the real flow table)."""

from __future__ import annotations

import socket

from packettracer.capture.packet import ACK, ARP, FIN, ICMP, PSH, RST, SYN, TCP, UDP, URG, Packet
from packettracer.model.flows import FlowTable
from packettracer.model.scan import (
    TECH_ACK,
    TECH_ARP,
    TECH_CONNECT,
    TECH_FIN,
    TECH_ICMP,
    TECH_NULL,
    TECH_SYN,
    TECH_UDP,
    TECH_XMAS,
    ScanDetector,
    ScanEvidence,
    ScanThresholds,
    port_ranges,
)

RAW_SYN_OPTS = b"\x02\x04\x05\xb4"  # MSS only, as nmap -sS sends
# MSS, SACK-permitted, timestamps, NOP, window scale: what a Linux connect() sends
STACK_SYN_OPTS = bytes.fromhex("020405b40402080a000000010000000001030307")


def ip(text: str) -> bytes:
    return socket.inet_aton(text)


class Lab:
    """A flow table and a detector, fed like the pipeline feeds analyzers."""

    def __init__(self, **thresholds: float) -> None:
        self.table = FlowTable()
        self.found: list[ScanEvidence] = []
        self.det = ScanDetector(ScanThresholds(**thresholds), on_detect=self.found.append)  # type: ignore[arg-type]
        self.ts = 1000.0

    def send(
        self,
        src: str,
        dst: str,
        proto: int = TCP,
        sport: int = 40000,
        dport: int = 80,
        flags: int = 0,
        opts: bytes = b"",
        icmp_type: int = -1,
        payload: bytes = b"",
        dt: float = 0.001,
    ) -> None:
        self.ts += dt
        p = Packet()
        p.ts = self.ts
        p.proto = proto
        p.src, p.dst = ip(src), ip(dst)
        p.sport, p.dport = sport, dport
        p.ip_version = 0 if proto == ARP else 4
        p.tcp_flags = flags
        p.tcp_options = opts
        p.icmp_type = icmp_type
        p.payload = payload
        p.wirelen = 60
        flow = self.table.update(p)
        self.det.packet(p, flow, self.table.last_forward)

    def syn_scan(
        self, src: str, dst: str, ports: range, open_ports: set[int] = frozenset()
    ) -> None:  # type: ignore[assignment]
        for port in ports:
            self.send(src, dst, sport=50000, dport=port, flags=SYN, opts=RAW_SYN_OPTS)
            if port in open_ports:
                self.send(dst, src, sport=port, dport=50000, flags=SYN | ACK)
                self.send(src, dst, sport=50000, dport=port, flags=RST)
            else:
                self.send(dst, src, sport=port, dport=50000, flags=RST | ACK)

    def last(self) -> ScanEvidence:
        self.det.tick()
        return self.found[-1]


def test_port_ranges() -> None:
    assert port_ranges([1, 2, 3, 7, 9, 10]) == "1-3,7,9-10"
    assert port_ranges(set()) == ""
    assert port_ranges([80]) == "80"


def test_vertical_syn_scan_with_evidence() -> None:
    lab = Lab()
    lab.syn_scan("10.0.0.5", "10.0.0.9", range(1, 101), open_ports={22, 80})
    ev = lab.last()
    assert ev.shape == "vertical" and ev.kind == "scan.vertical"
    assert ev.technique == TECH_SYN
    assert ev.scanner == "10.0.0.5"
    assert ev.targets == ["10.0.0.9"]
    assert ev.ports == "1-100" and ev.port_count == 100
    assert ev.open_ports == ["10.0.0.9:22", "10.0.0.9:80"]
    assert ev.probes == 100 and ev.answered == 2 and ev.refused == 98
    assert ev.rate > 100


def test_below_threshold_is_quiet() -> None:
    lab = Lab()
    lab.syn_scan("10.0.0.5", "10.0.0.9", range(1, 5))
    assert lab.found == []


def test_connect_scan_named_from_handshake() -> None:
    lab = Lab()
    for port in range(1, 41):
        lab.send(
            "10.0.0.5", "10.0.0.9", sport=30000 + port, dport=port, flags=SYN, opts=STACK_SYN_OPTS
        )
        if port in (22, 25):
            lab.send("10.0.0.9", "10.0.0.5", sport=port, dport=30000 + port, flags=SYN | ACK)
            lab.send("10.0.0.5", "10.0.0.9", sport=30000 + port, dport=port, flags=ACK)
            lab.send("10.0.0.5", "10.0.0.9", sport=30000 + port, dport=port, flags=RST | ACK)
        else:
            lab.send("10.0.0.9", "10.0.0.5", sport=port, dport=30000 + port, flags=RST | ACK)
    ev = lab.last()
    assert ev.technique == TECH_CONNECT
    assert ev.open_ports == ["10.0.0.9:22", "10.0.0.9:25"]


def test_stealth_flags_named() -> None:
    for flags, tech in ((FIN, TECH_FIN), (0, TECH_NULL), (FIN | PSH | URG, TECH_XMAS)):
        lab = Lab()
        for port in range(1, 21):
            lab.send("10.1.0.5", "10.1.0.9", sport=44000, dport=port, flags=flags)
        ev = lab.last()
        assert ev.technique == tech, tech
        assert ev.shape == "vertical"


def test_ack_scan_named() -> None:
    lab = Lab()
    for port in range(1, 31):
        lab.send("10.1.0.5", "10.1.0.9", sport=44000, dport=port, flags=ACK)
        lab.send("10.1.0.9", "10.1.0.5", sport=port, dport=44000, flags=RST)
    assert lab.last().technique == TECH_ACK


def test_udp_scan_with_unreachables() -> None:
    lab = Lab()
    for port in range(100, 130):
        lab.send("10.2.0.5", "10.2.0.9", proto=UDP, sport=55000, dport=port)
        lab.send("10.2.0.9", "10.2.0.5", proto=ICMP, sport=3, dport=3, icmp_type=3)
    ev = lab.last()
    assert ev.technique == TECH_UDP and ev.shape == "vertical"
    assert ev.refused == 30


def test_horizontal_scan() -> None:
    lab = Lab()
    for host in range(1, 40):
        lab.send("10.3.0.5", f"10.3.1.{host}", sport=41000, dport=445, flags=SYN, opts=RAW_SYN_OPTS)
    ev = lab.last()
    assert ev.shape == "horizontal" and ev.kind == "scan.horizontal"
    assert ev.target_count == 39 and ev.ports == "445"


def test_block_scan() -> None:
    lab = Lab()
    for host in range(1, 6):
        lab.syn_scan("10.4.0.5", f"10.4.1.{host}", range(20, 30))
    ev = lab.last()
    assert ev.shape == "block"
    assert ev.target_count == 5 and ev.ports == "20-29"


def test_icmp_sweep() -> None:
    lab = Lab()
    for host in range(1, 31):
        lab.send("10.5.0.5", f"10.5.1.{host}", proto=ICMP, sport=77, dport=0, icmp_type=8)
        if host % 5 == 0:
            lab.send(f"10.5.1.{host}", "10.5.0.5", proto=ICMP, sport=77, dport=0, icmp_type=0)
    ev = lab.last()
    assert ev.shape == "sweep" and ev.technique == TECH_ICMP
    assert ev.target_count == 30 and ev.answered == 6


def test_arp_sweep() -> None:
    lab = Lab()
    for host in range(1, 60):
        lab.send("10.6.0.5", f"10.6.0.{host + 10}", proto=ARP, sport=0, dport=0)
    ev = lab.last()
    assert ev.technique == TECH_ARP and ev.shape == "sweep"


def test_browsing_many_hosts_answered_is_quiet() -> None:
    lab = Lab()
    for host in range(1, 80):
        dst = f"93.184.{host}.10"
        sport = 50000 + host
        lab.send("192.168.1.20", dst, sport=sport, dport=443, flags=SYN, opts=STACK_SYN_OPTS)
        lab.send(dst, "192.168.1.20", sport=443, dport=sport, flags=SYN | ACK)
        lab.send("192.168.1.20", dst, sport=sport, dport=443, flags=ACK)
        lab.send("192.168.1.20", dst, sport=sport, dport=443, flags=PSH | ACK, payload=b"x")
    lab.det.tick()
    assert lab.found == []


def test_sliding_window_forgets_slow_probes() -> None:
    lab = Lab(window=10.0)
    for port in range(1, 40):
        # one probe every 3 s: never more than 4 in a 10 s window (min_ports is 5)
        lab.send(
            "10.7.0.5", "10.7.0.9", sport=40000, dport=port, flags=SYN, opts=RAW_SYN_OPTS, dt=3.0
        )
    lab.det.tick()
    assert lab.found == []
    src = lab.det.sources[ip("10.7.0.5")]
    assert len(src.window) <= 4


def test_memory_bounded_by_max_sources() -> None:
    lab = Lab(max_sources=100)
    for i in range(1000):
        lab.send(
            f"10.8.{i // 250}.{i % 250}",
            "10.9.0.1",
            sport=40000,
            dport=80,
            flags=SYN,
            opts=STACK_SYN_OPTS,
        )
    assert len(lab.det.sources) == 100


def test_traceroute_probes_are_not_a_scan() -> None:
    lab = Lab()
    for ttl in range(1, 31):
        lab.send("10.10.0.5", "10.10.9.9", proto=UDP, sport=40000 + ttl, dport=33434 + ttl)
    lab.det.tick()
    assert lab.found == []


def test_total_window_memory_is_bounded(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from packettracer.model import scan

    monkeypatch.setattr(scan, "MAX_TOTAL_PROBES", 500)
    lab = Lab()
    for i in range(40):
        for port in range(1, 31):
            lab.send(
                f"10.11.0.{i + 1}",
                "10.11.1.1",
                sport=40000,
                dport=port,
                flags=SYN,
                opts=STACK_SYN_OPTS,
            )
    assert lab.det.window_probes <= 500
    assert lab.det.window_probes == sum(len(s.window) for s in lab.det.sources.values())
