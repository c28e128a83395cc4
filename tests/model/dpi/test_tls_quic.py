"""TLS and QUIC parsing: RFC test vectors for the QUIC initial keys, real captures for SNI, ALPN,
JA3/JA4 (the values nDPI printed for the same capture) and certificates, and a ClientHello
split across TCP segments."""

from __future__ import annotations

from pathlib import Path

from packettracer.capture.decoder import Decoder
from packettracer.capture.packet import TCP
from packettracer.capture.pcapfile import CaptureReader
from packettracer.model.dpi import quic, tls
from packettracer.model.dpi.inspector import DPIEngine
from packettracer.model.flows import FlowTable

DATA = Path(__file__).resolve().parents[2] / "data"


def test_quic_v1_initial_keys_rfc9001_appendix_a() -> None:
    key, iv, hp = quic.client_keys(quic.QUIC_V1, bytes.fromhex("8394c8f03e515708"))
    assert key.hex() == "1f369613dd76d5467730efcbe3b1a22d"
    assert iv.hex() == "fa044b2f42a3fd3b46fb255c"
    assert hp.hex() == "9f50449e04a0e810283a1e9933adedd2"


def test_quic_v2_initial_keys_rfc9369_appendix_a() -> None:
    key, iv, hp = quic.client_keys(quic.QUIC_V2, bytes.fromhex("8394c8f03e515708"))
    assert key.hex() == "8b1a0bc121284290a29e0971b5cd045d"
    assert iv.hex() == "91f73e2351d8fa91660e909f"
    assert hp.hex() == "45b95e15235d6f45a6b19cbcb0294ba9"


def test_grease_values() -> None:
    assert tls.is_grease(0x0A0A) and tls.is_grease(0xFAFA)
    assert not tls.is_grease(0x0A1A) and not tls.is_grease(0x1301)


def run_engine(name: str, split: int | None = None) -> tuple[DPIEngine, list]:
    """Feed a capture through a flow table and the engine; optionally split every TCP payload
    longer than `split` bytes into two segments (as a sender with a small MSS would)."""
    engine = DPIEngine()
    ended: list = []
    table = FlowTable(on_end=lambda f: (engine.flow_end(f), ended.append(f)))
    decoder = Decoder()
    with CaptureReader(str(DATA / name)) as reader:
        for linktype, ts, data, wirelen in reader:
            pkt = decoder.decode(linktype, data, ts, wirelen)
            if pkt is None:
                continue
            parts = [pkt]
            if split and pkt.proto == TCP and len(pkt.payload) > split:
                first = decoder.decode(linktype, data, ts, wirelen)
                second = decoder.decode(linktype, data, ts, wirelen)
                assert first is not None and second is not None
                first.payload = pkt.payload[:split]
                second.payload = pkt.payload[split:]
                second.tcp_seq = (pkt.tcp_seq + split) & 0xFFFFFFFF
                parts = [first, second]
            for part in parts:
                flow = table.update(part)
                engine.packet(part, flow, table.last_forward)
    table.flush()
    return engine, ended


def test_tls12_client_and_server_hello_and_certificate() -> None:
    _, flows = run_engine("443-safari.pcap")
    (flow,) = flows
    ext = flow.ext
    # nDPI 4.11 on the same capture: JA3C a69708a6..., JA4 t12d2010h2_2a284e3b0c56_f05fdf8c38a9,
    # JA3S f9fcb525...
    assert ext["sni"] == "www.ntop.org" and ext["app"] == "ntop"
    assert ext["ja3"] == "a69708a64f853c3bcc214c2c5faf84f3"
    assert ext["ja4"] == "t12d2010h2_2a284e3b0c56_f05fdf8c38a9"
    assert ext["ja3s"] == "f9fcb52580329fb6a9b61d7542087b90"
    assert ext["tls_version"] == "TLSv1.2" and ext["alpn"] == "h2"
    assert ext["cert_subject"] == "CN=www.ntop.org"
    assert "Let's Encrypt" in ext["cert_issuer"]
    assert ext["encrypted"] is True and ext["confidence"] == "dpi"


def test_client_hello_split_across_segments() -> None:
    _, flows = run_engine("443-safari.pcap", split=100)
    (flow,) = flows
    assert flow.ext["sni"] == "www.ntop.org"
    assert flow.ext["ja4"] == "t12d2010h2_2a284e3b0c56_f05fdf8c38a9"


def test_quic_draft29_initial_decrypts_to_sni_and_alpn() -> None:
    _, flows = run_engine("quic-29.pcap")
    quic_flows = [f for f in flows if f.ext and f.ext.get("protocol") == "QUIC"]
    assert quic_flows
    ext = quic_flows[0].ext
    assert ext["quic_version"] == "QUIC draft-29"
    assert ext["sni"] == "localhost" and ext["alpn"].startswith("h3-29")
    assert ext["ja4"].startswith("q13d")


def test_quic_v2_initial_decrypts() -> None:
    _, flows = run_engine("quicv2-http3-443.pcap")
    ext = next(f.ext for f in flows if f.ext and f.ext.get("protocol") == "QUIC")
    assert ext["quic_version"] == "QUICv2"
    assert ext["alpn"] == "h3" and ext["ja4"].startswith("q13")


def test_not_a_quic_initial_is_an_error_not_a_crash() -> None:
    import pytest

    with pytest.raises(quic.QUICError):
        quic.decrypt_initial(b"\xc0\x00\x00\x00\x01\x08" + b"\x00" * 60)


def test_a_gquic_tag_list_that_ends_a_value_before_it_starts_gives_an_empty_value() -> None:
    from packettracer.model.dpi import protocols

    tags = b"SNI\x00" + (8).to_bytes(4, "little") + b"UAID" + (4).to_bytes(4, "little")
    chlo = b"CHLO" + (2).to_bytes(2, "little") + b"\x00\x00" + tags
    packet = b"\x09" + b"\x01" * 8 + b"Q043" + b"\x00" * 3 + chlo + b"example." + b"\x00" * 8
    det = protocols.detect_udp(packet, 50000, 443, True)
    assert det is not None and det.protocol == "QUIC"
    # The UAID value ends (4) before it starts (8): empty, as a Python slice gives (the code
    # spells it out: a compiled slice with typed bounds does not clamp them).
    assert det.details["sni"] == "example." and det.details["user_agent"] == ""
