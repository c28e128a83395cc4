"""SVG snapshots of all ten panels at 80x24 and 160x50, with every feature attached, as
`packettracer -r FILE -n` shows them: the Traffic, Stats, Analysis, Ports, DNS, DPI, Alerts and
Graph panels filled from a real capture, Paths and Relay in their idle state.

Deterministic: fixed size and clock, the capture fed completely before the shot, no active
lookups (-n), the offline geo data loaded before the app starts (the dashboard otherwise loads it
in the background), nothing on disk, and the Stats panel's stored-history line left out.
Update after an intended change with `pytest tests/snapshots/test_all_panels.py
--snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

import pytest
from functional.dashboard_helpers import DATA, dashboard_settings, make_app, replayed

from packettracer.screens import stats as stats_module
from packettracer.screens import traffic as traffic_module
from packettracer.screens.registry import PANEL_NAMES
from packettracer.services.resolution_feature import shared_offline
from packettracer.widgets import flow_table

# The fixture per panel: everyday traffic, and a port scan where the security panels have more
# to show.
FIXTURES = {key: DATA / "android.pcap" for key in PANEL_NAMES}
FIXTURES["8"] = FIXTURES["9"] = DATA / "synscan.pcap"
SIZES = [(80, 24), (160, 50)]


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("key", list(PANEL_NAMES), ids=lambda k: f"{k}-{PANEL_NAMES[k]}")
def test_panel(snap_compare, monkeypatch, key: str, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    # The Stats panel's line about stored history comes from a background database query that
    # may or may not have answered at the shot; tests/functional/test_store_history.py covers it.
    monkeypatch.setattr(stats_module, "stats_history_line", lambda runtime: None)
    settings = dashboard_settings(FIXTURES[key])
    shared_offline(settings.geo.offline_data).load()
    app = make_app(settings=settings, panel=key)
    # The Traffic columns of the features attached here (they register as they attach), not
    # those an earlier test in this process loaded (the relay's Site column).
    columns = [c for c in flow_table.FLOW_COLUMNS if c.key != "site"]
    monkeypatch.setattr(traffic_module, "FLOW_COLUMNS", columns)
    assert snap_compare(app, terminal_size=size, run_before=replayed)
