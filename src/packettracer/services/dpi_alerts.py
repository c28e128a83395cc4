"""DPI findings as alerts: a flow whose anomaly score reaches `[security] anomaly_alert_score`
raises `dpi.anomaly`, a flow the DPI classified as malware (known-bad fingerprint, mining or C2
indicator) raises `dpi.malware`. Both go through the one alert engine (dedup, suppression, ack).

Checked when a flow ends (the DPI feature hands over the flows it flagged) and, for live
captures, on each tick for the active flows the DPI has already judged, so an alert does not wait
for the flow's idle timeout."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from packettracer.model.flows import Flow
from packettracer.services.pipeline import Analyzer
from packettracer.services.runtime import Runtime

ALERTED_MEMORY = 50_000  # flow ids already alerted (bounded)


class DpiAlerts(Analyzer):
    name = "dpi-alerts"

    def __init__(self, runtime: Runtime, threshold: int) -> None:
        self.runtime = runtime
        self.threshold = threshold
        self._alerted: OrderedDict[int, None] = OrderedDict()
        self.raised = 0

    def tick(self, now: float) -> None:
        threshold = self.threshold or 101
        for flow in self.runtime.pipeline.flows:
            ext = flow.ext
            if ext and (
                ext.get("anomaly_score", 0) >= threshold or ext.get("category") == "malware"
            ):
                self.check(flow)

    def check(self, flow: Flow) -> None:
        ext = flow.ext
        if not ext or flow.id in self._alerted:
            return
        alerts = self.runtime.features.get("alerts")
        if alerts is None:
            return
        malware = ext.get("category") == "malware"
        score = ext.get("anomaly_score") or 0
        if not malware and not (self.threshold and score >= self.threshold):
            return
        self._alerted[flow.id] = None
        if len(self._alerted) > ALERTED_MEMORY:
            self._alerted.popitem(last=False)
        evidence: dict[str, Any] = {
            "flow": f"{flow.proto_name} {flow.src}:{flow.sport} -> {flow.dst}:{flow.dport}",
            "anomaly_score": score,
            "reasons": list(ext.get("anomaly_reasons") or []),
        }
        for key in ("app", "category", "sni", "ja4", "ja3", "http_host", "user_agent"):
            if ext.get(key):
                evidence[key] = ext[key]
        entities = {"src": flow.src, "dst": flow.dst}
        if malware:
            what = ext.get("app") or "known-bad fingerprint"
            alerts.raise_alert(
                "dpi.malware",
                "high",
                f"{flow.src} -> {flow.dst}: {what}",
                entities,
                evidence,
                ts=flow.last_seen,
                source="dpi",
            )
        else:
            reasons = "; ".join(evidence["reasons"][:2]) or "anomalous flow"
            alerts.raise_alert(
                "dpi.anomaly",
                "high" if score >= 80 else "medium",
                f"{flow.src} -> {flow.dst}: anomaly score {score} ({reasons})",
                entities,
                evidence,
                ts=flow.last_seen,
                source="dpi",
            )
        self.raised += 1


class DpiAlertsFeature:
    name = "dpi_alerts"

    def __init__(self, runtime: Runtime) -> None:
        self.analyzer = DpiAlerts(runtime, runtime.settings.security.anomaly_alert_score)

    def attach(self, runtime: Runtime) -> None:
        runtime.pipeline.add_analyzer(self.analyzer)  # its tick: the live flows
        # Ended flows: the DPI hands over only those with a score or a malware verdict.
        runtime.features["dpi"].flagged_listeners.append(self.analyzer.check)


def make_feature(runtime: Runtime, mode: str) -> DpiAlertsFeature | None:
    features = runtime.features
    if features.get("alerts") is None or features.get("dpi") is None:
        return None
    return DpiAlertsFeature(runtime)
