"""The flow table widget: declarative columns and a DataTable that applies keyed diffs.

Columns are data (`Column`), so features add theirs (FQDN, country, AS, app, ...) with
`add_flow_column()` instead of editing the panel. Every cell is a `rich.text.Text` built from a
sanitized string: text that comes from packets is shown literally, never parsed as markup and
never passed to the terminal as control sequences.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich.text import Text
from textual._two_way_dict import TwoWayDict
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from packettracer.model.flow_view import DestinationGroup
from packettracer.model.flows import Flow

# C0 and C1 control characters and DEL, and the invisible format characters that can disguise
# text (zero-width, bidirectional overrides and isolates): shown as U+FFFD, never sent as is.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


def sanitize(value: str) -> str:
    return _CONTROL.sub("\ufffd", value)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def human_rate(bps: float) -> str:
    for unit in ("b/s", "kb/s", "Mb/s", "Gb/s"):
        if abs(bps) < 1000 or unit == "Gb/s":
            return f"{bps:.0f} {unit}" if unit == "b/s" else f"{bps:.1f} {unit}"
        bps /= 1000
    return f"{bps:.1f} Gb/s"  # pragma: no cover


def human_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    seconds = int(seconds)
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def human_count(n: int) -> str:
    if n < 100_000:
        return str(n)
    if n < 100_000_000:
        return f"{n / 1000:.0f}k"
    return f"{n / 1_000_000:.0f}M"


def _plain(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


@dataclass(frozen=True)
class Column:
    """One column: `value(row_object)` gives the raw value, `fmt` turns it into the cell text
    (None and "" show as '-')."""

    key: str
    label: str
    width: int
    value: Callable[[Any], Any]
    fmt: Callable[[Any], str] = _plain
    justify: Literal["left", "right"] = "left"

    def cell(self, obj: Any) -> str:
        raw = self.value(obj)
        if raw is None or raw == "":
            return "-"
        return self.fmt(raw)


def _port(flow: Flow) -> int | None:
    # Ports exist for TCP/UDP; ICMP carries type/code there, shown as well (report does too).
    return flow.sport if flow.proto != 0x10806 else None


FLOW_COLUMNS: list[Column] = [
    Column("proto", "Proto", 6, lambda f: f.proto_name),
    Column("src", "Source", 22, lambda f: f.src),
    Column("sport", "SPort", 5, _port, justify="right"),
    Column("dst", "Destination", 22, lambda f: f.dst),
    Column(
        "dport",
        "DPort",
        5,
        lambda f: f.dport if f.proto != 0x10806 else None,
        justify="right",
    ),
    Column("packets", "Pkts", 7, lambda f: f.packets_fwd + f.packets_rev, human_count, "right"),
    Column("bytes", "Bytes", 9, lambda f: f.bytes_fwd + f.bytes_rev, human_bytes, "right"),
    Column("rate", "Rate", 10, lambda f: f.rate_bps, human_rate, "right"),
    Column("duration", "Dur", 7, lambda f: f.last_seen - f.first_seen, human_duration, "right"),
    Column("state", "State", 11, lambda f: f.tcp_state),
]
"""The Traffic panel's flow columns, in order. Extend with `add_flow_column`."""

BASE_FLOW_COLUMNS: tuple[Column, ...] = tuple(FLOW_COLUMNS)
"""The columns before any feature added its own."""

DESTINATION_COLUMNS: list[Column] = [
    Column("dst", "Destination", 39, lambda g: g.address),
    Column("flows", "Flows", 6, lambda g: len(g.flows), str, "right"),
    Column("protos", "Protos", 10, lambda g: ",".join(sorted(g.protos))),
    Column(
        "ports",
        "Ports",
        16,
        lambda g: ",".join(str(p) for p in sorted(g.ports)[:4]) + ("+" if len(g.ports) > 4 else ""),
    ),
    Column("packets", "Pkts", 7, lambda g: g.packets, human_count, "right"),
    Column("bytes", "Bytes", 9, lambda g: g.bytes, human_bytes, "right"),
    Column("rate", "Rate", 10, lambda g: g.rate_bps, human_rate, "right"),
    Column("duration", "Dur", 7, lambda g: g.duration, human_duration, "right"),
]
"""Columns of the destinations view (`g`), over `DestinationGroup`s."""


# Where the known columns go, whichever feature registered first: the table looks the same
# however the features were loaded. Columns not listed keep their insertion place at the end.
COLUMN_ORDER = (
    "proto", "site", "src", "sport", "dst", "dport", "name", "packets", "bytes", "rate",
    "duration", "state", "app", "category", "country", "as_org", "threat",
)  # fmt: skip


def _rank(column: Column) -> int:
    try:
        return COLUMN_ORDER.index(column.key)
    except ValueError:
        return len(COLUMN_ORDER)


def add_flow_column(column: Column, after: str | None = None) -> None:
    """Add a column to the flow table (a feature's FQDN, country, app...); idempotent by key.
    `after` names the column to insert behind (default: at the end); columns listed in
    COLUMN_ORDER take their place there."""
    for i, existing in enumerate(FLOW_COLUMNS):
        if existing.key == column.key:
            FLOW_COLUMNS[i] = column
            return
    for i, existing in enumerate(FLOW_COLUMNS):
        if after is not None and existing.key == after:
            FLOW_COLUMNS.insert(i + 1, column)
            break
    else:
        FLOW_COLUMNS.append(column)
    FLOW_COLUMNS.sort(key=_rank)  # stable, in place: holders of the list see the order


SELECTED_MARK = "●"


class FlowDataTable(DataTable[Text]):
    """A DataTable fed whole views at a time, applying only the differences: changed cells are
    updated, vanished rows removed, new rows added, and the order fixed in one step."""

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.columns_spec: list[Column] = []
        self._cells: dict[str, list[str]] = {}
        self._order: list[str] = []

    def set_columns(self, columns: Sequence[Column]) -> None:
        """Replace the columns (and drop every row)."""
        self.clear(columns=True)
        self._cells.clear()
        self._order = []
        self.columns_spec = list(columns)
        self.add_column(Text(" "), key="_sel", width=1)
        for col in self.columns_spec:
            self.add_column(Text(col.label, justify=col.justify), key=col.key, width=col.width)

    @property
    def row_keys(self) -> list[str]:
        """Row keys in display order."""
        return list(self._order)

    def key_at_cursor(self) -> str | None:
        if not self._order or not (0 <= self.cursor_row < len(self._order)):
            return None
        return self._order[self.cursor_row]

    def _text(self, value: str, justify: Literal["left", "right"]) -> Text:
        return Text(sanitize(value), justify=justify, no_wrap=True, overflow="ellipsis")

    def show(self, rows: Sequence[tuple[str, Any]], selected: Callable[[Any], bool]) -> None:
        """Show `rows` (key, object) in this order; `selected(obj)` marks a row as selected."""
        cursor_key = self.key_at_cursor()
        specs = self.columns_spec
        new_cells: dict[str, list[str]] = {}
        for key, obj in rows:
            new_cells[key] = [SELECTED_MARK if selected(obj) else " "] + [
                col.cell(obj) for col in specs
            ]
        old = self._cells
        gone = [k for k in old if k not in new_cells]
        if len(gone) > max(32, len(old) // 2):
            # A mostly new view (a filter changed): rebuilding is cheaper than many removals,
            # each of which renumbers every row.
            self.clear(columns=False)
            old = self._cells = {}
            gone = []
        for key in gone:
            self.remove_row(key)
            del old[key]
        justify: list[Literal["left", "right"]] = ["left"]
        justify.extend(c.justify for c in specs)
        keys = ["_sel"] + [c.key for c in specs]
        for key, cells in new_cells.items():
            previous = old.get(key)
            if previous is None:
                self.add_row(
                    *(self._text(v, j) for v, j in zip(cells, justify, strict=True)), key=key
                )
            elif previous != cells:
                for i, (was, now) in enumerate(zip(previous, cells, strict=True)):
                    if was != now:
                        self.update_cell(key, keys[i], self._text(now, justify[i]))
            old[key] = cells
        order = list(new_cells)
        if order != self._order_now():
            # What DataTable.sort() does, with the order given rather than computed.
            self._row_locations = TwoWayDict({RowKey(k): i for i, k in enumerate(order)})
            self._update_count += 1
            self.refresh()
        self._order = order
        if cursor_key is not None and cursor_key in new_cells:
            index = order.index(cursor_key)
            if index != self.cursor_row:
                self.move_cursor(row=index, animate=False, scroll=False)

    def _order_now(self) -> list[str]:
        locations = self._row_locations
        keys = (locations.get_key(i) for i in range(len(locations)))
        return [str(k.value) if k is not None else "" for k in keys]


def flow_rows(flows: Sequence[Flow]) -> list[tuple[str, Flow]]:
    return [(str(f.id), f) for f in flows]


def group_rows(groups: Sequence[DestinationGroup]) -> list[tuple[str, DestinationGroup]]:
    return [(g.key, g) for g in groups]
