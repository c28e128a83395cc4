"""Memory per active flow with 50,000 flows in the table (the default max_flows).

    .venv/bin/python benchmarks/flow_memory.py [--flows 50000]

Feeds real frames (built once with scapy, then only addresses and ports patched) for N distinct
flows, two packets each (half TCP handshakes, half UDP request/response), into
  1. the bare flow table (reader-free Pipeline: decoder + FlowTable), and
  2. the Runtime with every feature installed as `report` builds it (DPI, names, security, ...),
and prints the bytes per flow by tracemalloc (Python heap, exact) and by RSS delta (what the
process really grew by, including allocator slack). Target: <= 1 KiB per flow for the table.
"""

from __future__ import annotations

import argparse
import gc
import struct
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

from packettracer.capture.pcapfile import Frame  # noqa: E402

PAGE = 4096


def rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE


def frames(n: int) -> Iterator[Frame]:
    """Two frames per flow; addresses 10.a.b.c -> 172.16.x.y, ports varying."""
    syn = bytearray(bytes(Ether() / IP() / TCP(flags="S", options=[("MSS", 1460)])))
    synack = bytearray(bytes(Ether() / IP() / TCP(flags="SA", options=[("MSS", 1460)])))
    query = bytearray(bytes(Ether() / IP() / UDP() / (b"\x00" * 40)))
    answer = bytearray(bytes(Ether() / IP() / UDP() / (b"\x00" * 80)))
    ts = 1_700_000_000.0
    for i in range(n):
        client = struct.pack("!BBH", 10, (i >> 16) & 0xFF, i & 0xFFFF)
        server = struct.pack("!BBH", 172, 16, i % 4000)
        cport, sport = 1024 + (i % 60000), (443, 53)[i % 2]
        first, second = (syn, synack) if i % 2 == 0 else (query, answer)
        for frame, src, dst, p1, p2 in (
            (first, client, server, cport, sport),
            (second, server, client, sport, cport),
        ):
            frame[26:30] = src
            frame[30:34] = dst
            struct.pack_into("!HH", frame, 34, p1, p2)
            ts += 0.0001
            yield 1, ts, bytes(frame), len(frame)


def measure(n: int, with_features: bool, method: str) -> float:
    """Bytes per flow, by `method` (heap: tracemalloc; rss: resident set growth)."""
    from packettracer.config import Settings
    from packettracer.services.pipeline import Pipeline

    settings = Settings()
    settings.flows.max_flows = n
    settings.resolve.enabled = False
    settings.resolve.offline = True
    data = list(frames(n))  # built before measuring: only the table's growth is counted
    if with_features:
        from packettracer.services.features import install_features
        from packettracer.services.runtime import Runtime

        runtime = Runtime(settings)
        install_features(runtime, "report")
        pipeline = runtime.pipeline
    else:
        pipeline = Pipeline(settings)
    # Warm up allocator pools and lazy imports with a flow that is then forgotten.
    pipeline.feed(data[:2])
    gc.collect()
    if method == "heap":
        tracemalloc.start()
    rss0 = rss_bytes()
    heap0 = tracemalloc.get_traced_memory()[0] if method == "heap" else 0
    pipeline.feed(data[2:])
    gc.collect()
    if method == "heap":
        grown = tracemalloc.get_traced_memory()[0] - heap0
        tracemalloc.stop()
    else:
        grown = rss_bytes() - rss0
    flows = len(pipeline.flows)
    assert flows == n, f"expected {n} active flows, got {flows}"
    return grown / (flows - 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=50_000)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, method = args.child
        print(measure(args.flows, kind == "runtime", method))
        return
    # Each figure in its own process, so one measurement's garbage cannot hide in another's.
    for kind, label in (
        ("table", "flow table (decoder + FlowTable)"),
        ("runtime", "runtime with every report feature"),
    ):
        figures = {}
        for method in ("heap", "rss"):
            out = subprocess.run(
                [sys.executable, __file__, "--flows", str(args.flows), "--child", kind, method],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            figures[method] = float(out.strip().splitlines()[-1])
        print(
            f"{label:<34} {args.flows:>7} active flows  "
            f"{figures['heap']:6.0f} B/flow Python heap (tracemalloc)  "
            f"{figures['rss']:6.0f} B/flow RSS growth"
        )


if __name__ == "__main__":
    main()
