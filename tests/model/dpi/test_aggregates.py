"""The DPI's aggregates of ended flows (model/dpi/aggregates.py)."""

from __future__ import annotations

from packettracer.capture.packet import SYN, TCP, UDP, Packet
from packettracer.model.dpi.aggregates import MAX_BEACON_GROUPS, Aggregates
from packettracer.model.dpi.categories import UNKNOWN
from packettracer.model.flows import Flow

_NO_VERDICT = (None, UNKNOWN, None, None, False, 0, ())


def _flow(n: int, src: bytes, dst: bytes, proto: int, dport: int, ts: float) -> Flow:
    pkt = Packet()
    pkt.proto, pkt.ip_version, pkt.ts = proto, 4, ts
    pkt.src, pkt.dst, pkt.sport, pkt.dport = src, dst, 40000 + n % 20000, dport
    if proto == TCP:
        pkt.tcp_flags = SYN
    flow = Flow(n, (proto, src, pkt.sport, dst, dport), pkt, True)
    flow.packets_fwd, flow.bytes_fwd = 1, 60
    return flow


def test_scan_probes_do_not_crowd_out_a_beacon() -> None:
    """A scan's probes (each to a new host:port, never repeated) come before the beacon: more
    of them than the table of beacon groups holds. The beacon's group is still tracked (made
    when its host:port pair repeats, with its first flow)."""
    fanned: list[tuple[str, int]] = []
    aggregates = Aggregates(fan_out=100, on_fan_out=lambda src, n: fanned.append((src, n)))
    scanner = bytes([10, 0, 0, 7])
    batch = []
    for n in range(MAX_BEACON_GROUPS + 1000):
        target = bytes([10, 1, (n >> 8) & 0xFF, n & 0xFF])
        batch.append((_flow(n, scanner, target, TCP, 1 + n % 1000, float(n)), _NO_VERDICT))
    implant, home = bytes([10, 0, 0, 5]), bytes([203, 0, 113, 9])
    for i in range(8):
        batch.append((_flow(10**6 + i, implant, home, UDP, 4444, 1e6 + 60 * i), _NO_VERDICT))
    aggregates.account(batch)
    assert aggregates.beacons == {
        ("10.0.0.5", "203.0.113.9", 4444, UDP): [1e6 + 60 * i for i in range(8)]
    }
    # The scan is still a fan-out, told once, when it reached the threshold.
    assert fanned == [("10.0.0.7", 100)]


def test_a_group_holds_only_small_flows() -> None:
    """A large first flow to the pair (a download, say) is not part of its beacon group; the
    small ones after it are."""
    aggregates = Aggregates(fan_out=100, on_fan_out=lambda src, n: None)
    src, dst = bytes([10, 0, 0, 5]), bytes([203, 0, 113, 9])
    big = _flow(0, src, dst, TCP, 443, 0.0)
    big.bytes_rev = 50_000
    batch = [(big, _NO_VERDICT)]
    batch += [(_flow(i, src, dst, TCP, 443, 30.0 * i), _NO_VERDICT) for i in range(1, 7)]
    aggregates.account(batch)
    assert aggregates.beacons == {
        ("10.0.0.5", "203.0.113.9", 443, TCP): [30.0 * i for i in range(1, 7)]
    }
    assert aggregates.distinct == {"10.0.0.5": {("203.0.113.9", 443): -1.0}}
