"""Panel 2, Paths: the traced targets, the current path of the selected one with per-hop
statistics and an RTT sparkline per hop, and its route history with the changes highlighted.
`a` asks for a new target, `x` stops tracing the selected one. It reads the trace feature's
state on the UI timer and never waits for the network."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Input, Static

from packettracer.model.trace import HopStats, TargetState, TracePath, sparkline
from packettracer.screens.base import Panel
from packettracer.services.runtime import Runtime
from packettracer.widgets.flow_table import sanitize

TARGET_COLUMNS = [
    ("target", "Target"),
    ("proto", "Probe"),
    ("hops", "Hops"),
    ("rtt", "RTT ms"),
    ("state", "State"),
    ("rounds", "Rounds"),
    ("changes", "Changes"),
    ("flow", "Flow"),
]
HOP_COLUMNS = [
    ("ttl", "TTL"),
    ("addr", "Address"),
    ("name", "Name"),
    ("asn", "AS"),
    ("cc", "CC"),
    ("loss", "Loss"),
    ("last", "Last"),
    ("avg", "Avg"),
    ("min", "Min"),
    ("max", "Max"),
    ("jitter", "Jitter"),
    ("spark", "RTT"),
]
SPARK_WIDTH = 20
HISTORY_LINES = 8


def _ms(value: float | None) -> Text:
    return Text("-" if value is None else f"{value:.2f}", justify="right")


def _state_text(state: TargetState) -> Text:
    if state.error:
        return Text("error", "bold red")
    if state.rounds == 0:
        return Text("starting", "dim")
    if state.reached:
        changed = bool(state.changes)
        return Text("changed" if changed else "reached", "bold yellow" if changed else "green")
    return Text("no answer", "red")


class TargetPrompt(Input):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel", show=False)]

    def action_cancel(self) -> None:
        panel = next((a for a in self.ancestors if isinstance(a, PathsPanel)), None)
        if panel is not None:
            panel.close_prompt()


class PathsPanel(Panel):
    PANEL_KEY = "2"
    PANEL_ID = "paths"
    PANEL_TITLE = "Paths"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "prompt", "Trace target"),
        Binding("x", "stop", "Stop trace"),
    ]

    DEFAULT_CSS = """
    PathsPanel #paths-summary { height: 1; background: $boost; }
    PathsPanel #paths-targets { height: auto; max-height: 8; }
    PathsPanel #paths-outcome { height: auto; border-top: solid $primary; }
    PathsPanel #paths-hops { height: 1fr; }
    PathsPanel #paths-history { height: auto; max-height: 14; border-top: solid $primary; }
    PathsPanel TargetPrompt { display: none; height: 3; }
    PathsPanel TargetPrompt.-open { display: block; }
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.keys: list[str] = []
        self._mark: Any = None
        self.history_text = Text()
        """What the route history box shows (kept for tests and the web view)."""

    def compose(self) -> ComposeResult:
        yield Static(id="paths-summary")
        targets: DataTable[Text] = DataTable(id="paths-targets", cursor_type="row")
        for key, label in TARGET_COLUMNS:
            targets.add_column(label, key=key)
        yield targets
        yield Static(id="paths-outcome")
        hops: DataTable[Text] = DataTable(id="paths-hops", cursor_type="none")
        for key, label in HOP_COLUMNS:
            hops.add_column(label, key=key)
        yield hops
        yield Static(id="paths-history")
        yield TargetPrompt(id="paths-prompt", placeholder="Trace: host name or address")

    def focus_main(self) -> None:
        self.query_one("#paths-targets", DataTable).focus()

    @property
    def feature(self) -> Any:
        return self.runtime.features.get("trace")

    def _targets(self) -> list[TargetState]:
        feature = self.feature
        return list(feature.targets) if feature is not None else []

    def selected(self) -> TargetState | None:
        table: DataTable[Text] = self.query_one("#paths-targets", DataTable)
        states = {s.target: s for s in self._targets()}
        if 0 <= table.cursor_row < len(self.keys):
            return states.get(self.keys[table.cursor_row])
        return None

    # -- refresh ----------------------------------------------------------------------------

    def refresh_view(self) -> None:
        feature = self.feature
        states = self._targets()
        table: DataTable[Text] = self.query_one("#paths-targets", DataTable)
        mark = (
            tuple((s.target, s.rounds, s.error, len(s.changes)) for s in states),
            table.cursor_row,
            getattr(feature, "message", None),
        )
        if mark == self._mark:
            return
        self._mark = mark
        self._summary(feature, states)
        keys = [s.target for s in states]
        with self.app.batch_update():
            if keys != self.keys:
                row = table.cursor_row
                table.clear()
                for state in states:
                    table.add_row(*self._target_cells(state), key=state.target)
                self.keys = keys
                if keys:
                    table.move_cursor(row=min(max(row, 0), len(keys) - 1))
            else:
                for state in states:
                    cells = self._target_cells(state)
                    for (col, _), cell in zip(TARGET_COLUMNS, cells, strict=True):
                        table.update_cell(state.target, col, cell)
            current = self.selected()
            self._show_hops(current)
            self._show_history(current)

    def _summary(self, feature: Any, states: list[TargetState]) -> None:
        line = Text(no_wrap=True, overflow="ellipsis")
        if feature is None:
            line.append(" Tracing is not available in this mode", "dim")
        elif feature.message:
            line.append(f" {sanitize(feature.message)}", "bold red")
        elif not states:
            line.append(
                " No targets: start with -t TARGET, press a, or Enter on flows in Traffic", "dim"
            )
        else:
            changes = sum(len(s.changes) for s in states)
            line.append(f" {len(states)} targets traced, {changes} route changes")
            events = getattr(feature, "events", None)
            if events:
                line.append("  latest: ")
                line.append(sanitize(events[-1]), "bold yellow")
        self.query_one("#paths-summary", Static).update(line)

    def _target_cells(self, state: TargetState) -> list[Text]:
        name = sanitize(state.target)
        if state.address != state.target:
            name += f" ({state.address})"
        current = state.current
        rtt = current.rtt_ms if current is not None and current.reached else None
        return [
            Text(name, "bold", no_wrap=True, overflow="ellipsis"),
            Text(state.proto),
            Text(str(current.hop_count) if current else "-", justify="right"),
            _ms(rtt),
            _state_text(state),
            Text(str(state.rounds), justify="right"),
            Text(str(len(state.changes)), "bold yellow" if state.changes else "", justify="right"),
            Text(sanitize(state.flow_id), "dim"),
        ]

    def _show_hops(self, state: TargetState | None) -> None:
        hops: DataTable[Text] = self.query_one("#paths-hops", DataTable)
        outcome = self.query_one("#paths-outcome", Static)
        hops.clear()
        if state is None:
            outcome.update("")
            return
        line = Text(no_wrap=True, overflow="ellipsis")
        if state.error:
            line.append(f" {sanitize(state.error)}", "bold red")
        else:
            line.append(f" {sanitize(state.target)}", "bold")
            if state.address != state.target:
                line.append(f" ({state.address})")
            line.append(f"  {sanitize(state.flow_id) or state.proto}", "dim")
            message = state.outcome() if state.rounds else None
            if message:
                line.append(f"  {sanitize(message)}", "red")
            elif state.reached:
                line.append("  destination reached", "green")
        outcome.update(line)
        if state.error:
            return
        for hop in state.hop_list():
            hops.add_row(*self._hop_cells(hop))

    def _hop_cells(self, hop: HopStats) -> list[Text]:
        if hop.silent:
            return [Text(str(hop.ttl), justify="right"), Text("*", "dim")] + [
                Text("") for _ in HOP_COLUMNS[2:]
            ]
        addr = Text(hop.address or "*")
        if len(hop.addresses) > 1:
            addr.append(f" +{len(hop.addresses) - 1}", "yellow")
        if hop.destination:
            addr.stylize("bold green")
        if hop.unreachable:
            addr.append(f" {hop.unreachable}", "bold red")
        loss_style = "red" if hop.loss >= 0.5 else "yellow" if hop.loss > 0 else ""
        samples: list[float | None] = list(hop.samples)
        return [
            Text(str(hop.ttl), justify="right"),
            addr,
            Text(sanitize(hop.name or ""), no_wrap=True, overflow="ellipsis"),
            Text(f"AS{hop.asn}" if hop.asn else ""),
            Text(hop.country or ""),
            Text(f"{hop.loss * 100:.0f}%", loss_style, justify="right"),
            _ms(hop.last_ms),
            _ms(hop.avg_ms),
            _ms(hop.min_ms),
            _ms(hop.max_ms),
            _ms(hop.jitter_ms),
            Text(sparkline(samples, SPARK_WIDTH), "cyan"),
        ]

    def _show_history(self, state: TargetState | None) -> None:
        box = self.query_one("#paths-history", Static)
        if state is None or not state.paths:
            self.history_text = Text(" Route history: none yet", "dim")
            box.update(self.history_text)
            return
        changes = {c.timestamp: c for c in state.changes}
        shifts = {s.timestamp: s for s in state.shifts}
        text = Text(f" Route history of {sanitize(state.target)}", "bold")
        text.append(f" ({len(state.paths)} traces, {len(state.changes)} changes)\n")
        paths: list[TracePath] = list(state.paths)[-HISTORY_LINES:]
        for path in reversed(paths):
            change = changes.get(path.timestamp)
            when = time.strftime("%H:%M:%S", time.localtime(path.timestamp))
            text.append(f" {when} ", "bold yellow" if change else "dim")
            changed_ttls = {c.ttl for c in change.hop_changes} if change else set()
            for i, hop in enumerate(path.hops):
                if i:
                    text.append(" > ", "dim")
                style = "bold yellow" if hop.ttl in changed_ttls else ""
                text.append(hop.address or "*", style)
            if not path.reached:
                text.append("  (not reached)", "red")
            text.append("\n")
            if change is not None:
                text.append(f"   ! {sanitize(change.summary())}\n", "bold yellow")
            shift = shifts.get(path.timestamp)
            if shift is not None:
                text.append(f"   ! {sanitize(shift.summary())}\n", "yellow")
        self.history_text = text
        box.update(text)

    # -- actions ----------------------------------------------------------------------------

    async def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._mark = None
        self.refresh_view()

    def action_prompt(self) -> None:
        prompt = self.query_one(TargetPrompt)
        prompt.value = ""
        prompt.add_class("-open")
        prompt.focus()

    def close_prompt(self) -> None:
        self.query_one(TargetPrompt).remove_class("-open")
        self.focus_main()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        target = event.value.strip()
        feature = self.feature
        if target and feature is not None:
            feature.trace(target)
        self.close_prompt()
        self._mark = None

    def action_stop(self) -> None:
        state = self.selected()
        feature = self.feature
        if state is not None and feature is not None:
            feature.stop(state.target)
            self._mark = None
            self.refresh_view()
