"""Building the dashboard app over a fixture capture, as `packettracer -r FILE` does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from textual.pilot import Pilot

from packettracer.app import PacketTracerApp
from packettracer.config import Settings
from packettracer.dashboard import build_runtime

DATA = Path(__file__).resolve().parents[1] / "data"
FIXTURE = DATA / "android.pcap"
FIXED_CLOCK = 1_700_000_000.0


def dashboard_settings(path: Path = FIXTURE) -> Settings:
    settings = Settings()
    settings.capture.read_file = str(path)
    # Nothing on disk, nothing online: the tests look at the dashboard, not at persistence.
    settings.store.db_path = ":memory:"
    settings.resolve.enabled = False
    settings.resolve.offline = True
    return settings


def make_app(
    path: Path = FIXTURE,
    panel: str = "1",
    settings: Settings | None = None,
    features: bool = True,
) -> PacketTracerApp:
    """The app as `packettracer -r path` builds it (features attached unless told not to),
    with the clock fixed."""
    settings = settings or dashboard_settings(path)
    runtime = build_runtime(settings, clock=FIXED_CLOCK, features=features)
    return PacketTracerApp(runtime, panel=panel, fixed_clock=True)


async def replayed(pilot: Pilot[object]) -> None:
    """Wait until the capture has been fed completely and the screen shows it."""
    app = pilot.app
    assert isinstance(app, PacketTracerApp)
    await app.settle()
    await pilot.pause()


async def wait_for(
    pilot: Pilot[object], condition: Callable[[], bool], limit: float = 20.0
) -> None:
    """Let the app run until `condition()` holds (a state, not a fixed sleep)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"condition not reached within {limit}s")
        await pilot.pause(0.02)
