"""The Textual app: wires the Runtime to the panels and nothing else.

One timer (`settings.ui.refresh_interval`) ticks the Runtime, updates the status bar and asks the
visible panel to refresh itself; panels are created the first time their key is pressed.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import ClassVar

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import ContentSwitcher, DataTable, Footer

from packettracer.automation import publish_state
from packettracer.capture.pcapfile import Frame
from packettracer.screens.base import Panel
from packettracer.screens.exporting import panel_rows
from packettracer.screens.registry import PANEL_NAMES, load_panel
from packettracer.services.export import export_path, write_pcapng, write_rows
from packettracer.services.runtime import Runtime
from packettracer.widgets.status_bar import Status, StatusBar

log = logging.getLogger(__name__)

PANEL_KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0")


@dataclass
class SnapshotPlan:
    """`--snapshot`: what to capture and where to write it."""

    path: str
    duration: float = 5.0
    """Seconds of live capture; a file is replayed to its end instead."""


class PacketTracerApp(App[int]):
    TITLE = "PacketTracer"
    # Focus is the shown panel's to give (`show_panel` -> `focus_main`). Textual's auto-focus of
    # the first focusable widget raced with it: the DPI panel came up with its hosts table
    # focused or its flows table, depending on timing.
    AUTO_FOCUS = None

    CSS = """
    Screen {
        layout: vertical;
    }
    ContentSwitcher {
        height: 1fr;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        *(Binding(k, f"show_panel('{k}')", PANEL_NAMES[k].title(), show=False) for k in PANEL_KEYS),
        Binding("p", "toggle_pause", "Pause"),
        Binding("e", "export('csv')", "Export"),
        Binding("E", "export('json')", "Export JSON", show=False),
        Binding("w", "write_pcapng", "pcapng"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(
        self,
        runtime: Runtime,
        panel: str = "1",
        snapshot: SnapshotPlan | None = None,
        fixed_clock: bool = False,
    ) -> None:
        super().__init__()
        self.runtime = runtime
        self.settings = runtime.settings
        self.initial_panel = panel
        self.snapshot = snapshot
        self.fixed_clock = fixed_clock
        """Deterministic output: no rate ticks while capturing (rates settle at the end)."""
        self.panels: dict[str, Panel] = {}
        self.current_key: str | None = None
        self.snapshot_written: str | None = None
        self.last_export: str | None = None
        """The file the last export wrote (shown in a notification)."""
        self._started = False
        self.theme = self.settings.ui.theme

    # -- layout -----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield StatusBar()
        yield ContentSwitcher()
        yield Footer()

    async def on_mount(self) -> None:
        # Capture first: a live socket is already open and its ring fills while we wait.
        self.runtime.start()
        self._started = True
        await self.show_panel(self.initial_panel)
        if self.current_key is None:
            await self.show_panel("1")
        self.set_interval(self.settings.ui.refresh_interval, self.refresh_now)
        self.refresh_now()

    async def on_unmount(self) -> None:
        await self.stop_runtime()

    async def stop_runtime(self) -> None:
        if self._started:
            self._started = False
            await self.runtime.stop()

    # -- panels -----------------------------------------------------------------------------

    @property
    def current_panel(self) -> Panel | None:
        return self.panels.get(self.current_key) if self.current_key else None

    async def show_panel(self, key: str) -> bool:
        """Show the panel of `key`, creating it the first time; False if there is none."""
        panel = self.panels.get(key)
        if panel is None:
            try:
                panel_cls = load_panel(key)
            except Exception as exc:  # another panel's bug must not take the dashboard down
                log.exception("loading panel %s failed", key)
                self._note_error(f"panel {PANEL_NAMES.get(key, key)}: {exc}")
                return False
            if panel_cls is None:
                return False
            panel = panel_cls(self.runtime)
            self.panels[key] = panel
            await self.query_one(ContentSwitcher).mount(panel)
        self.query_one(ContentSwitcher).current = panel.id
        self.current_key = key
        self.sub_title = panel.PANEL_TITLE
        self._refresh_panel(panel)
        focus = getattr(panel, "focus_main", None)
        if callable(focus):
            focus()
        else:
            panel.focus()
        return True

    async def action_show_panel(self, key: str) -> None:
        await self.show_panel(key)

    def _refresh_panel(self, panel: Panel) -> None:
        try:
            panel.refresh_view()
        except Exception as exc:
            log.exception("panel %s failed to refresh", panel.PANEL_ID)
            self._note_error(f"panel {panel.PANEL_ID}: {exc}")

    def _note_error(self, message: str) -> None:
        if message not in self.runtime.errors:
            self.runtime.errors.append(message)

    # -- the timer --------------------------------------------------------------------------

    def refresh_now(self, force_tick: bool = False) -> None:
        """Tick the runtime, update the status bar and the visible panel."""
        if force_tick:
            self.runtime.tick(force=True)
        elif not self.fixed_clock:
            self.runtime.tick()
        bars = self.query(StatusBar)
        if not bars:
            return  # shutting down: the widgets are already gone
        bars.first().show(self.status())
        # High and critical alerts ring the terminal bell ([security] bell).
        take_bell = getattr(self.runtime.features.get("alerts"), "take_bell", None)
        if callable(take_bell) and take_bell():
            self.bell()
        panel = self.current_panel
        if panel is not None:
            self._refresh_panel(panel)
        capture = self.runtime.capture
        publish_state(
            {
                "panel": self.current_key,
                "packets": self.runtime.pipeline.stats.packets,
                "flows": len(self.runtime.pipeline.flows),
                "paused": bool(capture and capture.paused),
                "theme": self.theme,
            }
        )

    def status(self) -> Status:
        runtime = self.runtime
        stats = runtime.pipeline.stats
        capture = runtime.capture
        warnings = [f"{k}: {v}" for k, v in runtime.status_warnings.items()]
        warnings.extend(runtime.errors[-3:])
        if capture is not None and capture.source.error:
            warnings.append(capture.source.error)
        alerts = runtime.features.get("alerts")
        unacknowledged: int | None = None
        count = getattr(alerts, "unacknowledged_count", None)
        if callable(count):
            try:
                unacknowledged = int(count())
            except Exception:
                unacknowledged = None
        return Status(
            source=runtime.source_description,
            bpf_filter=runtime.settings.capture.bpf_filter,
            pps=stats.pps,
            bps=stats.bps,
            packets=stats.packets,
            kernel_drops=capture.source.kernel_dropped if capture else 0,
            queue_drops=capture.queue.dropped if capture else 0,
            flows=len(runtime.pipeline.flows),
            paused=bool(capture and capture.paused),
            finished=bool(capture and capture.finished),
            elapsed=runtime.clock() - runtime.started_at,
            alerts=unacknowledged,
            warnings=warnings,
        )

    # -- actions ----------------------------------------------------------------------------

    def action_toggle_pause(self) -> None:
        capture = self.runtime.capture
        if capture is not None:
            capture.paused = not capture.paused
            self.refresh_now()

    def action_export(self, fmt: str) -> None:
        """Write the current panel's rows (the selected flows, if any) to a file."""
        panel = self.current_panel
        rows = panel_rows(panel) if panel is not None else []
        if not rows:
            self.notify("Nothing to export on this panel", severity="warning")
            return
        name = panel.PANEL_ID if panel is not None else "panel"
        self._write_rows(name, rows, fmt)

    @work(thread=True, group="export", exit_on_error=False)
    def _write_rows(self, name: str, rows: list[dict[str, object]], fmt: str) -> None:
        try:
            path = export_path(self.settings.ui.export_dir, name, fmt)
            count = write_rows(path, rows, fmt)
        except OSError as exc:
            self.call_from_thread(self.notify, f"Export failed: {exc}", severity="error")
            return
        self.last_export = str(path)
        self.call_from_thread(self.notify, f"{count} rows written to {path}")

    def action_write_pcapng(self) -> None:
        """Write the kept packets of the selected flows (or the one under the cursor)."""
        ring_feature = self.runtime.features.get("packet_ring")
        traffic = self.panels.get("1")
        selected = getattr(traffic, "selected_flows", None)
        flows = selected() if callable(selected) else []
        if ring_feature is None or not flows:
            self.notify("Select flows in the Traffic panel first (Space)", severity="warning")
            return
        frames = ring_feature.ring.frames_for(f.id for f in flows)
        if not frames:
            self.notify("No packets kept for these flows", severity="warning")
            return
        self._write_pcapng(frames, len(flows))

    @work(thread=True, group="export", exit_on_error=False)
    def _write_pcapng(self, frames: list[Frame], nflows: int) -> None:
        try:
            path = export_path(self.settings.ui.export_dir, "flows", "pcapng")
            count = write_pcapng(path, frames)
        except OSError as exc:
            self.call_from_thread(self.notify, f"Writing pcapng failed: {exc}", severity="error")
            return
        self.last_export = str(path)
        self.call_from_thread(self.notify, f"{count} packets of {nflows} flows written to {path}")

    async def action_quit(self) -> None:
        await self.stop_runtime()
        self.exit(0)

    # -- snapshot ---------------------------------------------------------------------------

    async def settle(self, live_seconds: float | None = None) -> None:
        """Wait until a file has been replayed (or `live_seconds` of live capture), then
        settle the rates and refresh once more."""
        capture = self.runtime.capture
        if capture is not None:
            # A finite source (a file) is replayed to its end; a live one, or a file replayed
            # in a loop (the demo), for `live_seconds`.
            is_file = hasattr(capture.source, "path") and not getattr(capture.source, "loop", False)
            try:
                if is_file:
                    await capture.done.wait()
                else:
                    await asyncio.wait_for(capture.done.wait(), timeout=live_seconds)
            except TimeoutError:
                pass
        # Two forced ticks after the last packet: rates over a quiet interval, so the
        # figures no longer depend on when the timer happened to fire during a replay.
        if self.fixed_clock:
            self.runtime.tick(force=True)
        self.refresh_now(force_tick=True)
        panel = self.current_panel
        invalidate = getattr(panel, "invalidate", None)
        if callable(invalidate):
            invalidate()
        await self._tables_measured()

    async def _tables_measured(self, limit: float = 5.0) -> None:
        """A DataTable sizes its columns to new rows when its message queue next runs empty:
        wait for that, so that a screenshot taken now shows them sized, even on a busy
        machine. (The flags are Textual's own; without them there is nothing to wait for.)"""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            if not any(
                getattr(table, "_require_update_dimensions", False)
                or getattr(table, "_updated_cells", None)
                for table in self.screen.query(DataTable)
            ):
                return
            await asyncio.sleep(0.01)

    def write_snapshot(self) -> str:
        assert self.snapshot is not None
        svg = self.export_screenshot()
        with open(self.snapshot.path, "w", encoding="utf-8") as out:
            out.write(svg)
        self.snapshot_written = self.snapshot.path
        return self.snapshot.path
