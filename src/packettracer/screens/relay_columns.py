"""The Traffic panel's Site column (the capture site a relayed flow came from, `local` for this
host's own capture), added when the dashboard collects from remote agents (the relay feature
imports this module)."""

from __future__ import annotations

from typing import Any

from packettracer.widgets.flow_table import Column, add_flow_column


def _site(flow: Any) -> str:
    return str(flow.site or "local")


def register() -> None:
    add_flow_column(Column("site", "Site", 10, _site), after="proto")


register()
