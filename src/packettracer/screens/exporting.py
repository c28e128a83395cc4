"""What `e`/`E` export from a panel: its own `export_rows()` when it has one (the Traffic panel
gives full flow records), otherwise the rows of its first table as shown."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widgets import DataTable

from packettracer.screens.base import Panel


def panel_rows(panel: Panel) -> list[dict[str, Any]]:
    export = getattr(panel, "export_rows", None)
    if callable(export):
        rows: list[dict[str, Any]] = export()
        return rows
    tables = list(panel.query(DataTable))
    if not tables:
        return []
    table: DataTable[Any] = tables[0]
    labels = [_plain(col.label) or str(key.value) for key, col in table.columns.items()]
    out = []
    for index in range(table.row_count):
        cells = table.get_row_at(index)
        out.append({label: _plain(cell) for label, cell in zip(labels, cells, strict=False)})
    return out


def _plain(value: Any) -> str:
    if isinstance(value, Text):
        return value.plain
    return "" if value is None else str(value)
