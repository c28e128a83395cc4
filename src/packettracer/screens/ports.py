"""Panel 5, Ports: per-port statistics (protocol, port, local or remote service, service name,
flows, bytes), the breakdown by service, and the hosts that contacted the most distinct ports
(the scan view)."""

from __future__ import annotations

from collections import Counter

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import DataTable, Static

from packettracer.screens.dpi_common import ThrottledPanel, cell, fill, no_dpi_text, size

MAX_PORT_ROWS = 300


class PortsPanel(ThrottledPanel):
    PANEL_KEY = "5"
    PANEL_ID = "ports"
    PANEL_TITLE = "Ports"

    DEFAULT_CSS = """
    PortsPanel #ports-summary { height: 1; background: $boost; }
    PortsPanel Horizontal { height: 1fr; }
    PortsPanel #ports-table { width: 3fr; height: 1fr; }
    PortsPanel Vertical { width: 2fr; height: 1fr; }
    PortsPanel #ports-services { height: 1fr; }
    PortsPanel #ports-scanners { height: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static(id="ports-summary")
        with Horizontal():
            table: DataTable[Text] = DataTable(id="ports-table", cursor_type="row")
            for label in ("Proto", "Port", "Side", "Service", "Flows", "Bytes"):
                table.add_column(label, key=label.lower())
            yield table
            with Vertical():
                services: DataTable[Text] = DataTable(id="ports-services", cursor_type="row")
                for label in ("Service", "Ports", "Flows", "Bytes"):
                    services.add_column(label, key=label.lower())
                yield services
                scanners: DataTable[Text] = DataTable(id="ports-scanners", cursor_type="row")
                for label in ("Host", "Distinct ports", "Hosts", "Host:port pairs"):
                    scanners.add_column(label, key=label.lower())
                yield scanners

    def focus_main(self) -> None:
        self.query_one("#ports-table", DataTable).focus()

    def refresh_view(self) -> None:
        if not self.throttle.due():
            return
        summary = self.query_one("#ports-summary", Static)
        dpi = self.runtime.features.get("dpi")
        if dpi is None:
            summary.update(no_dpi_text())
            return
        ports = dpi.port_table()
        rows = []
        for r in ports[:MAX_PORT_ROWS]:
            key = f"{r['proto']}/{r['port']}/{r['side']}"
            rows.append(
                (
                    key,
                    [
                        cell(r["proto"]),
                        cell(r["port"], "bold", right=True),
                        cell(r["side"], "cyan" if r["side"] == "local" else ""),
                        cell(r["service"]),
                        cell(r["flows"], right=True),
                        size(r["bytes"]),
                    ],
                )
            )
        fill(self.query_one("#ports-table", DataTable), rows)
        by_service: dict[str, list[int]] = {}
        port_count: Counter[str] = Counter()
        for r in ports:
            entry = by_service.setdefault(r["service"], [0, 0])
            entry[0] += r["flows"]
            entry[1] += r["bytes"]
            port_count[r["service"]] += 1
        service_rows = [
            (
                name,
                [
                    cell(name, "bold"),
                    cell(port_count[name], right=True),
                    cell(v[0], right=True),
                    size(v[1]),
                ],  # fmt: skip
            )
            for name, v in sorted(by_service.items(), key=lambda kv: -kv[1][1])
        ]
        fill(self.query_one("#ports-services", DataTable), service_rows)
        scan_rows = []
        threshold = dpi.fan_out_threshold
        for s in dpi.scanners(50):
            style = "bold red" if s["pairs"] >= threshold else ""
            scan_rows.append(
                (
                    s["host"],
                    [
                        cell(s["host"], style),
                        cell(s["ports"], style, right=True),
                        cell(s["hosts"], right=True),
                        cell(s["pairs"], right=True),
                    ],  # fmt: skip
                )
            )
        fill(self.query_one("#ports-scanners", DataTable), scan_rows)
        summary.update(
            Text(
                f" {len(ports)} ports in use ({sum(1 for p in ports if p['side'] == 'local')} "
                f"on local hosts); {len(by_service)} services; hosts above "
                f"{threshold} host:port pairs are marked as possible scanners",
                no_wrap=True,
                overflow="ellipsis",
            )
        )
