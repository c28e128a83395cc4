"""The DPI feature: application and category per flow, OS per host, anomaly scores, and the
aggregates the Analysis, Ports and DPI panels and `report` show.

Per-packet work happens only for the first `[dpi] inspect_packets` packets of a flow; the rest is
per flow (at its end) or per refresh of a panel.
"""

from __future__ import annotations

import importlib
import logging
import socket
from collections import Counter
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from packettracer.capture.packet import TCP, UDP, Packet
from packettracer.errors import ConfigError
from packettracer.model.dpi import anomaly
from packettracer.model.dpi.aggregates import BEACON_MAX_BYTES, Aggregates, is_local
from packettracer.model.dpi.anomaly import Signal, signal
from packettracer.model.dpi.categories import UNKNOWN
from packettracer.model.dpi.inspector import UNKNOWN_FIELDS, DPIEngine
from packettracer.model.flows import Flow
from packettracer.services.pipeline import Analyzer
from packettracer.services.runtime import Runtime

log = logging.getLogger(__name__)

_EMPTY: dict[str, Any] = {}


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


class DPIAnalyzer(Analyzer):
    name = "dpi"

    def __init__(self, feature: DPIFeature, inspect_packets: int) -> None:
        self.feature = feature
        self.engine = feature.engine
        self.inspect_packets = inspect_packets
        # The engine's methods themselves: one call less per inspected packet and per flow.
        # The engine hands each verdict on to the aggregates.
        self.on_packet = self.engine.packet  # type: ignore[method-assign]
        self.on_flow_end = self.engine.flow_end  # type: ignore[method-assign,assignment]
        self.engine.ended_listener = feature.aggregates.account
        self.engine.flagged_listener = feature.flagged

    def on_packet(self, pkt: Packet, flow: Flow, forward: bool) -> None:
        self.engine.packet(pkt, flow, forward)

    def on_flow_end(self, flow: Flow) -> None:
        self.engine.flow_end(flow)

    def on_start(self) -> None:
        """What the other features do, once they are all attached."""
        runtime = self.feature.runtime
        security = runtime.features.get("security")
        self.engine.bogons_flagged = bool(security and getattr(security, "flag_bogons", False))
        inspectors = [
            a for a in runtime.pipeline.analyzers if a.inspect_packets > 0 and not a.all_packets
        ]
        self.engine.sole_inspector = inspectors == [self]

    def tick(self, now: float) -> None:
        self.feature.tick(now)

    def summary(self) -> dict[str, Any]:
        return self.feature.summary()


class DPIFeature:
    name = "dpi"

    def __init__(self, runtime: Runtime, mode: str) -> None:
        settings = runtime.settings.dpi
        self.runtime = runtime
        self.mode = mode
        self.engine = DPIEngine(bad_fingerprints=load_bad_fingerprints(settings.bad_fingerprints))
        # Aggregates of ended flows (the engine hands them over); panels add the live ones on
        # refresh.
        self.aggregates = Aggregates(settings.fan_out, self._fan_out)
        self.analyzer = DPIAnalyzer(self, max(1, settings.inspect_packets))
        self.beacon_hits: dict[tuple[str, str, int, int], Signal] = {}
        self._next_beacon_check = 0.0
        self.flagged_flows: list[dict[str, Any]] = []
        self.flagged_listeners: list[Callable[[Flow], None]] = []
        """Called with each ended flow that has an anomaly score or is classified malware."""

    @property
    def fan_out_threshold(self) -> int:
        """Distinct host:port pairs that make a host's fan-out a signal (`[dpi] fan_out`)."""
        return self.aggregates.fan_out

    def attach(self, runtime: Runtime) -> None:
        runtime.pipeline.add_analyzer(self.analyzer)
        runtime.add_service(self)
        # Flows the engine could say nothing about carry none of its fields: written out, they
        # have the unknown verdict's.
        runtime.flow_defaults.update(UNKNOWN_FIELDS)
        if self.mode == "dashboard":
            # The Traffic panel's App and Category columns (UI code: imported only here).
            importlib.import_module("packettracer.screens.dpi_columns")
        resolution = runtime.features.get("resolution")
        lookup = _name_lookup(resolution)
        if lookup is not None:
            self.engine.name_lookup = lookup
            # The table's own address index, when it has one: most addresses have no name, and
            # a membership test spares two calls per ended flow.
            index = getattr(getattr(resolution, "names", None), "_by_addr", None)
            if isinstance(index, dict):
                self.engine.name_index = index
        learn = getattr(resolution, "learn_name", None)
        if resolution is not None and learn is not None:
            # One reading of every flow's first packets: ours. The names in them go to the
            # resolution feature's table as we find them.
            self.engine.name_listener = learn
            resolution.names_from_dpi()

    async def run(self) -> None:
        """Started with the runtime, after every feature attached: see what the others do
        (until then the safe defaults apply: check bogons ourselves, read every first packet)."""
        self.analyzer.on_start()

    # ------------------------------------------------------------------ accounting

    def _fan_out(self, src: str, n: int) -> None:
        self.engine._host_signal(src, signal("fan_out", host=src, n=n))

    def flagged(self, flow: Flow) -> None:
        """An ended flow with an anomaly score or classified malware."""
        score = flow.get("anomaly_score") or 0
        if score >= 30 and len(self.flagged_flows) < 1000:
            self.flagged_flows.append(_flow_brief(flow))
        for listener in self.flagged_listeners:
            listener(flow)

    def sync(self) -> None:
        """Bring the aggregates up to date with every flow ended so far (views call it)."""
        self.engine.flush_ended()

    async def finish(self) -> None:
        """End of a capture file: host-level signals that need every flow."""
        self.detect_beacons()

    def tick(self, now: float) -> None:
        self.sync()
        if now >= self._next_beacon_check:
            self._next_beacon_check = now + 30.0
            self.detect_beacons()

    def detect_beacons(self) -> None:
        """Groups of small flows from one host to one service at a regular period."""
        self.sync()
        for key, times in self.aggregates.beacons.items():
            if len(times) < 5 or key in self.beacon_hits:
                continue
            period = anomaly.beacon_period(times)
            if period is None:
                continue
            src, dst, dport, _proto = key
            sig = signal("beaconing", n=len(times), peer=f"{dst}:{dport}", period=period)
            self.beacon_hits[key] = sig
            self.engine._host_signal(src, sig)

    # ------------------------------------------------------------------ views

    def live_flows(self) -> list[Flow]:
        return list(self.runtime.pipeline.flows)

    def breakdown(self, include_live: bool = True) -> dict[str, Any]:
        """Category and application totals (ended flows plus, optionally, the live ones)."""
        self.sync()
        categories: dict[str, tuple[int, int]] = {}
        apps: dict[str, tuple[int, int]] = {}
        enc = [0, 0]
        clear = [0, 0]
        for key, (nflows, nbytes) in self.aggregates.totals.items():
            app_name, cat_name, encrypted = key[0], key[1], key[2]
            f, n = categories.get(cat_name, (0, 0))
            categories[cat_name] = (f + nflows, n + nbytes)
            f, n = apps.get(app_name, (0, 0))
            apps[app_name] = (f + nflows, n + nbytes)
            target = enc if encrypted else clear
            target[0] += nflows
            target[1] += nbytes
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
        """Per (protocol, server port, local or remote side): service, flows, bytes."""
        self.sync()
        rows: dict[tuple[str, int, str], list[int]] = {}
        services: dict[tuple[str, int, str], Counter[str]] = {}

        def add(proto: int, port: int, local: bool, service: str | None, f: int, b: int) -> None:
            key = ("tcp" if proto == TCP else "udp", port, "local" if local else "remote")
            row = rows.setdefault(key, [0, 0])
            row[0] += f
            row[1] += b
            if service:
                services.setdefault(key, Counter())[service] += f

        for (_, _, _, proto, port, local, service), (f, b) in self.aggregates.totals.items():
            if proto in (TCP, UDP):
                add(proto, port, local, service, f, b)
        if include_live:
            for flow in self.live_flows():
                if flow.proto not in (TCP, UDP):
                    continue
                ext = flow.ext or _EMPTY
                add(flow.proto, flow.dport, is_local(flow.dst),
                    ext.get("protocol") or ext.get("app"), 1,
                    flow.bytes_fwd + flow.bytes_rev)  # fmt: skip
        rules = self.engine.rules
        out: list[dict[str, Any]] = []
        for (pname, port, side), (flows, nbytes) in rows.items():
            seen = services.get((pname, port, side))
            if seen:
                name = seen.most_common(1)[0][0]
            else:
                number = TCP if pname == "tcp" else UDP
                name = rules.port_guess(number, 0, port) or "-"
            out.append(
                {
                    "proto": pname,
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
        self.sync()
        counts: dict[str, set[tuple[str, int]]] = {
            k: set(v) for k, v in self.aggregates.distinct.items()
        }
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
        self.sync()
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
        self.sync()
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
        # Beaconing is known only once the flows are over: add it to their report rows.
        if self.beacon_hits:
            objects = getattr(result, "flow_objects", None)
            if objects:
                # Flow dicts are made from the objects later (and only if needed): mark those.
                # Only the beaconing hosts' flows are looked up (a set test for the others).
                sources = {key[0] for key in self.beacon_hits}
                for flow in objects:
                    if flow.src not in sources:
                        continue
                    sig = self.beacon_hits.get((flow.src, flow.dst, flow.dport, flow.proto))
                    if sig is not None and flow.bytes_fwd + flow.bytes_rev <= BEACON_MAX_BYTES:
                        if flow.ext is None:
                            flow.ext = {}
                        _add_signal(flow.ext, sig)
            else:
                numbers = {"tcp": TCP, "udp": UDP}
                for row in result.flows:
                    key = (row["src"], row["dst"], row["dport"], numbers.get(row["proto"], -1))
                    sig = self.beacon_hits.get(key)
                    if sig is not None and row["bytes_fwd"] + row["bytes_rev"] <= BEACON_MAX_BYTES:
                        _add_signal(row, sig)


def _add_signal(row: dict[str, Any], sig: Signal) -> None:
    reasons = list(row.get("anomaly_reasons") or [])
    if sig.reason in reasons:
        return
    reasons.append(sig.reason)
    old = row.get("anomaly_score") or 0
    row["anomaly_score"] = round(100 * (1 - (1 - old / 100) * (1 - sig.weight / 100)))
    row["anomaly_reasons"] = reasons


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


def _addr_key(addr: str) -> tuple[int, bytes]:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    try:
        return (family, socket.inet_pton(family, addr))
    except OSError:
        return (99, addr.encode())


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
