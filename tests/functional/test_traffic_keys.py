"""Pilot tests: every dashboard key, on the Traffic panel fed by a real capture file."""

from __future__ import annotations

import asyncio
import ipaddress

from functional.dashboard_helpers import FIXTURE, dashboard_settings, make_app, replayed, wait_for
from rich.text import Text

from packettracer.app import PANEL_KEYS, PacketTracerApp
from packettracer.config import Settings
from packettracer.model.flows import Flow
from packettracer.screens.registry import PANELS
from packettracer.screens.traffic import PromptInput, TrafficPanel
from packettracer.services.report import analyze_file
from packettracer.widgets.status_bar import StatusBar

SIZE = (100, 30)


def traffic(app: PacketTracerApp) -> TrafficPanel:
    panel = app.panels["1"]
    assert isinstance(panel, TrafficPanel)
    return panel


def all_flows(app: PacketTracerApp) -> list[Flow]:
    return list(app.runtime.pipeline.flows)


def shown_ids(panel: TrafficPanel) -> list[int]:
    return [f.id for f in panel.shown]


def table_ids(panel: TrafficPanel) -> list[int]:
    """Row keys in the order the DataTable displays them."""
    table = panel.table
    return [
        int(table.coordinate_to_cell_key((i, 0)).row_key.value or 0) for i in range(table.row_count)
    ]


def status_text(app: PacketTracerApp) -> str:
    rendered = app.query_one(StatusBar).render()
    return rendered.plain if isinstance(rendered, Text) else str(rendered)


async def test_replay_fills_the_table_like_the_report() -> None:
    # the report runs its own event loop: give it a thread
    report = await asyncio.to_thread(analyze_file, str(FIXTURE), Settings())
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        panel = traffic(app)
        assert app.current_key == "1"
        assert len(panel.shown) == len(report.flows) == 65
        assert panel.table.row_count == 65
        assert table_ids(panel) == shown_ids(panel)
        # default sort: bytes, largest first
        sizes = [f.bytes for f in panel.shown]
        assert sizes == sorted(sizes, reverse=True)
        text = status_text(app)
        assert "android.pcap" in text and "flows 65" in text and "pkts 500" in text
        assert "done" in text and "00:00:00" in text


async def test_digit_keys_switch_panels_and_missing_panels_do_nothing() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        current = "1"
        for key in PANEL_KEYS:
            await pilot.press(key)
            await pilot.pause()
            if key in PANELS:
                current = key
            assert app.current_key == current, key
        await pilot.press("1")
        await pilot.pause()
        assert app.current_key == "1"
        assert app.screen.focused is traffic(app).table


async def test_arrows_and_page_keys_move_the_cursor() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        panel = traffic(app)
        table = panel.table
        assert table.cursor_row == 0
        await pilot.press("down", "down")
        assert table.cursor_row == 2
        assert panel.cursor_flow() is panel.shown[2]
        await pilot.press("up")
        assert table.cursor_row == 1
        await pilot.press("pagedown")
        page = table.cursor_row
        assert page > 10
        await pilot.press("pagedown", "pagedown", "pagedown")
        assert table.cursor_row == 64  # the last row
        await pilot.press("pageup")
        assert table.cursor_row < 64
        await pilot.press("pageup", "pageup", "pageup")
        assert table.cursor_row == 0


async def test_space_selects_and_deselects_the_flow_under_the_cursor() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        panel = traffic(app)
        await pilot.press("down", "space")
        second = panel.shown[1]
        assert panel.view.selected == {second.id}
        assert panel.selected_flows() == [second]
        assert panel.table.get_row_at(1)[0].plain == "●"
        await pilot.press("down", "space")
        assert panel.view.selected == {second.id, panel.shown[2].id}
        await pilot.press("space")
        assert panel.view.selected == {second.id}
        await pilot.press("up", "space")
        assert panel.view.selected == set()
        assert panel.table.get_row_at(1)[0].plain == " "
        # with nothing selected, the flow under the cursor is the target
        assert panel.selected_flows() == [panel.shown[1]]


async def test_a_selects_all_and_c_clears() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        panel = traffic(app)
        await pilot.press("a")
        assert panel.view.selected == {f.id for f in all_flows(app)}
        assert len(panel.selected_flows()) == 65
        await pilot.press("c")
        assert panel.view.selected == set()
        # `a` honours the filters: only matching flows are selected
        await pilot.press("f")  # tcp
        await pilot.press("a")
        expected = {f.id for f in all_flows(app) if f.proto_name == "tcp"}
        assert panel.view.selected == expected and 0 < len(expected) < 65


async def _filter(pilot, key: str, text: str) -> None:  # type: ignore[no-untyped-def]
    await pilot.press(key)
    await pilot.pause()
    prompt = pilot.app.query_one(PromptInput)
    assert prompt.has_focus and prompt.display
    # typing is exercised elsewhere; setting the value keeps the test quick
    prompt.value = text
    await pilot.press("enter")
    await pilot.pause()


async def test_slash_filters_by_ip_substring_and_cidr() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        panel = traffic(app)
        await _filter(pilot, "slash", "216.239")
        expected = {f.id for f in all_flows(app) if "216.239" in f.src or "216.239" in f.dst}
        assert set(shown_ids(panel)) == expected and len(expected) > 3
        assert table_ids(panel) == shown_ids(panel)
        assert not app.query_one(PromptInput).display
        assert app.screen.focused is panel.table

        await _filter(pilot, "slash", "172.217.0.0/16")
        net = ipaddress.ip_network("172.217.0.0/16")

        def in_net(addr: str) -> bool:
            try:
                return ipaddress.ip_address(addr) in net
            except ValueError:
                return False

        expected = {f.id for f in all_flows(app) if in_net(f.src) or in_net(f.dst)}
        assert set(shown_ids(panel)) == expected and len(expected) > 3
        assert "ip: 172.217.0.0/16" in panel.view.describe()

        # Escape cancels: the filter stays
        await pilot.press("slash")
        await pilot.press("1", "0", "escape")
        await pilot.pause()
        assert panel.view.ip_filter is not None and panel.view.ip_filter.text == "172.217.0.0/16"
        assert app.current_key == "1"  # digits typed into the prompt did not switch panels

        # A bad CIDR keeps the old filter and says why
        await _filter(pilot, "slash", "10.0.0.0/99")
        assert panel.view.ip_filter.text == "172.217.0.0/16"
        assert "not a network" in panel.message

        # Empty clears
        await _filter(pilot, "slash", "")
        assert panel.view.ip_filter is None
        assert len(panel.shown) == 65


async def test_colon_filters_by_port() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        panel = traffic(app)
        await _filter(pilot, "colon", "53")
        expected = {
            f.id
            for f in all_flows(app)
            if f.proto_name in ("tcp", "udp") and 53 in (f.sport, f.dport)
        }
        assert set(shown_ids(panel)) == expected and len(expected) > 3
        await _filter(pilot, "colon", "80,5353")
        expected = {
            f.id
            for f in all_flows(app)
            if f.proto_name in ("tcp", "udp") and {80, 5353} & {f.sport, f.dport}
        }
        assert set(shown_ids(panel)) == expected and len(expected) > 2
        await _filter(pilot, "colon", "x")
        assert "not a port" in panel.message
        assert panel.view.port_filter is not None and panel.view.port_filter.text == "80,5353"
        await _filter(pilot, "colon", "")
        assert panel.view.port_filter is None and len(panel.shown) == 65


async def test_f_cycles_the_protocol_filter() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        panel = traffic(app)
        buckets = {
            "tcp": {"tcp"},
            "udp": {"udp"},
            "icmp": {"icmp", "icmp6"},
        }
        seen_total = 0
        for proto in ("tcp", "udp", "icmp", "other"):
            await pilot.press("f")
            assert panel.view.proto == proto
            names = {f.proto_name for f in panel.shown}
            if proto == "other":
                assert names and not names & {"tcp", "udp", "icmp", "icmp6"}
            else:
                assert names and names <= buckets[proto]
            seen_total += len(panel.shown)
        assert seen_total == 65  # the four buckets partition the flows
        await pilot.press("f")
        assert panel.view.proto == "all" and len(panel.shown) == 65


async def test_s_cycles_the_sort_order() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        panel = traffic(app)
        keys = {
            "packets": lambda f: f.packets,
            "rate": lambda f: f.rate_bps,
            "recent": lambda f: f.last_seen,
            "duration": lambda f: f.duration,
            "bytes": lambda f: f.bytes,
        }
        for order in ("packets", "rate", "recent", "duration", "bytes"):
            await pilot.press("s")
            assert panel.view.sort == order
            values = [keys[order](f) for f in panel.shown]
            assert values == sorted(values, reverse=True), order
            assert table_ids(panel) == shown_ids(panel)
        # "recent" and "duration" give different orders on this capture
        await pilot.press("s", "s", "s")
        assert panel.view.sort == "recent"
        recent = shown_ids(panel)
        await pilot.press("s")
        assert shown_ids(panel) != recent


async def test_g_groups_flows_by_destination() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        panel = traffic(app)
        await pilot.press("g")
        assert panel.view.grouped
        flows = all_flows(app)
        destinations = {f.dst for f in flows}
        assert len(panel.shown) == len(destinations)
        assert panel.table.row_count == len(destinations)
        top = panel.shown[0]
        assert top.bytes == max(sum(f.bytes for f in flows if f.dst == d) for d in destinations)
        assert {f.id for f in top.flows} == {f.id for f in flows if f.dst == top.address}
        # Space selects every flow of the destination under the cursor
        await pilot.press("space")
        assert panel.view.selected == {f.id for f in top.flows}
        assert panel.table.get_row_at(0)[0].plain == "●"
        await pilot.press("g")
        assert not panel.view.grouped
        assert panel.table.row_count == 65


async def test_p_pauses_and_resumes() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        capture = app.runtime.capture
        assert capture is not None and not capture.paused
        await pilot.press("p")
        assert capture.paused
        assert "PAUSED" in status_text(app)
        await pilot.press("p")
        assert not capture.paused
        assert "PAUSED" not in status_text(app)


async def test_pause_stops_analysis_while_packets_arrive() -> None:
    """With the capture replayed in a loop, packets keep arriving: while paused they are
    received and counted but none reaches the pipeline; after resuming they do again."""
    settings = dashboard_settings()
    settings.capture.loop = True
    app = make_app(settings=settings)
    async with app.run_test(size=SIZE) as pilot:
        capture = app.runtime.capture
        stats = app.runtime.pipeline.stats
        assert capture is not None
        await wait_for(pilot, lambda: stats.packets > 0)
        await pilot.press("p")
        assert capture.paused
        analyzed = stats.packets
        await wait_for(pilot, lambda: capture.paused_dropped >= 500)
        assert stats.packets == analyzed
        await pilot.press("p")
        await wait_for(pilot, lambda: stats.packets > analyzed)
        assert not capture.paused


async def test_q_quits_and_stops_the_runtime() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await replayed(pilot)
        await pilot.press("q")
        await pilot.pause()
    assert app.return_value == 0
    assert app.runtime._tasks == []


async def test_packet_strings_are_shown_literally() -> None:
    """Text from packets (here a name a feature put on a flow) is neither markup nor escapes."""
    from packettracer.screens import traffic as traffic_module
    from packettracer.widgets.flow_table import Column

    app = make_app()
    columns = [
        *traffic_module.FLOW_COLUMNS,
        Column("test_literal", "Literal", 30, lambda f: f.get("test_literal")),
    ]
    original = traffic_module.FLOW_COLUMNS
    traffic_module.FLOW_COLUMNS = columns
    try:
        async with app.run_test(size=SIZE) as pilot:
            await replayed(pilot)
            panel = traffic(app)
            first = panel.shown[0]
            first.set("test_literal", "[bold red]evil[/]\x1b[2J\x07")
            await pilot.press("s", "s", "s", "s", "s")  # full cycle back to bytes: recompute
            row = panel.table.get_row_at(0)
            cell = row[-1]
            assert isinstance(cell, Text)
            assert cell.plain == "[bold red]evil[/]\ufffd[2J\ufffd"
            assert not cell.spans  # no style came from the text
            other = panel.table.get_row_at(1)[-1]
            assert other.plain == "-"
    finally:
        traffic_module.FLOW_COLUMNS = original
