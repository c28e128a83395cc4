"""Start the dashboard: validate everything first (so errors are one line, before Textual takes
the terminal), build the source and the Runtime, attach the features, run the app.

`--snapshot OUT.svg` runs the same app headless (no terminal needed) and writes an SVG.
Setting `PACKETTRACER_FIXED_CLOCK=<epoch seconds>` pins the clock the dashboard shows (elapsed
time, ages) and settles rates only at the end, for deterministic screenshots.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import TYPE_CHECKING

from packettracer.config import Settings
from packettracer.errors import CaptureError, UsageError

if TYPE_CHECKING:
    from packettracer.capture.source import PacketSource
    from packettracer.services.runtime import Runtime

FIXED_CLOCK_ENV = "PACKETTRACER_FIXED_CLOCK"

_SIZE = re.compile(r"^\s*(\d+)\s*[xX]\s*(\d+)\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """`--size 120x40` -> (120, 40); one clear error otherwise."""
    match = _SIZE.match(text or "")
    if match is None:
        raise UsageError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 120x40")
    width, height = int(match.group(1)), int(match.group(2))
    if not (20 <= width <= 1000 and 5 <= height <= 500):
        raise UsageError(f"--size {text!r}: width must be 20-1000 and height 5-500")
    return width, height


def check_theme(name: str) -> None:
    from textual.theme import BUILTIN_THEMES

    if name not in BUILTIN_THEMES:
        known = ", ".join(BUILTIN_THEMES)
        raise UsageError(f"unknown theme {name!r} (known: {known})")


def resolve_panel(spec: str | None) -> str:
    from packettracer.screens.registry import PANEL_NAMES, PANELS, panel_key

    if spec is None:
        return "1"
    try:
        key = panel_key(spec)
    except ValueError as exc:
        raise UsageError(f"--panel: {exc}") from None
    if key not in PANELS:
        raise UsageError(f"--panel {spec}: the {PANEL_NAMES[key]} panel is not available")
    return key


def fixed_clock() -> float | None:
    value = os.environ.get(FIXED_CLOCK_ENV)
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise UsageError(f"{FIXED_CLOCK_ENV}={value!r}: expected epoch seconds") from None


def open_source(settings: Settings) -> tuple[PacketSource | None, str | None]:
    """The packet source and the filter to apply in user space (files), or raise one line.
    No source at all with `--relay-only`: every flow then comes from remote agents."""
    cap = settings.capture
    if settings.relay.only and not cap.read_file:
        if not (settings.relay.url or settings.relay.listen):
            raise UsageError("--relay-only needs --relay URL or --relay-listen")
        return None, None
    if cap.read_file:
        from packettracer.capture.source import FileSource

        if cap.bpf_filter:
            from packettracer.capture.bpf import compile_bpf

            compile_bpf(cap.bpf_filter, 1)  # a bad filter fails here, with libpcap's words
        source = FileSource(
            cap.read_file, realtime=cap.realtime, loop=cap.loop, batch_size=cap.batch_size
        )
        return source, cap.bpf_filter
    try:
        from packettracer.capture.live import open_live_source
    except ImportError as exc:
        raise CaptureError(
            f"live capture is not available in this build ({exc})", "replay a file with -r FILE"
        ) from None
    return open_live_source(settings), None


def build_runtime(settings: Settings, clock: float | None = None, features: bool = True) -> Runtime:
    """Source, Runtime and features, as the dashboard runs them (also used by the tests;
    `features=False` gives the bare flow pipeline)."""
    from packettracer.services.features import install_features
    from packettracer.services.runtime import Runtime

    source, userspace_filter = open_source(settings)
    runtime = Runtime(settings, source, userspace_filter=userspace_filter)
    if clock is not None:
        runtime.clock = lambda: clock
        runtime.started_at = clock
        runtime.tick_interval = 1.0
    if features:
        install_features(runtime, "dashboard")
    return runtime


def run_dashboard(settings: Settings, args: argparse.Namespace) -> int:
    snapshot_path: str | None = getattr(args, "snapshot", None)
    size = parse_size(getattr(args, "size", None) or "120x40") if snapshot_path else None
    panel = resolve_panel(getattr(args, "panel", None))
    check_theme(settings.ui.theme)
    clock = fixed_clock()
    if snapshot_path:
        folder = os.path.dirname(os.path.abspath(snapshot_path))
        if not os.path.isdir(folder):
            raise UsageError(f"--snapshot {snapshot_path}: folder {folder} does not exist")
    if not settings.ui.refresh_interval > 0:
        raise UsageError("[ui] refresh_interval must be a positive number of seconds")
    duration = float(getattr(args, "duration", 5.0) or 5.0)
    if duration <= 0:
        raise UsageError("--duration must be positive")

    runtime = build_runtime(settings, clock)

    from packettracer.app import PacketTracerApp, SnapshotPlan

    plan = SnapshotPlan(snapshot_path, duration) if snapshot_path else None
    app = PacketTracerApp(runtime, panel=panel, snapshot=plan, fixed_clock=clock is not None)
    if plan is None:
        result = app.run()
    else:
        from textual.pilot import Pilot

        async def take(pilot: Pilot[object]) -> None:
            await app.settle(live_seconds=plan.duration)
            await pilot.pause()
            app.write_snapshot()
            await app.action_quit()

        result = app.run(headless=True, size=size, auto_pilot=take)
        if app.snapshot_written is None:
            raise CaptureError(f"--snapshot {snapshot_path}: no screenshot was taken")
    _report_source_end(runtime)
    return 0 if result is None else int(result)


def _report_source_end(runtime: Runtime) -> None:
    """Warnings that belong on stderr once the terminal is ours again."""
    capture = runtime.capture
    if capture is None:
        return
    source = capture.source
    truncated = getattr(source, "truncated_at", None)
    if truncated is not None:
        sys.stderr.write(
            f"packettracer: warning: capture truncated mid-packet; "
            f"{source.received} packets read before the break\n"
        )
    if source.error:
        sys.stderr.write(f"packettracer: warning: {source.error}\n")
    for error in runtime.errors:
        sys.stderr.write(f"packettracer: warning: {error}\n")
