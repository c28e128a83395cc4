"""The database under faults: SIGKILL mid-burst, a full disk, a lock held by another process,
a newer schema, a path that cannot be used. Real processes, a real tmpfs, real files."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import DATA, is_root, packettracer_cmd

from packettracer.config import Settings
from packettracer.services.runtime import Runtime
from packettracer.services.store import open_database
from packettracer.services.store.db import BUSY_TIMEOUT_MS
from packettracer.services.store_feature import create_store_feature

ROW = (
    "{'proto': 'tcp', 'src': '10.0.0.%d' % (i % 250), 'sport': i % 60000, "
    "'dst': '192.0.2.1', 'dport': 443, 'packets_fwd': 1, 'packets_rev': 1, "
    "'bytes_fwd': 60, 'bytes_rev': 60, 'first_seen': time.time(), "
    "'last_seen': time.time(), 'duration': 0.0, 'tcp_state': 'closed', 'seq': i}"
)

WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from packettracer.services.store import open_database
    from packettracer.services.store.writer import StoreWriter

    def committed(n):
        sys.stdout.write(f"{n}\\n")
        sys.stdout.flush()

    location, conn = open_database(sys.argv[1])
    writer = StoreWriter(location, conn, on_commit=committed, batch_interval=0.05)
    writer.start()
    i = 0
    while True:  # bursts until killed
        for _ in range(3000):
            writer.enqueue("flows", ROW)
            i += 1
        time.sleep(0.005)
    """
).replace("ROW", ROW)


def integrity(db: str) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def count(db: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT count(*) FROM flows").fetchone()[0])
    finally:
        conn.close()


def test_sigkill_during_a_write_burst_keeps_every_committed_row(tmp_path: Path) -> None:
    db = str(tmp_path / "killed.db")
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, db], stdout=subprocess.PIPE, text=True
    )
    committed = 0
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        while committed < 30_000:
            line = proc.stdout.readline()
            assert line, f"writer exited early ({proc.poll()})"
            committed = int(line)
            assert time.monotonic() < deadline
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    # The next start opens it: WAL recovery, schema check, writability check.
    _, conn = open_database(db)
    conn.close()
    assert integrity(db) == "ok"
    stored = count(db)
    assert stored >= committed
    # Rows are whole: the last one committed carries every field.
    conn = sqlite3.connect(db)
    seqs = [r[0] for r in conn.execute("SELECT json_extract(ext, '$.seq') FROM flows")]
    conn.close()
    assert sorted(seqs) == list(range(len(seqs)))  # a prefix, nothing missing in between


def test_a_lock_held_longer_than_the_busy_timeout_delays_rows_but_loses_none(
    tmp_path: Path,
) -> None:
    db = str(tmp_path / "locked.db")
    settings = Settings()
    settings.store.db_path = db
    hold = BUSY_TIMEOUT_MS / 1000 + 3.0  # outlasts the busy timeout even on a slow start
    # The schema exists before another process takes the lock.
    _, conn = open_database(db)
    conn.close()
    locker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN EXCLUSIVE')\n"
            "print('locked', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n"
            "c.execute('COMMIT')\n",
            db,
            str(hold),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )

    async def scenario() -> None:
        runtime = Runtime(settings)
        feature = create_store_feature(runtime, "dashboard")
        assert feature is not None
        feature.attach(runtime)
        feature.writer.retry_min = feature.writer.retry_max = 0.2
        assert locker.stdout is not None
        assert (await asyncio.to_thread(locker.stdout.readline)).strip() == "locked"
        runtime.start()
        try:
            for i in range(500):
                feature.record_alert("test", f"alert {i}", uid=f"a{i}")
            saw_warning = ""
            deadline = time.monotonic() + hold + 20
            while feature.writer.written < 500:
                saw_warning = saw_warning or runtime.status_warnings.get("store", "")
                assert time.monotonic() < deadline, feature.writer.stats()
                await asyncio.sleep(0.02)
            assert "locked by another process" in saw_warning
            assert "500 rows not written yet" in saw_warning
            assert feature.writer.failures >= 1
            # cleared once written (just after the count of written rows goes up)
            while "store" in runtime.status_warnings:
                assert time.monotonic() < deadline, runtime.status_warnings
                await asyncio.sleep(0.02)
        finally:
            await runtime.stop()

    try:
        asyncio.run(scenario())
    finally:
        locker.kill()
        locker.wait(10)
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(DISTINCT uid) FROM alerts").fetchone()[0] == 500
    conn.close()


@pytest.fixture
def small_tmpfs(tmp_path: Path):  # type: ignore[no-untyped-def]
    if not is_root():
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder: Path) -> Path:
    """Take every free byte of the file system with one file."""
    filler = folder / "filler"
    with open(filler, "wb", buffering=0) as out:
        chunk = b"\0" * 4096
        try:
            while True:
                out.write(chunk)
        except OSError:
            pass
    return filler


def test_disk_full_warns_keeps_rows_bounded_and_resumes(small_tmpfs: Path) -> None:
    db = str(small_tmpfs / "pt" / "data.db")
    settings = Settings()
    settings.store.db_path = db

    async def scenario() -> None:
        runtime = Runtime(settings)
        feature = create_store_feature(runtime, "dashboard")
        assert feature is not None
        feature.attach(runtime)
        writer = feature.writer
        writer.max_pending = 4000
        writer.retry_min = writer.retry_max = 0.05
        runtime.start()
        try:
            feature.record_flow({"proto": "udp", "src": "a", "dst": "b", "sport": 1, "dport": 2,
                                 "first_seen": 1.0, "last_seen": 1.0})  # fmt: skip
            assert await writer.flush()
            filler = await asyncio.to_thread(fill, small_tmpfs)
            payload = "p" * 300
            for i in range(10_000):
                src = f"10.0.{i // 250}.{i % 250}"
                feature.record_flow({"proto": "tcp", "src": src, "dst": "192.0.2.1", "sport": i,
                                     "dport": 443, "first_seen": 2.0, "last_seen": 2.0,
                                     "pad": payload})  # fmt: skip
                if i % 500 == 0:
                    await asyncio.sleep(0.01)  # a live capture: rows keep coming
            deadline = time.monotonic() + 20
            while writer.failing != "disk full":
                assert time.monotonic() < deadline, writer.stats()
                await asyncio.sleep(0.05)

            def unwritten() -> int:
                """The warning's count of rows not written (-1 before the warning says so)."""
                warning = runtime.status_warnings.get("store", "")
                if not warning.startswith("database: disk full, "):
                    return -1
                return int(warning.split(", ")[1].split()[0])

            # The writer rewrites its warning when a retry fails: wait for the one that counts
            # every row dropped so far (no more rows are coming).
            deadline = time.monotonic() + 20
            while unwritten() < writer.dropped:
                assert time.monotonic() < deadline, (writer.stats(), runtime.status_warnings)
                await asyncio.sleep(0.05)
            warning = runtime.status_warnings.get("store", "")
            assert "rows not written" in warning
            assert writer.pending <= 4000 and writer.dropped > 0
            assert runtime.errors == []  # the writer service is still running
            # Space comes back: the kept rows are written, the warning changes to what was lost.
            await asyncio.to_thread(filler.unlink)
            deadline = time.monotonic() + 20
            while writer.failing is not None or writer.pending:
                assert time.monotonic() < deadline, writer.stats()
                await asyncio.sleep(0.05)
            assert "rows lost while disk full" in runtime.status_warnings.get("store", "")
            feature.record_flow({"proto": "udp", "src": "c", "dst": "d", "sport": 1, "dport": 2,
                                 "first_seen": 3.0, "last_seen": 3.0})  # fmt: skip
            assert await writer.flush()
            assert writer.written == writer.enqueued
            assert writer.written + writer.dropped == 10_002
        finally:
            await runtime.stop()
        assert count(db) == writer.written
        assert integrity(db) == "ok"

    asyncio.run(scenario())


async def test_dashboard_status_bar_shows_a_full_disk_and_keeps_running(
    small_tmpfs: Path,
) -> None:
    from functional.dashboard_helpers import dashboard_settings, make_app, replayed, wait_for
    from rich.text import Text

    from packettracer.widgets.status_bar import StatusBar

    settings = dashboard_settings()
    settings.store.db_path = str(small_tmpfs / "data.db")
    app = make_app(settings=settings)

    def status() -> str:
        rendered = app.query_one(StatusBar).render()
        return rendered.plain if isinstance(rendered, Text) else str(rendered)

    async with app.run_test(size=(160, 30)) as pilot:
        await replayed(pilot)
        store = app.runtime.features["store"]
        filler = await asyncio.to_thread(fill, small_tmpfs)
        for i in range(30_000):
            store.record_dns(f"host-{i}.example", answers=["192.0.2.1"] * 20)
        await wait_for(pilot, lambda: "disk full" in status(), limit=30)
        assert "rows not written" in status()
        await pilot.press("g")  # the dashboard still answers keys
        await pilot.press("g")
        assert app.runtime.errors == []
        await asyncio.to_thread(filler.unlink)
        await wait_for(pilot, lambda: "disk full," not in status(), limit=30)
    assert integrity(settings.store.db_path) == "ok"


def test_cli_unusable_path_is_one_line_suggesting_memory(tmp_path: Path) -> None:
    blocker = tmp_path / "plain-file"
    blocker.write_text("x")
    out = subprocess.run(
        [*packettracer_cmd(), "report", "-r", str(DATA / "dns_tcp.pcap")]
        + ["--db", str(blocker / "data.db"), "-n", "--offline"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "--db :memory:" in out.stderr and "cannot create folder" in out.stderr


def test_cli_newer_schema_is_refused_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "future.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE future (x)")
    conn.execute("PRAGMA user_version = 42")
    conn.close()
    before = db.read_bytes()
    out = subprocess.run(
        [*packettracer_cmd(), "report", "-r", str(DATA / "dns_tcp.pcap"), "--db", str(db)]
        + ["-n", "--offline"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert "schema version 42, newer" in out.stderr and "left untouched" in out.stderr
    assert db.read_bytes() == before
