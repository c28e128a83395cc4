"""The Traffic panel's Threat column: the blocklist a flow's address is on (or "bogon"), added
when the security feature runs in the dashboard (the feature imports this module)."""

from __future__ import annotations

from typing import Any

from packettracer.widgets.flow_table import Column, add_flow_column


def _threat(flow: Any) -> str | None:
    ext = flow.ext
    return None if ext is None else ext.get("threat")


def register() -> None:
    add_flow_column(Column("threat", "Threat", 10, _threat))


register()
