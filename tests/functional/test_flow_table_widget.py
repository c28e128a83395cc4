"""The flow table widget applies keyed diffs, and the status bar shows what the runtime says."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import App, ComposeResult

from packettracer.widgets.flow_table import (
    Column,
    FlowDataTable,
    human_bytes,
    human_duration,
    human_rate,
    sanitize,
)
from packettracer.widgets.status_bar import Status, render_status


@dataclass
class Row:
    name: str
    size: int | None


COLUMNS = [
    Column("name", "Name", 12, lambda r: r.name),
    Column("size", "Size", 8, lambda r: r.size, human_bytes, "right"),
]


class TableApp(App[None]):
    def compose(self) -> ComposeResult:
        yield FlowDataTable(id="t")


def cells(table: FlowDataTable) -> list[list[str]]:
    return [[c.plain for c in table.get_row_at(i)] for i in range(table.row_count)]


async def test_show_updates_only_what_changed() -> None:
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(FlowDataTable)
        table.set_columns(COLUMNS)
        a, b, c = Row("a", 10), Row("b", 2000), Row("c", None)
        table.show([("a", a), ("b", b), ("c", c)], lambda r: r is b)
        await pilot.pause()
        assert cells(table) == [[" ", "a", "10 B"], ["●", "b", "2.0 KB"], [" ", "c", "-"]]
        before = {key: table.get_row(key) for key in ("a", "b")}

        # one cell changes, one row goes, one arrives, and the order changes
        a.size = 11
        d = Row("d", 5)
        table.show([("b", b), ("d", d), ("a", a)], lambda r: False)
        await pilot.pause()
        assert table.row_keys == ["b", "d", "a"]
        assert cells(table) == [[" ", "b", "2.0 KB"], [" ", "d", "5 B"], [" ", "a", "11 B"]]
        after_a = table.get_row("a")
        after_b = table.get_row("b")
        # unchanged cells keep their Text objects: they were not rewritten
        assert after_a[1] is before["a"][1] and after_a[2] is not before["a"][2]
        assert after_b[1] is before["b"][1] and after_b[2] is before["b"][2]
        assert after_b[0] is not before["b"][0]  # the selection mark changed


async def test_cursor_follows_its_row_when_the_order_changes() -> None:
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(FlowDataTable)
        table.set_columns(COLUMNS)
        rows = [Row(n, i) for i, n in enumerate("abcdef")]
        table.show([(r.name, r) for r in rows], lambda r: False)
        table.move_cursor(row=1)
        await pilot.pause()
        assert table.key_at_cursor() == "b"
        table.show([(r.name, r) for r in reversed(rows)], lambda r: False)
        await pilot.pause()
        assert table.key_at_cursor() == "b" and table.cursor_row == 4


async def test_a_mostly_new_view_is_rebuilt() -> None:
    app = TableApp()
    async with app.run_test() as pilot:
        table = app.query_one(FlowDataTable)
        table.set_columns(COLUMNS)
        first = [Row(f"r{i}", i) for i in range(100)]
        table.show([(r.name, r) for r in first], lambda r: False)
        second = [Row(f"s{i}", i) for i in range(50)]
        table.show([(r.name, r) for r in second], lambda r: False)
        await pilot.pause()
        assert table.row_count == 50 and table.row_keys == [r.name for r in second]


def test_cells_are_literal_text() -> None:
    assert sanitize("a\x1b[31mb\x00\x7f\x9bc") == "a\ufffd[31mb\ufffd\ufffd\ufffdc"
    assert sanitize("[bold]x[/bold] ü 名") == "[bold]x[/bold] ü 名"
    # bidi overrides and zero-width characters cannot disguise a name either
    assert sanitize("evil\u202egnp.exe\u200b") == "evil\ufffdgnp.exe\ufffd"
    assert human_bytes(999) == "999 B" and human_bytes(1500) == "1.5 KB"
    assert human_bytes(2_500_000_000) == "2.5 GB"
    assert human_rate(0) == "0 b/s" and human_rate(12_300_000) == "12.3 Mb/s"
    assert human_duration(5.25) == "5.2s" and human_duration(125) == "2m05s"
    assert human_duration(7300) == "2h01m"


def test_status_line() -> None:
    status = Status(
        source="eth0\x1b]0;owned\x07",
        bpf_filter="port 53",
        pps=1234.4,
        bps=9_876_543,
        packets=123_456,
        kernel_drops=3,
        queue_drops=4,
        flows=50_000,
        paused=True,
        elapsed=3725,
        alerts=2,
        warnings=["store: disk full"],
    )
    text = render_status(status)
    assert isinstance(text, Text)
    plain = text.plain
    assert "\x1b" not in plain and "\x07" not in plain
    assert "eth0\ufffd]0;owned\ufffd" in plain
    for part in (
        "PAUSED",
        "1234 pkt/s 9.9 Mb/s",
        "flows 50000",
        "drops 7 (kernel 3, queue 4)",
        "alerts 2",
        "01:02:05",
        "pkts 123k",
        "filter port 53",
        "\n store: disk full",
    ):
        assert part in plain, part
    quiet = render_status(Status(source="x.pcap", finished=True)).plain
    assert quiet.startswith(" done x.pcap") and "drops 0" in quiet and "alerts" not in quiet
    assert render_status(Status(source="lo")).plain.startswith(" live lo")
