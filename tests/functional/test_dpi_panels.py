"""The Analysis (4), Ports (5) and DPI (0) panels over a real capture (tests/data/android.pcap),
driven with Textual's pilot: the keys show them, their tables hold what the DPI found."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable, Static

from tests.functional.dashboard_helpers import make_app, replayed, wait_for

SIZE = (180, 50)


def column(table: DataTable[Text], index: int) -> list[str]:
    return [table.get_row_at(i)[index].plain for i in range(table.row_count)]


async def test_analysis_panel_shows_categories_apps_and_encrypted_share() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        await pilot.press("4")
        cats = app.query_one("#analysis-categories", DataTable)
        await wait_for(pilot, lambda: cats.row_count > 0)
        names = column(cats, 0)
        assert "web" in names and "dns" in names
        apps = column(app.query_one("#analysis-apps", DataTable), 0)
        assert "Google" in apps
        summary = str(app.query_one("#analysis-summary", Static).render())
        assert "Encrypted" in summary and "Unknown traffic" in summary


async def test_ports_panel_lists_ports_services_and_scan_view() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        await pilot.press("5")
        ports = app.query_one("#ports-table", DataTable)
        await wait_for(pilot, lambda: ports.row_count > 0)
        assert "443" in column(ports, 1)
        assert "TLS" in column(app.query_one("#ports-services", DataTable), 0)
        scanners = app.query_one("#ports-scanners", DataTable)
        assert scanners.row_count >= 1


async def test_dpi_panel_explains_os_and_flows() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        await pilot.press("0")
        flows = app.query_one("#dpi-flows", DataTable)
        await wait_for(pilot, lambda: flows.row_count > 0)
        assert any(v.startswith("t13") or v.startswith("t12") for v in column(flows, 3))
        hosts = app.query_one("#dpi-hosts", DataTable)
        assert hosts.row_count >= 1
        hosts.focus()
        await pilot.press("down", "up")
        await pilot.pause()
        detail = str(app.query_one("#dpi-detail", Static).render())
        assert any(source in detail for source in ("p0f", "ttl", "user-agent", "dhcp"))


async def test_traffic_panel_gains_app_and_category_columns() -> None:
    from packettracer.widgets.flow_table import FLOW_COLUMNS

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        keys = [c.key for c in FLOW_COLUMNS]
        assert keys.index("app") == keys.index("state") + 1
        assert keys.index("category") == keys.index("app") + 1


async def test_settled_panels_show_the_end_even_right_after_a_timed_refresh() -> None:
    """The DPI panel recomputes at most once a second; `invalidate()` (called once a replay
    has settled) recomputes at once, and the detail line follows the focused row's new data."""
    import time

    from packettracer.screens.dpi import DpiPanel

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        await pilot.press("0")
        panel = app.query_one(DpiPanel)
        flows = app.query_one("#dpi-flows", DataTable)
        await wait_for(pilot, lambda: flows.row_count > 0)
        assert flows.has_focus and flows.cursor_row == 0
        # A flow with the worst score arrives just after the timer's refresh: it sorts first.
        app.runtime.features["dpi"].flagged_flows.append(
            {"src": "192.0.2.66", "sport": 4444, "dst": "198.51.100.9", "dport": 53,
             "proto": "udp", "app": "DNS", "score": 99, "reasons": ["late arrival"]}
        )  # fmt: skip
        key = "192.0.2.66:4444 > 198.51.100.9:53"
        panel.throttle.last = time.monotonic()
        panel.refresh_view()
        assert key not in panel.flow_info  # throttled: the next second would show it
        panel.invalidate()
        assert column(flows, 0)[0] == key
        detail = app.query_one("#dpi-detail", Static).render()
        plain = detail.plain if isinstance(detail, Text) else str(detail)
        assert plain.startswith(key) and "! late arrival" in plain
