"""Helpers the Analysis, Ports, DPI and Stats panels share: a refresh throttle (their aggregates
walk every live flow, so they recompute at most once a second), the panel base that holds it, and
filling a DataTable from rows of text cells."""

from __future__ import annotations

import time
from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from packettracer.screens.base import Panel
from packettracer.services.runtime import Runtime
from packettracer.widgets.flow_table import human_bytes, sanitize

RECOMPUTE_EVERY = 1.0


def cell(value: Any, style: str = "", right: bool = False) -> Text:
    """A table cell; strings from packets are shown literally (never markup or escapes)."""
    if value is None:
        return Text("-", "dim")
    if isinstance(value, float):
        text = f"{value:.2f}"
    else:
        text = sanitize(str(value))
    return Text(text, style, justify="right" if right else "left", no_wrap=True)


def size(n: int) -> Text:
    return Text(human_bytes(n), justify="right")


def share(fraction: float) -> Text:
    return Text(f"{fraction * 100:.1f}%", justify="right")


def fill(table: DataTable[Text], rows: list[tuple[str, list[Text]]]) -> None:
    """Replace the table's rows, keeping the cursor on the same row index."""
    row = table.cursor_row
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if rows and row is not None:
        table.move_cursor(row=min(row, len(rows) - 1))


class Throttle:
    def __init__(self, every: float = RECOMPUTE_EVERY) -> None:
        self.every = every
        self.last = 0.0

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.every:
            return False
        self.last = now
        return True


class ThrottledPanel(Panel):
    """A panel that recomputes at most once per RECOMPUTE_EVERY (`refresh_view` asks
    `self.throttle.due()` first)."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.throttle = Throttle()

    def invalidate(self) -> None:
        """Recompute now, not on the next second: after a replay has settled, the panel shows
        its end even when the timer refreshed it a moment before (snapshots, --snapshot)."""
        self.throttle.last = 0.0
        self.refresh_view()


def no_dpi_text() -> Text:
    return Text(" DPI is off ([dpi] enabled = false): no applications or categories", "dim")
