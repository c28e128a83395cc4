"""Blocklist lookups with a million entries: load time (parse + build, from a file in the
blocklist folder, as the dashboard loads it), memory, and lookups per second (half hits).

    .venv/bin/python benchmarks/reputation_lookup.py [--entries 1000000] [--lookups 500000]

The list is synthetic (random /32s and /24s, a few IPv6 /48s), written to a temporary folder.
Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import random
import resource
import socket
import struct
import tempfile
import time
from pathlib import Path

from packettracer.services.blocklists import BlocklistService


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=500_000)
    args = ap.parse_args()
    rng = random.Random(7)
    addresses: list[bytes] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.netset"
        with path.open("w") as fh:
            fh.write("# synthetic list\n")
            for i in range(args.entries):
                value = rng.getrandbits(32)
                packed = struct.pack("!I", value)
                if i % 10 == 0:
                    net = socket.inet_ntoa(packed[:3] + bytes(1))
                    fh.write(f"{net}/24 ; note {i}\n")
                elif i % 1000 == 1:
                    fh.write(f"2001:{value & 0xFFFF:x}:{i & 0xFFFF:x}::/48\n")
                else:
                    fh.write(socket.inet_ntoa(packed) + "\n")
                if len(addresses) < args.lookups // 2:
                    addresses.append(packed)
        size = path.stat().st_size
        service = BlocklistService(tmp)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started, cpu = time.perf_counter(), time.process_time()
        service.scan()
        load, load_cpu = time.perf_counter() - started, time.process_time() - cpu
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    db = service.db
    (bl,) = db.lists.values()
    probes = addresses + [struct.pack("!I", rng.getrandbits(32)) for _ in addresses]
    rng.shuffle(probes)
    lookup = db.lookup_packed
    started, cpu = time.perf_counter(), time.process_time()
    hits = 0
    for packed in probes:
        if lookup(packed) is not None:
            hits += 1
    elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - cpu
    print(f"entries: {bl.entries:,} ({bl.ranges:,} ranges after merging), file {size / 1e6:.1f} MB")
    # CPU time too: on a busy machine the wall clock measures the neighbours.
    print(f"load: {load:.2f} s wall, {load_cpu:.2f} s CPU ({bl.entries / load_cpu:,.0f} entries/s)")
    print(f"peak RSS grew by {(rss_after - rss_before) / 1e3:.0f} MB while loading")
    n = len(probes)
    print(
        f"lookups: {n:,} in {elapsed:.2f} s wall = {n / elapsed:,.0f}/s; "
        f"{elapsed_cpu:.2f} s CPU = {n / elapsed_cpu:,.0f} lookups/s"
    )
    print(f"hits: {hits:,} ({hits / len(probes):.1%})")


if __name__ == "__main__":
    main()
