"""The single database writer: rows queued from the event loop, written in batches (every
250 ms or 1,000 rows, whichever comes first), one transaction each, by a thread of its own so
neither the UI nor the packet pipeline ever waits for the disk.

When a write fails for a reason that may pass (disk full, the database locked by another
process past the busy timeout, an I/O error), the batch is kept and retried with back-off, the
runtime's status bar says so, and rows keep queueing up to `max_pending`; beyond that new rows
are refused and counted, so memory stays bounded and no row is lost without being counted.
Retention (small delete batches) and incremental vacuum run in the same thread, in its quiet
moments.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from packettracer.services.store import KINDS, Repositories, Row
from packettracer.services.store.base import Repository
from packettracer.services.store.db import BUSY_TIMEOUT_MS, Location, is_busy, is_disk_full

log = logging.getLogger(__name__)

DAY = 86_400.0
WARNING_KEY = "store"


class StoreWriter:
    """A Runtime service (`name = "store"`): `run()` starts the thread, `close()` drains it."""

    name = "store"
    close_last = True
    """Runtime.stop() closes this after the other services, which may still flush rows."""

    def __init__(
        self,
        location: Location,
        conn: sqlite3.Connection,
        repos: Repositories | None = None,
        *,
        retention_days: float = 30,
        warnings: dict[str, str] | None = None,
        batch_rows: int = 1000,
        batch_interval: float = 0.25,
        max_batch_rows: int = 20_000,
        max_pending: int = 100_000,
        retry_min: float = 0.25,
        retry_max: float = 5.0,
        retention_batch: int = 500,
        retention_pause: float = 0.05,
        retention_interval: float = DAY,
        vacuum_idle: float = 5.0,
        close_timeout: float = 5.0,
        on_commit: Callable[[int], None] | None = None,
    ) -> None:
        self.location = location
        self.conn = conn
        self.repos = repos or Repositories()
        self.handlers = self.repos.handlers()
        self.retention_days = retention_days
        self.warnings = warnings if warnings is not None else {}
        self.batch_rows = batch_rows
        self.batch_interval = batch_interval
        self.max_batch_rows = max_batch_rows
        # A flow row is a dict of about 1 kB: 100,000 waiting rows bound the memory a long
        # failure (full disk, foreign lock) can take to about 100 MB.
        self.max_pending = max_pending
        self.retry_min = retry_min
        self.retry_max = retry_max
        self.retention_batch = retention_batch
        self.retention_pause = retention_pause
        self.retention_interval = retention_interval
        self.vacuum_idle = vacuum_idle
        self.close_timeout = close_timeout
        self.on_commit = on_commit

        self._queue: deque[tuple[str, Row]] = deque()
        self._retry: list[tuple[str, Row]] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._flush_requested = False
        self._thread: threading.Thread | None = None
        self._done: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._crash: BaseException | None = None
        self._closed = False
        self.after_close: Callable[[], None] | None = None
        self.before_close: Callable[[], None] | None = None

        # Counters (read by the UI, the tests and the benchmark).
        self.enqueued = 0
        self.written = 0
        self.batches = 0
        self.rejected = 0
        """Rows the database refused as invalid (bad values); logged, not retried."""
        self.dropped = 0
        """Rows refused because `max_pending` rows were already waiting."""
        self.lost = 0
        """Rows still unwritten when the writer had to stop."""
        self.failures = 0
        self.failing: str | None = None
        """Why writes fail right now ('disk full', 'locked', ...), None when they succeed."""
        self.retention_deleted = 0
        self.write_cpu = 0.0
        """CPU seconds the writer thread spent building and committing batches."""
        self.retention_runs = 0
        self.vacuumed_pages = 0
        self._episode_dropped = 0
        self._warning_clear_at: float | None = None
        self._retention_due = 0.0  # at start
        self._retention_index = 0
        self._retention_next_step = 0.0
        self._last_write = time.monotonic()

    # ---- the producer side (event loop thread) -------------------------------------------

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._retry)

    def enqueue(self, kind: str, row: Row) -> bool:
        """Queue one row of `kind` (see KINDS); False if refused (memory bound reached)."""
        if kind not in self.handlers:
            raise ValueError(f"unknown row kind {kind!r} (known: {', '.join(KINDS)})")
        if self._closed:
            self.lost += 1  # after the writer stopped: counted, never silently gone
            return False
        if len(self._queue) + len(self._retry) >= self.max_pending:
            self.dropped += 1
            self._episode_dropped += 1
            if self.failing is None and self.dropped % 1000 == 1:
                self.warnings[WARNING_KEY] = (
                    f"database: writer behind, {self.dropped} rows not written"
                )
            return False
        self._queue.append((kind, row))
        self.enqueued += 1
        if len(self._queue) >= self.batch_rows and not self._wake.is_set():
            self._wake.set()
        return True

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name="store-writer", daemon=True)
        self._thread.start()

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        self.start()
        assert self._thread is not None
        if not self._thread.is_alive():
            self._done.set()
        await self._done.wait()
        if self._crash is not None:
            raise RuntimeError(f"database writer stopped: {self._crash}")

    def _settled(self) -> int:
        return self.written + self.rejected + self.lost

    def flush_sync(self, timeout: float = 30.0) -> bool:
        """Wait until every row queued so far is committed (or counted as not written)."""
        target = self.enqueued
        self.start()
        self._flush_requested = True
        self._wake.set()
        deadline = time.monotonic() + timeout
        while self._settled() < target:
            if time.monotonic() > deadline or not self._alive():
                return False
            time.sleep(0.002)
        return True

    async def flush(self, limit: float = 30.0) -> bool:
        """As flush_sync, without blocking the event loop."""
        target = self.enqueued
        self.start()
        self._flush_requested = True
        self._wake.set()
        deadline = time.monotonic() + limit
        while self._settled() < target:
            if time.monotonic() > deadline or not self._alive():
                return False
            await asyncio.sleep(0.005)
        return True

    def _alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def close_sync(self) -> None:
        """Write what is queued (trying up to `close_timeout` if writes fail), then stop."""
        if not self._closed:
            self.start()  # never started (no event loop ran it): it still writes what it has
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.close_timeout + 5.0)

    async def close(self) -> None:
        if self.before_close is not None and not self._closed:
            try:
                self.before_close()  # on the event loop thread: may read the runtime's state
            except Exception:
                log.exception("database: queueing the last rows failed")
        await asyncio.to_thread(self.close_sync)
        if self.after_close is not None:
            self.after_close()

    # ---- the writer thread -----------------------------------------------------------------

    def _main(self) -> None:
        try:
            self._work()
        except BaseException as exc:  # never leave the run() task waiting forever
            log.exception("database writer failed")
            self._crash = exc
            self.warnings[WARNING_KEY] = f"database: writer stopped ({exc})"
        finally:
            self._finish()
            if self._loop is not None and self._done is not None:
                try:
                    self._loop.call_soon_threadsafe(self._done.set)
                except RuntimeError:
                    pass  # the loop is already closed

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        left = self.pending
        if left:
            self.lost += left
            log.warning("database %s: %d rows not written at exit", self.location, left)
            self._queue.clear()
            self._retry = []
        try:
            self.conn.close()
        except sqlite3.Error:
            pass

    def _work(self) -> None:
        next_flush = time.monotonic() + self.batch_interval
        backoff = self.retry_min
        stop_deadline: float | None = None
        while True:
            now = time.monotonic()
            stopping = self._stop.is_set()
            if stopping and stop_deadline is None:
                stop_deadline = now + self.close_timeout
            if not self._retry:
                if not self._queue:
                    self._flush_requested = False
                    if stopping:
                        return
                full = len(self._queue) >= self.batch_rows
                if not (full or stopping or self._flush_requested or now >= next_flush):
                    self._housekeeping(now)
                    wait = next_flush - time.monotonic()
                    if self._retention_active():
                        wait = min(wait, max(0.0, self._retention_next_step - time.monotonic()))
                    if wait > 0:
                        self._wake.wait(wait)
                    self._wake.clear()
                    continue
                next_flush = time.monotonic() + self.batch_interval
                batch = self._take()
                if not batch:
                    continue
            else:
                batch = self._retry
            cpu = time.thread_time()
            try:
                self._write(batch)
            except sqlite3.DatabaseError as exc:
                self.write_cpu += time.thread_time() - cpu
                self._retry = batch
                self._failed(exc)
                if stop_deadline is not None and time.monotonic() >= stop_deadline:
                    return  # _finish counts what is left as lost
                self._stop.wait(backoff) if not stopping else time.sleep(min(backoff, 0.5))
                backoff = min(backoff * 2, self.retry_max)
                continue
            self.write_cpu += time.thread_time() - cpu
            self._retry = []
            backoff = self.retry_min
            self._succeeded(len(batch))

    def _take(self) -> list[tuple[str, Row]]:
        queue = self._queue
        count = min(len(queue), self.max_batch_rows)
        popleft = queue.popleft
        return [popleft() for _ in range(count)]

    def _write(self, batch: list[tuple[str, Row]]) -> None:
        groups: dict[str, list[Row]] = {kind: [] for kind in self.handlers}
        for kind, row in batch:
            groups[kind].append(row)
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for kind, rows in groups.items():
                if rows:
                    self._apply(kind, rows)
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise

    def _apply(self, kind: str, rows: list[Row]) -> None:
        handler = self.handlers[kind]
        try:
            conn = self.conn
            conn.execute("SAVEPOINT rows")
            handler(conn, rows)
            conn.execute("RELEASE rows")
            return
        except sqlite3.OperationalError:
            raise  # full, busy, I/O: the whole batch is retried
        except (sqlite3.DatabaseError, ValueError, KeyError, TypeError, OverflowError):
            self.conn.execute("ROLLBACK TO rows")
            self.conn.execute("RELEASE rows")
        # One bad row (a missing key, a value SQLite cannot bind) must not block the others.
        for row in rows:
            try:
                self.conn.execute("SAVEPOINT one")
                handler(self.conn, [row])
                self.conn.execute("RELEASE one")
            except sqlite3.OperationalError:
                raise
            except (sqlite3.DatabaseError, ValueError, KeyError, TypeError, OverflowError) as exc:
                self.conn.execute("ROLLBACK TO one")
                self.conn.execute("RELEASE one")
                self.rejected += 1
                if self.rejected <= 5:
                    log.warning("database: %s row rejected: %s", kind, exc)

    def _failed(self, exc: sqlite3.DatabaseError) -> None:
        self.failures += 1
        if is_disk_full(exc):
            cause = "disk full"
        elif is_busy(exc):
            cause = "locked by another process"
        else:
            cause = str(exc)
        if self.failing != cause:
            log.warning("database %s: %s; keeping rows and retrying", self.location, exc)
            self._episode_dropped = 0
        self.failing = cause
        self._warning_clear_at = None
        self.warnings[WARNING_KEY] = self._failing_text()

    def _failing_text(self) -> str:
        waiting = self.pending + self._episode_dropped
        if self.failing == "locked by another process":
            return f"database: locked by another process, {waiting} rows not written yet"
        return f"database: {self.failing}, {waiting} rows not written"

    def _succeeded(self, count: int) -> None:
        self.written += count
        self.batches += 1
        self._last_write = time.monotonic()
        if self.failing is not None:
            log.warning("database %s: writing again after %s", self.location, self.failing)
            if self._episode_dropped:
                self.warnings[WARNING_KEY] = (
                    f"database: {self._episode_dropped} rows lost while {self.failing}"
                )
                self._warning_clear_at = time.monotonic() + 60.0
            else:
                self.warnings.pop(WARNING_KEY, None)
            self.failing = None
        elif WARNING_KEY in self.warnings and self._warning_clear_at is None:
            # "writer behind" (rows refused): shown for a minute after writing catches up.
            self._warning_clear_at = time.monotonic() + 60.0
        if self.on_commit is not None:
            self.on_commit(self.written)

    # ---- housekeeping: retention and vacuum, only when there is nothing to write ----------

    def _retention_active(self) -> bool:
        # Wall-clock time: "once a day" should survive the machine sleeping.
        return time.time() >= self._retention_due

    def _housekeeping(self, now: float) -> None:
        if self._warning_clear_at is not None and now >= self._warning_clear_at:
            self._warning_clear_at = None
            if self.failing is None:
                self.warnings.pop(WARNING_KEY, None)
        if self._retention_active():
            if now >= self._retention_next_step:
                self._retention_step(now)
            return
        if now - self._last_write >= self.vacuum_idle:
            self._vacuum_step()

    def _retention_step(self, now: float) -> None:
        repos: list[Repository] = self.repos.with_retention()
        if self.retention_days <= 0 or self._retention_index >= len(repos):
            self._retention_index = 0
            self.retention_runs += 1
            self._retention_due = time.time() + self.retention_interval
            return
        repo = repos[self._retention_index]
        cutoff = time.time() - self.retention_days * DAY
        conn = self.conn
        try:
            with self._short_busy_timeout():
                conn.execute("BEGIN IMMEDIATE")
                deleted = repo.delete_older(conn, cutoff, self.retention_batch)
                conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            log.info("database retention postponed: %s", exc)
            self._retention_next_step = now + 60.0
            return
        self.retention_deleted += max(deleted, 0)
        if deleted < self.retention_batch:
            self._retention_index += 1
        # A pause between small deletes keeps readers and new rows flowing.
        self._retention_next_step = time.monotonic() + self.retention_pause

    @contextlib.contextmanager
    def _short_busy_timeout(self) -> Iterator[None]:
        """Housekeeping gives way at once when another process holds the lock: it must never
        keep new rows waiting for the full busy timeout."""
        self.conn.execute("PRAGMA busy_timeout = 50")
        try:
            yield
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def _vacuum_step(self) -> None:
        try:
            free = int(self.conn.execute("PRAGMA freelist_count").fetchone()[0])
            if free <= 0:
                return
            # executescript steps the pragma to completion; execute() would free one page.
            with self._short_busy_timeout():
                self.conn.executescript("PRAGMA incremental_vacuum(256);")
            left = int(self.conn.execute("PRAGMA freelist_count").fetchone()[0])
            self.vacuumed_pages += max(free - left, 0)
        except sqlite3.DatabaseError as exc:
            log.debug("incremental vacuum skipped: %s", exc)

    def stats(self) -> dict[str, Any]:
        return {
            "enqueued": self.enqueued,
            "written": self.written,
            "pending": self.pending,
            "batches": self.batches,
            "rejected": self.rejected,
            "dropped": self.dropped,
            "lost": self.lost,
            "failing": self.failing,
            "retention_deleted": self.retention_deleted,
        }
