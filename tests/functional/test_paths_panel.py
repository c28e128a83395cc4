"""Panel 2, Paths, driven with the Textual pilot over real traces (loopback, as root)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import is_root
from functional.dashboard_helpers import replayed, wait_for
from rich.text import Text
from textual.widgets import DataTable

from packettracer.app import PacketTracerApp
from packettracer.config import Settings
from packettracer.dashboard import build_runtime
from packettracer.model.trace import ProbeReply, TargetState
from packettracer.screens.paths import PathsPanel
from packettracer.screens.traffic import TrafficPanel

pytestmark = pytest.mark.skipif(not is_root(), reason="needs root (raw sockets for tracing)")


DATA = Path(__file__).resolve().parents[1] / "data"
PINGS = DATA / "5-pings.pcap"


def _settings(*targets: str) -> Settings:
    settings = Settings()
    settings.capture.read_file = str(PINGS)
    # Nothing on disk, nothing online: these tests look at tracing, not at persistence.
    settings.store.db_path = ":memory:"
    settings.resolve.enabled = False
    settings.resolve.offline = True
    settings.trace.targets = list(targets)
    settings.trace.interval = 0.1
    settings.trace.timeout = 0.3
    settings.trace.probes = 2
    return settings


def make_app(
    path: Path | None = None, panel: str = "1", settings: Settings | None = None
) -> PacketTracerApp:
    settings = settings or _settings()
    if path is not None:
        settings.capture.read_file = str(path)
    return PacketTracerApp(build_runtime(settings), panel=panel)


def _cells(table: DataTable[Text], row: int) -> list[str]:
    return [str(c) for c in table.get_row_at(row)]


async def test_paths_panel_shows_live_trace_and_adds_targets() -> None:
    app = make_app(panel="2", settings=_settings("127.0.0.1"))
    async with app.run_test(size=(160, 40)) as pilot:
        feature = app.runtime.features["trace"]

        def rounds(target: str) -> int:
            return next((s.rounds for s in feature.targets if s.target == target), 0)

        await wait_for(pilot, lambda: rounds("127.0.0.1") >= 3)
        panel = app.query_one(PathsPanel)
        targets: DataTable[Text] = panel.query_one("#paths-targets", DataTable)
        hops: DataTable[Text] = panel.query_one("#paths-hops", DataTable)

        def shown() -> bool:
            """The panel (refreshed on a timer) shows those rounds."""
            return (
                targets.row_count >= 1
                and _cells(targets, 0)[4] == "reached"
                and hops.row_count >= 1
                and bool(_cells(hops, 0)[11].strip())
                and "Route history of 127.0.0.1" in panel.history_text.plain
            )

        await wait_for(pilot, shown)
        assert _cells(targets, 0)[0] == "127.0.0.1"
        assert _cells(targets, 0)[4] == "reached"
        hop = _cells(hops, 0)
        assert hop[:2] == ["1", "127.0.0.1"] and hop[5] == "0%"
        assert hop[11].strip()  # the RTT sparkline has samples
        assert "Route history of 127.0.0.1" in panel.history_text.plain
        # `a` asks for a target; the new one is traced too.
        await pilot.press("a")
        for ch in "::1":
            await pilot.press(ch)
        await pilot.press("enter")
        await wait_for(pilot, lambda: rounds("::1") >= 1)
        await wait_for(pilot, lambda: targets.row_count == 2)
        # `x` stops the selected one.
        targets.move_cursor(row=1)
        await pilot.press("x")
        await wait_for(pilot, lambda: [s.target for s in feature.targets] == ["127.0.0.1"])


async def test_route_change_is_highlighted_in_history() -> None:
    app = make_app(panel="2", settings=_settings("127.0.0.1"))
    async with app.run_test(size=(160, 40)) as pilot:
        feature = app.runtime.features["trace"]
        await wait_for(pilot, lambda: feature.session is not None)
        # A second target's state fed with two rounds that took different routes.
        state = TargetState("192.0.2.9", "192.0.2.9", "icmp")
        now = time.time()
        first = [ProbeReply(1, "10.0.0.1", 1.0), ProbeReply(2, "192.0.2.9", 2.0, True)]
        second = [
            ProbeReply(1, "10.0.0.1", 1.0),
            ProbeReply(2, "10.0.9.1", 2.0),
            ProbeReply(3, "192.0.2.9", 3.0, True),
        ]
        state.apply_round({1: 1, 2: 1}, first, 2, now - 10)
        state.apply_round({1: 1, 2: 1, 3: 1}, second, 3, now)
        feature.session.targets[state.target] = state
        panel = app.query_one(PathsPanel)
        await wait_for(pilot, lambda: len(panel.keys) == 2)
        targets: DataTable[Text] = panel.query_one("#paths-targets", DataTable)
        targets.move_cursor(row=panel.keys.index("192.0.2.9"))
        await wait_for(pilot, lambda: "route to 192.0.2.9 changed" in panel.history_text.plain)
        assert _cells(targets, panel.keys.index("192.0.2.9"))[4] == "changed"
        history = panel.history_text
        plain = history.plain
        assert "route to 192.0.2.9 changed: hop 2: 192.0.2.9 -> 10.0.9.1" in plain
        assert "10.0.0.1 > 10.0.9.1 > 192.0.2.9" in plain
        # The changed hop is highlighted.
        start = plain.index("10.0.9.1")
        styles = [str(span.style) for span in history.spans if span.start <= start < span.end]
        assert any("yellow" in s for s in styles)


async def test_enter_in_traffic_traces_the_remote_end(tmp_path: Path) -> None:
    from scapy.all import IP, TCP, Ether, wrpcap

    # A capture whose only flow goes to another loopback address: the trace stays on this host.
    pcap = tmp_path / "loop.pcap"
    syn = Ether() / IP(src="127.0.0.1", dst="127.0.0.2") / TCP(sport=40000, dport=80, flags="S")
    wrpcap(str(pcap), [syn])
    settings = _settings()
    settings.capture.read_file = str(pcap)
    app = make_app(pcap, panel="1", settings=settings)
    async with app.run_test(size=(160, 40)) as pilot:
        await replayed(pilot)
        feature = app.runtime.features["trace"]
        traffic = app.query_one(TrafficPanel)
        await wait_for(pilot, lambda: len(traffic.shown) == 1)
        traffic.table.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: any(s.rounds for s in feature.targets))
        assert [s.target for s in feature.targets] == ["127.0.0.2"]
        assert "tracing 127.0.0.2" in traffic.message
        state = feature.targets[0]
        assert [h.address for h in state.hop_list()] == ["127.0.0.2"]


async def test_dashboard_traces_are_stored(tmp_path: Path) -> None:
    from packettracer.services.store import Repositories, open_database

    settings = _settings("127.0.0.1")
    settings.store.db_path = str(tmp_path / "paths.db")
    app = make_app(panel="2", settings=settings)
    async with app.run_test(size=(160, 40)) as pilot:
        feature = app.runtime.features["trace"]
        await wait_for(pilot, lambda: sum(s.rounds for s in feature.targets) >= 2)
    # Leaving the app stops the runtime, and the store's writer drains.
    _, conn = open_database(settings.store.db_path)
    try:
        rows = Repositories().traces.history(conn, target="127.0.0.1")
    finally:
        conn.close()
    assert len(rows) >= 2
    assert all([h["ip"] for h in r["hops"]] == ["127.0.0.1"] for r in rows)
    assert all(r["reached"] and r["method"] == "icmp" for r in rows)
