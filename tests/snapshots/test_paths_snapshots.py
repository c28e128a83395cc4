"""SVG snapshots of panel 2, Paths.

Deterministic: a fixed clock and terminal size, the trace feature alone on the bare pipeline, no
probes sent (no start-up targets), and target states built from fixed probe answers (one target
whose route changed, with a silent hop; one that could not be resolved), shown in UTC.

Update after an intended change with `pytest tests/snapshots --snapshot-update`, then look at the
SVGs under __snapshots__.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from textual.pilot import Pilot

from packettracer.app import PacketTracerApp
from packettracer.config import Settings
from packettracer.dashboard import build_runtime
from packettracer.model.trace import ProbeReply, TargetState
from packettracer.services.trace_feature import make_feature

PINGS = Path(__file__).resolve().parents[1] / "data" / "5-pings.pcap"
CLOCK = 1_700_000_000.0


@pytest.fixture(autouse=True)
def utc() -> Iterator[None]:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def make_app() -> PacketTracerApp:
    settings = Settings()
    settings.capture.read_file = str(PINGS)
    settings.store.db_path = ":memory:"
    settings.resolve.enabled = False
    runtime = build_runtime(settings, clock=CLOCK, features=False)
    feature = make_feature(runtime, "dashboard")
    assert feature is not None
    feature.attach(runtime)
    runtime.features[feature.name] = feature
    return PacketTracerApp(runtime, panel="2", fixed_clock=True)


def changed_state() -> TargetState:
    state = TargetState("example.test", "192.0.2.9", "udp")
    state.flow_id = "udp 10.0.0.2:40000 -> 192.0.2.9:33434"
    sent = {1: 3, 2: 3, 3: 3, 4: 3}
    for i in range(4):
        via_b = i == 3
        replies = [ProbeReply(1, "10.0.0.1", 0.4 + 0.1 * j) for j in range(3)]
        # Hop 2 never answers (a router that sends no ICMP errors).
        replies += [
            ProbeReply(3, "10.0.9.1" if via_b else "10.0.3.1", 5.0 + i + j) for j in range(3)
        ]
        replies += [ProbeReply(4, "192.0.2.9", 9.0 + i + j, destination=True) for j in range(2)]
        state.apply_round(sent, replies, 4, CLOCK + 10 * i)
    return state


def failed_state() -> TargetState:
    state = TargetState("nowhere.invalid", "nowhere.invalid", "icmp")
    state.error = "cannot resolve 'nowhere.invalid': Name or service not known"
    return state


async def inject(pilot: Pilot[object]) -> None:
    app = pilot.app
    assert isinstance(app, PacketTracerApp)
    await app.settle()
    feature = app.runtime.features["trace"]
    while feature.session is None:
        await pilot.pause(0.02)
    changed = changed_state()
    for state in (changed, failed_state()):
        feature.session.targets[state.target] = state
    feature.events.append(changed.changes[-1].summary())
    await pilot.pause(0.3)


def test_paths_160x40(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), terminal_size=(160, 40), run_before=inject)


def test_paths_error_selected_120x30(snap_compare) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(make_app(), terminal_size=(120, 30), run_before=inject, press=["down"])
