"""Database writer figures: sustained insert rate of ended flows through the batched writer
while a reader queries every 100 ms, and start-up time with a 1,000,000-row database.

    .venv/bin/python benchmarks/store_writer.py [--rows 500000] [--db-rows 1000000]

Targets: >= 50,000 rows/s; reader wait <= 50 ms; start-up to ready < 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from packettracer.config import Settings
from packettracer.services.runtime import Runtime
from packettracer.services.store import Location, Repositories, connect, open_database
from packettracer.services.store.writer import StoreWriter
from packettracer.services.store_feature import create_store_feature


def flow_row(i: int, now: float) -> dict[str, Any]:
    """Shaped like Flow.to_dict() with a few facts later features add (kept in `ext`)."""
    return {
        "proto": "tcp" if i % 3 else "udp",
        "src": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}",
        "sport": 1024 + i % 60_000,
        "dst": f"198.51.100.{i % 200}",
        "dport": 443 if i % 3 else 53,
        "packets_fwd": 12,
        "packets_rev": 10,
        "bytes_fwd": 1_500 + i % 1000,
        "bytes_rev": 24_000,
        "first_seen": now - 2.5,
        "last_seen": now,
        "duration": 2.5,
        "tcp_state": "closed" if i % 3 else None,
        "end_reason": "idle",
        "app": "TLS" if i % 3 else "DNS",
        "category": "web",
    }


def insert_rate(rows: int, folder: Path) -> None:
    db = str(folder / "rate.db")
    location, conn = open_database(db)
    writer = StoreWriter(location, conn, retention_days=0)
    writer.start()
    reader = connect(Location(db), reader=True)
    repos = Repositories()
    waits: list[float] = []
    stop = threading.Event()

    def read_loop() -> None:
        while not stop.is_set():
            began = time.perf_counter()
            # The newest flows, as a panel would show them (an index range scan).
            repos.flows.query(reader, since=time.time() - 0.05, limit=100)
            waits.append(time.perf_counter() - began)
            stop.wait(max(0.0, 0.1 - (time.perf_counter() - began)))

    thread = threading.Thread(target=read_loop)
    thread.start()
    batch = [flow_row(i, time.time()) for i in range(5_000)]
    began = time.perf_counter()
    cpu_began = time.process_time()
    sent = 0
    while sent < rows:
        now = time.time()
        for row in batch:
            # The dashboard hands over a fresh dict per ended flow (Flow.to_dict()).
            fresh = dict(row)
            fresh["first_seen"] = now - 2.5
            fresh["last_seen"] = now
            writer.enqueue("flows", fresh)
        sent += len(batch)
        # A producer that outruns the writer would only fill the bounded queue: keep it honest.
        while writer.pending > 50_000:
            time.sleep(0.001)
    writer.flush_sync(120)
    elapsed = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    stop.set()
    thread.join()
    writer.close_sync()
    reader.close()
    print(f"insert: {writer.written:,} ended flows in {elapsed:.2f} s = "
          f"{writer.written / elapsed:,.0f} rows/s ({writer.batches} transactions; "
          f"dropped {writer.dropped})")  # fmt: skip
    print(f"        process CPU {cpu:.2f} s (producer + writer + reader) = "
          f"{writer.written / cpu:,.0f} rows per CPU-second")  # fmt: skip
    print(f"reader: {len(waits)} queries every 100 ms, max {max(waits) * 1000:.1f} ms, "
          f"median {statistics.median(waits) * 1000:.1f} ms")  # fmt: skip


def build_big(db: str, rows: int) -> None:
    location, conn = open_database(db)
    repos = Repositories()
    now = time.time()
    chunk = 50_000
    for start in range(0, rows, chunk):
        conn.execute("BEGIN")
        repos.flows.insert_many(
            conn, (flow_row(i, now - (rows - i) * 0.5) for i in range(start, start + chunk))
        )
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    del location


async def startup(db: str) -> dict[str, float]:
    settings = Settings()
    settings.store.db_path = db
    began = time.perf_counter()
    runtime = Runtime(settings)
    feature = create_store_feature(runtime, "dashboard")
    assert feature is not None
    feature.attach(runtime)
    runtime.start()
    opened = time.perf_counter()
    now = time.time()
    # What the dashboard and the resolver ask for first.
    hosts = await asyncio.to_thread(feature.load_hosts)
    warm = time.perf_counter()
    summary = await asyncio.to_thread(feature.history_summary, now - 3600)
    top = await asyncio.to_thread(feature.top_destinations, now - 600)
    ready = time.perf_counter()
    await runtime.stop()
    assert summary["flows"] > 0 and top and isinstance(hosts, list)
    return {"open": opened - began, "hosts": warm - began, "ready": ready - began}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} at start "
          "(wall-clock rates fall with the load; rows per CPU-second do not)")  # fmt: skip
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--db-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pt-store-bench-") as tmp:
        folder = Path(tmp)
        insert_rate(args.rows, folder)
        big = str(folder / "big.db")
        began = time.perf_counter()
        build_big(big, args.db_rows)
        size = Path(big).stat().st_size / 1e6
        print(f"built a {args.db_rows:,}-row database ({size:.0f} MB) "
              f"in {time.perf_counter() - began:.1f} s")  # fmt: skip
        figures = asyncio.run(startup(big))
        print(f"start-up with {args.db_rows:,} rows: open + schema check + writer started "
              f"{figures['open'] * 1000:.0f} ms; host cache warm-up loaded "
              f"{figures['hosts'] * 1000:.0f} ms; last hour's summary and top destinations "
              f"(the first frame's history) {figures['ready'] * 1000:.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
