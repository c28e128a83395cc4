"""The DPI feature: application and category per flow, OS per host, anomaly scores, and the
aggregates the Analysis, Ports and DPI panels and `report` show.

Per-packet work happens only for the first `[dpi] inspect_packets` packets of a flow; the rest is
per flow (at its end) or per refresh of a panel.
"""

from __future__ import annotations

import importlib
import ipaddress
import logging
from collections import Counter, OrderedDict
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from packettracer.capture.packet import TCP, UDP, Packet
from packettracer.errors import ConfigError
from packettracer.model.dpi import anomaly
from packettracer.model.dpi.anomaly import Signal, signal
from packettracer.model.dpi.categories import UNKNOWN
from packettracer.model.dpi.inspector import DPIEngine
from packettracer.model.flows import Flow
from packettracer.services.pipeline import Analyzer
from packettracer.services.runtime import Runtime

log = logging.getLogger(__name__)

MAX_BEACON_GROUPS = 5000
BEACON_MAX_BYTES = 4096
MAX_PORT_HOSTS = 20000
MAX_DISTINCT = 5000


def load_bad_fingerprints(extra: str | None = None) -> dict[str, str]:
    """The packaged list of known-bad JA3/JA4 fingerprints, plus an optional file of the user's."""
    texts = [
        resources.files("packettracer")
        .joinpath("data", "dpi_bad_fingerprints.txt")
        .read_text("utf-8")
    ]
    if extra:
        try:
            texts.append(Path(extra).expanduser().read_text("utf-8"))
        except OSError as exc:
            raise ConfigError(f"[dpi] bad_fingerprints {extra}: {exc.strerror}") from None
    out: dict[str, str] = {}
    for text in texts:
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            fp, _, label = line.partition(" ")
            out[fp.lower()] = label.strip() or "listed"
    return out


@lru_cache(maxsize=65536)
def is_local(addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    return ip.is_private or ip.is_link_local or ip.is_loopback or ip.is_multicast


class DPIAnalyzer(Analyzer):
    name = "dpi"

    def __init__(self, feature: DPIFeature, inspect_packets: int) -> None:
        self.feature = feature
        self.engine = feature.engine
        self.inspect_packets = inspect_packets

    def on_packet(self, pkt: Packet, flow: Flow, forward: bool) -> None:
        self.engine.packet(pkt, flow, forward)

    def on_flow_end(self, flow: Flow) -> None:
        self.engine.flow_end(flow)
        self.feature.account(flow)

    def summary(self) -> dict[str, Any]:
        return self.feature.summary()


class Totals:
    """Flows and bytes of one bucket (a category, an application, a port)."""

    __slots__ = ("flows", "bytes", "packets")

    def __init__(self) -> None:
        self.flows = 0
        self.bytes = 0
        self.packets = 0

    def add(self, flow: Flow) -> None:
        self.flows += 1
        self.bytes += flow.bytes_fwd + flow.bytes_rev
        self.packets += flow.packets_fwd + flow.packets_rev


class DPIFeature:
    name = "dpi"

    def __init__(self, runtime: Runtime, mode: str) -> None:
        settings = runtime.settings.dpi
        self.runtime = runtime
        self.mode = mode
        self.engine = DPIEngine(bad_fingerprints=load_bad_fingerprints(settings.bad_fingerprints))
        self.analyzer = DPIAnalyzer(self, max(1, settings.inspect_packets))
        self.fan_out_threshold = settings.fan_out
        # Aggregates of ended flows; panels add the live ones on refresh.
        self.categories: dict[str, Totals] = {}
        self.apps: dict[str, Totals] = {}
        self.encrypted = Totals()
        self.cleartext = Totals()
        self.ports: dict[tuple[str, int, str], Totals] = {}
        self.port_services: dict[tuple[str, int, str], Counter[str]] = {}
        self.distinct: OrderedDict[str, set[tuple[str, int]]] = OrderedDict()
        self.beacons: OrderedDict[tuple[str, str, int, int], list[Flow]] = OrderedDict()
        self.flagged_flows: list[dict[str, Any]] = []
        self._fan_out_flagged: set[str] = set()

    def attach(self, runtime: Runtime) -> None:
        runtime.pipeline.add_analyzer(self.analyzer)
        if self.mode == "dashboard":
            # The Traffic panel's App and Category columns (UI code: imported only here).
            importlib.import_module("packettracer.screens.dpi_columns")
        resolution = runtime.features.get("resolution")
        lookup = _name_lookup(resolution)
        if lookup is not None:
            self.engine.name_lookup = lookup

    # ------------------------------------------------------------------ accounting

    def account(self, flow: Flow) -> None:
        """Add an ended flow to the aggregates."""
        ext = flow.ext or {}
        category = ext.get("category") or UNKNOWN
        _bucket(self.categories, category).add(flow)
        _bucket(self.apps, ext.get("app") or UNKNOWN).add(flow)
        (self.encrypted if ext.get("encrypted") else self.cleartext).add(flow)
        if flow.proto in (TCP, UDP):
            key = port_key(flow)
            _bucket(self.ports, key).add(flow)
            service = ext.get("protocol") or ext.get("app")
            if service:
                counter = self.port_services.get(key)
                if counter is None:
                    counter = self.port_services[key] = Counter()
                counter[service] += 1
            seen = self.distinct.get(flow.src)
            if seen is None:
                seen = self.distinct[flow.src] = set()
                if len(self.distinct) > MAX_PORT_HOSTS:
                    self.distinct.popitem(last=False)
            if len(seen) < MAX_DISTINCT:
                seen.add((flow.dst, flow.dport))
            if len(seen) >= self.fan_out_threshold and flow.src not in self._fan_out_flagged:
                self._fan_out_flagged.add(flow.src)
                self.engine._host_signal(flow.src, signal("fan_out", host=flow.src, n=len(seen)))
            if flow.bytes_fwd + flow.bytes_rev <= BEACON_MAX_BYTES:
                bkey = (flow.src, flow.dst, flow.dport, flow.proto)
                group = self.beacons.get(bkey)
                if group is None:
                    group = self.beacons[bkey] = []
                    if len(self.beacons) > MAX_BEACON_GROUPS:
                        self.beacons.popitem(last=False)
                if len(group) < 64:
                    group.append(flow)
        score = ext.get("anomaly_score") or 0
        if score >= 30 and len(self.flagged_flows) < 1000:
            self.flagged_flows.append(_flow_brief(flow))

    async def finish(self) -> None:
        """End of a capture file: host-level signals that need every flow."""
        self.detect_beacons()

    def detect_beacons(self) -> None:
        for (src, dst, dport, _proto), group in list(self.beacons.items()):
            if len(group) < 5:
                continue
            period = anomaly.beacon_period([f.first_seen for f in group])
            if period is None:
                continue
            sig = signal("beaconing", n=len(group), peer=f"{dst}:{dport}", period=period)
            self.engine._host_signal(src, sig)
            for flow in group:
                _add_signal(flow, sig)
            self.beacons.pop((src, dst, dport, _proto), None)

    # ------------------------------------------------------------------ views

    def live_flows(self) -> list[Flow]:
        return list(self.runtime.pipeline.flows)

    def breakdown(self, include_live: bool = True) -> dict[str, Any]:
        """Category and application totals (ended flows plus, optionally, the live ones)."""
        categories = {k: (v.flows, v.bytes) for k, v in self.categories.items()}
        apps = {k: (v.flows, v.bytes) for k, v in self.apps.items()}
        enc = [self.encrypted.flows, self.encrypted.bytes]
        clear = [self.cleartext.flows, self.cleartext.bytes]
        if include_live:
            for flow in self.live_flows():
                b = flow.bytes_fwd + flow.bytes_rev
                cat = flow.get("category") or UNKNOWN
                f, n = categories.get(cat, (0, 0))
                categories[cat] = (f + 1, n + b)
                app = flow.get("app") or UNKNOWN
                f, n = apps.get(app, (0, 0))
                apps[app] = (f + 1, n + b)
                target = enc if flow.get("encrypted") else clear
                target[0] += 1
                target[1] += b
        total = sum(v[1] for v in categories.values()) or 1
        return {
            "categories": {
                k: {"flows": f, "bytes": n, "share": round(n / total, 4)}
                for k, (f, n) in sorted(categories.items(), key=lambda kv: -kv[1][1])
            },
            "apps": {
                k: {"flows": f, "bytes": n, "share": round(n / total, 4)}
                for k, (f, n) in sorted(apps.items(), key=lambda kv: -kv[1][1])
            },
            "encrypted_flows": enc[0],
            "encrypted_bytes": enc[1],
            "cleartext_flows": clear[0],
            "cleartext_bytes": clear[1],
            "encrypted_share": round(enc[1] / ((enc[1] + clear[1]) or 1), 4),
        }

    def port_table(self, include_live: bool = True) -> list[dict[str, Any]]:
        rows: dict[tuple[str, int, str], list[int]] = {
            k: [v.flows, v.bytes] for k, v in self.ports.items()
        }
        services = {k: Counter(v) for k, v in self.port_services.items()}
        if include_live:
            for flow in self.live_flows():
                if flow.proto not in (TCP, UDP):
                    continue
                key = port_key(flow)
                row = rows.setdefault(key, [0, 0])
                row[0] += 1
                row[1] += flow.bytes_fwd + flow.bytes_rev
                service = flow.get("protocol") or flow.get("app")
                if service:
                    services.setdefault(key, Counter())[service] += 1
        rules = self.engine.rules
        out: list[dict[str, Any]] = []
        for (proto, port, side), (flows, nbytes) in rows.items():
            seen = services.get((proto, port, side))
            if seen:
                name = seen.most_common(1)[0][0]
            else:
                number = TCP if proto == "tcp" else UDP
                name = rules.port_guess(number, 0, port) or "-"
            out.append(
                {
                    "proto": proto,
                    "port": port,
                    "side": side,
                    "service": name,
                    "flows": flows,
                    "bytes": nbytes,
                }  # fmt: skip
            )
        out.sort(key=lambda r: (-int(r["bytes"]), -int(r["flows"])))
        return out

    def scanners(self, limit: int = 20) -> list[dict[str, Any]]:
        """Hosts by the number of distinct host:port pairs they contacted (the scan view)."""
        counts: dict[str, set[tuple[str, int]]] = {k: set(v) for k, v in self.distinct.items()}
        for flow in self.live_flows():
            if flow.proto in (TCP, UDP):
                counts.setdefault(flow.src, set()).add((flow.dst, flow.dport))
        rows: list[dict[str, Any]] = []
        for host, pairs in counts.items():
            ports = {p for _, p in pairs}
            rows.append(
                {
                    "host": host,
                    "pairs": len(pairs),
                    "ports": len(ports),
                    "hosts": len({h for h, _ in pairs}),
                }  # fmt: skip
            )
        rows.sort(key=lambda r: (-int(r["ports"]), -int(r["pairs"])))
        return rows[:limit]

    def hosts(self) -> list[dict[str, Any]]:
        """Every host with an OS verdict: ip, os, confidence, signals (and its anomaly score)."""
        out = []
        for addr, host in self.engine.hosts.items():
            verdict = host.verdict()
            if verdict is None:
                continue
            label, confidence, signals = verdict
            entry: dict[str, Any] = {
                "ip": addr,
                "os": label,
                "os_confidence": confidence,
                "os_signals": signals,
            }
            sigs = self.engine.host_signals.get(addr)
            if sigs:
                entry["anomaly_score"] = anomaly.combine(sigs)
                entry["anomaly_reasons"] = [s.reason for s in sigs]
            out.append(entry)
        out.sort(key=lambda e: _addr_key(e["ip"]))
        return out

    def host_anomalies(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = [
            {"ip": addr, "score": anomaly.combine(sigs), "reasons": [s.reason for s in sigs]}
            for addr, sigs in self.engine.host_signals.items()
            if sigs
        ]
        out.sort(key=lambda e: -int(e["score"]))
        return out

    def summary(self) -> dict[str, Any]:
        b = self.breakdown(include_live=False)
        return {
            "encrypted_share": b["encrypted_share"],
            "encrypted_flows": b["encrypted_flows"],
            "cleartext_flows": b["cleartext_flows"],
        }

    def extend_report(self, runtime: Runtime, result: Any) -> None:
        b = self.breakdown(include_live=False)
        summary = result.summary
        summary["hosts"] = self.hosts()
        summary["categories"] = b["categories"]
        summary["apps"] = b["apps"]
        summary["encrypted_share"] = b["encrypted_share"]
        summary["encrypted_bytes"] = b["encrypted_bytes"]
        summary["cleartext_bytes"] = b["cleartext_bytes"]
        summary["host_anomalies"] = self.host_anomalies()[:100]
        # Beaconing updates flows after their dicts were made: refresh those dicts.
        by_key = {
            (f.get("src"), f.get("sport"), f.get("dst"), f.get("dport"), f.get("first_seen")): f
            for f in result.flows
        }
        for group in self.beacons.values():
            for flow in group:
                d = by_key.get(
                    (flow.src, flow.sport, flow.dst, flow.dport, round(flow.first_seen, 6))
                )
                if d is not None and flow.ext:
                    d["anomaly_score"] = flow.ext.get("anomaly_score", 0)
                    d["anomaly_reasons"] = flow.ext.get("anomaly_reasons", [])


def port_key(flow: Flow) -> tuple[str, int, str]:
    """(tcp|udp, server port, local|remote): which side the service runs on."""
    proto = "tcp" if flow.proto == TCP else "udp"
    return (proto, flow.dport, "local" if is_local(flow.dst) else "remote")


def _bucket(table: dict[Any, Totals], key: Any) -> Totals:
    hit = table.get(key)
    if hit is None:
        hit = table[key] = Totals()
    return hit


def _add_signal(flow: Flow, sig: Signal) -> None:
    reasons = list(flow.get("anomaly_reasons") or [])
    if sig.reason in reasons:
        return
    reasons.append(sig.reason)
    old = flow.get("anomaly_score") or 0
    flow.set("anomaly_score", round(100 * (1 - (1 - old / 100) * (1 - sig.weight / 100))))
    flow.set("anomaly_reasons", reasons)


def _flow_brief(flow: Flow) -> dict[str, Any]:
    return {
        "src": flow.src,
        "sport": flow.sport,
        "dst": flow.dst,
        "dport": flow.dport,
        "proto": flow.proto_name,
        "app": flow.get("app"),
        "score": flow.get("anomaly_score"),
        "reasons": flow.get("anomaly_reasons"),
    }


def _addr_key(addr: str) -> tuple[int, int]:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return (9, 0)
    return (ip.version, int(ip))


def _name_lookup(resolution: Any) -> Any:
    """A callable address -> name over the resolution feature's name table, if it has one."""
    if resolution is None:
        return None
    table = getattr(resolution, "names", None)
    best = getattr(table, "best", None)
    if best is None:
        return None

    def lookup(addr: str) -> str | None:
        entry = best(addr)
        return getattr(entry, "name", None) if entry is not None else None

    return lookup


def create_dpi_feature(runtime: Runtime, mode: str) -> DPIFeature | None:
    if not runtime.settings.dpi.enabled:
        return None
    return DPIFeature(runtime, mode)
