"""Data tables, payload detectors, anomaly signals and OS evidence, on real captures where one
is at hand and on protocol-defined bytes otherwise."""

from __future__ import annotations

import struct

from packettracer.capture.packet import ACK, PSH, SYN, Packet
from packettracer.model.dpi import anomaly, http, osfp, protocols
from packettracer.model.dpi.categories import ALL_CATEGORIES, CATEGORIES
from packettracer.model.dpi.inspector import HOST_SYN_SAMPLES, UNKNOWN_FIELDS, DPIEngine
from packettracer.model.dpi.rules import TCP, UDP, rules
from packettracer.model.flows import Flow, FlowTable
from tests.model.dpi.test_tls_quic import run_engine


def test_eighteen_categories_and_every_row_uses_one() -> None:
    assert len(CATEGORIES) == 18 and "unknown" in ALL_CATEGORIES
    r = rules()
    assert {a.category for a in r.apps.values()} <= set(ALL_CATEGORIES)
    assert {p.category for p in r.protocols.values()} <= set(ALL_CATEGORIES)


def test_most_specific_domain_suffix_wins() -> None:
    r = rules()
    assert r.app_for_name("drive.google.com") == "GoogleDrive"
    assert r.app_for_name("www.google.com") == "Google"
    assert r.app_for_name("rr3---sn-abc.googlevideo.com.") == "YouTube"
    assert r.app_for_name("notgoogle.com") is None
    assert r.info("YouTube").category == "streaming"


def test_port_guess_server_port_first() -> None:
    r = rules()
    assert r.port_guess(TCP, 51515, 22) == "SSH"
    assert r.port_guess(UDP, 53, 40000) == "DNS"
    assert r.port_guess(TCP, 40000, 40001) is None


def dns_query(name: str, qid: int = 7) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + labels + b"\x00\x01\x00\x01"


def test_dns_detector_and_name_signals() -> None:
    det = protocols.detect_udp(dns_query("www.example.org"), 40000, 53, True)
    assert (
        det is not None and det.protocol == "DNS" and det.details["dns_query"] == "www.example.org"
    )
    mdns = protocols.detect_udp(dns_query("printer.local"), 5353, 5353, True)
    assert mdns is not None and mdns.protocol == "mDNS"
    tunnel = "a" * 60 + ".t.example.com"
    assert [s.name for s in anomaly.dns_name_signals(tunnel)] == ["dns_long_label"]
    dga = "x1q9zk3v7m2p8w4r6t0y5u.evil.com"
    assert [s.name for s in anomaly.dns_name_signals(dga)] == ["dns_entropy"]
    assert anomaly.dns_name_signals("mail.google.com") == []


def test_banner_and_handshake_detectors() -> None:
    ssh = protocols.detect_tcp(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n", 22, 50000, False)
    assert ssh is not None and ssh.details["ssh_server"] == "OpenSSH_9.2p1"
    bt = protocols.detect_tcp(b"\x13BitTorrent protocol" + b"\0" * 48, 50000, 6881, True)
    assert bt is not None and bt.protocol == "BitTorrent"
    mqtt = protocols.detect_tcp(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04abcd", 1, 1883, True)
    assert mqtt is not None and mqtt.protocol == "MQTT"
    rdp = b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x08\x00\x03\x00\x00\x00"
    assert protocols.detect_tcp(rdp, 50000, 3389, True).protocol == "RDP"  # type: ignore[union-attr]
    wg = b"\x01\x00\x00\x00" + b"\x11" * 144
    assert protocols.detect_udp(wg, 40000, 51820, True).protocol == "WireGuard"  # type: ignore[union-attr]
    assert protocols.detect_tcp(b"\x16\x03\x01hello", 1, 2, True) is None
    assert http.parse_request(b"GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n").host == "a.example"  # type: ignore[union-attr]


def test_stun_application_attributes() -> None:
    attr = struct.pack("!HH", 0x4000, 4) + b"abcd"
    msg = struct.pack("!HH", 0x0003, len(attr)) + b"\x21\x12\xa4\x42" + b"\0" * 12 + attr
    det = protocols.detect_udp(msg, 40000, 3478, True)
    assert det is not None and det.protocol == "STUN" and det.app == "WhatsApp"


def test_ssh_smtp_starttls_and_dhcp_captures() -> None:
    _, flows = run_engine("tcpdump_ssh.pcap")
    ssh = next(f for f in flows if f.ext and f.ext.get("protocol") == "SSH")
    assert ssh.ext["ssh_client"].startswith("OpenSSH") and "ssh_server" in ssh.ext
    _, flows = run_engine("smtp-starttls.pcap")
    smtp = [f for f in flows if f.ext and f.ext.get("protocol") == "SMTP"]
    assert smtp and all(f.ext["starttls"] and f.ext["encrypted"] for f in smtp)
    reasons = [r for f in smtp for r in f.ext["anomaly_reasons"]]
    assert any("self-signed certificate" in r for r in reasons)
    engine, flows = run_engine("dhcp.pcap")
    dhcp = [f for f in flows if f.ext and f.ext.get("protocol") == "DHCP"]
    assert any(f.ext.get("dhcp_hostname") == "btest.is.cool" for f in dhcp)
    assert all(f.ext["category"] == "network" for f in dhcp)


def test_anomaly_score_combines_named_signals() -> None:
    assert anomaly.combine([]) == 0
    one = anomaly.signal("tls_no_sni")
    two = anomaly.signal("bogon", addr="192.0.2.1")
    assert anomaly.combine([one]) == 10
    assert anomaly.combine([one, two]) == 46  # 1 - 0.9 * 0.6
    assert anomaly.combine([two] * 5) == 40  # a signal counts once
    assert two.reason == "traffic to reserved or bogon address 192.0.2.1"
    assert anomaly.is_bogon("240.1.2.3") and not anomaly.is_bogon("192.168.1.1")


def test_beaconing_and_ttl_change() -> None:
    assert anomaly.beacon_period([0, 60, 120.5, 180, 240.2, 300]) is not None
    assert anomaly.beacon_period([0, 3, 100, 104, 300, 301]) is None
    ttl = anomaly.TTLTracker()
    for _ in range(5):
        assert ttl.see("10.0.0.5", 64) is None
    sig = ttl.see("10.0.0.5", 128)
    assert sig is not None and sig.name == "ttl_change" and "64 to 128" in sig.reason
    assert ttl.see("10.0.0.5", 128) is None  # flagged once


def test_os_verdict_prefers_p0f_and_weighs_other_signals() -> None:
    host = osfp.HostOS()
    host.p0f[("Windows 7 or 8", "exact")] = 2  # counts: plain dicts
    host.user_agents["Mozilla/5.0 (Windows NT 6.1; Win64; x64)"] = 1
    host.ttls[127] = 2
    label, confidence, signals = host.verdict()  # type: ignore[misc]
    assert label == "Windows 7 or 8" and confidence > 0.8
    assert {s["source"] for s in signals} == {"p0f", "user-agent", "ttl"}
    ua_only = osfp.HostOS()
    ua_only.user_agents["Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)"] = 1
    assert ua_only.verdict()[0] == "iOS"  # type: ignore[index]
    dhcp_only = osfp.HostOS()
    dhcp_only.dhcp["1,3,6,15,31,33,43,44,46,47,119,121,249,252|MSFT 5.0"] = 1
    assert dhcp_only.verdict()[0] == "Windows 10 or 11"  # type: ignore[index]
    assert osfp.HostOS().verdict() is None


def _packet(proto: int, src: bytes, dst: bytes, sport: int, dport: int, **fields: object) -> Packet:
    """An IPv4 packet as the decoder makes it (TTL 64 at t=1 unless `fields` say otherwise)."""
    pkt = Packet()
    pkt.proto, pkt.ip_version, pkt.ttl, pkt.ts = proto, 4, 64, 1.0
    pkt.src, pkt.dst, pkt.sport, pkt.dport = src, dst, sport, dport
    for name, value in fields.items():
        setattr(pkt, name, value)
    return pkt


def _feed(engine: DPIEngine, table: FlowTable, pkt: Packet) -> Flow:
    """One packet through the flow table, then the engine, as the pipeline passes it."""
    flow = table.update(pkt)
    engine.packet(pkt, flow, table.last_forward)
    return flow


def test_protocol_on_an_unexpected_port_and_bogon_destination() -> None:

    engine = DPIEngine()
    table = FlowTable()
    pkt = _packet(
        TCP, bytes([10, 0, 0, 2]), bytes([192, 0, 2, 80]), 40000, 443, tcp_flags=ACK | PSH,
        payload=b"GET /x HTTP/1.1\r\nHost: plain.example\r\nUser-Agent: curl/8.0\r\n\r\n",
    )  # fmt: skip
    flow = _feed(engine, table, pkt)
    engine.flow_end(flow)
    ext = flow.ext
    assert ext["protocol"] == "HTTP" and ext["http_host"] == "plain.example"
    assert ext["user_agent"] == "curl/8.0" and ext["encrypted"] is False
    reasons = ext["anomaly_reasons"]
    assert "HTTP on port 443, where TLS is expected" in reasons
    assert "traffic to reserved or bogon address 192.0.2.80" in reasons
    assert ext["anomaly_score"] == anomaly.combine(
        [anomaly.signal("unexpected_port"), anomaly.signal("bogon")]
    )


def test_a_random_looking_dns_query_name_scores_the_flow_and_its_host() -> None:

    engine = DPIEngine()
    table = FlowTable()
    pkt = _packet(
        UDP, bytes([10, 0, 0, 2]), bytes([10, 0, 0, 53]), 53000, 53,
        payload=dns_query("xj4k9qz7w2mplr8vt5hy3ncd.example.com"),
    )  # fmt: skip
    flow = _feed(engine, table, pkt)
    engine.flow_end(flow)
    ext = flow.ext
    assert ext["protocol"] == "DNS" and ext["dns_query"] == "xj4k9qz7w2mplr8vt5hy3ncd.example.com"
    assert any("random-looking label" in r for r in ext["anomaly_reasons"])
    assert ext["anomaly_score"] >= 30
    assert [s.name for s in engine.host_signals["10.0.0.2"]] == ["dns_entropy"]
    # An ordinary name: no signal.
    pkt.sport, pkt.payload, pkt.ts = 53001, dns_query("www.example.com"), 2.0
    plain = _feed(engine, table, pkt)
    engine.flow_end(plain)
    assert plain.ext["anomaly_score"] == 0 and plain.ext["anomaly_reasons"] == ()


def _syn(table: FlowTable, engine: DPIEngine, dport: int, ttl: int, ts: float) -> Flow:
    """A plain SYN from 10.0.0.9 (MSS 1460) to 10.0.0.10:dport, through the table and engine."""
    pkt = _packet(
        TCP, bytes([10, 0, 0, 9]), bytes([10, 0, 0, 10]), 50000, dport, ttl=ttl, ts=ts,
        tcp_flags=SYN, tcp_window=64240, tcp_options=b"\x02\x04\x05\xb4", ip_header_len=20,
    )  # fmt: skip
    return _feed(engine, table, pkt)


def test_a_sampled_hosts_syns_keep_their_mss_and_still_show_a_ttl_jump() -> None:
    engine = DPIEngine()
    table = FlowTable()
    for port in range(1, HOST_SYN_SAMPLES + 5):  # a scan: one SYN per port, each a new flow
        flow = _syn(table, engine, port, 64, float(port))
        assert flow.inspection == 1460  # the SYN's MSS, all a bare flow keeps
    host = engine.hosts["10.0.0.9"]
    assert host.syns == HOST_SYN_SAMPLES  # later SYNs are not fingerprinted again
    assert "10.0.0.9" not in engine.host_signals
    _syn(table, engine, 1000, 200, 100.0)  # the same address, 136 hops further: spoofed?
    assert [s.name for s in engine.host_signals["10.0.0.9"]] == ["ttl_change"]


def test_a_bare_flow_ends_with_its_port_verdict_or_without_the_dpis_fields() -> None:

    engine = DPIEngine()
    engine.bogons_flagged = True  # as with the security feature attached
    table = FlowTable()
    ssh = _syn(table, engine, 22, 64, 1.0)
    ssh.ext = {"country": "NL"}  # what a feature ending the flow before the DPI wrote
    scan = _syn(table, engine, 40123, 64, 2.0)
    verdict = engine.flow_end(ssh)
    assert verdict[:4] == ("SSH", "remote_access", "port-guess", "SSH")
    assert ssh.ext["country"] == "NL" and ssh.ext["app"] == "SSH"
    assert ssh.ext["confidence"] == "port-guess" and ssh.ext["anomaly_score"] == 0
    ssh.ext["threat"] = "x"  # each flow has its own copy of its port's shared verdict fields
    other = _feed(
        engine, table,
        _packet(TCP, bytes([10, 0, 0, 9]), bytes([10, 0, 0, 10]), 50001, 22, ts=3.0,
                tcp_flags=SYN, tcp_window=64240, tcp_options=b"", ip_header_len=20),
    )  # fmt: skip
    engine.flow_end(other)
    assert other.ext == {k: v for k, v in ssh.ext.items() if k not in ("country", "threat")}
    # A flow the DPI can say nothing about carries none of its fields: written out, it has
    # the unknown verdict's (the DPI feature makes them the runtime's flow defaults).
    assert engine.flow_end(scan) == (None, "unknown", None, None, False, 0, ())
    assert scan.ext is None
    assert scan.to_dict(UNKNOWN_FIELDS)["category"] == "unknown"
    scan.ext = {"country": "NL"}
    row = scan.to_dict(UNKNOWN_FIELDS)
    assert list(row)[-8:] == ["country", "app", "category", "confidence", "protocol",
                              "encrypted", "anomaly_score", "anomaly_reasons"]  # fmt: skip
    assert row["app"] is None and row["anomaly_reasons"] == ()


def test_http_heads_give_the_first_of_each_wanted_header() -> None:
    req = http.parse_request(
        b"GET /a HTTP/1.1\r\nX-Host: decoy\r\nhOsT :  one.example:8080 \r\n"
        b"Host: two.example\r\nUser-Agent: a\rb\r\n\r\nUser-Agent: body"
    )
    assert req is not None
    assert req.host == "one.example" and req.host_header == "one.example:8080"
    assert req.user_agent == "a\rb"  # a lone CR belongs to the value; the body is not read
    split = http.parse_request(b"GET / HTTP/1.1\r\nHost\r\n: not.a.header\r\n\r\n")
    assert split is not None and split.host is None
    resp = http.parse_response(b"HTTP/1.1 404 Not Found\r\nServer:  nginx \r\n\r\n")
    assert resp is not None and resp.status == 404 and resp.server == "nginx"


def test_a_bare_flow_with_a_named_server_or_a_bogon_mark_leaves_the_port_verdict() -> None:
    engine = DPIEngine()
    engine.bogons_flagged = True
    table = FlowTable()
    plain = _syn(table, engine, 443, 64, 1.0)
    assert engine.flow_end(plain)[:3] == ("TLS", "web", "port-guess")
    # The server's name (from a DNS answer) names the application.
    engine.dns_names["10.0.0.10"] = "www.youtube.com"
    named = _syn(table, engine, 443, 64, 2.0)
    verdict = engine.flow_end(named)
    assert verdict[:3] == ("YouTube", "streaming", "name") and named.ext["app"] == "YouTube"
    del engine.dns_names["10.0.0.10"]
    # A flow the security feature marked bogon carries the signal, and its host too.
    marked = _feed(
        engine, table,
        _packet(TCP, bytes([10, 0, 0, 9]), bytes([192, 0, 2, 10]), 50002, 443, ttl=64, ts=3.0,
                tcp_flags=SYN, tcp_window=64240, tcp_options=b"", ip_header_len=20),
    )  # fmt: skip
    marked.ext = {"threat": "bogon"}
    verdict = engine.flow_end(marked)
    assert verdict[5] > 0 and marked.ext["anomaly_reasons"] == verdict[6]
    assert [s.name for s in engine.host_signals["10.0.0.9"]] == ["bogon"]
    # Only the client's port is known: the server-port-first guess falls back to it.
    reply = _feed(
        engine, table,
        _packet(TCP, bytes([10, 0, 0, 10]), bytes([10, 0, 0, 9]), 22, 50001, ts=4.0,
                tcp_flags=SYN | ACK, tcp_window=64240, tcp_options=b"", ip_header_len=20),
    )  # fmt: skip
    assert engine.flow_end(reply)[:2] == ("SSH", "remote_access")
