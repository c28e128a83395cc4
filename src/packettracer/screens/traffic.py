"""Panel 1, Traffic: the live flow table with filters, sort orders, selection and the
destinations view. The view logic lives in `model/flow_view.py`; this module only binds keys
and feeds the table."""

from __future__ import annotations

import dataclasses
import time
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from packettracer.model.flow_view import DestinationGroup, FlowView
from packettracer.model.flows import Flow
from packettracer.screens.base import Panel
from packettracer.services.runtime import Runtime
from packettracer.services.store_feature import destinations_history_line
from packettracer.widgets.flow_table import (
    DESTINATION_COLUMNS,
    FLOW_COLUMNS,
    Column,
    FlowDataTable,
    flow_rows,
    group_rows,
    sanitize,
)

# Least time between two recomputations of the view while nothing but traffic changed:
# sorting 50,000 flows costs tens of milliseconds, and rates change every half second anyway.
RECOMPUTE_INTERVAL = 0.3
# ... and never more than this share of the time, however many flows there are.
RECOMPUTE_SHARE = 0.15

# Address columns share the width left by the others: IPv4 fits in 15, IPv6 needs up to 39.
ADDRESS_COLUMNS = ("src", "dst")
ADDRESS_WIDTH = (15, 39)


def fit_columns(columns: list[Column], width: int, padding: int = 1) -> list[Column]:
    """The columns with the address columns sized to fill `width` (within ADDRESS_WIDTH)."""
    flexible = [c for c in columns if c.key in ADDRESS_COLUMNS]
    if not flexible:
        return columns
    # +1 for the selection mark column, +1 cell for the vertical scrollbar
    used = sum(c.width for c in columns if c.key not in ADDRESS_COLUMNS) + 1 + 1
    used += 2 * padding * (len(columns) + 1)
    share = (width - used) // len(flexible)
    share = max(ADDRESS_WIDTH[0], min(ADDRESS_WIDTH[1], share))
    return [dataclasses.replace(c, width=share) if c.key in ADDRESS_COLUMNS else c for c in columns]


class PromptInput(Input):
    """The one-line prompt of `/` and `:`; Escape cancels it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def action_cancel(self) -> None:
        panel = next((a for a in self.ancestors if isinstance(a, TrafficPanel)), None)
        if panel is not None:
            panel.close_prompt()


class TrafficPanel(Panel):
    PANEL_KEY = "1"
    PANEL_ID = "traffic"
    PANEL_TITLE = "Traffic"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_select", "Select"),
        Binding("a", "select_all", "All"),
        Binding("c", "clear_selection", "Clear"),
        Binding("slash", "prompt('ip')", "IP filter"),
        Binding("colon", "prompt('port')", "Port filter"),
        Binding("f", "cycle_proto", "Proto"),
        Binding("s", "cycle_sort", "Sort"),
        Binding("g", "toggle_grouped", "Dests"),
        Binding("enter", "trace_flows", "Trace"),
    ]

    DEFAULT_CSS = """
    TrafficPanel #traffic-view {
        height: 1;
        background: $boost;
    }
    TrafficPanel FlowDataTable {
        height: 1fr;
    }
    TrafficPanel PromptInput {
        display: none;
        height: 3;
    }
    TrafficPanel PromptInput.-open {
        display: block;
    }
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.view = FlowView()
        self.message = ""
        """A short note shown in the view line (a bad filter, ...)."""
        self.prompt_kind: str | None = None
        self.shown: list[Any] = []
        """Flows (or destination groups in the destinations view) in display order."""
        self.matching = 0
        self.total = 0
        self._dirty = True
        self._last_compute = 0.0
        self._interval = RECOMPUTE_INTERVAL
        self._data_mark: tuple[int, int] = (-1, -1)
        self._grouped_columns: bool | None = None
        self._fitted_width = 0

    def compose(self) -> ComposeResult:
        yield Static(id="traffic-view")
        yield FlowDataTable(id="flows")
        yield PromptInput(id="traffic-prompt")

    @property
    def table(self) -> FlowDataTable:
        return self.query_one(FlowDataTable)

    def on_mount(self) -> None:
        self.refresh_view()

    def on_resize(self, event: events.Resize) -> None:
        if event.size.width != self._fitted_width:
            self.invalidate()

    def focus_main(self) -> None:
        self.table.focus()

    # -- refresh ----------------------------------------------------------------------------

    def refresh_view(self) -> None:
        pipeline = self.runtime.pipeline
        mark = (pipeline.stats.packets, len(pipeline.flows))
        now = time.monotonic()
        if not self._dirty:
            if mark == self._data_mark and now - self._last_compute < 1.0:
                self._show_view_line()
                return
            if now - self._last_compute < self._interval:
                return
        self._data_mark = mark
        self._last_compute = now
        self._dirty = False
        self._recompute()
        cost = time.monotonic() - now
        self._interval = max(RECOMPUTE_INTERVAL, cost / RECOMPUTE_SHARE)

    def _recompute(self) -> None:
        table = self.table
        flows = self._all_flows()
        limit = self.runtime.settings.ui.table_rows
        view = self.view
        if view.selected:
            view.prune_selection({f.id for f in flows})
        width = self.size.width
        if self._grouped_columns != view.grouped or self._fitted_width != width:
            columns = DESTINATION_COLUMNS if view.grouped else FLOW_COLUMNS
            table.set_columns(fit_columns(columns, width) if width else columns)
            self._grouped_columns = view.grouped
            self._fitted_width = width
        matching = view.filter(flows)
        self.matching = len(matching)
        self.total = len(flows)
        selected = view.selected
        with self.app.batch_update():
            if view.grouped:
                groups = view.groups(matching, limit)
                self.shown = groups
                table.show(
                    group_rows(groups),
                    lambda g: bool(selected) and all(f.id in selected for f in g.flows),
                )
            else:
                top = view.top(matching, limit)
                self.shown = top
                table.show(flow_rows(top), lambda f: f.id in selected)
            self._show_view_line()

    def _show_view_line(self) -> None:
        view = self.view
        total = self.total
        unit = "destinations" if view.grouped else "flows"
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f" {len(self.shown)} {unit} shown, {self.matching} of {total} flows match")
        if view.grouped:
            history = destinations_history_line(self.runtime)  # cached; never waits
            if history:
                line.append("  " + sanitize(history), style="dim")
        if view.selected:
            line.append(f"  selected: {len(view.selected)}", style="bold")
        line.append("  ")
        line.append(sanitize(view.describe()))
        if self.message:
            line.append("  ")
            line.append(sanitize(self.message), style="bold red")
        self.query_one("#traffic-view", Static).update(line)

    def _all_flows(self) -> list[Flow]:
        # Local flows plus those relayed from remote sites, when the Runtime has any.
        all_flows = getattr(self.runtime, "all_flows", None)
        if all_flows is not None and getattr(self.runtime, "flow_providers", None):
            return list(all_flows())
        # The common case, without a generator step per flow (50,000 of them).
        return list(self.runtime.pipeline.flows.flows.values())

    def invalidate(self) -> None:
        """The view settings changed: recompute now."""
        self._dirty = True
        self.refresh_view()

    # -- what other features read -----------------------------------------------------------

    def cursor_item(self) -> Flow | DestinationGroup | None:
        index = self.table.cursor_row
        if 0 <= index < len(self.shown):
            item: Flow | DestinationGroup = self.shown[index]
            return item
        return None

    def cursor_flow(self) -> Flow | None:
        """The flow under the cursor (None in the destinations view or an empty table)."""
        item = self.cursor_item()
        return item if isinstance(item, Flow) else None

    def selected_flows(self) -> list[Flow]:
        """The selected flows still in memory; when none is selected, the flows under the cursor
        (one flow, or every flow of the destination under the cursor)."""
        if self.view.selected:
            ids = self.view.selected
            return [f for f in self._all_flows() if f.id in ids]
        item = self.cursor_item()
        if isinstance(item, DestinationGroup):
            return list(item.flows)
        return [item] if item is not None else []

    def export_rows(self) -> list[dict[str, Any]]:
        """What `e` writes: the selected flows if any, else the rows shown, as full records."""
        if self.view.selected:
            return [f.to_dict() for f in self.selected_flows()]
        rows: list[dict[str, Any]] = []
        for item in self.shown:
            if isinstance(item, DestinationGroup):
                rows.append(
                    {
                        "destination": item.address,
                        "flows": len(item.flows),
                        "packets": item.packets,
                        "bytes": item.bytes,
                        "protocols": sorted(item.protos),
                        "ports": sorted(item.ports),
                        "first_seen": item.first_seen,
                        "last_seen": item.last_seen,
                    }
                )
            else:
                rows.append(item.to_dict())
        return rows

    # -- actions ----------------------------------------------------------------------------

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        # The table consumes Enter itself and reports it as a selected row.
        event.stop()
        self.action_trace_flows()

    def action_trace_flows(self) -> None:
        """Enter: trace the remote ends of the selected flows (or of the one under the cursor)."""
        tracer = self.runtime.features.get("trace")
        if tracer is None:
            self.message = "tracing is not available here"
        else:
            targets = tracer.trace_flows(self.selected_flows())
            self.message = f"tracing {', '.join(targets)} (panel 2)" if targets else ""
        self.invalidate()

    def action_toggle_select(self) -> None:
        item = self.cursor_item()
        if item is None:
            return
        ids = [f.id for f in item.flows] if isinstance(item, DestinationGroup) else [item.id]
        self.view.toggle(ids)
        self.invalidate()

    def action_select_all(self) -> None:
        self.view.select_all(self._all_flows())
        self.invalidate()

    def action_clear_selection(self) -> None:
        self.view.clear_selection()
        self.invalidate()

    def action_cycle_proto(self) -> None:
        self.view.cycle_proto()
        self.invalidate()

    def action_cycle_sort(self) -> None:
        self.view.cycle_sort()
        self.invalidate()

    def action_toggle_grouped(self) -> None:
        self.view.toggle_grouped()
        self.invalidate()

    def action_prompt(self, kind: str) -> None:
        prompt = self.query_one(PromptInput)
        self.prompt_kind = kind
        if kind == "ip":
            current = self.view.ip_filter.text if self.view.ip_filter else ""
            prompt.placeholder = "IP filter: address part or CIDR (empty clears)"
        else:
            current = self.view.port_filter.text if self.view.port_filter else ""
            prompt.placeholder = "Port filter: 443, 80,443 or 8000-8100 (empty clears)"
        prompt.value = current
        prompt.add_class("-open")
        prompt.focus()

    def close_prompt(self) -> None:
        self.prompt_kind = None
        prompt = self.query_one(PromptInput)
        prompt.remove_class("-open")
        self.table.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        kind = self.prompt_kind
        try:
            if kind == "ip":
                self.view.set_ip_filter(event.value)
            elif kind == "port":
                self.view.set_port_filter(event.value)
            self.message = ""
        except ValueError as exc:
            self.message = str(exc)
        self.close_prompt()
        self.invalidate()
