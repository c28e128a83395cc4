"""DNS parsing on real captures: answers with CNAME chains and TTLs, TCP framing, fragments and
malformed messages (counted, never raised)."""

import pytest

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


def _message(answer_rr: bytes, ancount: int = 1) -> bytes:
    header = b"\x12\x34\x81\x80\x00\x01" + ancount.to_bytes(2, "big") + b"\x00\x00\x00\x00"
    question = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
    return header + question + answer_rr


def test_compression_loops_and_overlong_names_are_refused() -> None:
    # a pointer to itself (offset 12) in the question: the message is rejected, not looped on
    looping = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01"
    assert dnsparse.parse(looping) is None
    # an answer whose name points forward: header and question survive, the answer does not
    forward = _message(b"\xc0\x40\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x5d\xb8\xd8\x22")
    msg = dnsparse.parse(forward)
    assert msg is not None and msg.partial and msg.qname == "www.example.com" and not msg.answers
    long_name = b"".join(b"\x3f" + b"a" * 63 for _ in range(5)) + b"\x00"
    overlong = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00" + long_name + b"\x00\x01\x00\x01"
    assert dnsparse.parse(overlong) is None


def test_answers_with_pointers_ttl_and_escaped_labels() -> None:
    # owner: pointer to the question name; TTL with the top bit set counts as 0 (RFC 2181)
    rr = b"\xc0\x0c\x00\x01\x00\x01\x80\x00\x00\x00\x00\x04\x5d\xb8\xd8\x22"
    msg = dnsparse.parse(_message(rr))
    assert msg is not None and not msg.partial
    assert [(a.name, a.rtype, a.ttl, a.data) for a in msg.answers] == [
        ("www.example.com", "A", 0, "93.184.216.34")
    ]
    hostile = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x05a\x1b[2J\x00\x00\x10\x00\x01"
    msg = dnsparse.parse(hostile)
    assert msg is not None and msg.qname == "a\\027[2j" and msg.qtype == "TXT"
    cut = _message(rr[:-2])
    msg = dnsparse.parse(cut)
    assert msg is not None and msg.partial and not msg.answers


def test_same_answers_as_dnspython_on_the_corpus() -> None:
    """A reference check: the lean parser agrees with dnspython on every message dnspython
    accepts in the DNS captures."""
    dns_message = pytest.importorskip("dns.message")
    import dns.rcode
    import dns.rdatatype

    compared = 0
    for name in ("dns.pcap", "dns_tcp.pcap", "dns_fragmented.pcap", "ipv6-fragmented-dns.pcap"):
        for pkt in packets(name):
            if pkt.proto != UDP or not pkt.payload:
                continue
            if not (pkt.sport in DNS_PORTS or pkt.dport in DNS_PORTS):
                continue
            try:
                ref = dns_message.from_wire(pkt.payload, ignore_trailing=True)
            except Exception:
                continue
            ours = dnsparse.parse(pkt.payload)
            assert ours is not None and not ours.partial
            assert ours.rcode == dns.rcode.to_text(ref.rcode())
            if ref.question:
                q = ref.question[0]
                assert ours.qname == q.name.to_text(omit_final_dot=True).lower()
                assert ours.qtype == dns.rdatatype.to_text(q.rdtype)
            expected = []
            for rrset in ref.answer:
                for rdata in rrset:
                    data = ""
                    if rrset.rdtype in (1, 28):
                        data = rdata.address
                    elif rrset.rdtype == 5:
                        data = rdata.target.to_text(omit_final_dot=True).lower()
                    expected.append(
                        (
                            rrset.name.to_text(omit_final_dot=True).lower(),
                            dns.rdatatype.to_text(rrset.rdtype),
                            rrset.ttl,
                            data,
                        )
                    )
            got = [(a.name, a.rtype, a.ttl, a.data) for a in ours.answers]
            assert sorted(got) == sorted(expected)
            compared += 1
    assert compared >= 10
