from packettracer.model.dnsparse import Answer, DnsMessage
from packettracer.model.dnsstats import SUSPICIOUS_SCORE, DnsStats, tunnel_score


def msg(ident: int, qname: str, response: bool, rcode: str = "NOERROR") -> DnsMessage:
    m = DnsMessage(ident, response, 0, rcode, qname, "A")
    if response and rcode == "NOERROR":
        m.answers = [Answer(qname, "A", 60, "93.184.216.34")]
    return m


def test_latency_rcodes_and_resolvers() -> None:
    stats = DnsStats()
    stats.on_message(msg(1, "www.example.com", False), "192.168.1.10", "192.168.1.1", 10.0)
    done = stats.on_message(msg(1, "www.example.com", True), "192.168.1.1", "192.168.1.10", 10.025)
    assert done is not None and abs(done.latency - 0.025) < 1e-9
    stats.on_message(msg(2, "nope.example.com", False), "192.168.1.10", "192.168.1.1", 11.0)
    stats.on_message(
        msg(2, "nope.example.com", True, "NXDOMAIN"), "192.168.1.1", "192.168.1.10", 11.01
    )
    stats.on_message(msg(3, "lost.example.com", False), "192.168.1.10", "192.168.1.1", 12.0)
    stats.expire(30.0)
    assert stats.unanswered == 1
    assert stats.rate("NXDOMAIN") == 0.5
    res = stats.resolvers["192.168.1.1"]
    assert (res.queries, res.responses, res.nxdomain) == (3, 2, 1)
    assert abs(res.latency_avg - 0.0175) < 1e-9
    summary = stats.summary()
    assert summary["top_domains"][0] == {"domain": "example.com", "queries": 3}
    assert summary["qtypes"] == {"A": 3}


def test_tunnelling_names_score_high_and_normal_names_low() -> None:
    tunnel = "dgvzdcbkyxrhihrozxjligzvcibleglsdhjhdglvbia0mjq0.t.example.com"
    assert tunnel_score(tunnel) >= SUSPICIOUS_SCORE
    assert tunnel_score("a" * 60 + ".example.com") >= SUSPICIOUS_SCORE
    for normal in ("www.google.com", "fonts.gstatic.com", "r3---sn-4g5e6nzl.googlevideo.com"):
        assert tunnel_score(normal) < SUSPICIOUS_SCORE
    # reverse lookups are long by design
    assert (
        tunnel_score("b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.0.0.0.0.1.2.3.4.ip6.arpa")
        == 0
    )
    stats = DnsStats()
    stats.on_message(msg(7, tunnel, False), "10.0.0.2", "10.0.0.1", 1.0)
    assert tunnel in stats.suspicious


def test_mdns_announcements_are_named_by_their_first_answer() -> None:
    stats = DnsStats()
    announce = DnsMessage(0, True, 0, "NOERROR", None, None)
    announce.answers = [Answer("printer.local", "A", 120, "192.168.1.50")]
    event = stats.on_message(announce, "192.168.1.50", "224.0.0.251", 5.0)
    assert event is not None and (event.qname, event.qtype) == ("printer.local", "A")
    assert event.answers == ["192.168.1.50"]
