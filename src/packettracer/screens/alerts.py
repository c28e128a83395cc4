"""Panel 8, Alerts: every alert, worst and newest first, with the evidence of the one under the
cursor. Keys acknowledge one or all shown, suppress alerts like the selected one, filter by
severity and state, and Enter shows the alert's host in the Traffic panel."""

from __future__ import annotations

import json
import time
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from packettracer.model.alerts import SEVERITIES, Alert, entity_hosts
from packettracer.screens.base import Panel
from packettracer.screens.traffic import TrafficPanel
from packettracer.services.runtime import Runtime
from packettracer.widgets.flow_table import sanitize
from packettracer.widgets.graph import SEVERITY_STYLE

COLUMNS = [
    ("sev", "Severity"),
    ("time", "Last seen"),
    ("kind", "Kind"),
    ("count", "Count"),
    ("ack", "Ack"),
    ("title", "Alert"),
]
STATES = ("all", "unacked", "acked")
SUPPRESS_FOR = 3600.0


def _clock(ts: float) -> str:
    return time.strftime("%m-%d %H:%M:%S", time.localtime(ts))


class AlertsPanel(Panel):
    PANEL_KEY = "8"
    PANEL_ID = "alerts"
    PANEL_TITLE = "Alerts"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "ack", "Ack"),
        Binding("A", "ack_all", "Ack shown"),
        Binding("s", "suppress('host')", "Mute like this 1h"),
        Binding("S", "suppress('kind')", "Mute kind"),
        Binding("v", "cycle_severity", "Severity"),
        Binding("u", "cycle_state", "State"),
        Binding("enter", "show_host", "Host flows"),
    ]

    DEFAULT_CSS = """
    AlertsPanel #alerts-summary { height: 1; background: $boost; }
    AlertsPanel DataTable { height: 1fr; }
    AlertsPanel #alerts-detail {
        height: auto;
        max-height: 14;
        border-top: solid $primary;
        padding: 0 1;
    }
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.min_severity: str | None = None
        self.state = "all"
        self.shown: list[Alert] = []
        self.message = ""
        self._mark: tuple[Any, ...] | None = None

    def compose(self) -> ComposeResult:
        yield Static(id="alerts-summary")
        table: DataTable[Text] = DataTable(id="alerts-table", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static(id="alerts-detail")

    def focus_main(self) -> None:
        self.query_one(DataTable).focus()

    @property
    def service(self) -> Any:
        return self.runtime.features.get("alerts")

    # -- refresh ------------------------------------------------------------------------------

    def refresh_view(self, force: bool = False) -> None:
        service = self.service
        summary = self.query_one("#alerts-summary", Static)
        if service is None:
            summary.update(Text(" Alerts are off ([security] enabled = false)", "dim"))
            return
        engine = service.engine
        alerts = engine.sorted(self.min_severity, self.state)
        mark = tuple((a.id, a.count, a.acked_at, a.severity) for a in alerts)
        if force or mark != self._mark:
            self._mark = mark
            self._fill(alerts)
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f" {len(engine.alerts)} alerts, ")
        unacked = service.unacknowledged_count()
        line.append(f"{unacked} unacknowledged", "bold red" if unacked else "")
        line.append(f"  showing {len(alerts)}: severity ≥ {self.min_severity or 'info'}")
        line.append(f", {self.state}")
        if engine.rules:
            line.append(f"  {len(engine.rules)} suppression rules ({engine.suppressed} muted)")
        if engine.rate_limited:
            line.append(f"  {engine.rate_limited} rate-limited")
        if self.message:
            line.append("  ")
            line.append(sanitize(self.message), "bold yellow")
        summary.update(line)
        self._show_detail()

    def _fill(self, alerts: list[Alert]) -> None:
        table: DataTable[Text] = self.query_one(DataTable)
        current = self.cursor_alert()
        self.shown = alerts
        with self.app.batch_update():
            table.clear()
            for alert in alerts:
                style = SEVERITY_STYLE.get(alert.severity, "")
                if alert.acked:
                    style = "dim"
                table.add_row(
                    Text(alert.severity, style),
                    Text(_clock(alert.last_seen)),
                    Text(sanitize(alert.kind)),
                    Text(str(alert.count), justify="right"),
                    Text(sanitize(alert.acked_by or "?") if alert.acked else "-"),
                    Text(sanitize(alert.title), style if alert.acked else ""),
                    key=alert.id,
                )
            if current is not None:
                for i, alert in enumerate(alerts):
                    if alert.id == current.id:
                        table.move_cursor(row=i)
                        break

    def cursor_alert(self) -> Alert | None:
        table: DataTable[Text] = self.query_one(DataTable)
        if 0 <= table.cursor_row < len(self.shown):
            return self.shown[table.cursor_row]
        return None

    def _show_detail(self) -> None:
        detail = self.query_one("#alerts-detail", Static)
        alert = self.cursor_alert()
        if alert is None:
            detail.update(Text("no alert selected", "dim"))
            return
        text = Text()
        text.append(sanitize(alert.title), "bold")
        text.append(f"\n{alert.severity} {sanitize(alert.kind)}  ×{alert.count}  ")
        text.append(f"first {_clock(alert.first_seen)}  last {_clock(alert.last_seen)}")
        if alert.source:
            text.append(f"  from {sanitize(alert.source)}")
        if alert.acked and alert.acked_at is not None:
            text.append(
                f"\nacknowledged by {sanitize(alert.acked_by or '?')} at {_clock(alert.acked_at)}"
            )
        ents = ", ".join(f"{k}={v}" for k, v in alert.entities.items())
        text.append(f"\nentities: {sanitize(ents)}")
        for key, value in alert.evidence.items():
            if isinstance(value, list | dict):
                value = json.dumps(value, separators=(",", ":"))
            shown = str(value)
            if len(shown) > 200:
                shown = shown[:199] + "…"
            text.append(f"\n  {sanitize(str(key))}: {sanitize(shown)}")
        detail.update(text)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail()

    # -- actions ------------------------------------------------------------------------------

    def action_ack(self) -> None:
        alert = self.cursor_alert()
        if alert is not None and self.service is not None:
            self.message = "acknowledged" if self.service.ack(alert.id) else "already acknowledged"
            self.refresh_view(force=True)

    def action_ack_all(self) -> None:
        if self.service is None:
            return
        n = self.service.ack_many([a.id for a in self.shown])
        self.message = f"acknowledged {n}"
        self.refresh_view(force=True)

    def action_suppress(self, by: str) -> None:
        alert = self.cursor_alert()
        if alert is None or self.service is None:
            return
        duration = SUPPRESS_FOR if by == "host" else None
        rule = self.service.suppress_like(alert, "both" if by == "host" else "kind", duration)
        self.message = f"muted {rule.describe()}"
        self.refresh_view(force=True)

    def action_cycle_severity(self) -> None:
        order: list[str | None] = [None, *SEVERITIES[1:]]
        self.min_severity = order[(order.index(self.min_severity) + 1) % len(order)]
        self.refresh_view(force=True)

    def action_cycle_state(self) -> None:
        self.state = STATES[(STATES.index(self.state) + 1) % len(STATES)]
        self.refresh_view(force=True)

    async def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        await self.action_show_host()

    async def action_show_host(self) -> None:
        alert = self.cursor_alert()
        hosts = entity_hosts(alert.entities) if alert is not None else []
        if not hosts:
            self.message = "this alert names no host"
            return
        await self.app.run_action("show_panel('1')")
        panels = list(self.app.query(TrafficPanel))
        if panels:
            panels[0].view.set_ip_filter(hosts[0])
            panels[0].invalidate()
