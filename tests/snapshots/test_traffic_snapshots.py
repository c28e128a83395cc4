"""SVG snapshots of the Traffic panel, replayed from a fixture capture.

Deterministic: fixed terminal size, fixed clock (elapsed time 00:00:00), the whole capture fed
before the shot, rates settled over a quiet interval (0 b/s), and the panel's own columns only
(features are not attached here, so a feature adding a column or an alert does not change these
pictures; the pilot tests and `--snapshot` run the full assembly).

Update after an intended change with `pytest tests/snapshots --snapshot-update`, then look at the
SVGs under __snapshots__.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from functional.dashboard_helpers import make_app, replayed

from packettracer.screens import traffic as traffic_module
from packettracer.widgets.flow_table import BASE_FLOW_COLUMNS


@pytest.fixture(autouse=True)
def base_columns(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(traffic_module, "FLOW_COLUMNS", list(BASE_FLOW_COLUMNS))
    yield


def test_traffic_80x24(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(features=False), terminal_size=(80, 24), run_before=replayed)


def test_traffic_160x50(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(features=False), terminal_size=(160, 50), run_before=replayed)


def test_traffic_destinations_filtered_160x50(snap_compare) -> None:  # type: ignore[no-untyped-def]
    """The destinations view with a protocol filter and a selection."""
    assert snap_compare(
        make_app(features=False),
        terminal_size=(160, 50),
        run_before=replayed,
        press=["f", "g", "down", "space"],
    )
