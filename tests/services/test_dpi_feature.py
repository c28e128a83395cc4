"""The DPI feature in `report`: the flow fields and summary sections it adds, the settings that
turn it off or extend its bad-fingerprint list, and what the CLI says about a bad setting."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from packettracer.config import Settings
from packettracer.errors import ConfigError
from packettracer.services.features import FEATURE_FACTORIES
from packettracer.services.report import analyze_file_async

DATA = Path(__file__).resolve().parents[1] / "data"
SAFARI = DATA / "443-safari.pcap"
FLOW_FIELDS = {
    "app", "category", "confidence", "encrypted", "sni", "alpn", "ja4", "ja3",
    "anomaly_score", "anomaly_reasons",
}  # fmt: skip


def offline() -> Settings:
    settings = Settings()
    settings.resolve.enabled = False
    settings.resolve.offline = True
    settings.store.db_path = ":memory:"
    return settings


def test_dpi_is_a_registered_feature() -> None:
    assert "packettracer.services.dpi_feature:create_dpi_feature" in FEATURE_FACTORIES


async def test_report_flows_and_summary_carry_dpi_results() -> None:
    result = await analyze_file_async(str(SAFARI), offline())
    (flow,) = result.flows
    assert set(flow) >= FLOW_FIELDS
    assert flow["app"] == "ntop" and flow["category"] == "web" and flow["confidence"] == "dpi"
    summary = result.summary
    hosts = {h["ip"]: h for h in summary["hosts"]}
    client = hosts["192.168.1.13"]
    assert client["os"] == "Mac OS X" and 0 < client["os_confidence"] <= 1
    assert any(s["source"] == "p0f" for s in client["os_signals"])
    assert summary["encrypted_share"] == 1.0
    assert summary["categories"]["web"]["flows"] == 1
    assert summary["apps"]["ntop"]["bytes"] == flow["bytes_fwd"] + flow["bytes_rev"]


async def test_every_written_flow_carries_the_verdict_also_one_the_dpi_left_unsaid(
    tmp_path: Path,
) -> None:
    """Probes to ports the DPI knows nothing about carry none of its fields in memory; the
    report writes them with the unknown verdict, in every format and in the same order."""
    import csv
    import io
    import json

    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from packettracer.services.report import format_csv, write_report

    packets = []
    for i, port in enumerate([40123, 22, 40124]):
        pkt = Ether() / IP(src="10.0.0.7", dst="10.0.0.8") / TCP(sport=55555, dport=port, flags="S")
        pkt.time = 1_700_000_000 + i
        packets.append(pkt)
    capture = tmp_path / "probes.pcap"
    write_pcap(capture, packets)
    result = await analyze_file_async(str(capture), offline())
    probes = [f for f in result.flow_objects if f.dport > 40000]
    assert len(probes) == 2 and not any("category" in (f.ext or {}) for f in probes)
    out = io.StringIO()
    write_report(result, "json", out)
    written = json.loads(out.getvalue())["flows"]
    out = io.StringIO()
    write_report(result, "csv", out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    verdict = ["app", "category", "confidence", "protocol", "encrypted", "anomaly_score",
               "anomaly_reasons"]  # fmt: skip
    assert all(list(f)[-len(verdict) :] == verdict for f in written)
    assert [(f["app"], f["category"], f["confidence"]) for f in written] == [
        (None, "unknown", None), ("SSH", "remote_access", "port-guess"), (None, "unknown", None),
    ]  # fmt: skip
    unknown = [f for f in written if f["category"] == "unknown"]
    assert all(f["encrypted"] is False and f["anomaly_reasons"] == [] for f in unknown)
    assert [r["category"] for r in rows] == ["unknown", "remote_access", "unknown"]
    # The dict path (what a feature asking for `result.flows` gets) writes the same.
    assert [json.loads(json.dumps(f)) for f in result.flows] == written
    assert format_csv(result.flows) == out.getvalue()


async def test_dpi_off_leaves_flows_plain() -> None:
    settings = offline()
    settings.dpi.enabled = False
    result = await analyze_file_async(str(SAFARI), settings)
    assert "ja4" not in result.flows[0] and "hosts" not in result.summary


async def test_user_bad_fingerprint_list_flags_the_flow(tmp_path: Path) -> None:
    listed = tmp_path / "bad.txt"
    listed.write_text("# test list\nt12d2010h2_2a284e3b0c56_f05fdf8c38a9 ExampleBot\n")
    settings = offline()
    settings.dpi.bad_fingerprints = str(listed)
    result = await analyze_file_async(str(SAFARI), settings)
    flow = result.flows[0]
    assert flow["category"] == "malware" and flow["anomaly_score"] >= 70
    assert any("ExampleBot" in r for r in flow["anomaly_reasons"])
    assert result.summary["host_anomalies"][0]["ip"] == "192.168.1.13"


async def test_missing_bad_fingerprint_file_is_a_config_error(tmp_path: Path) -> None:
    settings = offline()
    settings.dpi.bad_fingerprints = str(tmp_path / "nope.txt")
    with pytest.raises(ConfigError, match=r"\[dpi\] bad_fingerprints"):
        await analyze_file_async(str(SAFARI), settings)


def test_dpi_settings_from_toml(tmp_path: Path) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text("[dpi]\nenabled = false\ninspect_packets = 8\n")
    settings = Settings.load(conf)
    assert settings.dpi.enabled is False and settings.dpi.inspect_packets == 8
    conf.write_text("[dpi]\ninspect = 8\n")
    with pytest.raises(ConfigError, match="unknown key 'inspect'"):
        Settings.load(conf)


def test_cli_report_json_has_dpi_fields(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "packettracer",
            "report",
            "-n",
            "--offline",
            "--db",
            ":memory:",
            "-r",
            str(SAFARI),
            "--format",
            "json",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert '"ja4":"t12d2010h2_2a284e3b0c56_f05fdf8c38a9"' in out.stdout


def write_pcap(path: Path, packets: list) -> None:
    from scapy.utils import wrpcap

    wrpcap(str(path), packets)


async def test_beaconing_and_fan_out_are_host_signals(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.layers.l2 import Ether

    packets = []
    # A host calling home every 60 s with one small datagram (each from a new source port)...
    for i in range(8):
        pkt = Ether() / IP(src="10.0.0.5", dst="10.9.9.9") / UDP(sport=40000 + i, dport=4444)
        pkt = pkt / (b"ping" * 8)
        pkt.time = 1_700_000_000 + 60 * i
        packets.append(pkt)
    # ...and another one touching 150 ports of a neighbour.
    for port in range(1, 151):
        pkt = Ether() / IP(src="10.0.0.7", dst="10.0.0.8") / TCP(sport=55555, dport=port, flags="S")
        pkt.time = 1_700_000_500 + port * 0.01
        packets.append(pkt)
    capture = tmp_path / "beacon.pcap"
    write_pcap(capture, packets)
    result = await analyze_file_async(str(capture), offline())
    beacons = [f for f in result.flows if f["dport"] == 4444]
    assert len(beacons) == 8
    assert all(any("beaconing" in r for r in f["anomaly_reasons"]) for f in beacons)
    assert all(f["anomaly_score"] >= 45 for f in beacons)
    hosts = {h["ip"]: h for h in result.summary["host_anomalies"]}
    assert any("every 60s" in r for r in hosts["10.0.0.5"]["reasons"])
    assert any("distinct host:port pairs" in r for r in hosts["10.0.0.7"]["reasons"])


def test_aggregates_count_every_ended_flow_and_flagged_flows_are_told_at_once() -> None:
    from packettracer.capture.packet import SYN, TCP, Packet
    from packettracer.model.flows import FlowTable
    from packettracer.services.dpi_feature import DPIFeature
    from packettracer.services.runtime import Runtime

    feature = DPIFeature(Runtime(offline()), "report")
    engine = feature.engine
    told: list = []
    feature.flagged_listeners.append(told.append)
    table = FlowTable(on_end=feature.analyzer.on_flow_end)
    # Fewer flows than one batch of the aggregates, one of them to a reserved address.
    for i, dst in enumerate([bytes([10, 0, 1, n]) for n in range(1, 40)] + [bytes([192, 0, 2, 1])]):
        pkt = Packet()
        pkt.proto, pkt.ip_version, pkt.ttl, pkt.ts = TCP, 4, 64, float(i)
        pkt.src, pkt.dst, pkt.sport, pkt.dport, pkt.tcp_flags = (
            bytes([10, 0, 0, 5]),
            dst,
            40000,
            22,
            SYN,
        )
        flow = table.update(pkt)
        engine.packet(pkt, flow, table.last_forward)
    table.flush()
    assert [f.dst for f in told] == ["192.0.2.1"]  # at its end, before any view asked
    breakdown = feature.breakdown(include_live=False)
    assert breakdown["apps"]["SSH"]["flows"] == 40
    rows = {(r["port"], r["side"]): r for r in feature.port_table(include_live=False)}
    assert rows[(22, "local")]["flows"] == 39 and rows[(22, "remote")]["flows"] == 1
    assert rows[(22, "local")]["service"] == "SSH"
    assert feature.scanners()[0]["pairs"] == 40
