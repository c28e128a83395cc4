"""Panel 0, DPI: the OS detected per host (confidence and the signals behind it), the
application, JA4 and SNI of each flow, and anomaly scores; the row under the cursor explains
itself in the detail line below the tables."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import DataTable, Static

from packettracer.screens.dpi_columns import flow_app, flow_category
from packettracer.screens.dpi_common import ThrottledPanel, cell, fill, no_dpi_text
from packettracer.services.runtime import Runtime

MAX_FLOW_ROWS = 300


def score_cell(score: int | None) -> Text:
    if not score:
        return Text("0", "dim", justify="right")
    style = "bold red" if score >= 60 else ("yellow" if score >= 30 else "")
    return Text(str(score), style, justify="right")


class DpiPanel(ThrottledPanel):
    PANEL_KEY = "0"
    PANEL_ID = "dpi"
    PANEL_TITLE = "DPI"

    DEFAULT_CSS = """
    DpiPanel #dpi-summary { height: 1; background: $boost; }
    DpiPanel Horizontal { height: 1fr; }
    DpiPanel #dpi-hosts { width: 2fr; height: 1fr; }
    DpiPanel #dpi-flows { width: 3fr; height: 1fr; }
    DpiPanel #dpi-detail { height: auto; max-height: 8; border-top: solid $primary; }
    """

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(runtime)
        self.host_info: dict[str, dict[str, Any]] = {}
        self.flow_info: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield Static(id="dpi-summary")
        with Horizontal():
            hosts: DataTable[Text] = DataTable(id="dpi-hosts", cursor_type="row")
            for label in ("Host", "OS", "Conf", "Score"):
                hosts.add_column(label, key=label.lower())
            yield hosts
            flows: DataTable[Text] = DataTable(id="dpi-flows", cursor_type="row")
            for label in ("Flow", "App", "Category", "JA4", "SNI / Host", "Score"):
                flows.add_column(label, key=label.lower())
            yield flows
        yield Static(id="dpi-detail")

    def focus_main(self) -> None:
        self.query_one("#dpi-flows", DataTable).focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        # Refills highlight rows too: explain only what the user moves through.
        if event.data_table.has_focus:
            self._explain(event.data_table.id, event.row_key.value)

    def _explain_focused(self) -> None:
        """The detail line follows the focused table's cursor row as its data changes (a
        refill moves no cursor, so no highlight event says so)."""
        for table in self.query(DataTable):
            if table.has_focus and table.row_count and table.cursor_row is not None:
                row = table.coordinate_to_cell_key(table.cursor_coordinate).row_key
                self._explain(table.id, row.value)

    def _explain(self, table_id: str | None, key: str | None) -> None:
        detail = self.query_one("#dpi-detail", Static)
        text = Text()
        if table_id == "dpi-hosts" and key in self.host_info:
            h = self.host_info[key]
            text.append(f"{h['ip']}: ", "bold")
            text.append(f"{h['os']} ({h['os_confidence']:.2f})\n")
            for s in h["os_signals"]:
                extra = f" {s['match']}" if "match" in s else ""
                text.append(f"  {s['source']}{extra}: {s['value']}\n")
            for reason in h.get("anomaly_reasons", []):
                text.append(f"  ! {reason}\n", "yellow")
        elif table_id == "dpi-flows" and key in self.flow_info:
            f = self.flow_info[key]
            text.append(f"{key}\n", "bold")
            for name in ("protocol", "tls_version", "alpn", "ja3", "cert_issuer", "user_agent"):
                if f.get(name):
                    text.append(f"  {name}: {f[name]}\n")
            reasons = f.get("anomaly_reasons") or []
            if not reasons:
                text.append("  no anomaly signals\n", "dim")
            for reason in reasons:
                text.append(f"  ! {reason}\n", "yellow")
        detail.update(text)

    def refresh_view(self) -> None:
        if not self.throttle.due():
            return
        summary = self.query_one("#dpi-summary", Static)
        dpi = self.runtime.features.get("dpi")
        if dpi is None:
            summary.update(no_dpi_text())
            return
        hosts = dpi.hosts()
        self.host_info = {h["ip"]: h for h in hosts}
        host_rows = [
            (
                h["ip"],
                [
                    cell(h["ip"]),
                    cell(h["os"], "bold"),
                    cell(h["os_confidence"], right=True),
                    score_cell(h.get("anomaly_score")),
                ],  # fmt: skip
            )
            for h in sorted(hosts, key=lambda h: -int(h.get("anomaly_score", 0)))
        ]
        fill(self.query_one("#dpi-hosts", DataTable), host_rows)
        flows = []
        for flow in dpi.live_flows():
            ext = flow.ext or {}
            if not ext.get("app"):
                # Nothing in its payload yet: show what the port suggests (marked with "?").
                ext = {**ext, "app": flow_app(flow), "category": flow_category(flow)}
            flows.append((f"{flow.src}:{flow.sport} > {flow.dst}:{flow.dport}", ext))
        for brief in dpi.flagged_flows[-200:]:
            key = f"{brief['src']}:{brief['sport']} > {brief['dst']}:{brief['dport']}"
            flows.append((key, {**brief, "anomaly_score": brief["score"],
                                "anomaly_reasons": brief["reasons"]}))  # fmt: skip
        flows.sort(key=lambda kv: -int(kv[1].get("anomaly_score") or 0))
        self.flow_info = {}
        flow_rows = []
        for key, ext in flows[:MAX_FLOW_ROWS]:
            if key in self.flow_info:
                continue
            self.flow_info[key] = ext
            flow_rows.append(
                (
                    key,
                    [
                        cell(key),
                        cell(ext.get("app"), "bold"),
                        cell(ext.get("category")),
                        cell(ext.get("ja4")),
                        cell(ext.get("sni") or ext.get("http_host") or ext.get("dns_query")),
                        score_cell(ext.get("anomaly_score")),
                    ],
                )
            )
        fill(self.query_one("#dpi-flows", DataTable), flow_rows)
        self._explain_focused()
        anomalies = dpi.host_anomalies()
        summary.update(
            Text(
                f" {len(hosts)} hosts with an OS verdict; {len(anomalies)} hosts and "
                f"{len(dpi.flagged_flows)} ended flows with anomaly signals "
                "(cursor on a row: why)",
                no_wrap=True,
                overflow="ellipsis",
            )
        )
