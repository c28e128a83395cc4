"""Panel 3, Stats: where the traffic goes. Breakdowns by country, by AS/ISP and by protocol (bytes,
packets, flows, share), the top talkers on each side (local and remote), and a sparkline of the
total throughput. Figures cover ended and active flows; they refresh once a second."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Sparkline, Static

from packettracer.model.breakdown import Table, top
from packettracer.model.names import display
from packettracer.screens.dpi_common import ThrottledPanel, cell, fill, share, size
from packettracer.services.runtime import Runtime
from packettracer.services.store_feature import stats_history_line
from packettracer.widgets.flow_table import human_count, human_rate, sanitize

TOP_ROWS = 15
BREAKDOWNS = (("country", "Country"), ("as", "AS / ISP"), ("protocol", "Protocol"))
TALKERS = (("local", "Local talkers"), ("remote", "Remote talkers"))


def _bar(fraction: float, width: int = 10) -> Text:
    filled = round(fraction * width)
    return Text("█" * filled + "·" * (width - filled), "cyan", no_wrap=True)


class StatsPanel(ThrottledPanel):
    PANEL_KEY = "3"
    PANEL_ID = "stats"
    PANEL_TITLE = "Stats"

    DEFAULT_CSS = """
    StatsPanel #stats-summary { height: 1; background: $boost; }
    StatsPanel #stats-spark { height: 2; margin: 0 1; }
    StatsPanel Horizontal { height: 1fr; }
    StatsPanel DataTable { width: 1fr; height: 1fr; }
    StatsPanel #stats-detail { height: auto; max-height: 3; border-top: solid $primary; }
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self._fresh = False

    def compose(self) -> ComposeResult:
        yield Static(id="stats-summary")
        yield Sparkline([], id="stats-spark", summary_function=max)
        with Horizontal(id="stats-breakdowns"):
            for key, label in BREAKDOWNS:
                table: DataTable[Text] = DataTable(id=f"stats-{key}", cursor_type="row")
                for title in (label, "Bytes", "Pkts", "Flows", "Share", ""):
                    table.add_column(title, key=title.lower() or "bar")
                yield table
        with Horizontal(id="stats-talkers"):
            for key, label in TALKERS:
                table = DataTable(id=f"stats-{key}", cursor_type="row")
                for title in (label, "Name", "Bytes", "Pkts", "Flows", "Share", "Owner"):
                    table.add_column(title, key=title.lower())
                yield table
        yield Static(id="stats-detail")

    def focus_main(self) -> None:
        self.query_one("#stats-country", DataTable).focus()

    def invalidate(self) -> None:
        self._fresh = True
        super().invalidate()

    @property
    def resolution(self) -> Any:
        return self.runtime.features.get("resolution")

    def refresh_view(self) -> None:
        stats = self.runtime.pipeline.stats
        spark = self.query_one("#stats-spark", Sparkline)
        spark.data = list(stats.history_bps) or [0.0]
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(f" {human_rate(stats.bps)} now", "bold")
        peak = max(stats.history_bps, default=0.0)
        line.append(f"  peak {human_rate(peak)}  {human_count(stats.packets)} packets")
        line.append(f"  {len(self.runtime.pipeline.flows)} active flows")
        history = stats_history_line(self.runtime)  # from the database, cached: never waits
        if history:
            line.append(f"  {history}", "dim")
        feature = self.resolution
        if feature is None:
            line.append("  (no resolution feature: no breakdowns)", "dim")
            self.query_one("#stats-summary", Static).update(line)
            return
        if not self.throttle.due():
            return
        tables = feature.live_tables(0.0 if self._fresh else 1.0)
        self._fresh = False
        countries = len([k for k in tables["country"] if k != "?"])
        line.append(f"  {countries} countries, {len(tables['as'])} networks")
        self.query_one("#stats-summary", Static).update(line)
        for key, _ in BREAKDOWNS:
            self._fill_breakdown(key, tables[key])
        for key, _ in TALKERS:
            self._fill_talkers(key, tables[key], feature)
        self._show_owner(feature)

    def _fill_breakdown(self, key: str, table: Table) -> None:
        rows = []
        for row in top(table, TOP_ROWS):
            rows.append(
                (
                    f"{key}:{row['key']}",
                    [
                        cell(row["key"], "bold" if row["key"] != "?" else "dim"),
                        size(row["bytes"]),
                        cell(human_count(row["packets"]), right=True),
                        cell(row["flows"], right=True),
                        share(row["share"]),
                        _bar(row["share"]),
                    ],
                )
            )
        fill(self.query_one(f"#stats-{key}", DataTable), rows)

    def _fill_talkers(self, key: str, table: Table, feature: Any) -> None:
        rows = []
        for row in top(table, TOP_ROWS):
            address = row["key"]
            entry = feature.names.best(address)
            name = display(entry) if entry is not None else feature.ptr_name(address)
            owner = feature.owner(address) if key == "remote" else None
            owned = None
            if owner is not None and owner.error is None:
                owned = owner.org or owner.network
            rows.append(
                (
                    f"{key}:{address}",
                    [
                        cell(address),
                        cell(name or None),
                        size(row["bytes"]),
                        cell(human_count(row["packets"]), right=True),
                        cell(row["flows"], right=True),
                        share(row["share"]),
                        cell(owned),
                    ],
                )
            )
        fill(self.query_one(f"#stats-{key}", DataTable), rows)

    def _show_owner(self, feature: Any) -> None:
        """Network ownership of the remote talker under the cursor (RDAP/WHOIS, cached)."""
        detail = self.query_one("#stats-detail", Static)
        table = self.query_one("#stats-remote", DataTable)
        if table.row_count == 0 or table.cursor_row is None or table.cursor_row < 0:
            detail.update("")
            return
        address = table.get_row_at(min(table.cursor_row, table.row_count - 1))[0].plain
        owner = feature.ownership.peek(address)
        geo = feature.geo.peek(address)
        line = Text(no_wrap=False)
        line.append(f" {address}", "bold")
        if geo is not None and (geo.country or geo.label):
            place = ", ".join(p for p in (geo.city, geo.country_name or geo.country) if p)
            line.append(f"  {sanitize(place or geo.label or '')}")
            if geo.asn or geo.org:
                line.append(f"  AS{geo.asn or '?'} {sanitize(geo.org or '')}")
        if owner is None:
            state = "looking up owner…" if feature.ownership.enabled else "owner: look-ups off"
            line.append(f"  {state}", "dim")
        elif owner.error:
            line.append(f"  owner unknown ({sanitize(owner.error)})", "dim")
        else:
            for label, value in (
                ("net", owner.network),
                ("cidr", owner.cidr),
                ("org", owner.org),
                ("country", owner.country),
                ("registry", (owner.registry or "").upper() or None),
                ("abuse", owner.abuse),
                ("registered", owner.registered),
            ):
                if value:
                    line.append(f"  {label} ", "dim")
                    line.append(sanitize(str(value)))
        detail.update(line)
