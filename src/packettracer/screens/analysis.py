"""Panel 4, Analysis: traffic by category and by application (flows, bytes, share), the
encrypted and cleartext shares, the top applications and the traffic nothing recognized."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from packettracer.screens.dpi_common import ThrottledPanel, cell, fill, no_dpi_text, share, size

CATEGORY_STYLE = {"malware": "bold red", "unknown": "dim", "vpn": "magenta", "p2p": "yellow"}


class AnalysisPanel(ThrottledPanel):
    PANEL_KEY = "4"
    PANEL_ID = "analysis"
    PANEL_TITLE = "Analysis"

    DEFAULT_CSS = """
    AnalysisPanel #analysis-summary { height: 2; background: $boost; }
    AnalysisPanel Horizontal { height: 1fr; }
    AnalysisPanel DataTable { width: 1fr; height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="analysis-summary")
        with Horizontal():
            cats: DataTable[Text] = DataTable(id="analysis-categories", cursor_type="row")
            for label in ("Category", "Flows", "Bytes", "Share"):
                cats.add_column(label, key=label.lower())
            yield cats
            apps: DataTable[Text] = DataTable(id="analysis-apps", cursor_type="row")
            for label in ("Application", "Category", "Flows", "Bytes", "Share"):
                apps.add_column(label, key=label.lower())
            yield apps

    def focus_main(self) -> None:
        self.query_one("#analysis-categories", DataTable).focus()

    def refresh_view(self) -> None:
        if not self.throttle.due():
            return
        summary = self.query_one("#analysis-summary", Static)
        dpi = self.runtime.features.get("dpi")
        if dpi is None:
            summary.update(no_dpi_text())
            return
        b = dpi.breakdown()
        cats = b["categories"]
        unknown = cats.get("unknown", {"flows": 0, "bytes": 0, "share": 0.0})
        line = Text(no_wrap=True, overflow="ellipsis")
        line.append(" Encrypted ")
        line.append(f"{b['encrypted_share'] * 100:.1f}%", "bold green")
        line.append(f" of bytes ({b['encrypted_flows']} flows), cleartext ")
        line.append(f"{(1 - b['encrypted_share']) * 100:.1f}%", "bold yellow")
        line.append(f" ({b['cleartext_flows']} flows)")
        line.append(f"\n Unknown traffic: {unknown['flows']} flows, ")
        line.append(f"{unknown['share'] * 100:.1f}%", "bold" if unknown["share"] > 0.2 else "")
        line.append(f" of bytes; {len(b['apps'])} applications seen")
        summary.update(line)
        rows = [
            (
                name,
                [
                    cell(name, CATEGORY_STYLE.get(name, "bold")),
                    cell(v["flows"], right=True),
                    size(v["bytes"]),
                    share(v["share"]),
                ],
            )
            for name, v in cats.items()
        ]
        fill(self.query_one("#analysis-categories", DataTable), rows)
        info = dpi.engine.rules.info
        app_rows = []
        for name, v in list(b["apps"].items())[:200]:
            category = info(name).category if name != "unknown" else "unknown"
            app_rows.append(
                (
                    name,
                    [
                        cell(name, "dim" if name == "unknown" else "bold"),
                        cell(category, CATEGORY_STYLE.get(category, "")),
                        cell(v["flows"], right=True),
                        size(v["bytes"]),
                        share(v["share"]),
                    ],
                )
            )
        fill(self.query_one("#analysis-apps", DataTable), app_rows)
