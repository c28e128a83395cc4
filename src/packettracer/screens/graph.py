"""Panel 9, Graph: who talks to whom. Local hosts in the middle, remote hosts (or, with `g`, their
AS/organisation) around them, edges weighted by bytes, hosts with unacknowledged alerts or on a
blocklist highlighted. Arrows move the focus; Enter shows the focused host's flows in Traffic."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Static

from packettracer.screens.base import Panel
from packettracer.screens.traffic import TrafficPanel
from packettracer.services.runtime import Runtime
from packettracer.widgets.flow_table import human_bytes, sanitize
from packettracer.widgets.graph import GraphView, Node, Placed, Topology, build_topology

REBUILD_INTERVAL = 1.0


class FocusableGraph(GraphView):
    can_focus = True


class GraphPanel(Panel):
    PANEL_KEY = "9"
    PANEL_ID = "graph"
    PANEL_TITLE = "Graph"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move('up')", "Up", show=False),
        Binding("down", "move('down')", "Down", show=False),
        Binding("left", "move('left')", "Left", show=False),
        Binding("right", "move('right')", "Right", show=False),
        Binding("enter", "show_flows", "Host flows"),
        Binding("g", "toggle_org", "Hosts/ASes"),
    ]

    DEFAULT_CSS = """
    GraphPanel #graph-info { height: 1; background: $boost; }
    GraphPanel FocusableGraph { height: 1fr; }
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.by_org = False
        self.focus_key: str | None = None
        self.topology = Topology([], [], 0, 0)
        self.message = ""
        self._built = 0.0
        self._area: tuple[int, int] = (0, 0)
        self._mark: tuple[int, int] = (-1, -1)

    def compose(self) -> ComposeResult:
        yield Static(id="graph-info")
        yield FocusableGraph(id="graph-view")

    @property
    def graph(self) -> FocusableGraph:
        return self.query_one(FocusableGraph)

    def focus_main(self) -> None:
        self.graph.focus()

    # -- data ---------------------------------------------------------------------------------

    def _flows(self) -> list[Any]:
        all_flows = getattr(self.runtime, "all_flows", None)
        if all_flows is not None:
            return list(all_flows())
        return list(self.runtime.pipeline.flows)

    def _alerting(self) -> dict[str, str]:
        out: dict[str, str] = {}
        security = self.runtime.features.get("security")
        for host, why in (getattr(security, "threats", None) or {}).items():
            if why not in ("scanner", "bogon"):
                out[host] = "high"  # on a blocklist
        alerts = self.runtime.features.get("alerts")
        hosts = getattr(alerts, "hosts_alerting", None)
        if callable(hosts):
            out.update(hosts())
        return out

    def refresh_view(self, force: bool = False) -> None:
        graph = self.graph
        size = (graph.size.width, graph.size.height)
        pipeline = self.runtime.pipeline
        mark = (pipeline.stats.packets, len(pipeline.flows))
        now = time.monotonic()
        if not force and size == self._area and mark == self._mark:
            self._show_info()
            return
        if not force and now - self._built < REBUILD_INTERVAL and size == self._area:
            return
        self._built, self._area, self._mark = now, size, mark
        width, height = size
        rows = max(1, height - 2)
        self.topology = build_topology(
            self._flows(),
            self._alerting(),
            max_locals=max(1, min(12, rows // 2)),
            max_remotes=max(2, min(80, rows * 2)),
            by_org=self.by_org,
        )
        keys = [n.key for n in (*self.topology.locals, *self.topology.remotes)]
        if self.focus_key not in keys:
            self.focus_key = keys[0] if keys else None
        graph.set_topology(self.topology, self.focus_key)
        self._show_info()

    def invalidate(self) -> None:
        self.refresh_view(force=True)

    def focused_node(self) -> Node | None:
        for node in (*self.topology.locals, *self.topology.remotes):
            if node.key == self.focus_key:
                return node
        return None

    def _show_info(self) -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        node = self.focused_node()
        mode = "ASes" if self.by_org else "hosts"
        if node is None:
            line.append(f" no traffic yet  (remote {mode})")
        else:
            kind = "local" if node.local else "remote"
            line.append(f" {kind} ")
            line.append(sanitize(node.label), style="bold")
            line.append(f"  {human_bytes(node.bytes)}  {len(node.peers)} peers")
            if node.aggregate and len(node.hosts) > 1:
                line.append(f"  {len(node.hosts)} addresses")
            if node.severity:
                line.append(f"  alert: {node.severity}", style="bold red")
            line.append(f"  (remote {mode}; g toggles)")
        if self.message:
            line.append("  ")
            line.append(sanitize(self.message), style="bold red")
        self.query_one("#graph-info", Static).update(line)

    # -- actions ------------------------------------------------------------------------------

    def _placed(self) -> list[Placed]:
        return self.graph.placed

    def action_move(self, direction: str) -> None:
        placed = self._placed()
        current = next((p for p in placed if p.node.key == self.focus_key), None)
        if current is None:
            if placed:
                self.focus_key = placed[0].node.key
        else:
            target = _neighbour(placed, current, direction)
            if target is not None:
                self.focus_key = target.node.key
        self.message = ""
        self.graph.set_topology(self.topology, self.focus_key)
        self._show_info()

    def action_toggle_org(self) -> None:
        self.by_org = not self.by_org
        self.invalidate()

    def _traffic(self) -> TrafficPanel | None:
        panels = list(self.app.query(TrafficPanel))
        return panels[0] if panels else None

    async def action_show_flows(self) -> None:
        node = self.focused_node()
        if node is None:
            return
        address = node.address
        if address is None:
            self.message = "an aggregate: focus a single host for its flows"
            self._show_info()
            return
        await self.app.run_action("show_panel('1')")
        traffic = self._traffic()
        if traffic is not None:
            traffic.view.set_ip_filter(address)
            traffic.invalidate()


def _neighbour(placed: list[Placed], current: Placed, direction: str) -> Placed | None:
    side = current.side
    if direction in ("up", "down"):
        same = [p for p in placed if p.side == side]
        if direction == "up":
            above = [p for p in same if p.row < current.row]
            return max(above, key=lambda p: p.row) if above else None
        below = [p for p in same if p.row > current.row]
        return min(below, key=lambda p: p.row) if below else None
    order = ["L", "M", "R"]
    i = order.index(side) + (-1 if direction == "left" else 1)
    while 0 <= i < len(order):
        column = [p for p in placed if p.side == order[i]]
        if column:
            return min(column, key=lambda p: (abs(p.row - current.row), p.row))
        i += -1 if direction == "left" else 1
    return None
