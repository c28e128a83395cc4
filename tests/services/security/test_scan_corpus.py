"""Scan captures from public corpora are detected; ordinary traffic raises no scan alert. Every
capture goes through the same runtime as `report`."""

from __future__ import annotations

from pathlib import Path

import pytest

from packettracer.config import Settings
from packettracer.services.report import analyze_file
from tests.conftest import CORPUS_PCAPS, DATA


def scan_alerts(path: Path) -> list[dict]:
    settings = Settings()
    settings.security.blocklist_dir = str(path.parent / "no-such-blocklists")
    result = analyze_file(str(path), settings)
    return [a for a in result.extra["alerts"] if a["kind"].startswith("scan.")]


def test_nmap_synscan_capture() -> None:
    (alert,) = scan_alerts(DATA / "synscan.pcap")
    ev = alert["evidence"]
    assert alert["kind"] == "scan.vertical" and alert["severity"] == "medium"
    assert ev["scanner"] == "172.16.0.8" and ev["targets"] == ["64.13.134.52"]
    assert ev["technique"] == "TCP SYN"
    assert ev["port_count"] == 1000
    # nmap found ssh, dns and http open on scanme
    assert {"64.13.134.52:22", "64.13.134.52:53", "64.13.134.52:80"} <= set(ev["open_ports"])


def test_masscan_capture_vlan_tagged() -> None:
    (alert,) = scan_alerts(DATA / "masscan_tcp_0_1000.pcap")
    ev = alert["evidence"]
    assert ev["scanner"] == "172.31.15.102" and ev["technique"] == "TCP SYN"
    assert ev["ports"] == "0-1000"


def test_small_mixed_nmap_scan() -> None:
    # SYN, connect, FIN, NULL and XMAS probes of 7 ports on one LAN host
    (alert,) = scan_alerts(DATA / "tcp_scan.pcapng")
    ev = alert["evidence"]
    assert ev["scanner"] == "192.168.1.178" and ev["targets"] == ["192.168.1.2"]
    assert ev["ports"] == "80,443,445,3389-3392"
    assert set(ev["techniques"]) == {"TCP SYN", "TCP connect", "TCP FIN", "TCP NULL", "TCP XMAS"}
    assert ev["open_ports"] == ["192.168.1.2:443", "192.168.1.2:80"] or ev["open_ports"] == [
        "192.168.1.2:80",
        "192.168.1.2:443",
    ]


ORDINARY = [
    "http.pcap",
    "netflix.pcap",
    "youtube_quic.pcap",
    "sip.pcap",
    "rtp.pcapng",
    "bittorrent.pcap",
    "bittorrent_utp.pcap",
    "teams.pcap",
    "zoom.pcap",
    "skype-conference-call.pcap",
    "spotify_tcp.pcap",
    "wikipedia.pcap",
    "sites.pcapng",
    "android.pcap",
    "facebook.pcap",
    "steam.pcapng",
    "edonkey.pcap",
    "dns.pcap",
    "whatsapp_voice_and_message.pcap",
]


@pytest.mark.parametrize("name", ORDINARY)
def test_ordinary_traffic_raises_no_scan_alert(name: str) -> None:
    path = CORPUS_PCAPS / name
    if not path.exists():
        pytest.skip(f"{name} is not in the shared corpus (../shared/corpus/pcap)")
    assert scan_alerts(path) == []
