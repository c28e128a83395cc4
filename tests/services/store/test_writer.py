"""The batched writer thread: when it writes, what it keeps, retention and vacuum."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pytest

from packettracer.services.store import open_database
from packettracer.services.store.writer import StoreWriter


def make_writer(db_path: str, **options: Any) -> StoreWriter:
    location, conn = open_database(db_path)
    return StoreWriter(location, conn, **options)


def count(db_path: str, table: str = "flows") -> int:
    conn = sqlite3.connect(db_path)
    try:
        return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    finally:
        conn.close()


def wait_for(predicate, limit: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


@pytest.fixture
def writers() -> Iterator[list[StoreWriter]]:
    made: list[StoreWriter] = []
    yield made
    for writer in made:
        writer.close_sync()


def test_a_full_batch_is_written_without_waiting_for_the_interval(
    db_path: str, flow_factory, writers
) -> None:
    writer = make_writer(db_path, batch_rows=100, batch_interval=30.0, retention_days=0)
    writers.append(writer)
    writer.start()
    for i in range(99):
        writer.enqueue("flows", flow_factory(i))
    time.sleep(0.3)
    assert count(db_path) == 0  # below the batch size, the 30 s interval has not passed
    writer.enqueue("flows", flow_factory(99))
    assert wait_for(lambda: count(db_path) == 100)
    # the writer thread counts the batch just after its commit becomes visible
    assert wait_for(lambda: writer.batches >= 1)
    assert writer.batches == 1


def test_a_small_batch_is_written_after_the_interval(db_path: str, flow_factory, writers) -> None:
    writer = make_writer(db_path, batch_rows=1000, batch_interval=0.2, retention_days=0)
    writers.append(writer)
    writer.start()
    writer.enqueue("flows", flow_factory(1))
    started = time.monotonic()
    assert wait_for(lambda: count(db_path) == 1)
    assert time.monotonic() - started < 2.0


def test_flush_and_close_write_everything(db_path: str, flow_factory) -> None:
    writer = make_writer(db_path, batch_interval=30.0)
    for i in range(2500):
        writer.enqueue("flows", flow_factory(i))
    assert writer.flush_sync(10)
    assert count(db_path) == 2500
    for i in range(10):
        writer.enqueue("flows", flow_factory(i))
    writer.close_sync()
    assert count(db_path) == 2510
    assert writer.lost == 0


def test_a_bad_row_is_rejected_alone(db_path: str, flow_factory) -> None:
    writer = make_writer(db_path)
    writer.enqueue("flows", flow_factory(1))
    writer.enqueue("flows", {"proto": "tcp"})  # no addresses: NOT NULL fails
    writer.enqueue("dns", {"ts": time.time()})  # no qname
    writer.enqueue("flows", flow_factory(2))
    writer.close_sync()
    assert count(db_path) == 2
    assert writer.rejected == 2 and writer.lost == 0


def test_unknown_kind_is_a_programming_error(db_path: str) -> None:
    writer = make_writer(db_path)
    with pytest.raises(ValueError, match="unknown row kind"):
        writer.enqueue("nonsense", {})
    writer.close_sync()


def test_memory_stays_bounded_and_refused_rows_are_counted(db_path: str, flow_factory) -> None:
    warnings: dict[str, str] = {}
    writer = make_writer(db_path, max_pending=500, warnings=warnings)
    # Not started yet: nothing drains the queue.
    accepted = sum(writer.enqueue("flows", flow_factory(i)) for i in range(800))
    assert accepted == 500 and writer.dropped == 300 and writer.pending == 500
    assert "rows not written" in warnings["store"]
    writer.close_sync()
    assert count(db_path) == 500


def test_retention_deletes_old_rows_in_small_batches_at_start(db_path: str, flow_factory) -> None:
    location, conn = open_database(db_path)
    conn.execute("BEGIN")
    from packettracer.services.store import Repositories

    repos = Repositories()
    repos.flows.insert_many(conn, [flow_factory(i) for i in range(1300)])
    now = time.time()
    repos.dns.insert_many(
        conn, [{"ts": now - 40 * 86400, "qname": "old.example"}, {"ts": now, "qname": "new"}]
    )
    conn.execute("UPDATE flows SET stored_at = ? WHERE id <= 1100", (now - 31 * 86400,))
    conn.execute("COMMIT")
    writer = StoreWriter(
        location, conn, repos, retention_days=30, retention_batch=100, retention_pause=0.001
    )
    writer.start()
    assert wait_for(lambda: writer.retention_runs == 1, 10)
    assert count(db_path) == 200
    assert count(db_path, "dns") == 1
    assert writer.retention_deleted == 1101
    writer.close_sync()


def test_idle_writer_gives_free_pages_back(db_path: str, flow_factory) -> None:
    writer = make_writer(db_path, retention_days=30, vacuum_idle=0.2, batch_interval=0.05)
    for i in range(5000):
        writer.enqueue("flows", flow_factory(i, app="x" * 200))
    writer.flush_sync(10)
    conn = sqlite3.connect(db_path)
    conn.execute("DELETE FROM flows")
    conn.commit()
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] > 100
    assert wait_for(lambda: conn.execute("PRAGMA freelist_count").fetchone()[0] == 0, 10)
    conn.close()
    assert writer.vacuumed_pages > 100
    writer.close_sync()


async def test_run_as_a_service_and_flush_without_blocking(db_path: str, flow_factory) -> None:
    import asyncio

    writer = make_writer(db_path)
    task = asyncio.create_task(writer.run())
    for i in range(3000):
        writer.enqueue("flows", flow_factory(i))
    assert await writer.flush()
    assert count(db_path) == 3000
    task.cancel()
    await writer.close()
    assert task.done() or await asyncio.wait_for(task, 2) is None
