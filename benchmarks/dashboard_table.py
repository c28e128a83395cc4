"""The Traffic panel with 50,000 flows in memory: what one refresh costs.

    .venv/bin/python benchmarks/dashboard_table.py [--flows 50000] [--rows 500] [--pcap FILE]

Fills a flow table from the benchmark capture (bench-data/bench.pcap, built from the shared corpus
when missing) until it holds --flows flows, then prints, in milliseconds (best of 5):
- the view model alone (model/flow_view.py): top rows by each sort order, each filter, the
  destinations grouping;
- the whole panel refresh in a headless Textual app (view + keyed DataTable diff): with nothing
  changed, after more packets arrived, after a sort change (every row moves), after a filter.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ensure_bench_capture  # noqa: E402

from packettracer.capture.pcapfile import CaptureReader, Frame  # noqa: E402
from packettracer.config import Settings  # noqa: E402
from packettracer.model.flow_view import SORT_CYCLE, FlowView  # noqa: E402
from packettracer.services.runtime import Runtime  # noqa: E402


def best_ms(fn: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times) * 1000


def fill(runtime: Runtime, pcap: Path, flows: int) -> Iterator[Frame]:
    """Feed the capture until the table holds `flows` flows; returns the rest of the frames."""
    frames = iter(CaptureReader(str(pcap)))
    table = runtime.pipeline.flows
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == 2048:
            runtime.pipeline.feed(batch)
            batch = []
            if len(table) >= flows:
                break
    runtime.pipeline.feed(batch)
    runtime.tick(force=True)
    return frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=50_000)
    parser.add_argument("--rows", type=int, default=500)
    parser.add_argument("--pcap", type=Path)
    args = parser.parse_args()
    pcap = args.pcap or ensure_bench_capture()

    settings = Settings()
    settings.flows.max_flows = args.flows
    # The capture spans years of packet time: keep every flow (the LRU bound still applies).
    settings.flows.idle_timeout = 1e12
    settings.flows.closed_timeout = 1e12
    settings.ui.table_rows = args.rows
    runtime = Runtime(settings)
    frames = fill(runtime, pcap, args.flows)
    flows = list(runtime.pipeline.flows)
    print(f"flows in memory: {len(flows)}, table rows: {args.rows}")

    print("view model (ms, best of 5):")
    view = FlowView()
    for order in SORT_CYCLE:
        view.sort = order
        print(f"  top {args.rows} by {order:<9} {best_ms(lambda: view.top(flows, args.rows)):8.1f}")
    view.sort = "bytes"
    for label, setup in (
        ("ip substring '10.'", lambda v: v.set_ip_filter("10.")),
        ("ip CIDR 10.0.0.0/8", lambda v: v.set_ip_filter("10.0.0.0/8")),
        ("port 443", lambda v: v.set_port_filter("443")),
        ("proto udp", lambda v: setattr(v, "proto", "udp")),
    ):
        filtered = FlowView()
        setup(filtered)
        print(f"  filter {label:<22} {best_ms(lambda f=filtered: f.top(flows, args.rows)):8.1f}")
    print(f"  destinations view        {best_ms(lambda: view.groups(flows, args.rows)):8.1f}")

    asyncio.run(panel_refresh(runtime, frames))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {peak:.0f} MiB")


async def panel_refresh(runtime: Runtime, frames: Iterator[Frame]) -> None:
    from packettracer.app import PacketTracerApp
    from packettracer.screens.traffic import TrafficPanel

    app = PacketTracerApp(runtime)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        panel = app.panels["1"]
        assert isinstance(panel, TrafficPanel)

        def refresh() -> None:
            panel.invalidate()

        def more_packets_then_refresh() -> None:
            batch = [f for _, f in zip(range(2048), frames, strict=False)]
            runtime.pipeline.feed(batch)
            runtime.tick(force=True)
            panel.invalidate()

        def resort() -> None:
            panel.view.cycle_sort()
            panel.invalidate()

        def refilter() -> None:
            panel.view.set_port_filter("" if panel.view.port_filter else "443")
            panel.invalidate()

        print(f"panel refresh, {len(panel.shown)} rows shown (ms, best of 5):")
        print(f"  nothing changed          {best_ms(refresh):8.1f}")
        print(f"  2048 more packets        {best_ms(more_packets_then_refresh):8.1f}")
        print(f"  sort order changed       {best_ms(resort):8.1f}")
        print(f"  port filter toggled      {best_ms(refilter):8.1f}")
        await pilot.press("q")


if __name__ == "__main__":
    main()
