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

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


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


class Reader(threading.Thread):
    """Queries the newest flows every 100 ms on its own connection, as a panel would."""

    def __init__(self, db: str) -> None:
        super().__init__(daemon=True)
        self.db = db
        self.waits: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        conn = connect(Location(self.db), reader=True)
        flows = Repositories().flows
        while not self.stop.is_set():
            began = time.perf_counter()
            flows.query(conn, since=time.time() - 0.05, limit=100)
            self.waits.append(time.perf_counter() - began)
            self.stop.wait(max(0.0, 0.1 - (time.perf_counter() - began)))
        conn.close()

    def report(self) -> str:
        self.stop.set()
        self.join()
        waits = sorted(self.waits)
        p95 = waits[int(len(waits) * 0.95)] if waits else 0.0
        return (
            f"reader: {len(waits)} queries (one per 100 ms): median "
            f"{statistics.median(waits) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
            f"max {waits[-1] * 1000:.1f} ms"
        )


def produce(writer: StoreWriter, rows: int, rate: float | None) -> float:
    """Enqueue `rows` fresh flow dicts (as Flow.to_dict() hands them over), at `rate` rows/s
    or as fast as the writer keeps up; returns the time until all are committed."""
    template = [flow_row(i, time.time()) for i in range(1_000)]
    began = time.perf_counter()
    sent = 0
    while sent < rows:
        now = time.time()
        for row in template:
            fresh = dict(row)
            fresh["first_seen"] = now - 2.5
            fresh["last_seen"] = now
            writer.enqueue("flows", fresh)
        sent += len(template)
        if rate is not None:
            ahead = began + sent / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
        # Unpaced, a producer that outruns the writer would only fill the bounded queue.
        while writer.pending > 50_000:
            time.sleep(0.001)
    writer.flush_sync(300)
    return time.perf_counter() - began


def insert_rate(rows: int, rate: float, folder: Path) -> None:
    for label, pace in (("as fast as it goes", None), (f"offered {rate:,.0f} rows/s", rate)):
        db = str(folder / f"rate-{pace}.db")
        location, conn = open_database(db)
        writer = StoreWriter(location, conn, retention_days=0)
        writer.start()
        reader = Reader(db)
        reader.start()
        cpu_began = time.process_time()
        count = rows if pace is None else int(pace * 5)
        elapsed = produce(writer, count, pace)
        cpu = time.process_time() - cpu_began
        line = reader.report()
        writer.close_sync()
        print(f"insert, {label}: {writer.written:,} ended flows in {elapsed:.2f} s = "
              f"{writer.written / elapsed:,.0f} rows/s in {writer.batches} transactions, "
              f"dropped {writer.dropped}")  # fmt: skip
        print(f"  writer thread {writer.written / writer.write_cpu:,.0f} rows per CPU-second; "
              f"whole process (producer + writer + reader) "
              f"{writer.written / cpu:,.0f} rows per CPU-second")  # fmt: skip
        print(f"  {line}")


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


async def first_frame(db: str) -> float:
    """Seconds from building the dashboard (runtime, every feature, the app) to its first
    frame, replaying a tiny capture, with the database at `db`."""
    from packettracer.app import PacketTracerApp
    from packettracer.dashboard import build_runtime

    settings = Settings()
    settings.store.db_path = db
    settings.capture.read_file = str(DATA / "dns_tcp.pcap")
    settings.resolve.enabled = False
    settings.resolve.offline = True
    began = time.perf_counter()
    runtime = build_runtime(settings)
    app = PacketTracerApp(runtime)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        shown = time.perf_counter() - began
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} at start "
          "(wall-clock rates fall with the load; rows per CPU-second do not)")  # fmt: skip
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--rate", type=float, default=50_000, help="offered rows/s, phase 2")
    parser.add_argument("--db-rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pt-store-bench-") as tmp:
        folder = Path(tmp)
        insert_rate(args.rows, args.rate, folder)
        big = str(folder / "big.db")
        began = time.perf_counter()
        build_big(big, args.db_rows)
        size = Path(big).stat().st_size / 1e6
        print(f"built a {args.db_rows:,}-row database ({size:.0f} MB) "
              f"in {time.perf_counter() - began:.1f} s")  # fmt: skip
        figures = asyncio.run(startup(big))
        empty = str(folder / "empty.db")
        asyncio.run(first_frame(empty))  # imports and caches warm, so both runs compare fairly
        frames: dict[str, list[float]] = {"empty": [], "big": []}
        for _ in range(5):  # alternating, so that a busy moment of the machine hits both
            frames["empty"].append(asyncio.run(first_frame(empty)))
            frames["big"].append(asyncio.run(first_frame(big)))
        print(f"start-up with {args.db_rows:,} rows: open + schema check + writer started "
              f"{figures['open'] * 1000:.0f} ms; host cache warm-up loaded "
              f"{figures['hosts'] * 1000:.0f} ms; last hour's summary and top destinations "
              f"(the first frame's history) {figures['ready'] * 1000:.0f} ms")  # fmt: skip
        big_ms = [round(t * 1000) for t in frames["big"]]
        empty_ms = [round(t * 1000) for t in frames["empty"]]
        print(f"dashboard first frame (runtime, every feature, Textual app; imports warm), "
              f"5 runs each: with {args.db_rows:,} stored flows best {min(big_ms)} ms, median "
              f"{statistics.median(big_ms):.0f} ms; with an empty database best "
              f"{min(empty_ms)} ms, median {statistics.median(empty_ms):.0f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
