"""The Traffic panel's Name, Cc (country) and AS/Org columns, added when the resolution feature
runs in the dashboard (the feature imports this module; the panel reads `FLOW_COLUMNS`).

The name carries a small marker of where it came from (ᵈ DNS answer, ˢ TLS/QUIC SNI, ʰ HTTP
Host, ʳ reverse DNS), so a CDN's PTR name is not mistaken for the name the client asked for."""

from __future__ import annotations

import time
from typing import Any

from packettracer.model.names import MARKERS
from packettracer.widgets.flow_table import Column, add_flow_column

_feature: Any = None
_views: dict[int, tuple[float, Any]] = {}
VIEW_MAX_AGE = 1.0
"""A row's name/geo is looked up at most once a second (three columns share the answer)."""


def _view(flow: Any) -> Any:
    if _feature is None:
        return None
    now = time.monotonic()
    cached = _views.get(flow.id)
    if cached is not None and now - cached[0] < VIEW_MAX_AGE:
        return cached[1]
    if len(_views) > 5000:
        _views.clear()
    view = _feature.describe(flow)
    _views[flow.id] = (now, view)
    return view


def _name(flow: Any) -> str | None:
    view = _view(flow)
    if view is None or not view.name:
        return None
    return f"{view.name} {MARKERS.get(view.name_source or '', '')}".rstrip()


def _country(flow: Any) -> str | None:
    view = _view(flow)
    if view is None:
        return None
    return view.country or view.label


def _org(flow: Any) -> str | None:
    view = _view(flow)
    if view is None:
        return None
    if view.asn and view.as_org:
        return f"AS{view.asn} {view.as_org}"
    return view.as_org


def register(feature: Any) -> None:
    global _feature
    _feature = feature
    _views.clear()
    add_flow_column(Column("name", "Name", 28, _name), after="dport")
    add_flow_column(Column("country", "Cc", 4, _country))
    add_flow_column(Column("as_org", "AS / Org", 20, _org))
