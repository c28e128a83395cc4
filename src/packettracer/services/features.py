"""Feature plug-ins: each capability (store, resolution, DPI, security, ...) attaches its analyzers
and services to a Runtime, and may add to the report. The dashboard, `report` and `agent` all call
`install_features`, so every front end gets the same analysis.

To add a feature: write a class with `name`, `attach(runtime)` and optionally
`extend_report(runtime, result)`, and list its factory in `FEATURE_FACTORIES`.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Protocol

from packettracer.services.runtime import Runtime

log = logging.getLogger(__name__)


class Feature(Protocol):
    name: str

    def attach(self, runtime: Runtime) -> None:
        """Add analyzers to runtime.pipeline, services via runtime.add_service, and register
        itself in runtime.features[name] so panels and other features can find it."""
        ...


# "module:factory" entries; a factory takes (runtime, mode) and returns a Feature or None
# (None: not wanted in this mode or with these settings). Order matters: later features may
# look up earlier ones in runtime.features (e.g. alerts are fed by DPI and the scan detector).
FEATURE_FACTORIES: list[str] = [
    "packettracer.services.store_feature:create_store_feature",
    "packettracer.services.resolution_feature:create_resolution_feature",
    "packettracer.services.dpi_feature:create_dpi_feature",
    "packettracer.services.security_feature:create_security_feature",
    "packettracer.services.dpi_alerts:make_feature",
    "packettracer.services.relay_feature:make_feature",
    "packettracer.services.trace_feature:make_feature",
    "packettracer.services.packet_ring:make_feature",
]

MODES = ("dashboard", "report", "agent")


def install_features(runtime: Runtime, mode: str) -> list[Any]:
    """Create and attach every feature for `mode`; returns them in order."""
    installed: list[Any] = []
    for spec in FEATURE_FACTORIES:
        module_name, _, factory_name = spec.partition(":")
        factory = getattr(importlib.import_module(module_name), factory_name)
        feature = factory(runtime, mode)
        if feature is None:
            continue
        feature.attach(runtime)
        runtime.features[feature.name] = feature
        installed.append(feature)
    return installed
