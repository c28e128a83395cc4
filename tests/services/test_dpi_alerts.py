"""DPI findings reach the alert engine: malware classifications and high anomaly scores."""

from __future__ import annotations

from conftest import DATA

from packettracer.capture.packet import Packet
from packettracer.config import Settings
from packettracer.model.flows import Flow
from packettracer.services.alerts import AlertService
from packettracer.services.dpi_alerts import DpiAlerts
from packettracer.services.report import analyze_file
from packettracer.services.runtime import Runtime


def _flow(fid: int, score: int, category: str = "web") -> Flow:
    pkt = Packet()
    pkt.proto, pkt.src, pkt.dst, pkt.sport, pkt.dport = (
        6,
        b"\x0a\0\0\x01",
        b"\xc0\0\x02\x07",
        40000,
        443,
    )
    pkt.ts = 100.0
    flow = Flow(fid, (6, pkt.src, 40000, pkt.dst, 443), pkt, True)
    flow.set("anomaly_score", score)
    flow.set("anomaly_reasons", ["cleartext HTTP on port 443"])
    flow.set("category", category)
    return flow


def test_scores_over_the_threshold_raise_one_alert_per_flow() -> None:
    runtime = Runtime(Settings())
    alerts = AlertService()
    runtime.features["alerts"] = alerts
    bridge = DpiAlerts(runtime, threshold=60)
    bridge.check(_flow(1, 40))
    assert alerts.engine.sorted() == []
    bridge.check(_flow(2, 85))
    bridge.check(_flow(2, 85))  # the same flow again: nothing new
    [alert] = alerts.engine.sorted()
    assert alert.kind == "dpi.anomaly" and alert.severity == "high" and alert.count == 1
    assert alert.evidence["reasons"] == ["cleartext HTTP on port 443"]
    assert alert.entities == {"src": "10.0.0.1", "dst": "192.0.2.7"}
    bridge.check(_flow(3, 10, category="malware"))
    assert {a.kind for a in alerts.engine.sorted()} == {"dpi.anomaly", "dpi.malware"}


def test_report_carries_dpi_alerts_from_a_real_capture() -> None:
    settings = Settings()
    settings.store.db_path = ":memory:"
    result = analyze_file(str(DATA / "synscan.pcap"), settings)
    malware = [f for f in result.flows if f.get("category") == "malware"]
    kinds = [a["kind"] for a in result.extra["alerts"]]
    assert malware and "dpi.malware" in kinds
    alert = next(a for a in result.extra["alerts"] if a["kind"] == "dpi.malware")
    assert alert["entities"]["src"] in {f["src"] for f in malware}
