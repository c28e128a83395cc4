"""Pilot tests: the Traffic panel's destinations view and the Stats panel show what the
database holds."""

from __future__ import annotations

import time
from pathlib import Path

from functional.dashboard_helpers import dashboard_settings, make_app, replayed, wait_for
from rich.text import Text
from textual.widgets import Static

from packettracer.app import PacketTracerApp
from packettracer.services.store import open_database
from packettracer.services.store.writer import StoreWriter


def view_line(app: PacketTracerApp) -> str:
    rendered = app.query_one("#traffic-view", Static).render()
    return rendered.plain if isinstance(rendered, Text) else str(rendered)


def fill(db: str) -> None:
    """Flows stored by an earlier run: 30 to one destination, 1 to another, within 24 h."""
    location, conn = open_database(db)
    writer = StoreWriter(location, conn)
    now = time.time()
    for i in range(31):
        dst = "198.51.100.7" if i < 30 else "198.51.100.8"
        writer.enqueue(
            "flows",
            {"proto": "tcp", "src": "192.0.2.10", "sport": 40_000 + i, "dst": dst,
             "dport": 443, "packets_fwd": 10, "packets_rev": 10, "bytes_fwd": 1_000,
             "bytes_rev": 99_000, "first_seen": now - 3600, "last_seen": now - 3500,
             "duration": 100.0, "tcp_state": "closed"},
        )  # fmt: skip
    writer.close_sync()


async def test_destinations_view_shows_stored_history(tmp_path: Path) -> None:
    db = str(tmp_path / "history.db")
    fill(db)
    settings = dashboard_settings()
    settings.store.db_path = db
    app = make_app(settings=settings)
    async with app.run_test(size=(140, 30)) as pilot:
        await replayed(pilot)
        assert "stored 24h" not in view_line(app)  # only in the destinations view
        await pilot.press("g")
        # The summary and the top destination are two background queries; either may
        # answer first, so wait for the line that holds both.
        await wait_for(pilot, lambda: "most bytes" in view_line(app))
        line = view_line(app)
        assert "stored 24h: 2 destinations, 31 flows" in line
        assert "most bytes: 198.51.100.7 (3.0 MB)" in line


async def test_stats_panel_shows_stored_history(tmp_path: Path) -> None:
    db = str(tmp_path / "history.db")
    fill(db)
    settings = dashboard_settings()
    settings.store.db_path = db
    app = make_app(settings=settings, panel="3")
    async with app.run_test(size=(200, 40)) as pilot:
        await replayed(pilot)

        def summary() -> str:
            rendered = app.query_one("#stats-summary", Static).render()
            return rendered.plain if isinstance(rendered, Text) else str(rendered)

        await wait_for(pilot, lambda: "stored 24h" in summary())
        assert "stored 24h: 31 flows, 3.1 MB, 1 sources, 2 destinations; history since" in (
            summary()
        )
