"""The panels and their keys. A key with no panel yet does nothing."""

from __future__ import annotations

import importlib

from packettracer.screens.base import Panel

# key -> (panel id, "module:Class"), in key order 1..9, 0
PANELS: dict[str, tuple[str, str]] = {
    "1": ("traffic", "packettracer.screens.traffic:TrafficPanel"),
    "2": ("paths", "packettracer.screens.paths:PathsPanel"),
    "3": ("stats", "packettracer.screens.stats:StatsPanel"),
    "4": ("analysis", "packettracer.screens.analysis:AnalysisPanel"),
    "5": ("ports", "packettracer.screens.ports:PortsPanel"),
    "6": ("dns", "packettracer.screens.dns:DnsPanel"),
    "7": ("relay", "packettracer.screens.relay:RelayPanel"),
    "8": ("alerts", "packettracer.screens.alerts:AlertsPanel"),
    "9": ("graph", "packettracer.screens.graph:GraphPanel"),
    "0": ("dpi", "packettracer.screens.dpi:DpiPanel"),
}

PANEL_NAMES = {
    "1": "traffic",
    "2": "paths",
    "3": "stats",
    "4": "analysis",
    "5": "ports",
    "6": "dns",
    "7": "relay",
    "8": "alerts",
    "9": "graph",
    "0": "dpi",
}


def panel_key(spec: str) -> str:
    """`--panel 3`, `--panel stats` or `--panel Stats` -> "3"; raises ValueError if unknown."""
    spec = spec.strip().lower()
    if spec in PANEL_NAMES:
        return spec
    for key, name in PANEL_NAMES.items():
        if name == spec:
            return key
    known = ", ".join(f"{k}={n}" for k, n in PANEL_NAMES.items())
    raise ValueError(f"unknown panel {spec!r} (known: {known})")


def load_panel(key: str) -> type[Panel] | None:
    entry = PANELS.get(key)
    if entry is None:
        return None
    module, _, cls = entry[1].partition(":")
    panel: type[Panel] = getattr(importlib.import_module(module), cls)
    return panel
