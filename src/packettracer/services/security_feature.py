"""The security feature: the alert engine service (`runtime.features["alerts"]`), the scan
detector on every packet, reputation checks (blocklists and reserved addresses) on every new
flow, and `alerts` in `report --format json`.

Flows to or from a listed address get `threat` (the list's name, or "bogon") in their facts, and
the feature's `threats` maps such hosts to the reason, so every panel can mark them.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from packettracer.capture.packet import TCP, UDP, Packet
from packettracer.config import SecuritySettings
from packettracer.errors import ConfigError
from packettracer.model.flows import Flow, format_address
from packettracer.model.reputation import ReputationDB, bogon
from packettracer.model.scan import ScanDetector, ScanEvidence, ScanThresholds
from packettracer.services.alerts import AlertService
from packettracer.services.blocklists import BlocklistService
from packettracer.services.pipeline import Analyzer
from packettracer.services.runtime import Runtime

SCAN_SEVERITY = {"sweep": "low", "vertical": "medium", "horizontal": "medium", "block": "high"}
_UNSPECIFIED = (b"\x00\x00\x00\x00", b"\x00" * 16)


class SecurityAnalyzer(Analyzer):
    name = "security"
    all_packets = True

    def __init__(self, feature: SecurityFeature) -> None:
        self.feature = feature
        self.detector = feature.detector
        self.reputation = feature.reputation
        self.flag_bogons = feature.flag_bogons

    def on_packet(self, pkt: Packet, flow: Flow, forward: bool) -> None:
        # Past the first packets of each direction a TCP or UDP flow holds nothing for the
        # scan detector (probes are first packets, answers first replies) nor for reputation
        # (checked on a flow's first packet): most packets return after this one comparison.
        if (flow.packets_fwd if forward else flow.packets_rev) > 2:
            proto = pkt.proto
            if proto in (TCP, UDP):
                return
        self.detector.packet(pkt, flow, forward)
        if flow.packets_fwd + flow.packets_rev == 1 and pkt.ip_version:
            self._check(pkt, flow)

    def _check(self, pkt: Packet, flow: Flow) -> None:
        lists = self.reputation.lists
        # the usual case (no list loaded, neither end reserved) in two table look-ups
        if not lists and (
            not self.flag_bogons or (bogon(pkt.src) is None and bogon(pkt.dst) is None)
        ):
            return
        for addr, other in ((pkt.src, pkt.dst), (pkt.dst, pkt.src)):
            if lists:
                match = self.reputation.lookup_packed(addr)
                if match is not None:
                    self.feature.listed(addr, other, match.list, match.network, match.note, pkt)
                    flow.set("threat", match.list)
                    continue
            if self.flag_bogons and addr not in _UNSPECIFIED:
                reserved = bogon(addr)
                if reserved is not None and not (pkt.proto == UDP and pkt.dport in (67, 68)):
                    self.feature.bogon(addr, other, reserved.network, reserved.note, pkt)
                    flow.set("threat", "bogon")

    def tick(self, now: float) -> None:
        self.detector.tick(now)

    def summary(self) -> dict[str, Any]:
        alerts = self.feature.alerts
        out: dict[str, Any] = {"alerts": len(alerts.engine.alerts)}
        if self.detector.detections:
            out["scans"] = len(self.detector.detections)
        return out


class SecurityFeature:
    name = "security"

    def __init__(self, runtime: Runtime, mode: str) -> None:
        self.mode = mode
        sec = runtime.settings.security
        self.settings = sec
        self.flag_bogons = sec.flag_bogons
        store = runtime.features.get("store")
        self.alerts = AlertService(sec, store=store)
        self.reputation = ReputationDB()
        self.blocklists = BlocklistService(sec.blocklist_dir, self.reputation)
        self.detector = ScanDetector(ScanThresholds.from_settings(sec), on_detect=self._scan)
        self.threats: dict[str, str] = {}
        """Host -> why it is marked (list name, 'bogon', 'scanner')."""

    def attach(self, runtime: Runtime) -> None:
        if self.mode == "dashboard":
            self.alerts.restore()
        runtime.features["alerts"] = self.alerts
        # First in line, so that at shutdown its last flush reaches the store's writer
        # before the writer (an earlier service) closes.
        runtime.services.insert(0, self.alerts)
        self.blocklists.scan()
        if self.mode in ("dashboard", "agent"):
            runtime.add_service(self.blocklists)
        if self.mode == "dashboard":
            # The Traffic panel's Threat column (UI code: imported only here).
            importlib.import_module("packettracer.screens.security_columns")
        runtime.pipeline.add_analyzer(SecurityAnalyzer(self))

    # -- alert sources ------------------------------------------------------------------------

    def _scan(self, ev: ScanEvidence) -> None:
        self.threats.setdefault(ev.scanner, "scanner")
        severity = SCAN_SEVERITY.get(ev.shape, "medium")
        if ev.scanner in self.threats and self.threats[ev.scanner] not in ("scanner", "bogon"):
            severity = "high"
        self.alerts.raise_alert(
            ev.kind,
            severity,
            ev.summary(),
            entities={"scanner": ev.scanner},
            evidence=ev.to_dict(),
            ts=ev.last_seen,
            source="scan",
        )

    def listed(
        self, addr: bytes, other: bytes, name: str, network: str, note: str, pkt: Packet
    ) -> None:
        host = format_address(addr)
        self.threats[host] = name
        self.alerts.raise_alert(
            "reputation.blocklist",
            "high",
            f"{host} is on blocklist {name}" + (f" ({note})" if note else ""),
            entities={"host": host, "list": name},
            evidence={
                "list": name,
                "network": network,
                "note": note,
                "peer": format_address(other),
                "proto": pkt.proto_name,
                "port": pkt.dport if addr == pkt.dst else pkt.sport,
            },
            ts=pkt.ts,
            source="reputation",
        )

    def bogon(self, addr: bytes, other: bytes, network: str, note: str, pkt: Packet) -> None:
        host = format_address(addr)
        self.threats.setdefault(host, "bogon")
        self.alerts.raise_alert(
            "reputation.bogon",
            "low",
            f"reserved address {host} in traffic ({note})",
            entities={"host": host},
            evidence={"network": network, "note": note, "peer": format_address(other)},
            ts=pkt.ts,
            source="reputation",
        )

    # -- report -------------------------------------------------------------------------------

    async def finish(self) -> None:
        self.detector.tick(time.time())
        await self.alerts.flush()

    def extend_report(self, runtime: Runtime, result: Any) -> None:
        result.extra["alerts"] = [a.to_dict() for a in self.alerts.engine.sorted()]


def check_settings(sec: SecuritySettings) -> None:
    """One clear line for a threshold that makes no sense; raises ConfigError."""
    for name in (
        "vertical_ports",
        "horizontal_hosts",
        "block_hosts",
        "block_ports",
        "min_ports",
        "sweep_hosts",
        "arp_sweep_hosts",
        "max_sources",
        "rate_limit",
    ):
        if getattr(sec, name) < 1:
            raise ConfigError(f"[security] {name} must be at least 1, not {getattr(sec, name)}")
    for name in ("failed_ratio", "small_scan_failed_ratio"):
        if not 0.0 <= getattr(sec, name) <= 1.0:
            raise ConfigError(f"[security] {name} must be between 0 and 1")
    for name in ("scan_window", "dedup_window"):
        if getattr(sec, name) <= 0:
            raise ConfigError(f"[security] {name} must be a positive number of seconds")
    if sec.webhook_url and not sec.webhook_url.startswith(("http://", "https://")):
        raise ConfigError(f"[security] webhook_url must be an http(s) URL, not {sec.webhook_url!r}")


def create_security_feature(runtime: Runtime, mode: str) -> SecurityFeature | None:
    """FEATURE_FACTORIES entry, in every mode: an agent detects at its own site and the relay
    forwards its alerts to the collector (`AlertService.subscribe` / `ingest_remote`)."""
    if not runtime.settings.security.enabled:
        return None
    check_settings(runtime.settings.security)
    return SecurityFeature(runtime, mode)
