"""`packettracer report` throughput on the benchmark capture (~970,000 packets, ~240,000 flows,
built by ../shared/bench/make-bench-capture.sh into bench-data/), next to ndpiReader (C, nDPI) and
tshark's conversation statistics when they are installed, all in the same run.

    .venv/bin/python benchmarks/report_throughput.py [--repeat 3] [--no-tshark] [--pcap FILE]

Prints, per tool: packets, wall seconds, CPU seconds (user+sys of that child process), packets
per CPU-second and peak RSS. Also prints the core pipeline alone (reader + decoder + flow
table, no feature analyzers) measured in this process, so the share of the features is visible.
The best of --repeat runs is reported (the machine is shared; the minimum is the least noisy).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ChildRun, ensure_bench_capture, packettracer_exe, run_measured, which  # noqa: E402


def count_packets(pcap: Path) -> tuple[int, int]:
    """(packets, flows) from the summary at the head of one JSON report (only the summary is
    parsed: this process stays small)."""
    out = subprocess.run(
        [packettracer_exe(), "report", "-r", str(pcap), "--format", "json", "-n", "--offline"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    head = '{"summary":'
    assert out.startswith(head) and out.rstrip().endswith("}")
    summary, _end = json.JSONDecoder().raw_decode(out, len(head))
    return summary["packets"], summary["flows"]


def best(cmd: list[str], repeat: int) -> ChildRun:
    runs = [run_measured(cmd) for _ in range(repeat)]
    return min(runs, key=lambda r: r.cpu)


def line(name: str, packets: int, run: ChildRun) -> str:
    rate = packets / run.cpu if run.cpu else 0.0
    return (
        f"{name:<28} {packets:>9} pkts  wall {run.wall:6.2f} s  cpu {run.cpu:6.2f} s "
        f"(user {run.user:.2f} + sys {run.sys:.2f})  {rate:>9,.0f} pkts/cpu-s  "
        f"peak RSS {run.maxrss_kib / 1024:7.1f} MiB"
    )


def core_pipeline(pcap: Path) -> tuple[int, float]:
    """Reader + decoder + flow table in this process, as the report feeds them."""
    from itertools import islice

    from packettracer.capture.pcapfile import CaptureReader
    from packettracer.services.pipeline import Pipeline

    pipeline = Pipeline()
    old = gc.get_threshold()
    gc.set_threshold(100_000, old[1], old[2])
    start = time.process_time()
    with CaptureReader(pcap) as reader:
        frames = iter(reader)
        while chunk := list(islice(frames, 4096)):
            pipeline.feed(chunk)
    pipeline.finish()
    cpu = time.process_time() - start
    gc.set_threshold(*old)
    return pipeline.stats.packets, cpu


def feature_breakdown(pcap: Path) -> None:
    """Seconds spent in each analyzer's hooks when the report's Runtime runs over `pcap`
    (wall time of the hook calls, measured by wrapping them; the rest is the core)."""
    import asyncio
    from collections import defaultdict
    from collections.abc import Callable
    from itertools import islice
    from typing import Any

    from packettracer.capture.pcapfile import CaptureReader
    from packettracer.config import Settings
    from packettracer.services.features import install_features
    from packettracer.services.runtime import Runtime

    settings = Settings()
    settings.resolve.enabled = False
    settings.resolve.offline = True
    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        clock = time.perf_counter

        def wrapper(*args: Any) -> Any:
            start = clock()
            try:
                return fn(*args)
            finally:
                spent[name] += clock() - start

        return wrapper

    async def run() -> float:
        runtime = Runtime(settings)
        install_features(runtime, "report")
        pipeline = runtime.pipeline
        for analyzer in pipeline.analyzers:
            label = f"{type(analyzer).__module__.rsplit('.', 1)[-1]}.{type(analyzer).__name__}"
            analyzer.on_packet = timed(f"{label}.on_packet", analyzer.on_packet)  # type: ignore[method-assign]
            analyzer.on_flow_end = timed(f"{label}.on_flow_end", analyzer.on_flow_end)  # type: ignore[method-assign]
            analyzer.on_port_packet = timed(f"{label}.on_port_packet", analyzer.on_port_packet)  # type: ignore[method-assign]
        pipeline.reconfigure()  # the dispatch lists take the timed hooks
        runtime.start()
        start = time.perf_counter()
        with CaptureReader(pcap) as reader:
            frames = iter(reader)
            while chunk := list(islice(frames, 4096)):
                pipeline.feed(chunk)
                await asyncio.sleep(0)
        pipeline.finish()
        elapsed = time.perf_counter() - start
        await runtime.stop()
        return elapsed

    total = asyncio.run(run())
    print(f"where the report's time goes (one in-process run, {total:.1f} s of analysis):")
    for name, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        if seconds >= 0.05:
            print(f"  {name:<58} {seconds:6.2f} s  {100 * seconds / total:5.1f} %")
    print(
        f"  {'core (reader, decoder, flow table, hook dispatch)':<58} "
        f"{total - sum(spent.values()):6.2f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pcap", type=Path, help="capture to use (default: the benchmark one)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool; the best is shown")
    parser.add_argument("--no-tshark", action="store_true", help="skip tshark (slow)")
    parser.add_argument(
        "--no-breakdown", action="store_true", help="skip the per-analyzer time breakdown"
    )
    args = parser.parse_args()
    pcap = args.pcap or ensure_bench_capture()
    packets, flows = count_packets(pcap)
    print(f"capture: {pcap.name}, {packets} packets, {flows} flows; best of {args.repeat} runs")

    for fmt in ("json", "csv"):
        cmd = [packettracer_exe(), "report", "-r", str(pcap), "--format", fmt, "-n", "--offline"]
        print(line(f"packettracer report {fmt}", packets, best(cmd, args.repeat)), flush=True)

    # The same command with no feature installed: the report's own cost (read, decode, flows,
    # JSON output), comparable across the features that come and go.
    bare = (
        "import sys, packettracer.services.features as f; f.FEATURE_FACTORIES.clear(); "
        "from packettracer.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    cmd = [sys.executable, "-c", bare, "report", "-r", str(pcap), "--format", "json", "-n"]
    print(line("report json, no features", packets, best(cmd, args.repeat)), flush=True)

    core_packets, core_cpu = min(
        (core_pipeline(pcap) for _ in range(args.repeat)), key=lambda r: r[1]
    )
    print(
        f"{'core pipeline (in process)':<28} {core_packets:>9} pkts  cpu {core_cpu:6.2f} s  "
        f"{core_packets / core_cpu:>9,.0f} pkts/cpu-s  (no feature analyzers, no output)"
    )

    ndpi = which("ndpiReader")
    if ndpi:
        print(line("ndpiReader -i", packets, best([ndpi, "-i", str(pcap)], args.repeat)))
    else:
        print("ndpiReader: not installed (Debian package libndpi-bin)")
    tshark = which("tshark")
    if tshark and not args.no_tshark:
        cmd = [tshark, "-r", str(pcap), "-q", "-z", "conv,tcp", "-z", "conv,udp"]
        print(line("tshark -z conv,tcp/udp", packets, best(cmd, 1)))
    if not args.no_breakdown:
        feature_breakdown(pcap)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"(this script's own peak RSS: {usage.ru_maxrss / 1024:.1f} MiB)")


if __name__ == "__main__":
    main()
