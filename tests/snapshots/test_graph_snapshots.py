"""SVG snapshots of panel 9 (Graph) at 80x24 and 160x50, over android.pcap with the full feature
set and a test blocklist that marks two remotes (drawn highlighted).

Deterministic: fixed size and clock, the whole capture fed before the shot, nodes ordered by
bytes then address. Update after an intended change with
`pytest tests/snapshots/test_graph_snapshots.py --snapshot-update`, then look at the SVGs.
"""

from __future__ import annotations

from functional.dashboard_helpers import DATA, dashboard_settings, make_app, replayed


def graph_app():  # type: ignore[no-untyped-def]
    settings = dashboard_settings()
    settings.security.blocklist_dir = str(DATA / "blocklists")
    return make_app(panel="9", settings=settings)


def test_graph_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(graph_app(), terminal_size=(80, 24), run_before=replayed)


def test_graph_160x50_focus_moved(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(
        graph_app(), terminal_size=(160, 50), run_before=replayed, press=["left", "down"]
    )
