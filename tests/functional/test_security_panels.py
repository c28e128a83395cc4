"""Panels 8 (Alerts) and 9 (Graph) driven with the keyboard over real captures: the scan in
tcp_scan.pcapng and a blocklist hit are raised, acknowledged, suppressed and filtered; Enter jumps
to the host's flows in the Traffic panel; the status bar counts unacknowledged alerts."""

from __future__ import annotations

from pathlib import Path

from functional.dashboard_helpers import DATA, dashboard_settings, make_app, replayed, wait_for
from textual.widgets import DataTable

from packettracer.app import PacketTracerApp
from packettracer.screens import alerts as alerts_module
from packettracer.screens.alerts import AlertsPanel
from packettracer.screens.graph import GraphPanel
from packettracer.screens.traffic import TrafficPanel
from packettracer.widgets import flow_table


def scan_app(panel: str) -> PacketTracerApp:
    settings = dashboard_settings(DATA / "tcp_scan.pcapng")
    settings.security.blocklist_dir = str(DATA / "no-lists-here")
    return make_app(DATA / "tcp_scan.pcapng", panel=panel, settings=settings)


async def test_alerts_panel_ack_filter_suppress_and_jump(tmp_path: Path) -> None:
    app = scan_app("8")
    async with app.run_test(size=(120, 40)) as pilot:
        await replayed(pilot)
        panel = app.query_one(AlertsPanel)
        service = app.runtime.features["alerts"]
        assert [a.kind for a in panel.shown] == ["scan.vertical"]
        assert app.status().alerts == 1
        detail = str(panel.query_one("#alerts-detail").render())
        assert "technique: TCP connect" in detail and "192.168.1.178" in detail

        rung: list[int] = []
        app.bell = lambda: rung.append(1)  # type: ignore[method-assign]
        # another alert from a second source, through the one entry point
        service.raise_alert(
            "route.change",
            "high",
            "route to 10.9.9.9 changed",
            entities={"target": "10.9.9.9"},
            source="trace",
        )
        await pilot.press("u")  # state: unacked
        await wait_for(pilot, lambda: bool(rung))  # the bell rings on the next timed refresh
        assert rung == [1]  # a high alert rang the bell once
        assert [a.kind for a in panel.shown] == ["route.change", "scan.vertical"]
        # the cursor stayed on the scan alert; the new one sorts first (worse)
        assert panel.cursor_alert() is not None and panel.cursor_alert().kind == "scan.vertical"  # type: ignore[union-attr]
        await pilot.press("up", "a")  # ack the one under the cursor
        await pilot.pause()
        assert [a.kind for a in panel.shown] == ["scan.vertical"]
        assert service.unacknowledged_count() == 1 and app.status().alerts == 1
        await pilot.press("u")  # state: acked
        await pilot.pause()
        assert [a.kind for a in panel.shown] == ["route.change"]
        assert panel.shown[0].acked_by
        await pilot.press("u", "v", "v", "v")  # all states; severity >= high
        await pilot.pause()
        assert [a.kind for a in panel.shown] == ["route.change"]
        await pilot.press("v", "v")  # critical, then back to all
        await pilot.pause()
        assert len(panel.shown) == 2

        # suppress like the scan alert: the same scanner again is muted
        await pilot.press("down", "s")
        await pilot.pause()
        assert service.engine.rules and service.engine.rules[0].host == "192.168.1.178"
        assert (
            service.raise_alert("scan.vertical", "medium", "again", {"scanner": "192.168.1.178"})
            is None
        )
        assert (
            service.raise_alert("scan.vertical", "medium", "other", {"scanner": "192.168.1.9"})
            is not None
        )

        # the panel shows the new alert on its next timed refresh
        await wait_for(pilot, lambda: len(panel.shown) == 3)
        await pilot.press("A")  # acknowledge everything shown
        await pilot.pause()
        assert service.unacknowledged_count() == 0 and not app.status().alerts

        # Enter: the scanner's flows in Traffic
        row = next(
            i for i, a in enumerate(panel.shown) if a.entities.get("scanner") == "192.168.1.178"
        )
        panel.query_one("#alerts-table").move_cursor(row=row)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_key == "1"
        traffic = app.query_one(TrafficPanel)
        assert traffic.view.ip_filter is not None and traffic.view.ip_filter.text == "192.168.1.178"


async def test_graph_panel_focus_and_enter() -> None:
    settings = dashboard_settings()
    settings.security.blocklist_dir = str(DATA / "blocklists")
    app = make_app(panel="9", settings=settings)
    async with app.run_test(size=(100, 30)) as pilot:
        await replayed(pilot)
        panel = app.query_one(GraphPanel)
        topo = panel.topology
        assert topo.total_locals == 7 and topo.total_remotes == 24
        # the listed remote is highlighted
        listed = next(n for n in topo.remotes if "216.239.38.120" in n.hosts)
        assert listed.severity == "high"
        # the flows of the listed host carry the list's name, shown in Traffic's Threat column
        flows = [f for f in app.runtime.pipeline.flows if f.get("threat")]
        assert flows and {f.get("threat") for f in flows} == {"test_drop"}
        threat = next(c for c in flow_table.FLOW_COLUMNS if c.key == "threat")
        assert threat.cell(flows[0]) == "test_drop"
        assert panel.focus_key == topo.locals[0].key  # the busiest local host
        await pilot.press("left")
        await pilot.pause()
        node = panel.focused_node()
        assert node is not None and not node.local
        await pilot.press("right")
        await pilot.pause()
        assert panel.focused_node() is not None and panel.focused_node().local  # type: ignore[union-attr]
        await pilot.press("down")
        await pilot.pause()
        target = panel.focused_node()
        assert target is not None and target.key == topo.locals[1].key
        await pilot.press("enter")
        await pilot.pause()
        assert app.current_key == "1"
        traffic = app.query_one(TrafficPanel)
        assert traffic.view.ip_filter is not None and traffic.view.ip_filter.text == target.address


async def test_settle_returns_once_the_tables_have_sized_their_columns() -> None:
    # A DataTable sizes its columns to new rows only when its message queue next runs empty: a
    # screenshot taken at once after the last refresh (--snapshot, the snapshot tests) showed
    # the header widths on a busy machine ("07-04 20:" for a whole time stamp).
    app = scan_app("8")
    async with app.run_test(size=(80, 24)) as pilot:
        await replayed(pilot)
        panel = app.query_one(AlertsPanel)
        table = panel.query_one("#alerts-table", DataTable)
        # As when the timer never refreshed the panel during the replay: its last refresh
        # (in settle) is the one that fills the table.
        table.clear(columns=True)
        for key, label in alerts_module.COLUMNS:
            table.add_column(label, key=key)
        panel._mark = None
        await pilot.pause()
        await app.settle()  # no pause after it: settle itself must wait
        stamp = str(table.get_row_at(0)[1])
        assert table.columns["time"].content_width >= len(stamp) > len("Last seen")
