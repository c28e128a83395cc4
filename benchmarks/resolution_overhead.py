"""What the resolution feature costs: `report` packets per CPU-second over the benchmark capture
with the feature installed and without, plus the rates of its hot parts (DNS parsing, cached and
uncached geo look-ups, best-name look-ups) and the memory of the offline geo data.

usage: python benchmarks/resolution_overhead.py [CAPTURE] [--runs N]
Build the capture with `bash ../shared/bench/make-bench-capture.sh bench-data/bench.pcap`.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

from packettracer.config import Settings
from packettracer.services import features
from packettracer.services.report import analyze_file

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "bench-data" / "bench.pcap"
SPEC = "packettracer.services.resolution_feature:create_resolution_feature"


def settings() -> Settings:
    s = Settings()
    s.resolve.enabled = False
    s.resolve.offline = True
    s.store.db_path = ":memory:"
    s.geo.search_default_dirs = False
    return s


def report_rate(path: Path, with_feature: bool) -> tuple[int, float]:
    saved = list(features.FEATURE_FACTORIES)
    if not with_feature:
        features.FEATURE_FACTORIES[:] = [f for f in saved if f != SPEC]
    try:
        start = time.process_time()
        result = analyze_file(str(path), settings())
        cpu = time.process_time() - start
    finally:
        features.FEATURE_FACTORIES[:] = saved
    return int(result.summary["packets"]), cpu


def rate(label: str, fn, n: int) -> None:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for i in range(n):
        fn(i)
    elapsed = time.perf_counter() - start
    print(f"{label}: {n / elapsed:,.0f} per second ({elapsed / n * 1e6:.2f} µs each)")


def micro() -> None:
    from packettracer.model import dnsparse
    from packettracer.model.names import NameTable
    from packettracer.services.geo import GeoService, OfflineGeo

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    offline = OfflineGeo("asn")
    t0 = time.perf_counter()
    offline.load()
    load = time.perf_counter() - t0
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(f"offline geo data: loaded in {load:.2f} s, peak RSS +{grown:.0f} MiB")
    geo = GeoService(settings(), offline=offline)
    geo.cache_size = 10_000_000
    rate(
        "geo lookup, uncached",
        lambda i: geo.lookup(f"{(i >> 16) % 223 + 1}.{i >> 8 & 255}.{i & 255}.7"),
        50_000,
    )
    rate(
        "geo lookup, cached",
        lambda i: geo.lookup(f"{(i >> 16) % 223 + 1}.{i >> 8 & 255}.{i & 255}.7"),
        50_000,
    )
    import dns.message
    import dns.rrset

    query = dns.message.make_query("www.example.com", "A")
    response = dns.message.make_response(query)
    response.answer.append(
        dns.rrset.from_text("www.example.com.", 300, "IN", "CNAME", "edge.example.net.")
    )
    response.answer.append(dns.rrset.from_text("edge.example.net.", 60, "IN", "A", "93.184.216.34"))
    wire = response.to_wire()
    rate("DNS answer parse (CNAME + A)", lambda i: dnsparse.parse(wire), 20_000)
    table = NameTable()
    for i in range(50_000):
        table.add(f"10.{i >> 16}.{i >> 8 & 255}.{i & 255}", f"host{i}.example", "dns", 0.0, 300)
    rate(
        "best name of an address",
        lambda i: table.best(f"10.0.{i >> 8 & 255}.{i & 255}", 1.0),
        200_000,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", nargs="?", default=str(DEFAULT))
    parser.add_argument("--runs", type=int, default=2, help="best of N runs each (default 2)")
    args = parser.parse_args()
    micro()
    path = Path(args.capture)
    if not path.exists():
        print(f"{path}: missing; build it with make-bench-capture.sh (report figures skipped)")
        return 0
    best: dict[bool, float] = {}
    for on in (False, True):
        for _ in range(args.runs):
            packets, cpu = report_rate(path, on)
            best[on] = max(best.get(on, 0.0), packets / cpu)
        print(
            f"resolution {'on ' if on else 'off'}: {packets} packets, "
            f"{best[on]:,.0f} packets per CPU-second (best of {args.runs})"
        )
    print(f"resolution overhead: {1 - best[True] / best[False]:.1%} of the throughput without it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
