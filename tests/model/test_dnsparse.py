"""DNS parsing on real captures: answers with CNAME chains and TTLs, TCP framing, fragments and
malformed messages (counted, never raised)."""

from packettracer.capture.packet import TCP, UDP
from packettracer.model import dnsparse
from packettracer.model.dnsparse import DNS_PORTS, DnsMessage

from .resolution_helpers import packets


def dns_messages(name: str) -> tuple[list[DnsMessage], int]:
    out: list[DnsMessage] = []
    failed = 0
    for pkt in packets(name):
        if not pkt.payload or not (pkt.sport in DNS_PORTS or pkt.dport in DNS_PORTS):
            continue
        if pkt.proto == UDP:
            msg = dnsparse.parse(pkt.payload)
            found = [msg] if msg else []
        elif pkt.proto == TCP:
            found = dnsparse.parse_tcp(pkt.payload)
        else:
            continue
        if not found:
            failed += 1
        out.extend(found)
    return out, failed


def test_udp_answers_map_addresses_to_the_asked_name() -> None:
    msgs, failed = dns_messages("dns.pcap")
    assert failed == 0
    answer = next(m for m in msgs if m.response and m.qname == "e7.whatsapp.net")
    assert answer.qtype == "A" and answer.rcode == "NOERROR"
    addrs = answer.addresses()
    assert ("169.45.219.235", "e7.whatsapp.net", 491) in addrs
    queries = [m for m in msgs if not m.response]
    assert {m.qname for m in queries} >= {"www.example.com"}


def test_tcp_dns_is_unframed() -> None:
    msgs, _ = dns_messages("dns_tcp.pcap")
    answer = next(m for m in msgs if m.response)
    assert answer.qname == "www.tcpdump.org"
    assert {a for a, _, _ in answer.addresses()} == {"192.139.46.66", "198.199.88.104"}


def test_cname_chain_gives_the_asked_name_and_the_smallest_ttl() -> None:
    msg = DnsMessage(1, True, 0, "NOERROR", "www.example.org", "A")
    msg.answers = [
        dnsparse.Answer("www.example.org", "CNAME", 300, "edge.cdn.example.net"),
        dnsparse.Answer("edge.cdn.example.net", "CNAME", 60, "a1.cdn.example.net"),
        dnsparse.Answer("a1.cdn.example.net", "A", 20, "93.184.216.34"),
    ]
    assert msg.addresses() == [("93.184.216.34", "www.example.org", 20)]


def test_cname_loop_terminates() -> None:
    msg = DnsMessage(1, True, 0, "NOERROR", "a.test", "A")
    msg.answers = [
        dnsparse.Answer("a.test", "CNAME", 30, "b.test"),
        dnsparse.Answer("b.test", "CNAME", 30, "a.test"),
        dnsparse.Answer("b.test", "A", 30, "203.0.113.1"),
    ]
    assert msg.addresses()[0][0] == "203.0.113.1"


def test_fragmented_answers_keep_header_and_question() -> None:
    # The first fragment carries a cut message: header and question still count.
    msgs, _ = dns_messages("ipv6-fragmented-dns.pcap")
    names = {m.qname for m in msgs}
    assert "txtpadding_3230.n1.netalyzr.icsi.berkeley.edu" in names
    assert any(m.partial and m.response for m in msgs)
    msgs, _ = dns_messages("dns_fragmented.pcap")
    assert any(m.qname == "weberlab.de" and m.qtype == "DNSKEY" for m in msgs)


def test_malformed_messages_never_raise() -> None:
    msgs, _ = dns_messages("malformed_dns.pcap")
    responses = [m for m in msgs if m.response]
    assert responses and all(m.partial for m in responses)
    assert all(m.qname == "www.xt.com" for m in responses)


def test_garbage_is_rejected() -> None:
    assert dnsparse.parse(b"") is None
    assert dnsparse.parse(b"\x00" * 5) is None
    # a header claiming a question whose label runs past the end
    assert dnsparse.parse(b"\x12\x34\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00\x3fabc") is None
    assert dnsparse.parse_tcp(b"\x00\x40short") == []
