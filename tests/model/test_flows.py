"""The flow table: direction, LRU eviction, idle and closed expiry, port reuse, TCP states and
flow-end reasons. Packets are real frames built with scapy and run through the real decoder."""

from __future__ import annotations

from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.layers.l2 import ARP, Ether

from packettracer.capture.decoder import LINKTYPE_ETHERNET, Decoder
from packettracer.capture.packet import Packet
from packettracer.model.flows import (
    CLOSED,
    ESTABLISHED,
    FIN_WAIT,
    MIDSTREAM,
    RESET,
    SYN_RECEIVED,
    SYN_SENT,
    Flow,
    FlowTable,
)

_decoder = Decoder()


def frame(layer: object, ts: float = 0.0) -> Packet:
    data = bytes(Ether() / layer)  # type: ignore[operator]
    pkt = _decoder.decode(LINKTYPE_ETHERNET, data, ts, len(data))
    assert pkt is not None
    return pkt


def tcp(src: str, sport: int, dst: str, dport: int, flags: str, ts: float = 0.0) -> Packet:
    return frame(IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags=flags), ts)


def udp(src: str, sport: int, dst: str, dport: int, ts: float = 0.0, size: int = 0) -> Packet:
    return frame(IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / (b"x" * size), ts)


C, S = "10.0.0.9", "10.0.0.1"  # client above server, so the key order is not the direction


class Ended:
    def __init__(self) -> None:
        self.flows: list[Flow] = []

    def __call__(self, flow: Flow) -> None:
        self.flows.append(flow)

    @property
    def reasons(self) -> list[tuple[int, str | None]]:
        return [(f.sport, f.end_reason) for f in self.flows]


# --- direction ----------------------------------------------------------------------------


def test_syn_sender_is_the_source() -> None:
    table = FlowTable()
    flow = table.update(tcp(C, 40000, S, 80, "S"))
    table.update(tcp(S, 80, C, 40000, "SA"))
    table.update(tcp(C, 40000, S, 80, "A"))
    assert (flow.src, flow.sport, flow.dst, flow.dport) == (C, 40000, S, 80)
    assert (flow.packets_fwd, flow.packets_rev) == (2, 1)
    assert flow.bytes_fwd == 2 * 54 and flow.bytes_rev == 54
    assert len(table) == 1


def test_syn_ack_seen_first_flips_the_direction() -> None:
    table = FlowTable()
    flow = table.update(tcp(S, 80, C, 40000, "SA"))
    assert (flow.src, flow.sport, flow.dst, flow.dport) == (C, 40000, S, 80)
    assert (flow.packets_fwd, flow.packets_rev) == (0, 1)
    assert table.last_forward is False
    assert flow.tcp_state == SYN_RECEIVED
    table.update(tcp(C, 40000, S, 80, "A"))
    assert flow.tcp_state == ESTABLISHED and flow.packets_fwd == 1


def test_first_packet_sender_otherwise() -> None:
    table = FlowTable()
    dns = table.update(udp(S, 53, C, 5353))  # the "server" port speaks first: still the source
    assert (dns.src, dns.sport) == (S, 53)
    mid = table.update(tcp(S, 443, C, 50000, "A"))
    assert (mid.src, mid.sport, mid.tcp_state) == (S, 443, MIDSTREAM)


def test_echo_reply_seen_first_flips() -> None:
    table = FlowTable()
    reply = table.update(frame(IP(src=S, dst=C) / ICMP(type=0, id=77, seq=1)))
    assert (reply.src, reply.sport, reply.dst, reply.dport) == (C, 77, S, 8)
    assert (reply.packets_fwd, reply.packets_rev) == (0, 1)
    again = table.update(frame(IP(src=C, dst=S) / ICMP(type=8, id=77, seq=2)))
    assert again is reply and reply.packets_fwd == 1
    v6 = table.update(frame(IPv6(src="2001:db8::2", dst="2001:db8::1") / ICMPv6EchoReply(id=5)))
    assert (v6.src, v6.sport, v6.dport, v6.packets_rev) == ("2001:db8::1", 5, 128, 1)
    table.update(frame(IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoRequest(id=5)))
    assert v6.packets_fwd == 1 and len(table) == 2


def test_same_address_flows_on_lo_are_told_apart_by_ports() -> None:
    table = FlowTable()
    lo = "127.0.0.1"
    flow = table.update(tcp(lo, 45000, lo, 8080, "S"))
    table.update(tcp(lo, 8080, lo, 45000, "SA"))
    table.update(tcp(lo, 45000, lo, 8080, "A"))
    table.update(tcp(lo, 8080, lo, 45000, "PA"))
    other = table.update(udp(lo, 9000, lo, 53))
    table.update(udp(lo, 53, lo, 9000))
    assert (flow.sport, flow.dport, flow.packets_fwd, flow.packets_rev) == (45000, 8080, 2, 2)
    assert (other.sport, other.packets_fwd, other.packets_rev) == (9000, 1, 1)
    assert flow.tcp_state == ESTABLISHED


# --- TCP states ---------------------------------------------------------------------------


def test_tcp_states_through_a_whole_connection() -> None:
    table = FlowTable()
    seen = []
    for src, sport, dst, dport, flags in [
        (C, 1, S, 2, "S"),
        (S, 2, C, 1, "SA"),
        (C, 1, S, 2, "A"),
        (C, 1, S, 2, "PA"),
        (C, 1, S, 2, "FA"),
        (S, 2, C, 1, "A"),
        (S, 2, C, 1, "FA"),
        (C, 1, S, 2, "A"),
    ]:
        seen.append(table.update(tcp(src, sport, dst, dport, flags)).tcp_state)
    assert seen == [
        SYN_SENT,
        SYN_RECEIVED,
        ESTABLISHED,
        ESTABLISHED,
        FIN_WAIT,
        FIN_WAIT,
        CLOSED,
        CLOSED,
    ]


def test_reset_and_udp_has_no_state() -> None:
    table = FlowTable()
    table.update(tcp(C, 1, S, 2, "S"))
    flow = table.update(tcp(S, 2, C, 1, "RA"))
    assert flow.tcp_state == RESET
    assert table.update(udp(C, 1, S, 2)).tcp_state is None


# --- eviction and expiry ------------------------------------------------------------------


def test_lru_eviction_drops_the_least_recently_seen() -> None:
    ended = Ended()
    table = FlowTable(max_flows=3, on_end=ended)
    for port in (1, 2, 3):
        table.update(udp(C, port, S, 53, ts=port))
    table.update(udp(S, 53, C, 1, ts=4))  # flow 1 seen again: flow 2 is now the oldest
    table.update(udp(C, 4, S, 53, ts=5))
    assert len(table) == 3 and table.evicted == 1
    assert ended.reasons == [(2, "evicted")]
    assert sorted(f.sport for f in table) == [1, 3, 4]


def test_idle_flows_expire_in_packet_time() -> None:
    ended = Ended()
    table = FlowTable(idle_timeout=10.0, on_end=ended)
    table.update(udp(C, 1, S, 53, ts=100.0))
    table.update(udp(C, 2, S, 53, ts=105.0))
    table.update(udp(C, 3, S, 53, ts=111.0))  # flow 1 idle for 11 s, flow 2 for 6 s
    assert ended.reasons == [(1, "idle")] and table.expired == 1
    table.update(udp(C, 3, S, 53, ts=116.0))
    assert ended.reasons == [(1, "idle"), (2, "idle")]
    assert [f.sport for f in table] == [3]


def test_closed_and_reset_flows_end_after_the_shorter_timeout() -> None:
    ended = Ended()
    table = FlowTable(idle_timeout=300.0, closed_timeout=5.0, on_end=ended)
    for src, sport, dst, dport, flags in [
        (C, 1, S, 2, "S"),
        (S, 2, C, 1, "SA"),
        (C, 1, S, 2, "FA"),
        (S, 2, C, 1, "FA"),
    ]:
        table.update(tcp(src, sport, dst, dport, flags, ts=10.0))
    table.update(tcp(C, 7, S, 2, "S", ts=10.0))
    table.update(tcp(S, 2, C, 7, "R", ts=10.5))
    table.update(tcp(C, 9, S, 2, "S", ts=10.0))  # open, same age: stays
    table.update(udp(C, 5, S, 53, ts=14.0))
    assert ended.flows == []
    table.update(udp(C, 5, S, 53, ts=16.0))
    assert sorted(ended.reasons) == [(1, "closed"), (7, "closed")]
    assert sorted(f.sport for f in table) == [5, 9]


def test_port_reuse_after_close_starts_a_new_flow() -> None:
    ended = Ended()
    table = FlowTable(closed_timeout=5.0, on_end=ended)
    handshake = [(C, 1, S, 2, "S"), (S, 2, C, 1, "SA"), (C, 1, S, 2, "A")]
    closing = [(C, 1, S, 2, "FA"), (S, 2, C, 1, "FA"), (C, 1, S, 2, "A")]
    first = None
    for src, sport, dst, dport, flags in handshake + closing:
        first = table.update(tcp(src, sport, dst, dport, flags, ts=1.0))
    assert first is not None and first.tcp_state == CLOSED
    second = table.update(tcp(C, 1, S, 2, "S", ts=2.0))
    assert second is not first and table.created == 2
    assert ended.reasons == [(1, "closed")] and ended.flows[0] is first
    # The new connection lives on past the old one's closed timeout, and is not lost.
    for src, sport, dst, dport, flags in handshake[1:]:
        table.update(tcp(src, sport, dst, dport, flags, ts=3.0))
    table.update(udp(C, 5, S, 53, ts=9.0))
    assert second in list(table) and second.tcp_state == ESTABLISHED
    table.update(udp(C, 5, S, 53, ts=200.0))
    assert second in list(table)


def test_a_syn_retransmission_on_an_open_flow_is_not_reuse() -> None:
    table = FlowTable()
    table.update(tcp(C, 1, S, 2, "S"))
    table.update(tcp(C, 1, S, 2, "S"))
    assert table.created == 1 and next(iter(table)).packets_fwd == 2


def test_flush_ends_every_flow_with_reason_end() -> None:
    ended = Ended()
    table = FlowTable(on_end=ended)
    table.update(udp(C, 1, S, 53))
    table.update(tcp(C, 2, S, 80, "S"))
    table.flush()
    assert sorted(ended.reasons) == [(1, "end"), (2, "end")]
    assert len(table) == 0 and table.ended == 2


# --- the flow record ----------------------------------------------------------------------


def test_to_dict_ext_and_rates() -> None:
    table = FlowTable()
    flow = table.update(udp(C, 1000, S, 53, ts=1_700_000_000.25, size=10))
    table.update(udp(S, 53, C, 1000, ts=1_700_000_001.75, size=20))
    assert flow.get("app") is None and flow.get("app", "?") == "?"
    flow.set("app", "DNS")
    d = flow.to_dict()
    assert d["proto"] == "udp" and d["app"] == "DNS"
    assert (d["packets_fwd"], d["packets_rev"], d["bytes_fwd"], d["bytes_rev"]) == (1, 1, 52, 62)
    assert d["first_seen"] == 1_700_000_000.25 and d["duration"] == 1.5
    assert isinstance(d["last_seen"], float) and d["tcp_state"] is None
    table.tick(2.0)
    assert flow.rate_bps == (52 + 62) * 8 / 2.0 and flow.rate_pps == 1.0
    arp = table.update(frame(ARP(psrc=C, pdst=S)))
    assert arp.to_dict()["proto"] == "other" and arp.to_dict()["proto_name"] == "arp"
