"""The Traffic panel's Application and Category columns, added when the DPI feature runs in
the dashboard (the feature imports this module; the panel reads `FLOW_COLUMNS`)."""

from __future__ import annotations

from packettracer.widgets.flow_table import Column, add_flow_column


def _app(flow: object) -> str | None:
    get = getattr(flow, "get", None)
    if get is None:
        return None
    app = get("app")
    if app is not None and get("confidence") == "port-guess":
        return f"{app}?"  # a guess from the port alone
    return app


def register() -> None:
    add_flow_column(Column("app", "App", 12, _app), after="state")
    add_flow_column(Column("category", "Category", 10, lambda f: f.get("category")), after="app")


register()
