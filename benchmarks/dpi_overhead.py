"""What the DPI feature costs `report`: packets per CPU-second over the benchmark capture with
the DPI feature on and off ([dpi] enabled), everything else as `report -n --offline` runs it.

usage: python benchmarks/dpi_overhead.py [CAPTURE] [--runs N]
Build the capture with `bash ../shared/bench/make-bench-capture.sh bench-data/bench.pcap`.

Where the DPI's time goes (its calls timed one by one inside `report` on this capture, ~2.6
CPU-seconds in all): first payload packets of TCP flows (TLS ClientHello, HTTP request; the TLS
parse included, which the name learner no longer repeats) ~22%, first UDP packets (DNS, its parse
shared with the name learner) ~15%, later handshake packets (ServerHello, certificate, DNS
answers, HTTP responses) ~18%, SYN and SYN+ACK fingerprints with the TTL watch ~11%, then per
ended flow the verdict ~18% and the panels' aggregates ~13%. Each run starts from a clean heap.
"""

from __future__ import annotations

import argparse
import gc
import logging
import sys
import time
from pathlib import Path

from packettracer.config import Settings
from packettracer.model.dpi import inspector
from packettracer.services.report import analyze_file

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "bench-data" / "bench.pcap"


def run(path: Path, dpi: bool) -> tuple[int, float, int]:
    settings = Settings()
    settings.resolve.enabled = False
    settings.resolve.offline = True
    settings.store.db_path = ":memory:"
    settings.dpi.enabled = dpi
    # Each run starts from a clean heap, as a `report` process does: otherwise the previous
    # run's cyclic garbage (its runtime, flow table, caches) is collected, at random, inside
    # this run's timing.
    gc.collect()
    start = time.process_time()
    result = analyze_file(str(path), settings)
    cpu = time.process_time() - start
    return int(result.summary["packets"]), cpu, len(result.flows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", nargs="?", default=str(DEFAULT))
    parser.add_argument("--runs", type=int, default=5, help="best of N runs each (default 5)")
    args = parser.parse_args()
    logging.disable(logging.CRITICAL)  # figures only
    path = Path(args.capture)
    if not path.exists():
        print(f"{path}: missing; build it with make-bench-capture.sh", file=sys.stderr)
        return 2
    best: dict[bool, float] = {}
    seen: dict[bool, tuple[int, int]] = {}
    # Off and on alternate, best of N each: a busy machine slows runs unevenly.
    for _ in range(args.runs):
        for dpi in (False, True):
            packets, cpu, flows = run(path, dpi)
            best[dpi] = max(best.get(dpi, 0.0), packets / cpu)
            seen[dpi] = (packets, flows)
    for dpi in (False, True):
        packets, flows = seen[dpi]
        print(
            f"DPI {'on ' if dpi else 'off'}: {packets} packets, {flows} flows, "
            f"{best[dpi]:,.0f} packets per CPU-second (best of {args.runs})"
        )
    built = "compiled (mypyc)" if str(inspector.__file__).endswith(".so") else "pure Python"
    print(f"DPI modules: {built}")
    overhead = 1 - best[True] / best[False]
    print(f"DPI overhead: {overhead:.1%} of the throughput without DPI (budget: 20%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
