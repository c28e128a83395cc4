"""Panel 7, Relay: the remote agents streaming to this dashboard, one row each, with details for
the agent under the cursor. Enter shows that site's flows in the Traffic panel."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Static

from packettracer.screens.base import Panel
from packettracer.screens.traffic import TrafficPanel
from packettracer.services.runtime import Runtime
from packettracer.widgets.flow_table import human_count, human_rate, sanitize

COLUMNS = [
    ("site", "Site"),
    ("host", "Host"),
    ("iface", "Interface"),
    ("version", "Version"),
    ("status", "Status"),
    ("beat", "Heartbeat"),
    ("lag", "Lag"),
    ("pps", "Pkt/s"),
    ("drops", "Drops"),
    ("flows", "Flows"),
    ("alerts", "Alerts"),
    ("cpu", "CPU"),
    ("mem", "Memory"),
    ("msgs", "Msg/s"),
]
STATUS_STYLE = {"live": "green", "late": "yellow", "lost": "bold red"}


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"


def _bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


class RelayPanel(Panel):
    PANEL_KEY = "7"
    PANEL_ID = "relay"
    PANEL_TITLE = "Relay"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "show_site", "Site flows"),
        Binding("escape", "clear_site", "All sites", show=False),
    ]

    DEFAULT_CSS = """
    RelayPanel #relay-summary { height: 1; background: $boost; }
    RelayPanel DataTable { height: 1fr; }
    RelayPanel #relay-detail { height: auto; max-height: 12; border-top: solid $primary; }
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.sites: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(id="relay-summary")
        table: DataTable[Text] = DataTable(id="relay-agents", cursor_type="row", zebra_stripes=True)
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table
        yield Static(id="relay-detail")

    def focus_main(self) -> None:
        self.query_one(DataTable).focus()

    @property
    def collector(self) -> Any:
        relay = self.runtime.features.get("relay")
        return getattr(relay, "collector", None)

    def refresh_view(self) -> None:
        summary = self.query_one("#relay-summary", Static)
        table: DataTable[Text] = self.query_one(DataTable)
        collector = self.collector
        if collector is None:
            summary.update(
                Text(" No relay: start with --relay nats://HOST:4222 or --relay-listen", "dim")
            )
            return
        now = time.time()
        agents = sorted(collector.agents.values(), key=lambda a: a.site)
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f" {len(agents)} agents  ")
        line.append(
            "connected" if collector.connected else "disconnected",
            "green" if collector.connected else "bold red",
        )
        line.append(
            f"  {len(collector.flows)} remote flows active, {collector.ended_total} ended"
            f"  dropped messages: {collector.malformed} malformed, {collector.oversized} oversized"
        )
        p99 = collector.latency_p99()
        if p99 is not None:
            line.append(f"  p99 latency {p99 * 1000:.0f} ms")
        summary.update(line)
        keys = [a.site for a in agents]
        with self.app.batch_update():
            if keys != self.sites:
                table.clear()
                for agent in agents:
                    table.add_row(*self._cells(agent, now), key=agent.site)
                self.sites = keys
            else:
                for agent in agents:
                    for (col, _), cell in zip(COLUMNS, self._cells(agent, now), strict=True):
                        table.update_cell(agent.site, col, cell)
        self._show_detail(agents)

    def _cells(self, agent: Any, now: float) -> list[Text]:
        beat = None if agent.last_heartbeat is None else now - agent.last_heartbeat
        return [
            Text(sanitize(agent.site), "bold"),
            Text(sanitize(agent.host)),
            Text(sanitize(agent.interface)),
            Text(sanitize(agent.version)),
            Text(agent.status, STATUS_STYLE.get(agent.status, "")),
            Text(_age(beat)),
            Text(f"{agent.lag * 1000:.0f} ms", justify="right"),
            Text(human_count(agent.pps), justify="right"),
            Text(human_count(agent.drops), justify="right"),
            Text(human_count(agent.flows_active), justify="right"),
            Text(human_count(agent.alerts), justify="right"),
            Text(f"{agent.cpu:.0f}%", justify="right"),
            Text(_bytes(agent.rss), justify="right"),
            Text(f"{agent.msg_rate:.1f}", justify="right"),
        ]

    def _cursor_site(self) -> str | None:
        table: DataTable[Text] = self.query_one(DataTable)
        if 0 <= table.cursor_row < len(self.sites):
            return self.sites[table.cursor_row]
        return None

    def _show_detail(self, agents: list[Any]) -> None:
        detail = self.query_one("#relay-detail", Static)
        site = self._cursor_site()
        agent = next((a for a in agents if a.site == site), None)
        if agent is None:
            detail.update("")
            return
        text = Text()
        text.append(f"{sanitize(agent.site)}", "bold")
        text.append(f" on {sanitize(agent.host)}, interface {sanitize(agent.interface)}\n")
        text.append(f"  status {agent.status}, first seen {time.ctime(agent.first_seen)}\n")
        text.append(
            f"  captured {human_count(agent.packets)} packets, {_bytes(agent.bytes)};"
            f" {human_rate(agent.bps)} now; {human_count(agent.drops)} dropped\n"
        )
        text.append(
            f"  flows: {agent.flows_active} active, {agent.flows_ended} ended;"
            f" alerts {agent.alerts}; spooled {agent.spooled}; messages {agent.messages}"
        )
        detail.update(text)

    def _traffic(self) -> TrafficPanel | None:
        panels = list(self.app.query(TrafficPanel))
        return panels[0] if panels else None

    async def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # The table consumes Enter itself and reports it as a selected row.
        event.stop()
        await self.action_show_site()

    async def action_show_site(self) -> None:
        site = self._cursor_site()
        if site is None:
            return
        traffic = self._traffic()
        if traffic is not None:
            traffic.view.set_site(site)
            traffic.invalidate()
        await self.app.run_action("show_panel('1')")
        traffic = self._traffic()
        if traffic is not None and traffic.view.site != site:
            traffic.view.set_site(site)
            traffic.invalidate()

    def action_clear_site(self) -> None:
        traffic = self._traffic()
        if traffic is not None:
            traffic.view.set_site(None)
            traffic.invalidate()
