"""The Traffic panel's Application and Category columns, added when the DPI feature runs in
the dashboard (the feature imports this module; the panel reads `FLOW_COLUMNS`)."""

from __future__ import annotations

from typing import Any

from packettracer.model.dpi.rules import rules
from packettracer.widgets.flow_table import Column, add_flow_column


def flow_app(flow: Any) -> str | None:
    ext = flow.ext
    if ext is None or "app" not in ext:
        # Not inspected yet (or nothing in its payload so far): what the port suggests.
        guess = rules().port_guess(flow.proto, flow.sport, flow.dport)
        return f"{guess}?" if guess else None
    app = ext.get("app")
    if app is not None and ext.get("confidence") == "port-guess":
        return f"{app}?"  # a guess from the port alone
    return app


def flow_category(flow: Any) -> str | None:
    ext = flow.ext
    if ext is None or "category" not in ext:
        guess = rules().port_guess(flow.proto, flow.sport, flow.dport)
        return rules().info(guess).category if guess else None
    return ext.get("category")


def register() -> None:
    add_flow_column(Column("app", "App", 12, flow_app), after="state")
    add_flow_column(Column("category", "Category", 10, flow_category), after="app")


register()
