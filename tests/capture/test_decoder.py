"""The fast decoder on real captures (tests/data, copied from the shared corpus; facts checked
against tshark's dissection of the same frames), on frames crafted with scapy for the link types
the corpus lacks, and on a few thousand random and truncated frames: it never raises."""

from __future__ import annotations

import random
import socket
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP as ScapyICMP
from scapy.layers.inet import IP
from scapy.layers.inet import TCP as ScapyTCP
from scapy.layers.inet import UDP as ScapyUDP
from scapy.layers.inet6 import (
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import CookedLinux, Ether
from scapy.utils import PcapWriter

from packettracer.capture.decoder import (
    LINKTYPE_ETHERNET,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    Decoder,
)
from packettracer.capture.packet import ACK, ARP, ICMP, ICMP6, SYN, TCP, UDP, Packet
from packettracer.capture.pcapfile import CaptureReader
from packettracer.model.flows import FlowTable
from packettracer.services.pipeline import Pipeline

DATA = Path(__file__).resolve().parents[1] / "data"


def ip(text: str) -> bytes:
    family = socket.AF_INET6 if ":" in text else socket.AF_INET
    return socket.inet_pton(family, text)


def decode_file(name: str) -> tuple[list[Packet | None], Decoder, list[int]]:
    """Every frame of a capture decoded: (packets or None, the decoder, the link types)."""
    decoder = Decoder()
    packets: list[Packet | None] = []
    linktypes: list[int] = []
    with CaptureReader(DATA / name) as reader:
        for linktype, ts, data, wirelen in reader:
            packets.append(decoder.decode(linktype, data, ts, wirelen))
            linktypes.append(linktype)
    return packets, decoder, linktypes


def only(pkt: Packet | None) -> Packet:
    assert pkt is not None
    return pkt


# --- Ethernet, VLAN, QinQ, PPPoE -----------------------------------------------------------


def test_ethernet_ipv4_udp() -> None:
    packets, decoder, linktypes = decode_file("dns.pcap")
    assert linktypes[0] == LINKTYPE_ETHERNET
    first = only(packets[0])
    assert (first.ip_version, first.proto) == (4, UDP)
    assert (first.src, first.sport, first.dst, first.dport) == (
        ip("192.168.170.20"),
        53,
        ip("192.168.170.8"),
        32795,
    )
    assert first.wirelen == 76 and first.vlan == 0
    # 76 bytes = 14 Ethernet + 20 IP + 8 UDP + 34 of DNS
    assert len(first.payload) == 34
    assert decoder.malformed == 0


def test_qinq_then_pppoe_session() -> None:
    # Frames 4 and 5: 802.1Q 421, 802.1Q 785, PPPoE session, IPv4, UDP (tshark -V).
    packets, _, _ = decode_file("dns.pcap")
    query, answer = only(packets[3]), only(packets[4])
    assert query.vlan == 421  # the outer tag
    assert (query.src, query.sport, query.dst, query.dport) == (
        ip("82.178.113.245"),
        47255,
        ip("82.178.158.181"),
        53,
    )
    assert (answer.src, answer.sport, answer.dport) == (ip("82.178.158.181"), 53, 47255)
    assert query.proto == answer.proto == UDP


def test_qinq_capture() -> None:
    # tshark: every frame tagged 13 (outer) and 10; BACnet, SAP and an ARP request inside.
    packets, decoder, _ = decode_file("q-in-q.pcap")
    assert [only(p).vlan for p in packets] == [13] * 5
    assert [only(p).proto for p in packets] == [UDP, UDP, UDP, UDP, ARP]
    bacnet, sap, arp = only(packets[0]), only(packets[2]), only(packets[4])
    assert (bacnet.src, bacnet.sport, bacnet.dst, bacnet.dport) == (
        ip("172.19.51.37"),
        47808,
        ip("172.19.51.63"),
        47808,
    )
    assert (sap.src, sap.dst, sap.dport) == (ip("193.1.186.60"), ip("224.2.127.254"), 9875)
    assert (arp.src, arp.dst) == (ip("128.2.46.227"), ip("128.2.46.148"))
    assert decoder.malformed == decoder.non_ip == 0


def test_icmp_on_a_vlan_request_and_reply_share_a_flow() -> None:
    packets, _, _ = decode_file("icmp_dot1q.pcap")
    icmp = [only(p) for p in packets if p is not None and p.proto == ICMP]
    assert icmp and all(p.vlan == 123 for p in icmp)
    requests = [p for p in icmp if p.icmp_type == 8]
    replies = [p for p in icmp if p.icmp_type == 0]
    assert len(requests) == 5 and len(replies) == 4
    table = FlowTable()
    flows = {id(table.update(p)) for p in icmp}
    assert len(flows) == 1
    (flow,) = table
    assert (flow.src, flow.dst, flow.dport) == ("192.168.123.2", "192.168.123.1", 8)
    assert (flow.packets_fwd, flow.packets_rev) == (5, 4)


# --- Linux cooked v2 ------------------------------------------------------------------------


def test_sll2_icmp_icmpv6_arp_and_rarp() -> None:
    packets, decoder, linktypes = decode_file("linux_dlt_sll2.pcap")
    assert set(linktypes) == {LINKTYPE_LINUX_SLL2}
    echo, reply, echo6, reply6, arp, rarp = packets
    assert (only(echo).proto, only(echo).icmp_type, only(echo).sport) == (ICMP, 8, 8)
    assert (only(reply).icmp_type, only(reply).dport) == (0, 8)  # id 8: tshark icmp.ident
    assert (only(echo6).proto, only(echo6).icmp_type, only(echo6).sport) == (ICMP6, 128, 9)
    assert only(reply6).icmp_type == 129
    assert only(echo6).src == ip("fe80::8c36:6ff:fe44:acaf")
    assert (only(arp).proto, only(arp).dst) == (ARP, ip("192.0.2.2"))
    assert rarp is None and decoder.non_ip == 1 and decoder.malformed == 0
    # On lo the echo goes from the host to itself; the ICMP type still orients it.
    table = FlowTable()
    for p in (echo, reply, echo6, reply6):
        table.update(only(p))
    assert [(f.proto, f.packets_fwd, f.packets_rev) for f in table] == [
        (ICMP, 1, 1),
        (ICMP6, 1, 1),
    ]


# --- IPv6 extension headers and fragments; IPv4 fragments ---------------------------------


def test_ipv6_fragments_join_the_flow_of_their_first_fragment() -> None:
    # tshark: frame 4 is a non-first fragment (offset 362) whose first fragment was not
    # captured; frames 6-8 are the three fragments (offsets 0, 179, 358) of id 2.
    packets, decoder, _ = decode_file("ipv6-fragmented-dns.pcap")
    orphan = only(packets[3])
    assert (orphan.fragment, orphan.proto, orphan.sport, orphan.dport) == (2, UDP, 0, 0)
    first, middle, last = (only(p) for p in packets[5:8])
    assert first.fragment == 1 and (first.sport, first.dport) == (53, 51851)
    assert middle.fragment == last.fragment == 2
    assert (middle.sport, middle.dport) == (last.sport, last.dport) == (53, 51851)
    assert first.ip_header_len == 48  # fixed header + fragment header
    assert decoder.malformed == 0
    table = FlowTable()
    for p in packets:
        table.update(only(p))
    flow = next(f for f in table if f.sport == 51851)
    assert (flow.packets_fwd, flow.packets_rev) == (2, 3)


def test_ipv4_and_ipv6_fragments_in_one_capture() -> None:
    packets, decoder, _ = decode_file("dns_fragmented.pcap")
    assert decoder.malformed == 0 and all(p is not None for p in packets)
    # Frames 2 and 3 (tshark): IPv4 id 0xd0fe, MF at offset 0, then offset 185*8.
    first, second = only(packets[1]), only(packets[2])
    assert (first.ip_version, first.fragment, first.ip_id) == (4, 1, 0xD0FE)
    assert (first.sport, first.dport) == (53, 56680)
    assert (second.fragment, second.sport, second.dport) == (2, 53, 56680)
    # Frames 5 and 6: the IPv6 fragments of the answer to port 46433.
    assert (only(packets[4]).fragment, only(packets[4]).dport) == (1, 46433)
    assert (only(packets[5]).fragment, only(packets[5]).dport) == (2, 46433)


def test_ipv6_extension_header_chain() -> None:
    frame = bytes(
        Ether()
        / IPv6(src="2001:db8::1", dst="2001:db8::2")
        / IPv6ExtHdrHopByHop()
        / IPv6ExtHdrRouting()
        / IPv6ExtHdrDestOpt()
        / ScapyTCP(sport=40000, dport=443, flags="S", options=[("MSS", 1460)])
    )
    pkt = only(Decoder().decode(LINKTYPE_ETHERNET, frame, 1.0, len(frame)))
    assert (pkt.proto, pkt.sport, pkt.dport, pkt.tcp_flags) == (TCP, 40000, 443, SYN)
    assert pkt.ip_header_len == 40 + 8 + 8 + 8
    assert pkt.tcp_options == b"\x02\x04\x05\xb4"


def test_ipv6_atomic_fragment_is_decoded_through() -> None:
    frame = bytes(
        Ether() / IPv6() / IPv6ExtHdrFragment(offset=0, m=0, id=7) / ScapyUDP(sport=5, dport=6)
    )
    pkt = only(Decoder().decode(LINKTYPE_ETHERNET, frame, 1.0, len(frame)))
    assert (pkt.proto, pkt.sport, pkt.dport, pkt.fragment) == (UDP, 5, 6, 0)


def test_ipv4_total_length_zero_from_segmentation_offload() -> None:
    frame = bytearray(bytes(Ether() / IP() / ScapyTCP(sport=1, dport=2) / (b"d" * 100)))
    frame[16:18] = b"\x00\x00"  # what a capture of a TSO super-packet shows
    pkt = only(Decoder().decode(LINKTYPE_ETHERNET, bytes(frame), 1.0, len(frame)))
    assert (pkt.proto, pkt.sport, pkt.payload) == (TCP, 1, b"d" * 100)


def test_ethernet_padding_is_not_payload() -> None:
    frame = bytes(Ether() / IP() / ScapyUDP(sport=1, dport=2) / b"ab") + b"\x00" * 16
    pkt = only(Decoder().decode(LINKTYPE_ETHERNET, frame, 1.0, len(frame)))
    assert pkt.payload == b"ab"


# --- ARP, ICMP, ICMPv6, TCP ---------------------------------------------------------------


def test_arp_addresses() -> None:
    packets, _, _ = decode_file("arp.pcap")
    pairs = [(only(p).proto, only(p).src, only(p).dst) for p in packets]
    # tshark arp.src.proto_ipv4 / arp.dst.proto_ipv4
    expected = [
        ("192.150.187.1", "192.150.187.20"),
        ("192.150.187.50", "192.150.187.14"),
        ("192.150.187.14", "192.150.187.50"),
        ("192.150.187.50", "192.150.187.1"),
        ("192.150.187.1", "192.150.187.50"),
        ("192.150.187.1", "192.150.187.20"),
    ]
    assert pairs == [(ARP, ip(s), ip(d)) for s, d in expected]


def test_icmpv6_types() -> None:
    packets, _, _ = decode_file("icmpv6.pcap")
    assert [(only(p).proto, only(p).icmp_type, only(p).icmp_code) for p in packets] == [
        (ICMP6, 134, 0),
        (ICMP6, 143, 0),
        (ICMP6, 130, 0),
        (ICMP6, 143, 0),
        (ICMP6, 143, 0),
    ]
    # Non-query messages are keyed on type and code.
    assert (only(packets[0]).sport, only(packets[0]).dport) == (134, 0)


def test_icmp_echo_ids() -> None:
    packets, _, _ = decode_file("5-pings.pcap")
    kinds = [(only(p).icmp_type, only(p).src) for p in packets]
    assert kinds == [(8, ip("172.16.133.2")), (0, ip("172.217.11.78"))] * 5
    table = FlowTable()
    for p in packets:
        table.update(only(p))
    (flow,) = table
    assert (flow.src, flow.sport, flow.dst, flow.dport) == (
        "172.16.133.2",
        1226,
        "172.217.11.78",
        8,
    )
    assert (flow.packets_fwd, flow.packets_rev) == (5, 5)


def test_tcp_handshake_fields_in_linux_cooked_nanosecond_capture() -> None:
    # tshark: flags 0x002, 0x012, 0x010; options and windows as below; raw seq 797190859.
    packets, _, linktypes = decode_file("tcp-handshake-nano.pcap")
    assert set(linktypes) == {LINKTYPE_LINUX_SLL}
    syn, synack, ack = (only(p) for p in packets)
    assert [p.tcp_flags for p in (syn, synack, ack)] == [SYN, SYN | ACK, ACK]
    assert syn.tcp_options.hex() == "020405500402080a436a03620000000001030307"
    assert synack.tcp_options.hex() == "020405a0010303080402080a0df5af50436a0362"
    assert (syn.tcp_window, synack.tcp_window, ack.tcp_window) == (27200, 8192, 213)
    assert syn.tcp_seq == 797190859 and ack.tcp_ack == 3078856593
    assert syn.ts == pytest.approx(1418145369.924505488, abs=1e-9)


def test_multi_interface_pcapng() -> None:
    packets, decoder, linktypes = decode_file("pcapng-multi-interface.pcapng")
    assert linktypes == [LINKTYPE_ETHERNET] * 6 and decoder.malformed == 0
    # tshark frame.time_epoch: interface 0 has nanosecond resolution, interface 1 microseconds.
    stamps = [only(p).ts for p in packets]
    assert stamps[0] == pytest.approx(1767663089.500330493, abs=1e-6)
    assert stamps[2] == pytest.approx(1767663437.111897, abs=1e-6)
    assert [only(p).sport for p in packets] == [36343, 53, 56351, 53, 56352, 53]


# --- truncated and malformed --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "malformed"),
    [
        ("ip4-trunc.pcap", 1),  # snaplen cut inside the IPv4 header (tshark: size limited)
        ("ipv4_invalid_length.pcap", 1),  # total length < header length (tshark: malformed)
    ],
)
def test_malformed_ip_is_counted(name: str, malformed: int) -> None:
    packets, decoder, _ = decode_file(name)
    assert packets == [None] and decoder.malformed == malformed


@pytest.mark.parametrize(
    "name",
    ["badpackets.pcap", "fuzz-2006-09-29-28586.pcap", "malformed_dns.pcap", "truncated_dns_2.pcap"],
)
def test_damaged_captures_never_raise_and_every_frame_is_accounted(name: str) -> None:
    packets, decoder, _ = decode_file(name)
    decoded = sum(p is not None for p in packets)
    assert decoded + decoder.malformed + decoder.non_ip == len(packets) > 0


def test_fuzzed_capture_counts_its_broken_frames() -> None:
    packets, decoder, _ = decode_file("fuzz-2006-09-29-28586.pcap")
    assert decoder.malformed >= 1
    assert sum(p is not None and p.proto == TCP for p in packets) > 100


# --- link types the corpus lacks, crafted with scapy --------------------------------------


def _write(path: Path, linktype: int, frames: list[bytes]) -> None:
    writer = PcapWriter(str(path), linktype=linktype, sync=True)
    writer.write_header(None)
    for i, frame in enumerate(frames):
        writer.write_packet(frame, sec=1_700_000_000 + i, usec=0)
    writer.close()
    if linktype == 0:
        # scapy treats link type 0 as "unset" and writes Ethernet; put NULL (0) back.
        with path.open("r+b") as fh:
            fh.seek(20)
            fh.write((0).to_bytes(4, sys.byteorder))


def _pipeline_over(path: Path) -> Pipeline:
    pipeline = Pipeline()
    with CaptureReader(path) as reader:
        pipeline.feed(reader)
    pipeline.finish()
    return pipeline


UDP4 = IP(src="10.1.1.1", dst="10.1.1.2") / ScapyUDP(sport=1111, dport=53)
TCP6 = IPv6(src="2001:db8::1", dst="2001:db8::2") / ScapyTCP(sport=2222, dport=80, flags="S")


def test_linux_cooked_v1(tmp_path: Path) -> None:
    path = tmp_path / "sll.pcap"
    _write(path, LINKTYPE_LINUX_SLL, [bytes(CookedLinux() / UDP4), bytes(CookedLinux() / TCP6)])
    packets = []
    with CaptureReader(path) as reader:
        decoder = Decoder()
        packets = [decoder.decode(lt, data, ts, wl) for lt, ts, data, wl in reader]
    assert [(only(p).proto, only(p).sport) for p in packets] == [(UDP, 1111), (TCP, 2222)]


def test_raw_ip(tmp_path: Path) -> None:
    path = tmp_path / "raw.pcap"
    _write(path, LINKTYPE_RAW, [bytes(UDP4), bytes(TCP6)])
    pipeline = _pipeline_over(path)
    assert pipeline.flows.created == 2 and pipeline.malformed == 0


@pytest.mark.parametrize(
    ("linktype", "prefix4", "prefix6"),
    [
        # NULL: address family in host byte order (little endian here); IPv6 is 24/28/30.
        (LINKTYPE_NULL, (2).to_bytes(4, "little"), (30).to_bytes(4, "little")),
        (LINKTYPE_NULL, (2).to_bytes(4, "little"), (24).to_bytes(4, "little")),
        # LOOP: network byte order.
        (LINKTYPE_LOOP, (2).to_bytes(4, "big"), (28).to_bytes(4, "big")),
    ],
)
def test_bsd_null_and_loop(tmp_path: Path, linktype: int, prefix4: bytes, prefix6: bytes) -> None:
    path = tmp_path / "null.pcap"
    _write(path, linktype, [prefix4 + bytes(UDP4), prefix6 + bytes(TCP6), prefix4[:2]])
    decoder = Decoder()
    with CaptureReader(path) as reader:
        packets = [decoder.decode(lt, data, ts, wl) for lt, ts, data, wl in reader]
    assert (only(packets[0]).ip_version, only(packets[0]).dport) == (4, 53)
    assert (only(packets[1]).ip_version, only(packets[1]).dport) == (6, 80)
    assert packets[2] is None and decoder.malformed == 1


def test_unsupported_link_type_is_counted_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "usb.pcap"
    _write(path, 189, [b"\x00" * 64, b"\x01" * 48])  # LINKTYPE_USB_LINUX
    pipeline = _pipeline_over(path)
    assert pipeline.stats.skipped_linktype == 2
    assert pipeline.flows.created == 0 and pipeline.malformed == 0
    assert pipeline.decoder.decode(189, b"\x00" * 64, 0.0, 64) is None
    assert pipeline.decoder.malformed == 1


# --- fuzz ---------------------------------------------------------------------------------

LINKTYPES = [LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, 0, 108]


def _seed_frames() -> list[tuple[int, bytes]]:
    frames: list[tuple[int, bytes]] = []
    for name in ("dns.pcap", "dns_fragmented.pcap", "tcp-handshake-nano.pcap", "q-in-q.pcap"):
        with CaptureReader(DATA / name) as reader:
            frames += [(lt, data) for lt, _ts, data, _wl in reader]
    frames.append((LINKTYPE_ETHERNET, bytes(Ether() / TCP6)))
    frames.append((LINKTYPE_ETHERNET, bytes(Ether() / IP() / ScapyICMP())))
    frames.append((LINKTYPE_ETHERNET, bytes(Ether() / IPv6() / IPv6ExtHdrHopByHop() / TCP6)))
    return frames


def test_decoder_never_raises_on_random_or_cut_frames() -> None:
    rng = random.Random(20240229)
    decoder = Decoder()
    seeds = _seed_frames()
    tried = 0
    # Every prefix of every real frame: truncation at each byte boundary.
    for linktype, data in seeds:
        for cut in range(len(data)):
            decoder.decode(linktype, data[:cut], 0.0, cut)
            tried += 1
    # Real frames with random bytes overwritten (lengths, versions, header sizes go wrong).
    for _ in range(3000):
        linktype, data = rng.choice(seeds)
        buf = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        decoder.decode(linktype, bytes(buf), 0.0, len(buf))
        tried += 1
    # Pure noise on every link type.
    for _ in range(2000):
        noise = rng.randbytes(rng.randrange(0, 120))
        decoder.decode(rng.choice(LINKTYPES), noise, 0.0, len(noise))
        tried += 1
    assert tried > 5000
    assert decoder.malformed > 1000  # the broken ones were counted, not raised
